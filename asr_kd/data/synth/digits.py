"""The embedded default corpus: connected digit strings spoken by synthetic eSpeak NG speakers.

Everything is a pure function of ``DigitsCorpusConfig`` (the seed included): the speaker
list, the splits, each utterance's words, voice, noise and channel. Utterances are
generated independently (per-utterance seeds), so the work is split over processes and a
killed run resumes where it stopped.

Output layout under ``out_dir``::

    wav/<utt_id>.wav        16-bit PCM at ``sample_rate``
    meta/<utt_id>.json      text, speaker, accent, degradations, oracle word/phone times
    speakers.json           the speaker table (voice, prosody, split)
    <split>.jsonl           one record per utterance (written last, atomically)
    .done                   completion marker (config fingerprint)
"""

import logging
from dataclasses import asdict, dataclass
from typing import Dict, Tuple

import numpy as np

from asr_kd.data.synth.corpus import (
    Job,
    SPLITS,
    UNLABELLED,
    Speaker,
    SynthConfig,
    default_num_jobs,
    draw_rendering,
    generate,
    make_speakers,
    make_unlabelled_speakers,
    read_split,
    render_utterance,
    speaker_table,
)
from asr_kd.utils.validity import fingerprint

log = logging.getLogger(__name__)

DIGIT_WORDS = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# The mean duration of an untranscribed utterance (2.16 s over 5,768 of the default config's; longer
# than a training utterance's 1.86 s because the short strings are all in dev or test): the
# unlabelled split's planned hours use it.
UNLABELLED_UTTERANCE_SECONDS = 2.16
# Bumped whenever the generator's output changes for the same config (invalidates old corpora).
GENERATOR_VERSION = 3  # 3: schwa ('@') phone events kept in the oracle
__all__ = [
    "DIGIT_WORDS",
    "SPLITS",
    "DigitsCorpusConfig",
    "Speaker",
    "make_speakers",
    "synthesize_utterance",
    "generate_corpus",
    "generate_unlabelled",
    "read_split",
    "default_num_jobs",
]


@dataclass
class DigitsCorpusConfig(SynthConfig):
    utts_per_speaker: int = 30
    min_words: int = 1
    max_words: int = 7

    def __post_init__(self):
        super().__post_init__()
        if not (1 <= self.min_words <= self.max_words):
            raise ValueError(f"need 1 <= min_words <= max_words, got {self.min_words}, {self.max_words}")
        if self.utts_per_speaker < 1:
            raise ValueError("every speaker needs at least one utterance")


def _utterance_plan(cfg: DigitsCorpusConfig, spk_index: int, utt_index: int) -> Dict:
    rng = np.random.default_rng([cfg.seed, 1, spk_index, utt_index])
    n = int(rng.integers(cfg.min_words, cfg.max_words + 1))
    words = [str(w) for w in rng.choice(DIGIT_WORDS, size=n)]
    return {"words": words, **draw_rendering(cfg, rng)}


def synthesize_utterance(
    cfg: DigitsCorpusConfig, speaker: Speaker, *, spk_index: int, utt_index: int
) -> Tuple[np.ndarray, Dict]:
    """Returns (float32 audio at cfg.sample_rate, metadata with oracle word and phone times)."""
    plan = _utterance_plan(cfg, spk_index, utt_index)
    return render_utterance(cfg, speaker, f"{speaker.id}-{utt_index:04d}", words=plan["words"], plan=plan)


def generate_corpus(cfg: DigitsCorpusConfig, out_dir, num_jobs: int = 1) -> Dict[str, int]:
    """Generate (or finish generating) the corpus; returns utterance counts per split."""
    key = fingerprint({"config": asdict(cfg), "generator": GENERATOR_VERSION})
    speakers = make_speakers(cfg)
    jobs = [
        Job(f"{s.id}-{u:04d}", s.split, synthesize_utterance, dict(cfg=cfg, speaker=s, spk_index=i, utt_index=u))
        for i, s in enumerate(speakers)
        for u in range(cfg.utts_per_speaker)
    ]
    return generate(
        jobs,
        out_dir,
        key,
        sample_rate=cfg.sample_rate,
        num_jobs=num_jobs,
        extra_files={"speakers.json": speaker_table(speakers)},
    )


def _unlabelled_plan(cfg: DigitsCorpusConfig, spk_index: int, utt_index: int, *, held_out: set) -> Dict:
    """An untranscribed utterance's words, redrawn until they are no dev or test utterance's string."""
    rng = np.random.default_rng([cfg.seed, 2, spk_index, utt_index])
    while True:
        n = int(rng.integers(cfg.min_words, cfg.max_words + 1))
        words = [str(w) for w in rng.choice(DIGIT_WORDS, size=n)]
        if tuple(words) not in held_out:
            return {"words": words, **draw_rendering(cfg, rng)}


def synthesize_unlabelled(
    cfg: DigitsCorpusConfig, speaker: Speaker, *, spk_index: int, utt_index: int
) -> Tuple[np.ndarray, Dict]:
    plan = _unlabelled_plan(cfg, spk_index, utt_index, held_out=evaluation_strings(cfg))
    return render_utterance(cfg, speaker, f"{speaker.id}-{utt_index:04d}", words=plan["words"], plan=plan)


_EVALUATION_STRINGS: Dict[str, frozenset] = {}  # per config, computed once per process


def evaluation_strings(cfg: DigitsCorpusConfig) -> frozenset:
    """The digit strings of every dev and test utterance (a pure function of the config)."""
    key = fingerprint(asdict(cfg))
    if key not in _EVALUATION_STRINGS:
        _EVALUATION_STRINGS[key] = _evaluation_strings(cfg)
    return _EVALUATION_STRINGS[key]


def _evaluation_strings(cfg: DigitsCorpusConfig) -> frozenset:
    return frozenset(
        tuple(_utterance_plan(cfg, i, u)["words"])
        for i, s in enumerate(make_speakers(cfg))
        if s.split != "train"
        for u in range(cfg.utts_per_speaker)
    )


def generate_unlabelled(cfg: DigitsCorpusConfig, hours: float, out_dir, *, num_jobs: int = 1) -> Dict[str, int]:
    """The untranscribed transfer split (``unlabelled.jsonl`` in ``out_dir``, a folder of its own):
    about ``hours`` of digit strings, none of them a dev or test utterance's string, spoken by new
    speakers of the training accents, ``utts_per_speaker`` each, under the corpus's degradations.
    The generator keeps what it said in ``meta/`` (as for every split); the manifests drop it
    (``asr_kd.data.manifests.prepare_unlabelled``), so no later stage can read a transcript."""
    if hours <= 0:
        raise ValueError(f"unlabelled hours must be positive, got {hours}")
    utts = int(np.ceil(hours * 3600 / UNLABELLED_UTTERANCE_SECONDS))
    speakers = make_unlabelled_speakers(cfg, int(np.ceil(utts / cfg.utts_per_speaker)))
    key = fingerprint(
        {"config": asdict(cfg), "generator": GENERATOR_VERSION, "unlabelled_hours": hours, "utterances": utts}
    )
    jobs = [
        Job(f"{s.id}-{u:04d}", s.split, synthesize_unlabelled, dict(cfg=cfg, speaker=s, spk_index=i, utt_index=u))
        for i, s in enumerate(speakers)
        for u in range(cfg.utts_per_speaker)
    ][:utts]
    return generate(
        jobs,
        out_dir,
        key,
        sample_rate=cfg.sample_rate,
        num_jobs=num_jobs,
        extra_files={"speakers.json": speaker_table(speakers)},
        splits=(UNLABELLED,),
    )

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
    SPLITS,
    Speaker,
    SynthConfig,
    default_num_jobs,
    draw_rendering,
    generate,
    make_speakers,
    read_split,
    render_utterance,
    speaker_table,
)
from asr_kd.utils.validity import fingerprint

log = logging.getLogger(__name__)

DIGIT_WORDS = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
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
    cfg: DigitsCorpusConfig, speaker: Speaker, spk_index: int, utt_index: int
) -> Tuple[np.ndarray, Dict]:
    """Returns (float32 audio at cfg.sample_rate, metadata with oracle word and phone times)."""
    plan = _utterance_plan(cfg, spk_index, utt_index)
    return render_utterance(cfg, speaker, f"{speaker.id}-{utt_index:04d}", plan["words"], plan)


def generate_corpus(cfg: DigitsCorpusConfig, out_dir, num_jobs: int = 1) -> Dict[str, int]:
    """Generate (or finish generating) the corpus; returns utterance counts per split."""
    key = fingerprint({"config": asdict(cfg), "generator": GENERATOR_VERSION})
    speakers = make_speakers(cfg)
    jobs = [
        (f"{s.id}-{u:04d}", s.split, synthesize_utterance, (cfg, s, i, u))
        for i, s in enumerate(speakers)
        for u in range(cfg.utts_per_speaker)
    ]
    return generate(
        jobs, out_dir, key, cfg.sample_rate, num_jobs, extra_files={"speakers.json": speaker_table(speakers)}
    )

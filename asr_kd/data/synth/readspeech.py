"""A large-vocabulary read-speech corpus from any text (one sentence a line), spoken by synthetic
eSpeak NG speakers under the digits corpus's degradations (``asr_kd.data.synth.corpus``).

Everything is a pure function of (``ReadSpeechCorpusConfig``, the text's bytes):

1. text: every line normalised (``asr_kd.data.text``: numbers spelled out, punctuation out,
   upper case), duplicates dropped (first occurrence kept), at most ``max_sentences`` kept;
2. sentences: a seeded shuffle; sentences of ``min_words``..``max_words`` words fill dev, then
   test, then train, to their hours (estimated at the mean speaking rate), each read once. When
   train would need more than ``train_text_share`` of the sentences left, it cycles through that
   share with other speakers instead (large corpora from a short text);
3. LM text (``lm/text.txt``): every sentence except dev's and test's, so no dev or test sentence
   is in it (train's are, as LibriSpeech's LM text holds its training books' text);
   ``lm/lm_only.txt`` is the part no utterance reads;
4. speakers: speaker-disjoint splits, test holding out whole accents; a split's utterances go to
   its speakers in turn.

Output layout: as the digits corpus (``wav/``, ``meta/``, ``speakers.json``, ``SPLIT.jsonl``,
``.done``) plus ``lm/`` and ``text_stats.json``. eSpeak occasionally merges or splits words
(e.g. an abbreviation): such an utterance has no oracle and is skipped, counted in the log.
"""

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from asr_kd.data.synth.corpus import (
    Job,
    SPLITS,
    UNLABELLED,
    Speaker,
    SynthConfig,
    draw_rendering,
    generate,
    make_speakers,
    make_unlabelled_speakers,
    render_utterance,
    speaker_table,
)
from asr_kd.data.text import normalized_sentences
from asr_kd.utils.io import write_json_atomic, write_text_atomic
from asr_kd.utils.validity import fingerprint

log = logging.getLogger(__name__)

GENERATOR_VERSION = 2  # 2: durations planned at eSpeak's measured speaking rate
SECONDS_OF_SILENCE = 0.6  # lead + trail on average (SynthConfig.lead_silence)
# eSpeak speaks a word in about 0.75 of the time its nominal rate (words per minute) gives
# (median 0.74 over the default corpus's 919 training utterances): planned hours use it.
ESPEAK_WORD_TIME = 0.75


@dataclass
class ReadSpeechCorpusConfig(SynthConfig):
    train_speakers: int = 40
    dev_speakers: int = 10
    test_speakers: int = 10  # half of them from held_out_accents
    train_hours: float = 1.0
    dev_hours: float = 0.2
    test_hours: float = 0.2
    min_words: int = 3  # shorter and longer sentences stay in the LM text only
    max_words: int = 25
    train_text_share: float = 0.5  # of the sentences left after dev and test
    max_sentences: int = 0  # 0: the whole text; else its first N distinct sentences (tiny corpora)

    def __post_init__(self):
        super().__post_init__()
        if not (1 <= self.min_words <= self.max_words):
            raise ValueError(f"need 1 <= min_words <= max_words, got {self.min_words}, {self.max_words}")
        if min(self.train_hours, self.dev_hours, self.test_hours) <= 0:
            raise ValueError("every split needs a positive number of hours")
        if not 0 < self.train_text_share <= 1:
            raise ValueError("train_text_share must be in (0, 1]")


def read_sentences(text_path, max_sentences: int = 0) -> List[str]:
    """Normalised, distinct sentences of a text file (first occurrence order)."""
    seen: Dict[str, None] = {}
    with open(text_path, encoding="utf-8", errors="replace") as f:
        for s in normalized_sentences(f):
            seen.setdefault(s, None)
            if max_sentences and len(seen) >= max_sentences:
                break
    if not seen:
        raise ValueError(f"{text_path}: no sentence left after normalisation")
    return list(seen)


def estimated_seconds(sentence: str, cfg: ReadSpeechCorpusConfig) -> float:
    rate = (cfg.rate_range[0] + cfg.rate_range[1]) / 2  # words per minute
    return ESPEAK_WORD_TIME * len(sentence.split()) * 60.0 / rate + SECONDS_OF_SILENCE


def assign_sentences(sentences: List[str], cfg: ReadSpeechCorpusConfig) -> Dict[str, List[str]]:
    """{'dev', 'test', 'train'}: the sentences each split reads; 'lm_only': those none reads."""
    order = np.random.default_rng([cfg.seed, 2]).permutation(len(sentences))
    eligible = [i for i in order if cfg.min_words <= len(sentences[i].split()) <= cfg.max_words]
    out: Dict[str, List[int]] = {"dev": [], "test": [], "train": []}
    pos = 0
    for split, hours in (("dev", cfg.dev_hours), ("test", cfg.test_hours)):
        total = 0.0
        while total < hours * 3600:
            if pos >= len(eligible):
                raise ValueError(
                    f"the text has too few sentences of {cfg.min_words}-{cfg.max_words} words for "
                    f"{cfg.dev_hours} h of dev and {cfg.test_hours} h of test"
                )
            out[split].append(eligible[pos])
            total += estimated_seconds(sentences[eligible[pos]], cfg)
            pos += 1
    rest = eligible[pos:]
    cap, total = max(1, int(len(rest) * cfg.train_text_share)), 0.0
    for i in rest[:cap]:  # distinct sentences until the hours are reached (or the share is used up)
        if total >= cfg.train_hours * 3600:
            break
        out["train"].append(i)
        total += estimated_seconds(sentences[i], cfg)
    reads = set(out["dev"]) | set(out["test"]) | set(out["train"])
    result = {k: [sentences[i] for i in v] for k, v in out.items()}
    result["lm_only"] = [s for i, s in enumerate(sentences) if i not in reads]
    return result


def _utterances(split: str, pool: List[str], hours: float, *, cfg: ReadSpeechCorpusConfig) -> List[str]:
    """The sentences a split's utterances read, in order: each once (dev, test), or cycled (train)."""
    if split != "train":
        return list(pool)
    out, total = [], 0.0
    while total < hours * 3600:
        s = pool[len(out) % len(pool)]
        out.append(s)
        total += estimated_seconds(s, cfg)
    if len(out) > len(pool):
        log.info(
            "train reads its %d sentences %.1f times on average (more hours than sentences)",
            len(pool),
            len(out) / len(pool),
        )
    return out


def synthesize_read_utterance(
    cfg: ReadSpeechCorpusConfig, speaker: Speaker, *, utt_id: str, sentence: str, plan_seed: Tuple[int, ...]
) -> Tuple[np.ndarray, Dict]:
    plan = draw_rendering(cfg, np.random.default_rng(list(plan_seed)))
    return render_utterance(cfg, speaker, utt_id, words=sentence.split(), plan=plan)


def text_digest(text_path) -> str:
    return hashlib.sha256(Path(text_path).read_bytes()).hexdigest()[:16]


def generate_readspeech(cfg: ReadSpeechCorpusConfig, text_path, out_dir, *, num_jobs: int = 1) -> Dict[str, int]:
    """Generate (or finish generating) the corpus from ``text_path``; returns utterances per split."""
    out_dir = Path(out_dir)
    key = fingerprint({"config": asdict(cfg), "text": text_digest(text_path), "generator": GENERATOR_VERSION})
    sentences = read_sentences(text_path, cfg.max_sentences)
    parts = assign_sentences(sentences, cfg)
    speakers = make_speakers(cfg)
    jobs = []
    for split_index, split in enumerate(SPLITS):
        spks = [s for s in speakers if s.split == split]
        hours = {"train": cfg.train_hours, "dev": cfg.dev_hours, "test": cfg.test_hours}[split]
        per_speaker = [0] * len(spks)
        for k, sentence in enumerate(_utterances(split, parts[split], hours, cfg=cfg)):
            s = k % len(spks)
            utt_id = f"{spks[s].id}-{per_speaker[s]:04d}"
            per_speaker[s] += 1
            jobs.append(
                Job(
                    utt_id,
                    split,
                    synthesize_read_utterance,
                    dict(
                        cfg=cfg,
                        speaker=spks[s],
                        utt_id=utt_id,
                        sentence=sentence,
                        plan_seed=(cfg.seed, 3, split_index, k),
                    ),
                )
            )
    held_out = set(parts["dev"]) | set(parts["test"])
    lm_text = [s for s in sentences if s not in held_out]
    write_text_atomic(out_dir / "lm" / "text.txt", "".join(s + "\n" for s in lm_text))
    write_text_atomic(out_dir / "lm" / "lm_only.txt", "".join(s + "\n" for s in parts["lm_only"]))
    stats = {
        "text": str(text_path),
        "distinct_sentences": len(sentences),
        "lm_sentences": len(lm_text),
        "lm_words": sum(len(s.split()) for s in lm_text),
        "lm_vocabulary": len({w for s in lm_text for w in s.split()}),
        **{f"{k}_sentences": len(v) for k, v in parts.items()},
        "train_vocabulary": len({w for s in parts["train"] for w in s.split()}),
    }
    write_json_atomic(out_dir / "text_stats.json", stats)
    log.info("text: %s", json.dumps(stats))
    return generate(
        jobs,
        out_dir,
        key,
        sample_rate=cfg.sample_rate,
        num_jobs=num_jobs,
        skip_errors=True,
        extra_files={"speakers.json": speaker_table(speakers)},
    )


def generate_readspeech_unlabelled(
    cfg: ReadSpeechCorpusConfig, text_path, hours: float, *, out_dir, num_jobs: int = 1
) -> Dict[str, int]:
    """The untranscribed transfer split (``unlabelled.jsonl`` in ``out_dir``, a folder of its own):
    about ``hours`` of sentences that no dev or test utterance reads (the sentences no split reads
    first, then train's; the LM text holds them all, as LibriSpeech's LM text holds its training
    books), spoken by new speakers of the training accents, as many per hour as train has. The
    manifests drop what was said (``asr_kd.data.manifests.prepare_unlabelled``)."""
    if hours <= 0:
        raise ValueError(f"unlabelled hours must be positive, got {hours}")
    key = fingerprint(
        {"config": asdict(cfg), "text": text_digest(text_path), "generator": GENERATOR_VERSION, "hours": hours}
    )
    parts = assign_sentences(read_sentences(text_path, cfg.max_sentences), cfg)
    rng = np.random.default_rng([cfg.seed, 4])
    unread = [s for s in parts["lm_only"] if cfg.min_words <= len(s.split()) <= cfg.max_words]
    pool = [unread[i] for i in rng.permutation(len(unread))] + parts["train"]
    if not pool:
        raise ValueError("the text has no sentence outside dev and test for untranscribed audio")
    chosen, total = [], 0.0
    while total < hours * 3600:
        chosen.append(pool[len(chosen) % len(pool)])
        total += estimated_seconds(chosen[-1], cfg)
    speakers = make_unlabelled_speakers(cfg, max(1, int(np.ceil(cfg.train_speakers * hours / cfg.train_hours))))
    per_speaker = [0] * len(speakers)
    jobs = []
    for k, sentence in enumerate(chosen):
        spk = speakers[k % len(speakers)]
        utt_id = f"{spk.id}-{per_speaker[k % len(speakers)]:04d}"
        per_speaker[k % len(speakers)] += 1
        kwargs = dict(cfg=cfg, speaker=spk, utt_id=utt_id, sentence=sentence, plan_seed=(cfg.seed, 5, k))
        jobs.append(Job(utt_id, UNLABELLED, synthesize_read_utterance, kwargs))
    return generate(
        jobs,
        out_dir,
        key,
        sample_rate=cfg.sample_rate,
        num_jobs=num_jobs,
        skip_errors=True,
        extra_files={"speakers.json": speaker_table(speakers)},
        splits=(UNLABELLED,),
    )

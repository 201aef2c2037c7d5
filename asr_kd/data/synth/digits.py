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
import json
import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf
from tqdm import tqdm

from asr_kd.data.synth import degrade
from asr_kd.data.synth.espeak import ESPEAK_SAMPLE_RATE, Voice, get_espeak
from asr_kd.utils.io import atomic_path, write_json_atomic, write_text_atomic
from asr_kd.utils.validity import fingerprint, is_done, mark_done

log = logging.getLogger(__name__)

DIGIT_WORDS = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLITS = ("train", "dev", "test")
# Bumped whenever the generator's output changes for the same config (invalidates old corpora).
GENERATOR_VERSION = 3  # 3: schwa ('@') phone events kept in the oracle
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3")


@dataclass
class DigitsCorpusConfig:
    seed: int = 20151009
    sample_rate: int = 16000
    # accents used for train/dev speakers; test also gets ``held_out_accents``
    accents: Tuple[str, ...] = ("en-us", "en", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
    held_out_accents: Tuple[str, ...] = ("en-gb-scotland", "en-029")
    train_speakers: int = 48
    dev_speakers: int = 8
    test_speakers: int = 12  # half of them from held_out_accents
    utts_per_speaker: int = 30
    min_words: int = 1
    max_words: int = 7
    rate_range: Tuple[int, int] = (130, 210)  # words per minute
    pitch_range: Tuple[int, int] = (25, 75)
    lead_silence: Tuple[float, float] = (0.10, 0.50)  # seconds of silence before / after speech
    snr_db: Tuple[float, float] = (-5.0, 25.0)
    noise_prob: float = 0.9
    reverb_prob: float = 0.3
    rt60: Tuple[float, float] = (0.15, 0.6)
    bandlimit_prob: float = 0.25

    def __post_init__(self):
        if not (1 <= self.min_words <= self.max_words):
            raise ValueError(f"need 1 <= min_words <= max_words, got {self.min_words}, {self.max_words}")
        if set(self.accents) & set(self.held_out_accents):
            raise ValueError("held_out_accents must not appear in accents")
        if min(self.train_speakers, self.dev_speakers, self.test_speakers, self.utts_per_speaker) < 1:
            raise ValueError("every split needs at least one speaker and one utterance per speaker")


@dataclass(frozen=True)
class Speaker:
    id: str
    split: str
    voice: Voice


def make_speakers(cfg: DigitsCorpusConfig) -> List[Speaker]:
    """Speaker-disjoint splits; test holds out ``held_out_accents`` entirely."""
    rng = np.random.default_rng([cfg.seed, 0])
    speakers, seen = [], set()
    n_held = cfg.test_speakers // 2 if cfg.held_out_accents else 0
    plan = [("train", cfg.train_speakers, cfg.accents), ("dev", cfg.dev_speakers, cfg.accents),
            ("test", cfg.test_speakers - n_held, cfg.accents), ("test", n_held, cfg.held_out_accents)]
    for split, count, accents in plan:
        for k in range(count):
            while True:  # distinct voices across the whole corpus keep speakers distinct
                voice = Voice(
                    accent=accents[k % len(accents)],
                    variant=str(rng.choice(VARIANTS)),
                    rate=int(rng.integers(cfg.rate_range[0], cfg.rate_range[1] + 1)),
                    pitch=int(rng.integers(cfg.pitch_range[0], cfg.pitch_range[1] + 1)),
                    pitch_range=int(rng.integers(20, 81)),
                )
                if voice not in seen:
                    seen.add(voice)
                    break
            speakers.append(Speaker(f"{split}{len(speakers):03d}-{voice.accent}", split, voice))
    return speakers


def _utterance_plan(cfg: DigitsCorpusConfig, spk_index: int, utt_index: int) -> Dict:
    rng = np.random.default_rng([cfg.seed, 1, spk_index, utt_index])
    n = int(rng.integers(cfg.min_words, cfg.max_words + 1))
    words = [str(w) for w in rng.choice(DIGIT_WORDS, size=n)]
    plan = {
        "words": words,
        "synth_seed": int(rng.integers(1, 2**31 - 1)),
        "lead": float(rng.uniform(*cfg.lead_silence)),
        "trail": float(rng.uniform(*cfg.lead_silence)),
        "gain_db": float(rng.uniform(-12.0, 0.0)),
        "noise": None,
        "reverb_rt60": None,
        "band_limited": bool(rng.random() < cfg.bandlimit_prob),
        "degrade_seed": int(rng.integers(0, 2**31 - 1)),
    }
    if rng.random() < cfg.reverb_prob:
        plan["reverb_rt60"] = float(rng.uniform(*cfg.rt60))
    if rng.random() < cfg.noise_prob:
        plan["noise"] = {"colour": str(rng.choice(degrade.NOISE_COLOURS)), "snr_db": float(rng.uniform(*cfg.snr_db))}
    return plan


def _segments(events: List[Tuple[str, float]], end: float, offset: float) -> List[List]:
    """eSpeak gives start times; each item ends where the next one starts."""
    out = []
    for i, (sym, start) in enumerate(events):
        stop = events[i + 1][1] if i + 1 < len(events) else end
        out.append([sym, round(offset + start, 4), round(offset + stop, 4)])
    return out


def synthesize_utterance(cfg: DigitsCorpusConfig, speaker: Speaker, spk_index: int, utt_index: int) -> Tuple[np.ndarray, Dict]:
    """Returns (float32 audio at cfg.sample_rate, metadata with oracle word and phone times)."""
    plan = _utterance_plan(cfg, spk_index, utt_index)
    syn = get_espeak().synthesize(" ".join(plan["words"]), speaker.voice, plan["synth_seed"])
    x = degrade.resample(syn.samples.astype(np.float32) / 32768.0, ESPEAK_SAMPLE_RATE, cfg.sample_rate)
    sr = cfg.sample_rate
    speech_dur = len(x) / sr
    lead, trail = int(plan["lead"] * sr), int(plan["trail"] * sr)
    x = np.concatenate([np.zeros(lead, np.float32), x, np.zeros(trail, np.float32)])
    active = np.zeros(len(x), bool)
    active[lead : lead + int(speech_dur * sr)] = True
    # PHONEME events for pauses ("_", "_:") are silence, not phones; modifier events without
    # a phone symbol (";" palatalisation) belong to the phone before them. eSpeak's schwa is "@".
    phones = [(p.replace("'", "").replace(",", ""), t) for p, t in syn.phones]
    phones = [(p, t) for p, t in phones if p.startswith("_") or any(ch.isalnum() or ch == "@" for ch in p)]
    phone_segs = [s for s in _segments(phones, speech_dur, plan["lead"]) if not s[0].startswith("_")]
    # Word events fire up to ~15 ms before the word's first phone; phone events are within
    # ~3 ms of the audio. So a word spans its own phones: each phone goes to the last word
    # whose event is not later than the phone's start (+15 ms).
    word_segs = []
    for i, (w, t) in enumerate(syn.words):
        t_next = syn.words[i + 1][1] if i + 1 < len(syn.words) else float("inf")
        own = [p for p in phone_segs if t - 0.015 <= p[1] - plan["lead"] < t_next - 0.015]
        if not own:
            raise RuntimeError(f"{speaker.id}: no phones for word {w!r} in {plan['words']}")
        word_segs.append([w, own[0][1], own[-1][2]])
    drng = np.random.default_rng(plan["degrade_seed"])
    if plan["reverb_rt60"]:
        x = degrade.reverberate(x, degrade.synthetic_rir(plan["reverb_rt60"], sr, drng))
    if plan["band_limited"]:
        x = degrade.band_limit(x, sr)
    if plan["noise"]:
        noise = degrade.coloured_noise(len(x), plan["noise"]["colour"], sr, drng)
        x = degrade.add_noise(x, noise, plan["noise"]["snr_db"], active)
    x = x * 10 ** (plan["gain_db"] / 20) / max(1.0, float(np.abs(x).max()) * 1.01)
    meta = {
        "id": f"{speaker.id}-{utt_index:04d}",
        "speaker": speaker.id,
        "accent": speaker.voice.accent,
        "split": speaker.split,
        "text": " ".join(w.upper() for w in plan["words"]),
        "duration": round(len(x) / sr, 6),
        "num_samples": len(x),
        "words": [[w.upper(), s, e] for w, s, e in word_segs],
        "phones": phone_segs,
        "degradation": {k: plan[k] for k in ("noise", "reverb_rt60", "band_limited", "gain_db")},
    }
    if [w[0] for w in meta["words"]] != meta["text"].split():
        raise RuntimeError(f"{meta['id']}: eSpeak word events {meta['words']} do not match {meta['text']!r}")
    return x.astype(np.float32), meta


def _job(args) -> Dict:
    cfg, speaker, spk_index, utt_index, out_dir = args
    utt_id = f"{speaker.id}-{utt_index:04d}"
    wav, meta_path = out_dir / "wav" / f"{utt_id}.wav", out_dir / "meta" / f"{utt_id}.json"
    if wav.is_file() and meta_path.is_file():  # finished by an earlier (killed) run
        return json.loads(meta_path.read_text())
    x, meta = synthesize_utterance(cfg, speaker, spk_index, utt_index)
    with atomic_path(wav) as tmp:
        sf.write(str(tmp), x, cfg.sample_rate, subtype="PCM_16", format="WAV")
    meta["wav"] = str(Path("wav") / f"{utt_id}.wav")
    write_json_atomic(meta_path, meta)
    return meta


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core; intra-op threads would oversubscribe


def generate_corpus(cfg: DigitsCorpusConfig, out_dir, num_jobs: int = 1) -> Dict[str, int]:
    """Generate (or finish generating) the corpus; returns utterance counts per split."""
    out_dir = Path(out_dir)
    key = fingerprint({"config": asdict(cfg), "generator": GENERATOR_VERSION})
    if is_done(out_dir, key):
        log.info("%s is complete (config %s); nothing to do", out_dir, key)
        return {s: sum(1 for _ in open(out_dir / f"{s}.jsonl")) for s in SPLITS}
    # finished utterances are kept across a killed run, but only those of this config
    stamp = out_dir / "meta" / ".config_key"
    if (out_dir / "meta").is_dir() and (not stamp.is_file() or stamp.read_text().strip() != key):
        log.warning("%s holds utterances of another corpus config: synthesising every utterance anew", out_dir)
        for sub in ("wav", "meta"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    (out_dir / "meta").mkdir(parents=True, exist_ok=True)
    write_text_atomic(stamp, key + "\n")
    speakers = make_speakers(cfg)
    write_json_atomic(out_dir / "speakers.json", [{"id": s.id, "split": s.split, **asdict(s.voice)} for s in speakers])
    jobs = [(cfg, s, i, u, out_dir) for i, s in enumerate(speakers) for u in range(cfg.utts_per_speaker)]
    metas: List[Dict] = []
    with tqdm(total=len(jobs), desc="synthesising", unit="utt", mininterval=2.0) as bar:
        if num_jobs <= 1:
            for j in jobs:
                metas.append(_job(j))
                bar.update()
        else:
            with ProcessPoolExecutor(num_jobs, initializer=_init_worker) as ex:
                for m in ex.map(_job, jobs, chunksize=16):
                    metas.append(m)
                    bar.update()
    counts = {}
    for split in SPLITS:
        rows = [m for m in metas if m["split"] == split]
        counts[split] = len(rows)
        write_text_atomic(out_dir / f"{split}.jsonl", "".join(json.dumps(m) + "\n" for m in rows))
        hours = sum(m["duration"] for m in rows) / 3600
        log.info("%s: %d utterances, %d speakers, %.3f h", split, len(rows), len({m["speaker"] for m in rows}), hours)
    mark_done(out_dir, key)
    return counts


def read_split(corpus_dir, split: str) -> List[Dict]:
    path = Path(corpus_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: generate the corpus first (run.sh stage 0)")
    return [json.loads(line) for line in open(path)]


def default_num_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))

"""What every synthetic corpus shares (the digits corpus and the read-speech corpus):

* ``SynthConfig``: seed, sample rate, accents, speakers per split, prosody and degradation ranges;
* ``make_speakers``: speaker-disjoint splits, test holding out whole accents;
* ``draw_rendering`` + ``render_utterance``: one utterance as eSpeak NG speaks it (in a forked,
  seeded child), padded with silence, with oracle word and phone times, then reverberated,
  band-limited, noised and scaled;
* ``generate``: the resumable, parallel runner. Each utterance is a pure function of its job, so
  jobs run in any order over processes; finished utterances (``wav/ID.wav`` + ``meta/ID.json``)
  survive a killed run, nothing but counts is kept in memory, and the split lists
  (``SPLIT.jsonl``) are written last, streamed from the meta files.
"""

import json
import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Sequence, Tuple

import numpy as np
import soundfile as sf
from tqdm import tqdm

from asr_kd.data.synth import degrade
from asr_kd.data.synth.espeak import ESPEAK_SAMPLE_RATE, Voice, get_espeak
from asr_kd.utils.io import atomic_path, write_json_atomic, write_text_atomic
from asr_kd.utils.validity import is_done, mark_done

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3")


@dataclass
class SynthConfig:
    """Speakers, prosody and degradations: the fields every synthetic corpus has."""

    seed: int = 20151009
    sample_rate: int = 16000
    # accents used for train/dev speakers; test also gets ``held_out_accents``
    accents: Tuple[str, ...] = ("en-us", "en", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
    held_out_accents: Tuple[str, ...] = ("en-gb-scotland", "en-029")
    train_speakers: int = 48
    dev_speakers: int = 8
    test_speakers: int = 12  # half of them from held_out_accents
    rate_range: Tuple[int, int] = (130, 210)  # words per minute
    pitch_range: Tuple[int, int] = (25, 75)
    lead_silence: Tuple[float, float] = (0.10, 0.50)  # seconds of silence before / after speech
    snr_db: Tuple[float, float] = (-5.0, 25.0)
    noise_prob: float = 0.9
    reverb_prob: float = 0.3
    rt60: Tuple[float, float] = (0.15, 0.6)
    bandlimit_prob: float = 0.25

    def __post_init__(self):
        if set(self.accents) & set(self.held_out_accents):
            raise ValueError("held_out_accents must not appear in accents")
        if min(self.train_speakers, self.dev_speakers, self.test_speakers) < 1:
            raise ValueError("every split needs at least one speaker")


@dataclass(frozen=True)
class Speaker:
    id: str
    split: str
    voice: Voice


def make_speakers(cfg: SynthConfig) -> List[Speaker]:
    """Speaker-disjoint splits; test holds out ``held_out_accents`` entirely."""
    rng = np.random.default_rng([cfg.seed, 0])
    speakers, seen = [], set()
    n_held = cfg.test_speakers // 2 if cfg.held_out_accents else 0
    plan = [
        ("train", cfg.train_speakers, cfg.accents),
        ("dev", cfg.dev_speakers, cfg.accents),
        ("test", cfg.test_speakers - n_held, cfg.accents),
        ("test", n_held, cfg.held_out_accents),
    ]
    for split, count, accents in plan:
        for k in range(count):
            voice = _new_voice(cfg, accents[k % len(accents)], rng, seen=seen)
            speakers.append(Speaker(f"{split}{len(speakers):03d}-{voice.accent}", split, voice))
    return speakers


def _new_voice(cfg: SynthConfig, accent: str, rng: np.random.Generator, *, seen: set) -> Voice:
    """A voice of ``accent`` not in ``seen`` (added to it): distinct voices keep speakers distinct."""
    while True:
        voice = Voice(
            accent=accent,
            variant=str(rng.choice(VARIANTS)),
            rate=int(rng.integers(cfg.rate_range[0], cfg.rate_range[1] + 1)),
            pitch=int(rng.integers(cfg.pitch_range[0], cfg.pitch_range[1] + 1)),
            pitch_range=int(rng.integers(20, 81)),
        )
        if voice not in seen:
            seen.add(voice)
            return voice


UNLABELLED = "unlabelled"  # the transfer split: audio whose transcripts the pipeline never reads


def make_unlabelled_speakers(cfg: SynthConfig, count: int) -> List[Speaker]:
    """``count`` speakers of the training accents for the untranscribed transfer split, their voices
    distinct from every train, dev and test speaker's (drawn from a stream of their own, so the other
    splits' speakers are those of ``make_speakers``)."""
    rng = np.random.default_rng([cfg.seed, 0, 1])
    seen = {s.voice for s in make_speakers(cfg)}
    speakers = []
    for k in range(count):
        voice = _new_voice(cfg, cfg.accents[k % len(cfg.accents)], rng, seen=seen)
        speakers.append(Speaker(f"{UNLABELLED}{k:03d}-{voice.accent}", UNLABELLED, voice))
    return speakers


def draw_rendering(cfg: SynthConfig, rng: np.random.Generator) -> Dict:
    """eSpeak's seed, silences, gain and degradations of one utterance (drawn after its words)."""
    plan = {
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


def render_utterance(
    cfg: SynthConfig, speaker: Speaker, utt_id: str, *, words: Sequence[str], plan: Dict
) -> Tuple[np.ndarray, Dict]:
    """``words`` spoken by ``speaker`` and degraded as ``plan`` says (``draw_rendering``).
    Returns (float32 audio at cfg.sample_rate, metadata with oracle word and phone times).
    Raises RuntimeError when eSpeak's word events do not match ``words`` (no oracle then)."""
    syn = get_espeak().synthesize(" ".join(w.lower() for w in words), speaker.voice, plan["synth_seed"])
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
    # whose event is not later than the phone's start (+15 ms). eSpeak gives no event to some
    # unstressed words it joins to the word before ("out of it": OUT-OF): such a group shares
    # one span, found from the events' positions in the text.
    owner = _event_words(words, syn.word_offsets, utt_id)
    word_segs = []
    for i, (w, t) in enumerate(syn.words):
        t_next = syn.words[i + 1][1] if i + 1 < len(syn.words) else float("inf")
        own = [p for p in phone_segs if t - 0.015 <= p[1] - plan["lead"] < t_next - 0.015]
        if not own:
            raise RuntimeError(f"{speaker.id}: no phones for word {w!r} in {list(words)}")
        last = owner[i + 1] if i + 1 < len(owner) else len(words)
        first = 0 if i == 0 else owner[i]
        word_segs += [[words[k], own[0][1], own[-1][2]] for k in range(first, last)]
    drng = np.random.default_rng(plan["degrade_seed"])
    if plan["reverb_rt60"]:
        x = degrade.reverberate(x, degrade.synthetic_rir(plan["reverb_rt60"], sr, drng))
    if plan["band_limited"]:
        x = degrade.band_limit(x, sr)
    if plan["noise"]:
        noise = degrade.coloured_noise(len(x), plan["noise"]["colour"], sr, rng=drng)
        x = degrade.add_noise(x, noise, plan["noise"]["snr_db"], active=active)
    x = x * 10 ** (plan["gain_db"] / 20) / max(1.0, float(np.abs(x).max()) * 1.01)
    meta = {
        "id": utt_id,
        "speaker": speaker.id,
        "accent": speaker.voice.accent,
        "split": speaker.split,
        "text": " ".join(w.upper() for w in words),
        "duration": round(len(x) / sr, 6),
        "num_samples": len(x),
        "words": [[w.upper(), s, e] for w, s, e in word_segs],
        "phones": phone_segs,
        "degradation": {k: plan[k] for k in ("noise", "reverb_rt60", "band_limited", "gain_db")},
    }
    return x.astype(np.float32), meta


def _event_words(words: Sequence[str], offsets: Sequence[int], utt_id: str) -> List[int]:
    """The index of the word each eSpeak WORD event starts in (the text is the words joined by
    single spaces); events must start distinct words, in order."""
    starts, pos = [], 0
    for w in words:
        starts.append(pos)
        pos += len(w.lower().encode("utf-8")) + 1
    owner = [int(np.searchsorted(starts, off, side="right")) - 1 for off in offsets]
    if not owner or owner != sorted(set(owner)) or owner[0] < 0:
        raise RuntimeError(
            f"{utt_id}: eSpeak's word events (at bytes {list(offsets)}) do not follow the words {list(words)}"
        )
    return owner


# -- the runner ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One utterance to synthesise: ``render(**kwargs)`` returns (audio, meta) and is a module-level
    function (picklable); a RuntimeError from it is a logged skip, kept on disk."""

    utt_id: str
    split: str
    render: Callable
    kwargs: Dict


WINDOW = 2048  # jobs submitted to the process pool at a time


def _run_job(job_and_dir) -> Tuple[str, str, float]:
    job, out_dir, sample_rate, skip_errors = job_and_dir
    utt_id, split = job.utt_id, job.split
    wav, meta_path, skip_path = (
        out_dir / "wav" / f"{utt_id}.wav",
        out_dir / "meta" / f"{utt_id}.json",
        out_dir / "meta" / f"{utt_id}.skip",
    )
    if wav.is_file() and meta_path.is_file():  # finished by an earlier (killed) run
        return utt_id, split, json.loads(meta_path.read_text())["duration"]
    if skip_path.is_file():
        return utt_id, split, -1.0
    try:
        x, meta = job.render(**job.kwargs)
    except RuntimeError as e:
        if not skip_errors:
            raise
        write_text_atomic(skip_path, f"{e}\n")
        return utt_id, split, -1.0
    with atomic_path(wav) as tmp:
        sf.write(str(tmp), x, sample_rate, subtype="PCM_16", format="WAV")
    meta["wav"] = str(Path("wav") / f"{utt_id}.wav")
    write_json_atomic(meta_path, meta)
    return utt_id, split, meta["duration"]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core; intra-op threads would oversubscribe


def generate(
    jobs: Sequence[Job],
    out_dir,
    key: str,
    *,
    sample_rate: int,
    num_jobs: int = 1,
    skip_errors: bool = False,
    extra_files: Dict[str, object] = None,
    splits: Sequence[str] = SPLITS,
) -> Dict[str, int]:
    """Render every job into ``out_dir`` (resumable), then write ``SPLIT.jsonl`` per split in job
    order and the ``.done`` marker for ``key``. ``extra_files``: name -> JSON object written first
    (e.g. the speaker table). ``skip_errors``: an utterance eSpeak cannot align is skipped (its
    reason kept in ``meta/ID.skip``) and counted, instead of stopping the run."""
    out_dir = Path(out_dir)
    if is_done(out_dir, key):
        log.info("%s is complete (config %s); nothing to do", out_dir, key)
        return {s: sum(1 for _ in open(out_dir / f"{s}.jsonl")) for s in splits}
    # finished utterances are kept across a killed run, but only those of this config
    stamp = out_dir / "meta" / ".config_key"
    if (out_dir / "meta").is_dir() and (not stamp.is_file() or stamp.read_text().strip() != key):
        log.warning("%s holds utterances of another corpus config: synthesising every utterance anew", out_dir)
        for sub in ("wav", "meta"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    (out_dir / "meta").mkdir(parents=True, exist_ok=True)
    write_text_atomic(stamp, key + "\n")
    for name, obj in (extra_files or {}).items():
        write_json_atomic(out_dir / name, obj)
    done: Dict[str, Tuple[str, float]] = {}
    args = [(j, out_dir, sample_rate, skip_errors) for j in jobs]
    with tqdm(total=len(jobs), desc="synthesising", unit="utt", mininterval=2.0) as bar:
        if num_jobs <= 1:
            results: Iterator = map(_run_job, args)
            for utt_id, split, dur in results:
                done[utt_id] = (split, dur)
                bar.update()
        else:
            with ProcessPoolExecutor(num_jobs, initializer=_init_worker) as ex:
                for start in range(0, len(args), WINDOW):  # bounded: map() submits its whole input at once
                    for utt_id, split, dur in ex.map(_run_job, args[start : start + WINDOW], chunksize=16):
                        done[utt_id] = (split, dur)
                        bar.update()
    counts = {}
    for split in splits:
        ids = [j.utt_id for j in jobs if j.split == split and done[j.utt_id][1] >= 0]
        skipped = sum(1 for j in jobs if j.split == split and done[j.utt_id][1] < 0)
        with atomic_path(out_dir / f"{split}.jsonl") as tmp, open(tmp, "w") as f:
            for utt_id in ids:  # streamed: one meta file at a time
                f.write(json.dumps(json.loads((out_dir / "meta" / f"{utt_id}.json").read_text())) + "\n")
        counts[split] = len(ids)
        hours = sum(done[u][1] for u in ids) / 3600
        speakers = len({u.rsplit("-", 1)[0] for u in ids})
        log.info(
            "%s: %d utterances, %d speakers, %.3f h%s",
            split,
            len(ids),
            speakers,
            hours,
            f"; {skipped} skipped (eSpeak's word events did not match the text: meta/*.skip)" if skipped else "",
        )
    mark_done(out_dir, key)
    return counts


def read_split(corpus_dir, split: str) -> List[Dict]:
    path = Path(corpus_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: generate the corpus first (run.sh stage 0)")
    return [json.loads(line) for line in open(path)]


def speaker_table(speakers: Sequence[Speaker]) -> List[Dict]:
    return [{"id": s.id, "split": s.split, **asdict(s.voice)} for s in speakers]


def default_num_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))

"""Audio files in, log-mel fbank out, chunk by chunk.

Deployment computes features with kaldi-native-fbank's ``OnlineFbank`` (Kaldi's online feature
code: the same frames whether the audio comes in one piece or in chunks). Training used lhotse's
``Fbank``; with the options of ``fbank_options`` the two agree to about 1e-5 in log-mel (float
rounding), which ``feature_difference`` measures on a real set and the recipes' deployment table
reports. Decision: deploy with kaldi-native-fbank (streaming, no torch in the feature path) and
keep lhotse for training.
"""

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List

import numpy as np


class AudioError(ValueError):
    """An audio file that cannot be transcribed (unreadable, empty); the message names it."""


@dataclass
class FbankSettings:
    """What the model was trained on (``asr_kd.data.features.FeatureConfig`` + the sample rate)."""

    sample_rate: int = 16000
    num_mel_bins: int = 40
    frame_shift: float = 0.01
    frame_length: float = 0.025

    def to_dict(self) -> Dict:
        return asdict(self)


MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384000  # a header outside this range is an error, not a 3 GB resample
BLOCK_SECONDS = (
    30.0  # audio is read, checked and resampled in blocks of this length: memory does not grow with the file
)


def _open(path: Path):
    import soundfile as sf

    try:
        f = sf.SoundFile(str(path))
    except Exception as e:  # soundfile raises several types for missing, corrupt or unknown files
        raise AudioError(f"{path}: cannot read audio ({str(e).strip()[:200]})") from None
    if not MIN_SAMPLE_RATE <= f.samplerate <= MAX_SAMPLE_RATE:
        f.close()
        raise AudioError(
            f"{path}: implausible sample rate {f.samplerate} Hz in its header "
            f"(expected {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)"
        )
    if f.frames == 0:
        f.close()
        raise AudioError(f"{path}: no samples")
    return f


def _file_blocks(path: Path, f, block: int) -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``block`` samples at the file's own rate, each checked for NaN / inf."""
    start = 0
    while True:
        try:
            x = f.read(block, dtype="float32", always_2d=True)
        except Exception as e:
            raise AudioError(f"{path}: audio data cannot be decoded after {start / f.samplerate:.2f} s ({e})") from None
        if not len(x):
            return
        x = x.mean(1)
        if not np.isfinite(x).all():
            bad = start + int(np.flatnonzero(~np.isfinite(x))[0])
            raise AudioError(f"{path}: sample {bad} ({bad / f.samplerate:.3f} s) is not a finite number (NaN or inf)")
        start += len(x)
        yield x


def audio_blocks(path, sample_rate: int, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """The file's samples as mono float32 at ``sample_rate``, in blocks of about ``block_seconds``:
    channels averaged, other rates resampled (torchaudio's sinc interpolation, block by block
    with enough context on each side that the result equals resampling the whole file up to
    float rounding). Raises ``AudioError`` naming the file: unreadable, empty, an implausible
    rate in the header, or a NaN / inf sample."""
    path = Path(path)
    f = _open(path)
    with f:
        sr = f.samplerate
        if sr == sample_rate:
            yield from (np.ascontiguousarray(x) for x in _file_blocks(path, f, max(1, int(block_seconds * sr))))
            return
        import torch
        import torchaudio.functional as AF

        g = math.gcd(sr, sample_rate)
        up, down = sample_rate // g, sr // g  # output / input samples per period
        period_in = down
        block = max(1, int(block_seconds * sr) // period_in) * period_in
        pad = period_in * (math.ceil(16 * max(up, down) / min(up, down) / period_in) + 1)  # > the sinc filter's reach
        buf, buf_start, done = np.zeros(0, np.float32), 0, 0  # buf holds input samples from buf_start
        total_out = None
        blocks = _file_blocks(path, f, block)
        eof = False
        while True:
            while not eof and buf_start + len(buf) < done + block + pad:
                nxt = next(blocks, None)
                if nxt is None:
                    eof = True
                else:
                    buf = np.concatenate([buf, nxt])
            end_in = buf_start + len(buf)
            if eof:
                total_out = math.ceil(end_in * up / down)
            hi = end_in if eof else done + block
            if hi <= done:
                return
            lo_ctx = max(buf_start, done - pad)
            seg = torch.from_numpy(np.ascontiguousarray(buf[lo_ctx - buf_start :]))
            out = AF.resample(seg, sr, sample_rate).numpy()
            first = (done - lo_ctx) * up // down
            n_out = (total_out - done * up // down) if hi == end_in and eof else (hi - done) * up // down
            yield np.ascontiguousarray(out[first : first + n_out], dtype=np.float32)
            done = hi
            keep = max(buf_start, done - pad)
            buf, buf_start = buf[keep - buf_start :], keep
            if eof and done >= end_in:
                return


def read_audio(path, sample_rate: int) -> np.ndarray:
    """The whole file as one array (``audio_blocks`` joined): for short files; ``transcribe``
    streams the blocks instead."""
    return np.concatenate(list(audio_blocks(path, sample_rate)))


def rechunk(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Blocks of any length -> chunks of exactly ``size`` samples (the last may be shorter)."""
    pending = np.zeros(0, np.float32)
    for b in blocks:
        pending = np.concatenate([pending, b]) if len(pending) else b
        n = len(pending) // size * size
        for i in range(0, n, size):
            yield pending[i : i + size]
        pending = pending[n:]
    if len(pending):
        yield pending


def fbank_options(s: FbankSettings):
    """kaldi-native-fbank options equal to lhotse's ``Fbank`` defaults as the feature stage uses them
    (snip_edges off, no dither, high frequency -400 Hz, energy floor 1e-10)."""
    import kaldi_native_fbank as knf

    o = knf.FbankOptions()
    o.frame_opts.samp_freq = s.sample_rate
    o.frame_opts.frame_shift_ms = 1000 * s.frame_shift
    o.frame_opts.frame_length_ms = 1000 * s.frame_length
    o.frame_opts.dither = 0.0
    o.frame_opts.snip_edges = False
    o.frame_opts.preemph_coeff = 0.97
    o.frame_opts.remove_dc_offset = True
    o.frame_opts.window_type = "povey"
    o.mel_opts.num_bins = s.num_mel_bins
    o.mel_opts.low_freq = 20.0
    o.mel_opts.high_freq = -400.0
    o.energy_floor = 1e-10
    o.use_energy = False
    return o


class StreamingFbank:
    """Feed samples with ``accept``; each call returns the frames completed so far (an (n, bins)
    array, possibly empty); ``finish`` flushes the last frames.

    kaldi-native-fbank's extractor keeps every frame it made (its ``pop`` corrupts later frames
    in 1.23), so every ``RESTART_FRAMES`` frames a fresh extractor takes over, fed from a few
    frames back (kept samples): with snip_edges off and no dither a frame depends only on its
    own window, so the frames equal the first extractor's exactly and memory stays flat."""

    RESTART_FRAMES = 6000

    def __init__(self, settings: FbankSettings):
        self.settings = settings
        self._shift = int(round(settings.frame_shift * settings.sample_rate))
        length = int(round(settings.frame_length * settings.sample_rate))
        self._exact_shift = abs(self._shift - settings.frame_shift * settings.sample_rate) < 1e-6
        # frames a fresh extractor drops: the first whose window starts at or after its first sample, plus one
        self._lead = max(1, -(-(length // 2 - self._shift // 2) // self._shift)) + 1
        self._keep = (self._lead + 2) * self._shift + length  # samples kept for a restart
        self._fbank = self._new()
        self._base = 0  # absolute index of the current extractor's frame 0
        self._taken = 0  # absolute frames handed out
        self._history = np.zeros(0, np.float32)  # the last samples fed; the first is sample number _history_start
        self._history_start = 0

    def _new(self):
        import kaldi_native_fbank as knf

        return knf.OnlineFbank(fbank_options(self.settings))

    def _new_frames(self) -> np.ndarray:
        n = self._fbank.num_frames_ready
        frames = [self._fbank.get_frame(i) for i in range(self._taken - self._base, n)]
        self._taken = self._base + n
        return np.asarray(frames, np.float32).reshape(len(frames), self.settings.num_mel_bins)

    def _restart(self) -> None:
        first = (self._taken - self._lead) * self._shift  # sample where the new extractor's frame 0 starts
        if first < self._history_start:
            return
        self._fbank = self._new()
        self._base = self._taken - self._lead
        self._fbank.accept_waveform(self.settings.sample_rate, self._history[first - self._history_start :].tolist())
        assert self._fbank.num_frames_ready <= self._lead, "a restarted extractor made frames already handed out"

    def accept(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, np.float32)
        self._fbank.accept_waveform(self.settings.sample_rate, samples.tolist())
        self._history = np.concatenate([self._history, samples])
        drop = max(0, len(self._history) - self._keep)
        self._history, self._history_start = self._history[drop:], self._history_start + drop
        frames = self._new_frames()
        if self._exact_shift and self._taken - self._base >= self.RESTART_FRAMES:
            self._restart()
        return frames

    def finish(self) -> np.ndarray:
        self._fbank.input_finished()
        return self._new_frames()


def fbank(samples: np.ndarray, settings: FbankSettings) -> np.ndarray:
    """All frames of an utterance (the streaming extractor fed in one piece)."""
    f = StreamingFbank(settings)
    return np.concatenate([f.accept(samples), f.finish()])


def feature_difference(cuts, settings: FbankSettings) -> Dict:
    """kaldi-native-fbank against lhotse on the audio of ``cuts``: against lhotse's ``Fbank`` computed
    afresh (the extractors themselves) and against the stored features (what the model was trained
    on: lhotse's, lilcom-compressed, which is lossy). Largest and mean absolute log-mel difference."""
    from lhotse import Fbank, FbankConfig

    extractor = Fbank(
        FbankConfig(
            sampling_rate=settings.sample_rate,
            num_mel_bins=settings.num_mel_bins,
            frame_shift=settings.frame_shift,
            frame_length=settings.frame_length,
            dither=0.0,
        )
    )
    stats = {k: [0.0, 0.0, 0] for k in ("fresh", "stored")}
    other_count = 0
    for cut in cuts:
        audio = cut.load_audio()[0]
        ours = fbank(audio, settings)
        for key, theirs in (("fresh", extractor.extract(audio, settings.sample_rate)), ("stored", cut.load_features())):
            if theirs.shape != ours.shape:
                other_count += 1
                continue
            d = np.abs(ours - theirs)
            st = stats[key]
            st[0], st[1], st[2] = max(st[0], float(d.max())), st[1] + float(d.sum()), st[2] + d.size
    return {
        "cuts": len(cuts),
        "cuts_with_other_frame_count": other_count,
        **{f"{k}_max_abs": v[0] for k, v in stats.items()},
        **{f"{k}_mean_abs": v[1] / max(v[2], 1) for k, v in stats.items()},
    }


def chunks(samples: np.ndarray, size: int) -> List[np.ndarray]:
    return [samples[i : i + size] for i in range(0, len(samples), size)]

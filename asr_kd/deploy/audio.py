"""Audio files in, log-mel fbank out, chunk by chunk.

Deployment computes features with kaldi-native-fbank's ``OnlineFbank`` (Kaldi's online feature
code: the same frames whether the audio comes in one piece or in chunks). Training used lhotse's
``Fbank``; with the options of ``fbank_options`` the two agree to about 1e-5 in log-mel (float
rounding), which ``feature_difference`` measures on a real set and the recipes' deployment table
reports. Decision: deploy with kaldi-native-fbank (streaming, no torch in the feature path) and
keep lhotse for training.
"""
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List

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


def read_audio(path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples at ``sample_rate``: channels are averaged, other rates resampled
    (torchaudio's sinc interpolation). Raises ``AudioError`` naming the file."""
    import soundfile as sf

    path = Path(path)
    try:
        samples, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for missing, corrupt or unknown files
        raise AudioError(f"{path}: cannot read audio ({e})") from None
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: no samples")
    x = samples.mean(1)
    if sr != sample_rate:
        import torch
        import torchaudio.functional as AF

        x = AF.resample(torch.from_numpy(x), sr, sample_rate).numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


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
    array, possibly empty); ``finish`` flushes the last frames."""

    def __init__(self, settings: FbankSettings):
        import kaldi_native_fbank as knf

        self.settings = settings
        self._fbank = knf.OnlineFbank(fbank_options(settings))
        self._taken = 0

    def _new_frames(self) -> np.ndarray:
        n = self._fbank.num_frames_ready
        frames = [self._fbank.get_frame(i) for i in range(self._taken, n)]
        self._taken = n
        return np.asarray(frames, np.float32).reshape(len(frames), self.settings.num_mel_bins)

    def accept(self, samples: np.ndarray) -> np.ndarray:
        self._fbank.accept_waveform(self.settings.sample_rate, np.asarray(samples, np.float32).tolist())
        return self._new_frames()

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

    extractor = Fbank(FbankConfig(sampling_rate=settings.sample_rate, num_mel_bins=settings.num_mel_bins,
                                  frame_shift=settings.frame_shift, frame_length=settings.frame_length, dither=0.0))
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
    return {"cuts": len(cuts), "cuts_with_other_frame_count": other_count,
            **{f"{k}_max_abs": v[0] for k, v in stats.items()}, **{f"{k}_mean_abs": v[1] / max(v[2], 1) for k, v in stats.items()}}


def chunks(samples: np.ndarray, size: int) -> List[np.ndarray]:
    return [samples[i : i + size] for i in range(0, len(samples), size)]

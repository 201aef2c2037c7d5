"""Signal degradations for synthetic speech: additive coloured noise at a given SNR,
synthetic reverberation and telephone band-limiting. Every function takes an explicit
``numpy.random.Generator`` so the corpus is a pure function of its seed."""

import functools
from typing import Tuple

import numpy as np
import torch
import torchaudio.functional as AF

NOISE_COLOURS = ("white", "pink", "brown", "hum")


def coloured_noise(n: int, colour: str, sample_rate: int, *, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise: white, pink (1/f), brown (1/f^2), or mains hum plus white noise."""
    if colour == "hum":
        t = np.arange(n) / sample_rate
        f0 = rng.choice([50.0, 60.0])
        hum = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
        x = hum + 0.3 * rng.standard_normal(n)
    else:
        white = rng.standard_normal(n)
        if colour == "white":
            x = white
        else:
            spec = np.fft.rfft(white)
            f = np.fft.rfftfreq(n, 1.0 / sample_rate)
            f[0] = f[1] if n > 1 else 1.0
            power = 1.0 if colour == "pink" else 2.0
            x = np.fft.irfft(spec / f ** (power / 2), n)
    x = x - x.mean()
    return (x / (x.std() + 1e-12)).astype(np.float32)


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float, *, active: np.ndarray) -> np.ndarray:
    """Add ``noise`` so that speech power (over the ``active`` samples) / noise power = ``snr_db``."""
    p_speech = float(np.mean(speech[active] ** 2)) if active.any() else float(np.mean(speech**2))
    scale = np.sqrt(p_speech / (10 ** (snr_db / 10)) / (np.mean(noise**2) + 1e-12))
    return speech + scale * noise


def synthetic_rir(rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Exponentially decaying noise tail behind a direct path at t=0 (so timestamps do not move)."""
    n = max(int(rt60 * sample_rate), 1)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.002 * sample_rate)] = 0.0  # 2 ms gap between direct sound and reflections
    rir = 0.4 * tail / (np.sqrt(np.sum(tail**2)) + 1e-12)
    rir[0] = 1.0
    return rir.astype(np.float32)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    n = len(x) + len(rir) - 1
    nfft = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(rir, nfft), nfft)[: len(x)]
    return y.astype(np.float32)


def band_limit(x: np.ndarray, sample_rate: int, band: Tuple[float, float] = (300.0, 3400.0)) -> np.ndarray:
    """Telephone-like channel: cascaded biquad high-pass and low-pass filters."""
    t = torch.from_numpy(x.astype(np.float32))[None]
    for _ in range(2):  # 4th order each side
        t = AF.highpass_biquad(t, sample_rate, band[0])
        t = AF.lowpass_biquad(t, sample_rate, band[1])
    return t[0].numpy()


@functools.lru_cache(maxsize=8)
def _resampler(orig_sr: int, new_sr: int):
    import torchaudio.transforms as AT

    return AT.Resample(orig_sr, new_sr)  # builds its sinc kernel once


def resample(x: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    if orig_sr == new_sr:
        return x.astype(np.float32)
    with torch.no_grad():
        return _resampler(orig_sr, new_sr)(torch.from_numpy(x.astype(np.float32))[None])[0].numpy()

"""Training-time augmentations of speech frame windows, registered by name (``AUGMENTATIONS``) and
chained with ``+`` in a config (``teaching.augment: specaugment+mixup``).

Each works on a batch of windows (B, 2C+1, D) of normalised features (0 is the mean) and keeps the
centre frame's label valid, so labels never move: a mask hides part of the input; mixup blends in
another frame of the batch with weight at most 1/2, so the original frame dominates; tempo
resamples the context around the centre frame at 0.9 / 1.0 / 1.1 times the frame rate (Kaldi's
perturbation factors): the window the centre frame would have in the utterance played that much
faster, so the centre frame's label still holds; noise and reverb are the synthetic corpora's own
degradations (asr_kd.data.synth.degrade) applied in the mel power domain, undoing the features'
CMVN (``FeatureStats``): additive noise of the corpus's average spectrum, tilted, at a drawn SNR, and
an exponentially decaying reverberation tail behind the direct sound (the labels of the clean
alignment stay, as Kaldi's reverberated copies keep theirs). Random draws come from torch's global generator,
which training checkpoints carry: a resumed run draws the same masks. With an online teacher
(asr_kd.distill.teaching) the teacher scores the augmented batch itself: the student is taught the
teacher's function on inputs off the training frames ("consistent teaching", Beyer et al. 2022)."""

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch

Augment = Callable[[torch.Tensor], torch.Tensor]
AUGMENTATIONS: Dict[str, Callable[["AugmentConfig", Optional["FeatureStats"]], Augment]] = {}


@dataclass
class AugmentConfig:
    freq_masks: int = 2  # SpecAugment: frequency bands zeroed per window
    freq_width: int = 8  # widest band (bins)
    time_masks: int = 1  # frame spans zeroed per window
    time_width: int = 3  # longest span (frames)
    mixup_max: float = 0.5  # mixup: the other frame's weight is uniform in [0, mixup_max]
    tempo_factors: Tuple[float, ...] = (0.9, 1.0, 1.1)  # tempo: one drawn per window (1.1: 10% faster)
    noise_prob: float = 0.5  # noise: share of windows degraded
    noise_snr_db: Tuple[float, float] = (0.0, 25.0)  # SNR drawn uniformly (window's mean power / noise power)
    noise_tilt_db: float = 12.0  # the noise spectrum tilted by up to this many dB from the lowest to the highest bin
    reverb_prob: float = 0.3  # reverb: share of windows reverberated (the synthetic corpora's reverb_prob)
    reverb_rt60: Tuple[float, float] = (0.15, 0.6)  # seconds, drawn uniformly (the corpora's range)
    reverb_tail: float = 0.16  # reverberant / direct energy (the corpora's synthetic_rir: 0.4 ** 2)
    frame_shift: float = 0.01  # seconds per frame


@dataclass
class FeatureStats:
    """The features' CMVN statistics (log mel energies = normalised * std + mean), for the
    augmentations that work in the power domain; a speaker-CMVN corpus uses its global ones."""

    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)

    def power(self, x: torch.Tensor) -> torch.Tensor:
        """Mel power of normalised features."""
        return (x * self.std.to(x) + self.mean.to(x)).exp()

    def features(self, power: torch.Tensor) -> torch.Tensor:
        """Normalised features of mel power (``power``'s inverse)."""
        return (power.log() - self.mean.to(power)) / self.std.to(power)

    @classmethod
    def of_normalizer(cls, normalizer) -> "FeatureStats":
        return cls(torch.as_tensor(normalizer.global_mean).float(), torch.as_tensor(normalizer.global_std).float())


def register_augment(name: str):
    def add(factory):
        if name in AUGMENTATIONS:
            raise ValueError(f"augmentation {name!r} is registered twice")
        AUGMENTATIONS[name] = factory
        return factory

    return add


def _band_mask(batch: int, size: int, masks: int, *, width: int) -> torch.Tensor:
    """(batch, size) bool: ``masks`` spans of 0..width positions each, at uniform starts."""
    keep = torch.ones(batch, size, dtype=torch.bool)
    pos = torch.arange(size)[None, :]
    for _ in range(masks):
        w = torch.randint(0, width + 1, (batch, 1))
        s = (torch.rand(batch, 1) * (size - w + 1)).long()
        keep &= ~((pos >= s) & (pos < s + w))
    return keep


@register_augment("none")
def _none(cfg: AugmentConfig, stats: Optional[FeatureStats]):
    return lambda x: x


@register_augment("specaugment")
def _specaugment(cfg: AugmentConfig, stats: Optional[FeatureStats]):
    def apply(x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        keep = _band_mask(b, d, cfg.freq_masks, width=min(cfg.freq_width, d))[:, None, :]
        keep = keep & _band_mask(b, t, cfg.time_masks, width=min(cfg.time_width, t))[:, :, None]
        return x * keep

    return apply


@register_augment("mixup")
def _mixup(cfg: AugmentConfig, stats: Optional[FeatureStats]):
    def apply(x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        lam = torch.rand(b, 1, 1) * cfg.mixup_max
        other = torch.randperm(b)
        return (1 - lam) * x + lam * x[other]

    return apply


def tempo_positions(factors: torch.Tensor, size: int) -> torch.Tensor:
    """(B, size) fractional source frames of a window whose centre stays and whose context is read
    ``factor`` frames apart; beyond the window's edge (factor > 1) the edge frame is read."""
    centre = (size - 1) / 2
    offsets = torch.arange(size, dtype=torch.float32) - centre
    return (centre + offsets[None, :] * factors[:, None]).clamp(0, size - 1)


@register_augment("tempo")
def _tempo(cfg: AugmentConfig, stats: Optional[FeatureStats]):
    factors = torch.tensor(cfg.tempo_factors, dtype=torch.float32)

    def apply(x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        pos = tempo_positions(factors[torch.randint(0, len(factors), (b,))], t).to(x.device)
        lo = pos.floor().long()
        hi = (lo + 1).clamp(max=t - 1)
        w = (pos - lo).to(x.dtype)[..., None]
        below, above = (torch.gather(x, 1, i[..., None].expand(b, t, d)) for i in (lo, hi))
        return (1 - w) * below + w * above

    return apply


def _power_domain(stats: Optional[FeatureStats], name: str) -> FeatureStats:
    if stats is None:
        raise ValueError(f"augmentation {name!r} works on mel energies: it needs the features' CMVN statistics")
    return stats


def _drawn(b: int, prob: float) -> torch.Tensor:
    """(b, 1, 1) bool: the windows an augmentation applied with probability ``prob`` changes."""
    return (torch.rand(b) < prob)[:, None, None]


def _uniform(bounds: Tuple[float, float], *shape: int) -> torch.Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(*shape)


@register_augment("noise")
def _noise(cfg: AugmentConfig, stats: Optional[FeatureStats]):
    stats = _power_domain(stats, "noise")

    def apply(x: torch.Tensor) -> torch.Tensor:
        b, _, d = x.shape
        power = stats.power(x)
        snr_db = _uniform(cfg.noise_snr_db, b, 1, 1)
        tilt_db = cfg.noise_tilt_db * (2 * torch.rand(b, 1, 1) - 1) * torch.linspace(-0.5, 0.5, d)[None, None, :]
        shape = stats.power(torch.zeros(1, 1, d)) * 10 ** (tilt_db / 10)  # the average spectrum, tilted
        level = power.mean((1, 2), keepdim=True) / shape.mean(2, keepdim=True) / 10 ** (snr_db / 10)
        return torch.where(_drawn(b, cfg.noise_prob), stats.features(power + level * shape), x)

    return apply


@register_augment("reverb")
def _reverb(cfg: AugmentConfig, stats: Optional[FeatureStats]):
    stats = _power_domain(stats, "reverb")

    def apply(x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        rt60 = _uniform(cfg.reverb_rt60, b, 1)
        lag = torch.arange(t, dtype=x.dtype)[None, :]
        decay = torch.exp(-13.8 * cfg.frame_shift * lag / rt60)  # power falls 60 dB over rt60
        tail = cfg.reverb_tail * decay / decay.sum(1, keepdim=True)  # (b, t): the tail's energy per frame of delay
        kernel = tail.clone()
        kernel[:, 0] += 1.0  # the direct sound
        # frame i receives frame i - k's power times kernel[k]; before the window's first frame, nothing is known
        delay = torch.arange(t)[:, None] - torch.arange(t)[None, :]  # (t_out, t_in)
        weights = torch.where(delay >= 0, kernel[:, delay.clamp(min=0)], torch.zeros(()))  # (b, t_out, t_in)
        reverberant = torch.bmm(weights, stats.power(x))
        return torch.where(_drawn(b, cfg.reverb_prob), stats.features(reverberant), x)

    return apply


def augment_names(spec: str) -> List[str]:
    names = [n.strip() for n in spec.split("+") if n.strip()] or ["none"]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; choose from {sorted(AUGMENTATIONS)} (chain with +)")
    return names


def build_augment(spec: str, cfg: AugmentConfig = AugmentConfig(), stats: Optional[FeatureStats] = None) -> Augment:
    """One function applying the ``+``-chained augmentations of ``spec`` in order; ``stats``: the
    features' CMVN statistics, which noise and reverb need."""
    steps = [AUGMENTATIONS[n](cfg, stats) for n in augment_names(spec)]

    def apply(x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            x = step(x)
        return x

    return apply

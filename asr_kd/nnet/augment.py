"""Training-time augmentations of speech frame windows, registered by name (``AUGMENTATIONS``) and
chained with ``+`` in a config (``teaching.augment: specaugment+mixup``).

Each works on a batch of windows (B, 2C+1, D) of normalised features (0 is the mean) and keeps the
centre frame's label valid, so labels never move: a mask hides part of the input; mixup blends in
another frame of the batch with weight at most 1/2, so the original frame dominates; tempo
resamples the context around the centre frame at 0.9 / 1.0 / 1.1 times the frame rate (Kaldi's
perturbation factors): the window the centre frame would have in the utterance played that much
faster, so the centre frame's label still holds. Random draws come from torch's global generator,
which training checkpoints carry: a resumed run draws the same masks. With an online teacher
(asr_kd.distill.teaching) the teacher scores the augmented batch itself: the student is taught the
teacher's function on inputs off the training frames ("consistent teaching", Beyer et al. 2022)."""

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import torch

AUGMENTATIONS: Dict[str, Callable[["AugmentConfig"], Callable[[torch.Tensor], torch.Tensor]]] = {}


@dataclass
class AugmentConfig:
    freq_masks: int = 2  # SpecAugment: frequency bands zeroed per window
    freq_width: int = 8  # widest band (bins)
    time_masks: int = 1  # frame spans zeroed per window
    time_width: int = 3  # longest span (frames)
    mixup_max: float = 0.5  # mixup: the other frame's weight is uniform in [0, mixup_max]
    tempo_factors: Tuple[float, ...] = (0.9, 1.0, 1.1)  # tempo: one drawn per window (1.1: 10% faster)


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
def _none(cfg: AugmentConfig):
    return lambda x: x


@register_augment("specaugment")
def _specaugment(cfg: AugmentConfig):
    def apply(x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        keep = _band_mask(b, d, cfg.freq_masks, width=min(cfg.freq_width, d))[:, None, :]
        keep = keep & _band_mask(b, t, cfg.time_masks, width=min(cfg.time_width, t))[:, :, None]
        return x * keep

    return apply


@register_augment("mixup")
def _mixup(cfg: AugmentConfig):
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
def _tempo(cfg: AugmentConfig):
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


def augment_names(spec: str) -> List[str]:
    names = [n.strip() for n in spec.split("+") if n.strip()] or ["none"]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; choose from {sorted(AUGMENTATIONS)} (chain with +)")
    return names


def build_augment(spec: str, cfg: AugmentConfig = AugmentConfig()) -> Callable[[torch.Tensor], torch.Tensor]:
    """One function applying the ``+``-chained augmentations of ``spec`` in order."""
    steps = [AUGMENTATIONS[n](cfg) for n in augment_names(spec)]

    def apply(x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            x = step(x)
        return x

    return apply

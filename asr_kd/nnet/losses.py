"""Training criteria, registered by name (``LOSSES``, ``@register_loss``) and built from a
``LossConfig`` (``build_criterion``), as torchdistill chooses losses from config. Shared by speech
and images; the training loop only sees the criterion object.

``kd``: the paper's objective, per frame (or image) and averaged over frames:

    w_soft * T^2 * CE(p_T, q_T) + w_hard * CE(y, q_1)

where p_T = softmax(v / T) are the teacher's (ensemble's) soft targets, q_T = softmax(z / T)
the student's, y the hard label. The T^2 factor keeps the soft term's gradient magnitude
roughly independent of T: d/dz [T^2 CE(p_T, q_T)] = T (q_T - p_T).

``logit_match``: the high-temperature limit, w_soft * 1/2 * mean over classes-summed (z - v)^2
with both logit vectors shifted to zero mean (the paper's eq. 3 regime), plus the hard term. It
needs the teachers' *logits* (``train-dnn --teachers``): stored soft targets are probabilities at
T and are refused for it (``asr_kd.distill.soft_targets.check_soft_targets``).

``ce``: plain cross-entropy on hard labels (the baseline).

Soft targets come as probabilities (dense, rows summing to 1). Every frame has a soft term; frames
whose label is ``ignore_index`` (untranscribed transfer audio) have no hard term. A new loss is a ``Criterion`` subclass
under ``@register_loss("name")``; ``loss: name`` in the config's ``distill`` section selects it.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Type

import torch
import torch.nn.functional as F


@dataclass
class LossConfig:
    loss: str = "kd"  # a name in LOSSES: kd | logit_match | ce
    temperature: float = 2.0
    soft_weight: float = 1.0
    hard_weight: float = 0.5

    def validate(self) -> None:
        if self.soft_weight == 0 and self.hard_weight == 0:
            raise ValueError("soft_weight and hard_weight are both 0: nothing to learn from")


def soft_cross_entropy(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """CE(p, softmax(z / T)) per row (summed over classes, not averaged over them)."""
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    return -(teacher_probs * log_q).sum(dim=-1)


def kd_loss(
    student_logits,
    labels,
    teacher_probs,
    *,
    temperature: float,
    soft_weight: float,
    hard_weight: float,
    ignore_index: int = -100,
) -> torch.Tensor:
    loss = soft_weight * temperature**2 * soft_cross_entropy(student_logits, teacher_probs, temperature).mean()
    return loss + _hard_term(student_logits, labels, hard_weight, ignore_index=ignore_index)


def _hard_term(student_logits, labels, hard_weight: float, *, ignore_index: int) -> torch.Tensor:
    """The weighted hard-label cross-entropy over the labelled frames only (untranscribed transfer
    audio has labels ``ignore_index``: the teacher alone teaches there)."""
    mask = labels != ignore_index
    if not hard_weight or not bool(mask.any()):
        return student_logits.sum() * 0.0
    return hard_weight * F.cross_entropy(student_logits[mask], labels[mask])


def logit_match_loss(
    student_logits, labels, teacher_logits, *, hard_weight: float, ignore_index: int = -100, soft_weight: float = 1.0
) -> torch.Tensor:
    z0 = student_logits - student_logits.mean(dim=-1, keepdim=True)
    v0 = teacher_logits - teacher_logits.mean(dim=-1, keepdim=True)
    loss = soft_weight * 0.5 * ((z0 - v0) ** 2).sum(dim=-1).mean()
    return loss + _hard_term(student_logits, labels, hard_weight, ignore_index=ignore_index)


class Criterion(torch.nn.Module):
    """loss(student_logits, labels, teacher=None) -> scalar. ``needs_teacher``: the loss reads
    ``teacher`` (soft-target probabilities or teacher logits), which the data must then provide."""

    needs_teacher = True

    def __init__(self, cfg: "LossConfig", ignore_index: int = -100):
        super().__init__()
        self.cfg, self.ignore_index = cfg, ignore_index

    def forward(
        self, student_logits: torch.Tensor, labels: torch.Tensor, teacher: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        if self.needs_teacher and teacher is None:
            raise ValueError(f"loss {self.cfg.loss!r} needs teacher outputs")
        return self.compute(student_logits, labels, teacher)

    def compute(self, student_logits, labels, teacher):
        raise NotImplementedError


LOSSES: Dict[str, Type[Criterion]] = {}


def register_loss(name: str) -> Callable[[Type[Criterion]], Type[Criterion]]:
    def add(cls: Type[Criterion]) -> Type[Criterion]:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} is registered twice")
        LOSSES[name] = cls
        return cls

    return add


def build_criterion(cfg: "LossConfig", ignore_index: int = -100) -> Criterion:
    if cfg.loss not in LOSSES:
        raise ValueError(f"unknown loss {cfg.loss!r}; choose one of {sorted(LOSSES)}")
    if cfg.temperature <= 0:
        raise ValueError("temperature must be positive")
    return LOSSES[cfg.loss](cfg, ignore_index)


@register_loss("ce")
class HardLabels(Criterion):
    """Cross-entropy on hard labels (the baseline)."""

    needs_teacher = False

    def compute(self, student_logits, labels, teacher):
        return F.cross_entropy(student_logits, labels, ignore_index=self.ignore_index)


@register_loss("kd")
class SoftTargets(Criterion):
    """Soft targets at T (T^2-scaled) plus the weighted hard term."""

    def compute(self, student_logits, labels, teacher):
        c = self.cfg
        return kd_loss(
            student_logits,
            labels,
            teacher,
            temperature=c.temperature,
            soft_weight=c.soft_weight,
            hard_weight=c.hard_weight,
            ignore_index=self.ignore_index,
        )


@register_loss("logit_match")
class LogitMatch(Criterion):
    """The high-temperature limit: squared distance of zero-mean logits, plus the hard term."""

    def compute(self, student_logits, labels, teacher):
        c = self.cfg
        return logit_match_loss(
            student_logits,
            labels,
            teacher,
            hard_weight=c.hard_weight,
            ignore_index=self.ignore_index,
            soft_weight=c.soft_weight,
        )

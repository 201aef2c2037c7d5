"""Distillation losses, chosen by name (``LOSSES``), shared by speech and images.

``kd``: the paper's objective, per frame (or image) and averaged over frames:

    w_soft * T^2 * CE(p_T, q_T) + w_hard * CE(y, q_1)

where p_T = softmax(v / T) are the teacher's (ensemble's) soft targets, q_T = softmax(z / T)
the student's, y the hard label. The T^2 factor keeps the soft term's gradient magnitude
roughly independent of T: d/dz [T^2 CE(p_T, q_T)] = T (q_T - p_T).

``logit_match``: the high-temperature limit, w_soft * 1/2 * mean over classes-summed (z - v)^2
with both logit vectors shifted to zero mean (the paper's eq. 3 regime), plus the hard term. It
needs the teachers' *logits* (``train-dnn --teachers``): stored soft targets are probabilities at
T and are refused for it (``asr_kd.distill.speech.check_soft_targets``).

``ce``: plain cross-entropy on hard labels (the baseline).

Soft targets come as probabilities (dense, rows summing to 1) or as log-probabilities;
frames whose label is ``ignore_index`` (padding) are excluded from both terms.
"""
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F


@dataclass
class DistillConfig:
    loss: str = "kd"  # kd | logit_match | ce
    temperature: float = 2.0
    soft_weight: float = 1.0
    hard_weight: float = 0.5


def soft_cross_entropy(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """CE(p, softmax(z / T)) per row (summed over classes, not averaged over them)."""
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    return -(teacher_probs * log_q).sum(dim=-1)


def kd_loss(student_logits, labels, teacher_probs, temperature: float, soft_weight: float, hard_weight: float,
            ignore_index: int = -100) -> torch.Tensor:
    mask = labels != ignore_index
    z, p, y = student_logits[mask], teacher_probs[mask], labels[mask]
    if z.numel() == 0:
        return student_logits.sum() * 0.0
    loss = soft_weight * temperature**2 * soft_cross_entropy(z, p, temperature).mean()
    if hard_weight:
        loss = loss + hard_weight * F.cross_entropy(z, y)
    return loss


def logit_match_loss(student_logits, labels, teacher_logits, hard_weight: float, ignore_index: int = -100,
                     soft_weight: float = 1.0) -> torch.Tensor:
    mask = labels != ignore_index
    z, v, y = student_logits[mask], teacher_logits[mask], labels[mask]
    if z.numel() == 0:
        return student_logits.sum() * 0.0
    z0 = z - z.mean(dim=-1, keepdim=True)
    v0 = v - v.mean(dim=-1, keepdim=True)
    loss = soft_weight * 0.5 * ((z0 - v0) ** 2).sum(dim=-1).mean()
    if hard_weight:
        loss = loss + hard_weight * F.cross_entropy(z, y)
    return loss


class DistillationLoss(torch.nn.Module):
    """loss(student_logits, labels, teacher=None): ``teacher`` holds soft-target probabilities
    (kd) or teacher logits (logit_match); unused for ce."""

    def __init__(self, cfg: DistillConfig, ignore_index: int = -100):
        super().__init__()
        if cfg.loss not in LOSSES:
            raise ValueError(f"unknown loss {cfg.loss!r}; choose one of {sorted(LOSSES)}")
        if cfg.temperature <= 0:
            raise ValueError("temperature must be positive")
        self.cfg, self.ignore_index = cfg, ignore_index

    def forward(self, student_logits: torch.Tensor, labels: torch.Tensor, teacher: Optional[torch.Tensor] = None) -> torch.Tensor:
        c = self.cfg
        if c.loss == "ce":
            return F.cross_entropy(student_logits, labels, ignore_index=self.ignore_index)
        if teacher is None:
            raise ValueError(f"loss {c.loss!r} needs teacher outputs")
        if c.loss == "kd":
            return kd_loss(student_logits, labels, teacher, c.temperature, c.soft_weight, c.hard_weight, self.ignore_index)
        return logit_match_loss(student_logits, labels, teacher, c.hard_weight, self.ignore_index, c.soft_weight)


LOSSES = {"kd": "soft targets at T (T^2-scaled) + hard labels", "logit_match": "high-temperature limit",
          "ce": "hard labels only"}


def ensemble_soft_targets(member_logits: torch.Tensor, temperature: float, combine: str = "arithmetic") -> torch.Tensor:
    """(members, N, C) logits -> (N, C) soft targets at T: mean of the members' softmaxes
    (``arithmetic``), or the renormalised geometric mean (``geometric``)."""
    if combine == "arithmetic":
        return F.softmax(member_logits / temperature, dim=-1).mean(dim=0)
    if combine == "geometric":
        return F.softmax(F.log_softmax(member_logits / temperature, dim=-1).mean(dim=0), dim=-1)
    raise ValueError(f"combine must be arithmetic or geometric, not {combine!r}")


def topk_targets(probs: torch.Tensor, k: int):
    """Top-k indices and renormalised log-probabilities (the storage format for sparse targets)."""
    vals, idx = probs.topk(k, dim=-1)
    return idx, torch.log(vals / vals.sum(dim=-1, keepdim=True))


def dense_from_topk(idx: torch.Tensor, logp: torch.Tensor, num_classes: int) -> torch.Tensor:
    out = torch.zeros(idx.shape[0], num_classes, dtype=logp.dtype, device=logp.device)
    out.scatter_(1, idx.long(), logp.exp())
    return out

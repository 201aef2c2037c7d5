"""Soft targets from teachers: the ensemble's combination at temperature T, and the top-k storage
format (indices + renormalised log-probabilities) with its expansion back to dense rows."""
import torch
import torch.nn.functional as F


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

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


class TopKTargets:
    """Sparse soft targets in memory as stored: (N, k) indices (int16 / int32) and log-probabilities
    (float16); indexing densifies only the asked rows, renormalised: ``targets[rows]`` -> (B, C)
    float32. N x k x 4 bytes instead of N x C x 4 (2,000 pdfs, k = 20: 100 times less)."""

    def __init__(self, idx: torch.Tensor, logp: torch.Tensor, num_classes: int):
        if idx.shape != logp.shape:
            raise ValueError(
                f"top-k indices {tuple(idx.shape)} and log-probabilities {tuple(logp.shape)} differ in shape"
            )
        self.idx, self.logp, self.num_classes = idx, logp, num_classes

    def __len__(self) -> int:
        return self.idx.shape[0]

    def __getitem__(self, rows) -> torch.Tensor:
        dense = dense_from_topk(self.idx[rows], self.logp[rows].float(), self.num_classes)
        return dense / dense.sum(-1, keepdim=True)

    def tensors(self):
        """What defines the targets (for run fingerprints)."""
        return [self.idx, self.logp]


def index_dtype(num_classes: int):
    """The smallest signed integer type that holds every class index (HDF5 and torch both have it)."""
    import numpy as np

    return np.int16 if num_classes <= np.iinfo(np.int16).max + 1 else np.int32

"""KL-combined inference (the paper's eq. 4): the full distribution q over all classes minimises

    KL(p_g, q) + sum over active specialists m of KL(p_m, q_m)

where p_g is the generalist's distribution, p_m a specialist's distribution over its classes plus
a dustbin, and q_m is q folded onto the same classes (the dustbin gets the mass of all other
classes). Active specialists are those whose classes meet the generalist's top-n. q = softmax(z)
is found numerically, batched: Adam on z from log p_g (minimising the cross-entropy terms, which
differ from the KLs by constants).
"""

from typing import Optional, Sequence

import numpy as np
import torch


def active_specialists(p_general: np.ndarray, clusters: Sequence[Sequence[int]], top_n: int = 1) -> np.ndarray:
    """(N, M) bool: specialist m is active for an example when its classes meet the generalist's top-n."""
    top = np.argsort(-p_general, axis=1)[:, :top_n]
    out = np.zeros((len(p_general), len(clusters)), bool)
    for m, cl in enumerate(clusters):
        out[:, m] = np.isin(top, cl).any(axis=1)
    return out


def fold_matrix(num_classes: int, cluster: Sequence[int]) -> torch.Tensor:
    """(C, |cluster| + 1) 0/1 matrix: class -> its position in the cluster, or the dustbin (last)."""
    f = torch.zeros(num_classes, len(cluster) + 1)
    f[:, -1] = 1.0
    for j, c in enumerate(cluster):
        f[c, -1] = 0.0
        f[c, j] = 1.0
    return f


def combine(
    p_general: np.ndarray,
    specialist_probs: Sequence[Optional[np.ndarray]],
    clusters: Sequence[Sequence[int]],
    *,
    active: np.ndarray,
    steps: int = 300,
    lr: float = 0.1,
    eps: float = 1e-8,
    chunk: int = 8192,
    tol: float = 1e-6,
) -> np.ndarray:
    """q (N, C). ``specialist_probs[m]`` is (N, |cluster m| + 1) (dustbin last); rows where no
    specialist is active come back as p_g exactly. Rows are solved in chunks; a chunk stops early
    once no element of q moves by more than ``tol`` in a step."""
    q_out = np.array(p_general, dtype=np.float64, copy=True)
    rows = np.flatnonzero(active.any(axis=1))
    # rows with the same active specialists together: a chunk then carries only its own terms
    rows = rows[np.lexsort(active[rows].T[::-1])] if len(rows) else rows
    folds = [fold_matrix(q_out.shape[1], cl).double() for cl in clusters]
    bounds = _chunks(active[rows], chunk)
    for a, b in bounds:
        r = rows[a:b]
        pg = torch.as_tensor(q_out[r])
        terms = [
            (
                folds[m],
                torch.as_tensor(np.asarray(specialist_probs[m][r], dtype=np.float64)),
                torch.as_tensor(active[r, m], dtype=torch.float64),
            )
            for m in range(len(clusters))
            if active[r, m].any()
        ]
        z = torch.log(pg + eps).clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        prev = torch.softmax(z.detach(), dim=1)
        for _ in range(steps):
            logq = torch.log_softmax(z, dim=1)
            loss = -(pg * logq).sum(1)
            q = logq.exp()
            for fold, pm, on in terms:
                loss = loss - on * (pm * torch.log(q @ fold + eps)).sum(1)
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
            now = torch.softmax(z.detach(), dim=1)
            if float((now - prev).abs().max()) < tol:
                break
            prev = now
        q_out[r] = torch.softmax(z.detach(), dim=1).numpy()
    return q_out


def _chunks(flags: np.ndarray, size: int):
    """(start, end) ranges of at most ``size`` rows that do not cross a change of activation pattern."""
    out, start = [], 0
    for i in range(1, len(flags) + 1):
        if i == len(flags) or i - start >= size or not np.array_equal(flags[i], flags[start]):
            out.append((start, i))
            start = i
    return out


def objective(
    q: np.ndarray, p_general: np.ndarray, specialist_probs, *, clusters, active, eps: float = 1e-12
) -> np.ndarray:
    """The per-example KL sum (for checks): KL(p_g, q) + sum over active m of KL(p_m, q_m)."""

    def kl(p, r):
        return (p * (np.log(p + eps) - np.log(r + eps))).sum(1)

    out = kl(p_general, q)
    for m, cl in enumerate(clusters):
        qm = q @ fold_matrix(q.shape[1], cl).numpy()
        out = out + active[:, m] * kl(specialist_probs[m], qm)
    return out

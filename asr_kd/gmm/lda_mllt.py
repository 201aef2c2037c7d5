"""Feature transforms of Kaldi's train_lda_mllt.sh, in numpy: frame splicing, LDA on spliced
frames with the aligned pdfs as classes (Kaldi's acc-lda / est-lda), and MLLT, the global
semi-tied covariance transform (Gales 1999; Kaldi's gmm-acc-mllt / est-mllt).

    LDA:  the top ``dim`` generalised eigenvectors of (between, within) class scatter, scaled so
          the within-class covariance becomes the identity.
    MLLT: the square A maximising  N log|det A| - 1/2 sum_g n_g sum_i log (A W_g A^T)_ii
          (W_g: the full covariance of Gaussian g's frames), by Gales' row-by-row update.
"""
from typing import Dict, Iterable, Tuple

import numpy as np


def splice(x: np.ndarray, context: int) -> np.ndarray:
    """Frames t-context .. t+context side by side, edge frames repeated (Kaldi's splice-feats)."""
    if context == 0:
        return x
    t = len(x)
    padded = np.concatenate([np.repeat(x[:1], context, 0), x, np.repeat(x[-1:], context, 0)])
    return np.concatenate([padded[i : i + t] for i in range(2 * context + 1)], axis=1)


def lda_stats(pairs: Iterable[Tuple[np.ndarray, np.ndarray]], num_classes: int):
    """(counts, sums, total scatter) from (features, class per frame) pairs."""
    counts = sums = scatter = None
    for x, labels in pairs:
        x = x.astype(np.float64)
        if counts is None:
            counts, sums, scatter = np.zeros(num_classes), np.zeros((num_classes, x.shape[1])), np.zeros((x.shape[1],) * 2)
        counts += np.bincount(labels, minlength=num_classes)
        np.add.at(sums, labels, x)
        scatter += x.T @ x
    if counts is None:
        raise ValueError("LDA: no frames")
    return counts, sums, scatter


def estimate_lda(counts: np.ndarray, sums: np.ndarray, scatter: np.ndarray, dim: int, floor: float = 1e-6) -> np.ndarray:
    """(dim, D) LDA projection; within-class covariance of the output is the identity."""
    n = counts.sum()
    mean = sums.sum(0) / n
    total = scatter / n - np.outer(mean, mean)
    seen = counts > 0
    class_means = sums[seen] / counts[seen, None]
    between = ((class_means - mean).T * (counts[seen] / n)) @ (class_means - mean)
    within = total - between
    within += floor * np.trace(within) / len(within) * np.eye(len(within))
    # whiten the within-class scatter, then diagonalise the between-class scatter
    evals, evecs = np.linalg.eigh(within)
    whiten = evecs / np.sqrt(np.maximum(evals, 1e-10))
    b = whiten.T @ between @ whiten
    bvals, bvecs = np.linalg.eigh(b)
    order = np.argsort(-bvals, kind="stable")[:dim]
    proj = (whiten @ bvecs[:, order]).T
    signs = np.sign(proj[np.arange(len(proj)), np.abs(proj).argmax(1)])  # fixed sign: reruns agree
    return proj * signs[:, None]


def mllt_gaussian_stats(frames_by_gaussian: Dict[int, Tuple[float, np.ndarray, np.ndarray]]):
    """(counts, full covariances) per Gaussian from {g: (count, sum, sum of outer products)}."""
    counts, covs = [], []
    for g in sorted(frames_by_gaussian):
        c, s, ss = frames_by_gaussian[g]
        if c <= 1.0:
            continue
        m = s / c
        counts.append(c)
        covs.append(ss / c - np.outer(m, m))
    return np.array(counts), np.array(covs)


def estimate_mllt(counts: np.ndarray, covs: np.ndarray, iters: int = 10, A: np.ndarray = None) -> Tuple[np.ndarray, float]:
    """Gales' semi-tied covariance update; returns (A, objective gain per frame)."""
    dim = covs.shape[1]
    A = np.eye(dim) if A is None else A.copy()
    beta = counts.sum()

    def objf(A):
        var = np.einsum("id,gde,ie->gi", A, covs, A)
        return beta * np.linalg.slogdet(A)[1] - 0.5 * (counts[:, None] * np.log(var)).sum()

    start = objf(A)
    for _ in range(iters):
        for i in range(dim):
            var_i = np.einsum("d,gde,e->g", A[i], covs, A[i])
            G = np.einsum("g,gde->de", counts / var_i, covs)
            cof = np.linalg.inv(A).T[i]  # the cofactor row up to det(A): the row's rescaling below cancels it
            Gi = np.linalg.inv(G)
            a = cof @ Gi
            A[i] = a * np.sqrt(beta / (a @ cof))
    return A, (objf(A) - start) / beta

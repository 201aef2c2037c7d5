"""Feature transforms of Kaldi's train_lda_mllt.sh, in numpy: frame splicing, LDA on spliced
frames with the aligned pdfs as classes (Kaldi's acc-lda / est-lda), and MLLT, the global
semi-tied covariance transform (Gales 1999; Kaldi's gmm-acc-mllt / est-mllt).

    LDA:  the top ``dim`` generalised eigenvectors of (between, within) class scatter, scaled so
          the within-class covariance becomes the identity.
    MLLT: the square A maximising  N log|det A| - 1/2 sum_i a_i G_i a_i^T, with G_i the frames'
          scatter about their Gaussian's mean over that Gaussian's i-th variance (Gales' row-by-row
          update, as Kaldi's est-mllt).
"""

from typing import Iterable, Tuple

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
            counts, sums, scatter = (
                np.zeros(num_classes),
                np.zeros((num_classes, x.shape[1])),
                np.zeros((x.shape[1],) * 2),
            )
        counts += np.bincount(labels, minlength=num_classes)
        np.add.at(sums, labels, x)
        scatter += x.T @ x
    if counts is None:
        raise ValueError("LDA: no frames")
    return counts, sums, scatter


def estimate_lda(
    counts: np.ndarray, sums: np.ndarray, scatter: np.ndarray, *, dim: int, floor: float = 1e-10
) -> np.ndarray:
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


def estimate_mllt(G: np.ndarray, beta: float, iters: int = 10) -> Tuple[np.ndarray, float]:
    """Kaldi's MlltAccs::Update: ``G[i] = sum_t (x_t - mu_g)(x_t - mu_g)^T / var_g[i]`` over frames t
    with their Gaussian g (the model's means and variances in the current space), ``beta`` the frame
    count; rows of A updated in turn (Gales). Returns (A, objective gain per frame)."""
    dim = G.shape[0]
    A = np.eye(dim)

    def objf(A):
        return beta * np.linalg.slogdet(A)[1] - 0.5 * np.einsum("id,ide,ie->", A, G, A)

    start = objf(A)
    Ginv = np.linalg.inv(G)
    for _ in range(iters):
        for i in range(dim):
            cof = np.linalg.inv(A).T[i]  # the cofactor row up to det(A): the row's rescaling cancels it
            a = cof @ Ginv[i]
            A[i] = a * np.sqrt(beta / (a @ cof))
    return A, (objf(A) - start) / beta

"""Clusters of classes that the generalist confuses, found without true labels: the covariance
matrix of the generalist's predicted distributions, its columns clustered with online k-means
(one column per class; classes whose predictions co-vary end up together)."""

from typing import Dict, List, Sequence

import numpy as np


def prediction_covariance(probs: np.ndarray) -> np.ndarray:
    """(C, C) covariance of the predicted class distributions over examples."""
    p = np.asarray(probs, dtype=np.float64)
    p = p - p.mean(axis=0, keepdims=True)
    return p.T @ p / max(len(p) - 1, 1)


def class_vectors(cov: np.ndarray) -> np.ndarray:
    """Columns of the covariance made comparable: a class's own variance would make its column
    point at itself (all columns nearly orthogonal), so the diagonal is replaced by the column's
    largest absolute covariance with another class; each column is then scaled to unit length
    (its pattern of co-prediction and exclusion, not its volume)."""
    c = np.array(cov, dtype=np.float64, copy=True)
    np.fill_diagonal(c, 0.0)
    np.fill_diagonal(c, np.abs(c).max(axis=0))
    return c / np.maximum(np.linalg.norm(c, axis=0, keepdims=True), 1e-12)


def online_kmeans(points: np.ndarray, k: int, seed: int = 0, *, epochs: int = 50) -> np.ndarray:
    """Sequential (MacQueen) k-means: each point, in a seeded random order, moves its nearest centre
    by 1/count of that centre. Centres start at k distinct points (k-means++ seeding). Returns labels."""
    rng = np.random.default_rng(seed)
    x = np.asarray(points, dtype=np.float64)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"cluster count {k} must be between 1 and the number of classes {n}")
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(x[rng.choice(n, p=d / d.sum()) if d.sum() > 0 else rng.integers(n)])
    centres = np.array(centres)
    counts = np.ones(k)
    labels = np.full(n, -1)
    for _ in range(epochs):
        changed = False
        for i in rng.permutation(n):
            j = int(((centres - x[i]) ** 2).sum(1).argmin())
            counts[j] += 1
            centres[j] += (x[i] - centres[j]) / counts[j]
            if labels[i] != j:
                labels[i], changed = j, True
        if not changed:
            break
    return labels


def confusable_clusters(probs: np.ndarray, k: int, seed: int = 0, *, min_size: int = 2) -> List[List[int]]:
    """Clusters (lists of class ids) from the generalist's predictions; singletons are dropped, as
    a one-class specialist has nothing to separate."""
    labels = online_kmeans(class_vectors(prediction_covariance(probs)).T, k, seed)
    clusters = [sorted(np.flatnonzero(labels == j).tolist()) for j in range(k)]
    return [c for c in clusters if len(c) >= min_size]


def describe(clusters: Sequence[Sequence[int]], names: Sequence[str]) -> List[str]:
    return [f"cluster {m}: " + ", ".join(names[c] for c in cl) for m, cl in enumerate(clusters)]


def plot_covariance(probs: np.ndarray, clusters: Sequence[Sequence[int]], names: Sequence[str], *, path) -> None:
    """Heat map of the prediction covariance, classes ordered by cluster."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cov = prediction_covariance(probs)
    order = [c for cl in clusters for c in cl] + [c for c in range(cov.shape[0]) if not any(c in cl for cl in clusters)]
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(cov[np.ix_(order, order)], cmap="coolwarm", vmin=-np.abs(cov).max(), vmax=np.abs(cov).max())
    ax.set_xticks(range(len(order)))
    ax.set_yticks(range(len(order)))
    ax.set_xticklabels([names[c] for c in order], rotation=90, fontsize=7)
    ax.set_yticklabels([names[c] for c in order], fontsize=7)
    edge = 0
    for cl in clusters:
        ax.add_patch(plt.Rectangle((edge - 0.5, edge - 0.5), len(cl), len(cl), fill=False, lw=1.5))
        edge += len(cl)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title("covariance of the generalist's predictions (classes by cluster)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cluster_map(clusters: Sequence[Sequence[int]]) -> Dict[int, List[int]]:
    """class -> the clusters that contain it."""
    out: Dict[int, List[int]] = {}
    for m, cl in enumerate(clusters):
        for c in cl:
            out.setdefault(c, []).append(m)
    return out

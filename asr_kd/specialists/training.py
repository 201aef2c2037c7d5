"""What the image and speech specialist recipes share: a specialist's training set (its cluster's
examples plus as many others, labelled as a dustbin), its initialisation from the generalist, and
the accuracy of the generalist against the KL-combined generalist + specialists."""

from typing import Dict

import numpy as np
import torch

from asr_kd.nnet.checkpoint import safe_torch_load
from asr_kd.nnet.models import model_config
from asr_kd.specialists.combine import active_specialists, combine


def specialist_training_set(y: np.ndarray, cluster, seed: int):
    """Indices (the cluster's examples + as many random others) and specialist labels (dustbin last)."""
    rng = np.random.default_rng(seed)
    inside = np.flatnonzero(np.isin(y, cluster))
    outside = np.flatnonzero(~np.isin(y, cluster))
    idx = np.sort(np.concatenate([inside, rng.choice(outside, size=min(len(inside), len(outside)), replace=False)]))
    pos = {c: j for j, c in enumerate(cluster)}
    labels = np.array([pos.get(int(c), len(cluster)) for c in y[idx]], np.int64)
    return idx, labels


def specialist_init(generalist_ckpt, cluster):
    """(state dict, model config) of a specialist initialised from its generalist: hidden layers as
    they are, output rows of the cluster's classes copied, the dustbin row the mean of the others."""
    gen = safe_torch_load(generalist_ckpt)
    state = dict(gen["model"])
    w_key = [k for k in state if k.endswith("weight")][-1]
    b_key = w_key[: -len("weight")] + "bias"
    others = [c for c in range(state[w_key].shape[0]) if c not in cluster]
    state[w_key] = torch.cat([state[w_key][cluster], state[w_key][others].mean(0, keepdim=True)])
    state[b_key] = torch.cat([state[b_key][cluster], state[b_key][others].mean(0, keepdim=True)])
    return state, model_config(gen["model_cfg"])


def combined_accuracy(pg: np.ndarray, sp, clusters, *, y: np.ndarray, top_n: int = 1) -> Dict:
    """Generalist vs. KL-combined accuracy and the per-coverage table, from probability arrays."""
    active = active_specialists(pg, clusters, top_n)
    q = combine(pg, sp, clusters, active=active)
    before, after = pg.argmax(1) == y, q.argmax(1) == y
    covering = np.array([sum(1 for m, cl in enumerate(clusters) if active[i, m] and y[i] in cl) for i in range(len(y))])
    rows = []
    for k in sorted(set(covering.tolist())):
        sel = covering == k
        b, a = int(before[sel].sum()), int(after[sel].sum())
        rows.append(
            {
                "specialists_covering": k,
                "examples": int(sel.sum()),
                "delta_correct": a - b,
                "relative_change": (a - b) / b if b else float("nan"),
            }
        )
    return {
        "generalist_accuracy": float(before.mean()),
        "combined_accuracy": float(after.mean()),
        "examples": int(len(y)),
        "active_rate": float(active.any(1).mean()),
        "by_coverage": rows,
    }

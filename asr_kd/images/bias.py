"""Bias adjustment after training on a transfer set that lacks some classes (the paper's
"omitting all examples of the digit 3" and "only 7s and 8s" experiments).

A model distilled without a class still learns it from the soft targets but under-predicts it;
adding ``delta`` to chosen output biases fixes that. ``delta`` is chosen on validation data (never
test) from a grid, and applied to the logits, which is the same as editing the last layer's bias.
"""

from typing import Dict, Iterable, Sequence

import numpy as np


def shift_logits(logits: np.ndarray, classes: Sequence[int], delta: float) -> np.ndarray:
    out = np.array(logits, dtype=np.float64, copy=True)
    out[:, list(classes)] += delta
    return out


def errors(logits: np.ndarray, labels: np.ndarray) -> int:
    return int((np.asarray(logits).argmax(-1) != np.asarray(labels)).sum())


def choose_bias(logits: np.ndarray, labels: np.ndarray, classes: Sequence[int], *, grid: Iterable[float]) -> Dict:
    """The grid value with the fewest errors (ties: the smallest |delta|), with the error curve."""
    curve = {float(d): errors(shift_logits(logits, classes, d), labels) for d in grid}
    best = min(curve, key=lambda d: (curve[d], abs(d)))
    return {"delta": best, "errors": curve[best], "curve": curve}


def default_grid(lo: float = -12.0, hi: float = 12.0, step: float = 0.1) -> np.ndarray:
    return np.round(np.arange(lo, hi + step / 2, step), 6)

"""The one NaN/inf check: a bad number stops the work with a message naming where it came from."""

from typing import Callable, Mapping

import numpy as np


def require_finite(value, message: Callable[[], str]) -> None:
    """Raise FloatingPointError(message()) when ``value`` (a tensor, an array or a number) holds a NaN
    or an inf; ``message`` is only built then."""
    arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    if not np.isfinite(arr).all():
        raise FloatingPointError(message())


def require_finite_utterances(per_utterance: Mapping[str, object], what: str = "log-likelihoods") -> None:
    """The check over a {utterance id: matrix} mapping, naming the first bad utterance."""
    for utt, m in per_utterance.items():
        require_finite(m, lambda: f"utterance {utt}: {what} contain NaN or inf")

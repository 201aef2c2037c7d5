"""Bootstrap confidence intervals and paired comparisons of error rates (Bisani & Ney, 2004).

A system is an ``ErrorCounts``: per seed and per test utterance, the number of errors (word errors,
or wrongly classified frames) and, per utterance, the number of tokens (reference words, or frames).
The error rate of a system is the mean over its seeds of sum(errors) / sum(tokens).

Decisions (written here because every table relies on them):

* Confidence interval: the 95% percentile interval of the seed-mean error rate over ``num_boot``
  resamplings of the test *utterances* (with replacement). It measures how much the figure depends
  on which utterances the test set happens to hold; the spread over training seeds is reported
  beside it as the sample standard deviation over seeds.
* Comparison: a paired bootstrap. Each replicate resamples the utterances once for all systems
  (pairing), and also resamples each multi-seed system's seeds, so that "B is better than A"
  must hold over both sources of variation. ``prob_better`` is the share of replicates in which B's
  error rate is lower than A's (Bisani & Ney's "probability of improvement"); ``p_value`` is
  two-sided, 2 * min(P(B < A) + P(tie), P(B > A) + P(tie)), since which system wins is not fixed in
  advance (ties count against a difference: identical systems get p = 1), and a difference is called
  significant only where ``p_value < 0.05``.
* Seeds and utterances are resampled by a generator seeded with ``seed``: a rerun gives the same
  intervals and probabilities.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np

NUM_BOOT = 2000
ALPHA = 0.05


@dataclass
class ErrorCounts:
    errors: np.ndarray  # (seeds, utterances) error counts
    tokens: np.ndarray  # (utterances,) reference words or frames

    def __post_init__(self):
        self.errors = np.atleast_2d(np.asarray(self.errors, dtype=np.float64))
        self.tokens = np.asarray(self.tokens, dtype=np.float64)
        if self.errors.shape[1] != self.tokens.shape[0]:
            raise ValueError(f"{self.errors.shape[1]} utterances of errors for {self.tokens.shape[0]} of tokens")
        if self.tokens.shape[0] == 0:
            raise ValueError("no utterances to score")

    def subset(self, utterances: np.ndarray) -> "ErrorCounts":
        """The same systems' counts on some of the utterances (indices)."""
        return ErrorCounts(self.errors[:, utterances], self.tokens[utterances])

    @property
    def num_seeds(self) -> int:
        return self.errors.shape[0]

    def per_seed(self) -> np.ndarray:
        return self.errors.sum(1) / max(self.tokens.sum(), 1.0)

    def rate(self) -> float:
        return float(self.per_seed().mean())

    def std(self) -> float:
        """Sample standard deviation over seeds (0 for one seed)."""
        r = self.per_seed()
        return float(r.std(ddof=1)) if len(r) > 1 else 0.0


def error_counts(evaluation: Dict, which: str = "single") -> ErrorCounts:
    """The ErrorCounts of an ``asr_kd.nnet.evaluate.evaluate`` result: ``single`` (one row per
    model, i.e. per seed) or ``ensemble``."""
    return ErrorCounts(evaluation["errors"][which], evaluation["frames"])


def utterance_weights(num_utts: int, num_boot: int = NUM_BOOT, seed: int = 0) -> np.ndarray:
    """(num_boot, num_utts): how often each utterance is drawn in each replicate."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, num_utts, size=(num_boot, num_utts))
    w = np.zeros((num_boot, num_utts))
    np.add.at(w, (np.arange(num_boot)[:, None], draws), 1.0)
    return w


def replicate_rates(sys: ErrorCounts, weights: np.ndarray, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """(num_boot,) seed-mean error rates on the resampled utterances; with ``rng`` the seeds are
    resampled too (one draw of seeds per replicate)."""
    tokens = np.maximum(weights @ sys.tokens, 1.0)  # (B,)
    per_seed = (weights @ sys.errors.T) / tokens[:, None]  # (B, seeds)
    if rng is None or sys.num_seeds == 1:
        return per_seed.mean(1)
    pick = rng.integers(0, sys.num_seeds, size=per_seed.shape)
    return np.take_along_axis(per_seed, pick, axis=1).mean(1)


def confidence_interval(sys: ErrorCounts, num_boot: int = NUM_BOOT, seed: int = 0, *, alpha: float = ALPHA):
    """(low, high) of the seed-mean error rate over resampled utterances."""
    r = replicate_rates(sys, utterance_weights(len(sys.tokens), num_boot, seed))
    return float(np.quantile(r, alpha / 2)), float(np.quantile(r, 1 - alpha / 2))


def mean_std(values: Sequence[float]) -> Dict:
    """Mean and sample standard deviation over seeds (0 for one), with the values."""
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        "n": len(v),
        "values": [float(x) for x in v],
    }


def summarise(sys: ErrorCounts, num_boot: int = NUM_BOOT, seed: int = 0) -> Dict:
    lo, hi = confidence_interval(sys, num_boot, seed)
    return {
        "rate": sys.rate(),
        "std": sys.std(),
        "seeds": sys.num_seeds,
        "per_seed": sys.per_seed().tolist(),
        "ci95": [lo, hi],
        "utterances": int(len(sys.tokens)),
        "tokens": int(sys.tokens.sum()),
    }


def compare(
    systems: Dict[str, ErrorCounts],
    pairs: Sequence[tuple],
    *,
    num_boot: int = NUM_BOOT,
    seed: int = 0,
    gain_kept: Optional[tuple] = None,
) -> Dict:
    """Paired bootstrap over shared utterances (and each system's seeds).

    ``pairs``: (A, B) names; for each, ``prob_better`` = P(rate_B < rate_A) and ``p_value``.
    ``gain_kept``: (baseline, ensemble, student) names: the share of the ensemble's error reduction
    that the student keeps, (base - student) / (base - ensemble), with its 95% percentile interval.
    """
    names = list(systems)
    if not names:
        return {"num_boot": num_boot, "seed": seed, "pairs": []}
    n = len(systems[names[0]].tokens)
    for k in names:
        if len(systems[k].tokens) != n or not np.array_equal(systems[k].tokens, systems[names[0]].tokens):
            raise ValueError(f"system {k!r} is scored on other utterances than {names[0]!r}: cannot pair them")
    weights = utterance_weights(n, num_boot, seed)
    rng = np.random.default_rng(seed + 1)
    reps = {k: replicate_rates(s, weights, rng) for k, s in systems.items()}
    out = {"num_boot": num_boot, "seed": seed, "pairs": []}
    for a, b in pairs:
        diff = reps[a] - reps[b]
        prob, worse, tie = float((diff > 0).mean()), float((diff < 0).mean()), float((diff == 0).mean())
        p_value = min(
            1.0, 2.0 * min(prob + tie, worse + tie)
        )  # two-sided (no direction chosen in advance); ties count against
        out["pairs"].append(
            {
                "a": a,
                "b": b,
                "rate_a": systems[a].rate(),
                "rate_b": systems[b].rate(),
                "prob_better": prob,
                "prob_worse": worse,
                "prob_tie": tie,
                "p_value": p_value,
                "significant": bool(p_value < ALPHA),
                "num_boot": num_boot,
                "diff_ci95": [float(np.quantile(diff, ALPHA / 2)), float(np.quantile(diff, 1 - ALPHA / 2))],
            }
        )
    if gain_kept:
        base, ens, stud = gain_kept
        point = _kept(systems[base].rate(), systems[ens].rate(), systems[stud].rate())
        gain = reps[base] - reps[ens]
        with np.errstate(divide="ignore", invalid="ignore"):
            shares = (reps[base] - reps[stud]) / gain
        shares = shares[np.isfinite(shares) & (gain > 0)]  # a share of no gain is undefined
        ci = (
            [float(np.quantile(shares, ALPHA / 2)), float(np.quantile(shares, 1 - ALPHA / 2))]
            if point is not None and len(shares)
            else [None, None]
        )
        out["gain_kept"] = {"baseline": base, "ensemble": ens, "student": stud, "share": point, "ci95": ci}
    return out


def _kept(base: float, ens: float, stud: float) -> Optional[float]:
    """None unless the ensemble has a lower error rate than the baseline (no gain, nothing to keep)."""
    return (base - stud) / (base - ens) if ens < base else None


def pair_sentence(p: Dict, what: str = "error rate", *, labels: Optional[Dict[str, str]] = None) -> str:
    """'B is better than A (P = 0.97; significant)' in words a reviewer can check against the table
    (``labels``: the display text of the systems' ids)."""
    labels = labels or {}
    a, b = labels.get(p["a"], p["a"]), labels.get(p["b"], p["b"])
    verdict = "significant" if p["significant"] else "not significant"
    pv = fmt_p(p["p_value"], p.get("num_boot", NUM_BOOT), "= ")
    if p["rate_b"] == p["rate_a"]:
        return f"{a} and {b} have the same {what} (two-sided p {pv}: {verdict} at 0.05)"
    better = p["rate_b"] < p["rate_a"]
    first, second = (b, a) if better else (a, b)
    prob = p["prob_better"] if better else p["prob_worse"]  # strictly lower; ties are neither
    return (
        f"{first} has a lower {what} than {second} in {100 * prob:.1f}% of bootstrap replicates "
        f"(two-sided p {pv}: {verdict} at 0.05)"
    )


def fmt_p(p: float, num_boot: int = NUM_BOOT, eq: str = "") -> str:
    """A p-value to the resolution the replicates give: below 2 / num_boot it reads '< 0.001' (say)."""
    floor = 2.0 / num_boot
    if p < floor:
        return f"< {floor:.2g}"
    return f"{eq}{p:.3f}"


def fmt_rate(s: Dict, digits: int = 2, accuracy: bool = False) -> str:
    """'9.62% ± 1.80 [8.91, 10.40]': seed mean ± std over seeds (if several), 95% interval over
    utterances; with ``accuracy`` the same for 1 - error rate."""
    lo, hi = s["ci95"]
    value, lo, hi = (1 - s["rate"], 1 - hi, 1 - lo) if accuracy else (s["rate"], lo, hi)
    out = f"{100 * value:.{digits}f}%"
    if s["seeds"] > 1:
        out += f" ± {100 * s['std']:.{digits}f}"
    return out + f" [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"


def fmt_accuracy(s: Dict, digits: int = 2) -> str:
    return fmt_rate(s, digits, accuracy=True)


def significance_lines(sig: dict, what: str, brief: bool = False, *, labels: Optional[Dict[str, str]] = None) -> list:
    """The paired comparisons and the share of the ensemble's gain kept, as sentences and a table;
    ``brief``: the table and the share alone (a subset's, after the full explanation); ``labels``: the
    display text of the systems' ids."""
    labels = labels or {}
    lines = (
        []
        if brief
        else [
            f"Paired bootstrap ({sig['num_boot']} replicates resampling test utterances and each system's seeds): "
            "P(B better) is the share of replicates in which B's error rate is lower than A's; p = 2 min(P(B<A) + P(tie), P(B>A) + P(tie)), two-sided.",
            "",
        ]
    )
    lines += [
        "| A | B | error rate A | error rate B | P(B better) | p | 95% interval of A - B |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in sig["pairs"]:
        lo, hi = p["diff_ci95"]
        lines.append(
            f"| {labels.get(p['a'], p['a'])} | {labels.get(p['b'], p['b'])} | {100 * p['rate_a']:.2f}% | {100 * p['rate_b']:.2f}% | "
            f"{p['prob_better']:.3f} | {fmt_p(p['p_value'], sig['num_boot'])}{' *' if p['significant'] else ''} | "
            f"[{100 * lo:+.2f}, {100 * hi:+.2f}] |"
        )
    if brief:
        lines.append("")
    elif sig["pairs"]:
        lines += [
            "",
            "(* significant at 0.05.) " + "; ".join(pair_sentence(p, what, labels=labels) for p in sig["pairs"]) + ".",
            "",
        ]
    g = sig.get("gain_kept")
    if g:
        lo, hi = g["ci95"]
        share = (
            "undefined (the ensemble is no better than the baseline)"
            if g["share"] is None
            else f"{100 * g['share']:.1f}%"
        )
        interval = f" (95% interval {100 * lo:.1f}% to {100 * hi:.1f}%)" if lo is not None else ""
        lines += [f"Share of the ensemble's gain kept by the student: {share}{interval}; paper: over 80%.", ""]
    return lines

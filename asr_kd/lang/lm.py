"""n-gram language models in ARPA format (G.fst from one: ``asr_kd.kaldi.fst.arpa_to_fst``).

``train_arpa`` uses kenlm's ``lmplz`` when it is found (``$LMPLZ``, next to the running Python,
as ``./setup.sh`` installs it, or on PATH); without it, a
pure-Python interpolated Kneser-Ney estimator writes the ARPA, and the log says so. Perplexity
comes from the kenlm Python module.
"""
import logging
import math
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

from asr_kd.utils.io import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


def lmplz_path():
    beside_python = Path(sys.executable).parent / "lmplz"
    if os.environ.get("LMPLZ"):
        return os.environ["LMPLZ"]
    return str(beside_python) if os.access(beside_python, os.X_OK) else shutil.which("lmplz")


def train_arpa(texts: Sequence[str], order: int, out_path, discount: float = 0.7, estimator: str = "auto") -> str:
    """Write an ARPA LM of ``order`` over ``texts``; returns the estimator used.

    ``estimator``: ``auto`` (lmplz when found, else the fallback, logged), ``lmplz`` (required) or
    ``python`` (the fallback)."""
    out_path = Path(out_path)
    if order < 2:
        raise ValueError("n-gram order must be at least 2 (kenlm reads bigrams and up)")
    if estimator not in ("auto", "lmplz", "python"):
        raise ValueError(f"estimator must be auto, lmplz or python, not {estimator!r}")
    lmplz = lmplz_path() if estimator != "python" else None
    if estimator == "lmplz" and not lmplz:
        raise FileNotFoundError("lmplz not found: run ./setup.sh (tools/install_lmplz.sh) or set $LMPLZ")
    if lmplz:
        with atomic_path(out_path) as tmp:
            with open(tmp, "w") as f:
                subprocess.run([lmplz, "-o", str(order), "--discount_fallback", "-S", "10%", "-T", str(out_path.parent)],
                               input="\n".join(texts) + "\n", text=True, stdout=f, stderr=subprocess.PIPE, check=True)
        return "lmplz"
    if estimator == "auto":
        log.warning("lmplz not found: estimating the %d-gram with asr_kd's pure-Python Kneser-Ney fallback", order)
    write_text_atomic(out_path, kneser_ney_arpa([t.split() for t in texts], order, discount))
    return "python-kneser-ney"


def kneser_ney_arpa(sentences: List[List[str]], order: int, discount: float = 0.7) -> str:
    """Interpolated Kneser-Ney with one absolute discount per order; lower orders use
    continuation counts. Returns the ARPA text (log10 probabilities and back-off weights)."""
    counts: List[Counter] = [Counter() for _ in range(order + 1)]
    for words in sentences:
        seq = [BOS] + words + [EOS]
        for n in range(1, order + 1):
            for i in range(max(0, 1 if n == 1 else 0), len(seq) - n + 1):
                gram = tuple(seq[i : i + n])
                if n == 1 and gram == (BOS,):
                    continue
                counts[n][gram] += 1
    # continuation counts for every order below the highest
    cont: List[Counter] = [Counter() for _ in range(order + 1)]
    for n in range(2, order + 1):
        for gram in counts[n]:
            cont[n - 1][gram[1:]] += 1
    vocab = sorted({w for s in sentences for w in s} | {EOS})
    prob: Dict[Tuple[str, ...], float] = {}
    bow: Dict[Tuple[str, ...], float] = {}

    def table(n):
        if n == order:
            return counts[n]
        # lower orders: continuation counts, except n-grams that start the sentence (no left context)
        t = Counter(cont[n])
        for gram, c in counts[n].items():
            if gram[0] == BOS:
                t[gram] = c
        return t

    # unigrams: continuation counts, interpolated with a uniform distribution
    uni = table(1)
    total = sum(uni.values())
    n_types = len([w for w in uni if uni[w] > 0])
    for w in vocab:
        c = uni.get((w,), 0)
        prob[(w,)] = max(c - discount, 0) / total + (discount * n_types / total) / len(vocab)
    prob[(BOS,)] = 0.0  # never predicted
    for n in range(2, order + 1):
        t = table(n)
        by_ctx: Dict[Tuple[str, ...], List[Tuple[str, int]]] = defaultdict(list)
        for gram, c in t.items():
            by_ctx[gram[:-1]].append((gram[-1], c))
        for ctx, items in by_ctx.items():
            tot = sum(c for _, c in items)
            gamma = discount * len(items) / tot
            bow[ctx] = gamma
            for w, c in items:
                lower = prob.get(ctx[1:] + (w,)) or _backoff_prob(prob, bow, ctx[1:] + (w,))
                prob[ctx + (w,)] = max(c - discount, 0) / tot + gamma * lower
    lines = ["", "\\data\\"]
    grams_by_n = [[g for g in prob if len(g) == n] for n in range(1, order + 1)]
    for n, grams in enumerate(grams_by_n, 1):
        lines.append(f"ngram {n}={len(grams)}")
    for n, grams in enumerate(grams_by_n, 1):
        lines += ["", f"\\{n}-grams:"]
        for g in sorted(grams):
            p = prob[g]
            lp = -99.0 if p <= 0 else math.log10(p)
            entry = f"{lp:.6f}\t{' '.join(g)}"
            if n < order and g in bow:
                entry += f"\t{math.log10(bow[g]):.6f}"
            elif n < order:
                entry += "\t0.000000"
            lines.append(entry)
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def _backoff_prob(prob, bow, gram) -> float:
    if gram in prob:
        return prob[gram]
    if len(gram) == 1:
        return 1e-10
    return bow.get(gram[:-1], 1.0) * _backoff_prob(prob, bow, gram[1:])


def perplexity(arpa_path, texts: Iterable[str]) -> float:
    import kenlm

    model = kenlm.Model(str(arpa_path))
    log10, n = 0.0, 0
    for t in texts:
        log10 += model.score(t, bos=True, eos=True)
        n += len(t.split()) + 1
    return 10 ** (-log10 / max(n, 1))

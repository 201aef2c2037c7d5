"""n-gram language models in ARPA format (G.fst from one: ``asr_kd.kaldi.fst.arpa_to_fst``).

``train_arpa`` uses kenlm's ``lmplz`` when it is found (``$LMPLZ``, next to the running Python,
as ``./setup.sh`` installs it, or on PATH); without it, a
pure-Python interpolated Kneser-Ney estimator writes the ARPA, and the log says so. Perplexity
comes from the kenlm Python module.
"""

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

from asr_kd.utils.io import atomic_path, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


def lmplz_path():
    beside_python = Path(sys.executable).parent / "lmplz"
    if os.environ.get("LMPLZ"):
        return os.environ["LMPLZ"]
    return str(beside_python) if os.access(beside_python, os.X_OK) else shutil.which("lmplz")


def train_arpa(
    texts: Sequence[str],
    order: int,
    out_path,
    *,
    discount: float = 0.7,
    estimator: str = "auto",
    prune: Sequence[int] = (),
) -> str:
    """Write an ARPA LM of ``order`` over ``texts``; returns the estimator used.

    ``estimator``: ``auto`` (lmplz when found, else the fallback, logged), ``lmplz`` (required) or
    ``python`` (the fallback). ``prune``: lmplz's count thresholds per order (``0 1 1`` drops
    bigrams and trigrams seen once); it needs lmplz."""
    out_path = Path(out_path)
    if order < 2:
        raise ValueError("n-gram order must be at least 2 (kenlm reads bigrams and up)")
    if estimator not in ("auto", "lmplz", "python"):
        raise ValueError(f"estimator must be auto, lmplz or python, not {estimator!r}")
    lmplz = lmplz_path() if estimator != "python" else None
    if estimator == "lmplz" and not lmplz:
        raise FileNotFoundError("lmplz not found: run ./setup.sh (tools/install_lmplz.sh) or set $LMPLZ")
    if prune and not lmplz:
        raise FileNotFoundError("a pruned LM needs lmplz: run ./setup.sh (tools/install_lmplz.sh) or set $LMPLZ")
    if lmplz:
        prune_args = ["--prune", *map(str, prune)] if prune else []
        with atomic_path(out_path) as tmp:
            with open(tmp, "w") as f:
                subprocess.run(
                    [
                        lmplz,
                        "-o",
                        str(order),
                        "--discount_fallback",
                        "-S",
                        "10%",
                        "-T",
                        str(out_path.parent),
                        *prune_args,
                    ],
                    input="\n".join(texts) + "\n",
                    text=True,
                    stdout=f,
                    stderr=subprocess.PIPE,
                    check=True,
                )
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


@dataclass
class LmConfig:
    order: int = 3
    prune: Tuple[int, ...] = ()  # lmplz count thresholds per order, e.g. (0, 1, 1)


def ngram_counts(arpa_path) -> Dict[int, int]:
    """{order: number of n-grams} from an ARPA header."""
    counts = {}
    with open(arpa_path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("ngram "):
                n, c = line[6:].split("=")
                counts[int(n)] = int(c)
            elif line.startswith("\\1-grams"):
                break
    return counts


def train_lm(text_path, out_path, cfg: LmConfig, *, eval_texts: Dict[str, Sequence[str]]) -> Dict:
    """An n-gram LM on a text file (one sentence a line) and its report (``out_path`` + ``.json``):
    n-gram counts, vocabulary, and per evaluation split the perplexity and OOV rate."""
    texts = [line.strip() for line in open(text_path, encoding="utf-8") if line.strip()]
    t0 = time.time()
    estimator = train_arpa(texts, cfg.order, out_path, prune=cfg.prune)
    vocab = {w for t in texts for w in t.split()}
    report = {
        "text": str(text_path),
        "sentences": len(texts),
        "words": sum(len(t.split()) for t in texts),
        "vocabulary": len(vocab),
        "order": cfg.order,
        "prune": list(cfg.prune),
        "estimator": estimator,
        "ngrams": {str(n): c for n, c in ngram_counts(out_path).items()},
        "seconds": round(time.time() - t0, 1),
        "splits": {},
    }
    for split, ts in eval_texts.items():
        tokens = [w for t in ts for w in t.split()]
        oov = sum(w not in vocab for w in tokens)
        report["splits"][split] = {
            "sentences": len(ts),
            "words": len(tokens),
            "oov_tokens": oov,
            "oov_rate": oov / max(1, len(tokens)),
            "perplexity": perplexity(out_path, ts),
        }
    write_json_atomic(Path(str(out_path) + ".json"), report)
    log.info("LM %s: %s", out_path, json.dumps(report))
    return report


def perplexity(arpa_path, texts: Iterable[str]) -> float:
    import kenlm

    model = kenlm.Model(str(arpa_path))
    log10, n = 0.0, 0
    for t in texts:
        log10 += model.score(t, bos=True, eos=True)
        n += len(t.split()) + 1
    return 10 ** (-log10 / max(n, 1))

"""Lattices: decode once, then tune and score on the lattices (Kaldi's ``decode_dir`` + ``score.sh``).

A lattice here is kaldi-decoder's raw lattice (``LatticeSimpleDecoder.get_raw_lattice``): an FST
over transition-ids (input) and words (output) whose ``LatticeWeight`` keeps the graph cost and
the acoustic cost apart. Decoding runs once at a fixed acoustic scale (``decode_lattices``); the
stored acoustic costs are unscaled (-log-likelihood), as Kaldi stores them, so any LM weight L
(acoustic scale 1/L) and word insertion penalty can be applied afterwards (``best_path``: Kaldi's
lattice-scale --inv-acoustic-scale=L | lattice-add-penalty | lattice-best-path).

On disk (``write_lattices`` / ``read_lattices``): Kaldi's text archive of ``Lattice`` objects, as
``lattice-copy ark:... ark,t:...`` writes it (optionally gzipped)::

    utt-id
    src dst transition-id word graph-cost,acoustic-cost
    final-state graph-cost,acoustic-cost
    <empty line>

The oracle (``oracle_errors``) is the fewest word errors of any lattice path against a reference
(Kaldi's lattice-oracle), found by dynamic programming over the lattice in topological order.
"""
import gzip
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from asr_kd.kaldi import kaldi_decoder, kaldifst
from asr_kd.utils.io import atomic_path
from asr_kd.utils.numerics import require_finite_utterances


def decode_lattices(graph, loglikes: Dict[str, np.ndarray], acoustic_scale: float, beam: float = 13.0,
                    lattice_beam: float = 6.0) -> Dict[str, "kaldifst.Lattice"]:
    """Raw lattices of every utterance: ``loglikes`` are per transition-id column (``ll[:, id2pdf[1:]]``),
    unscaled; the search uses ``acoustic_scale`` and the lattices keep unscaled acoustic costs."""
    require_finite_utterances(loglikes)
    decoder = kaldi_decoder.LatticeSimpleDecoder(graph, kaldi_decoder.LatticeSimpleDecoderConfig(
        beam=beam, lattice_beam=lattice_beam, determinize_lattice=False))
    unscale = kaldifst.lattice_scale(1.0, 1.0 / acoustic_scale)
    out = {}
    for utt, ll in loglikes.items():
        decoder.decode(kaldi_decoder.DecodableCtc(np.ascontiguousarray(ll * acoustic_scale, dtype=np.float32)))
        ok, lat = decoder.get_raw_lattice(use_final_probs=True)
        if not ok or lat.num_states == 0:
            ok, lat = decoder.get_raw_lattice(use_final_probs=False)  # no final state reached: keep the partial lattice
        kaldifst.scale_lattice(unscale, lat)
        out[utt] = lat
    return out


Arc = Tuple[int, int, int, int, float, float]  # source, destination, transition id, word, graph cost, acoustic cost


def _parse_lines(lines: Sequence[str]) -> Tuple[List[Arc], List[Tuple[int, float, float]]]:
    """(arcs, finals (state, graph cost, acoustic cost)) of lattice text lines; ValueError names a
    bad line."""
    arcs, finals = [], []
    for line in lines:
        f = line.split()
        try:
            if len(f) == 5:
                g, a = (float(x) for x in f[4].split(",")[:2])
                arcs.append((int(f[0]), int(f[1]), int(f[2]), int(f[3]), g, a))
            elif len(f) == 2:
                g, a = (float(x) for x in f[1].split(",")[:2])
                finals.append((int(f[0]), g, a))
            elif len(f) == 1:
                finals.append((int(f[0]), 0.0, 0.0))
            elif f:
                raise ValueError(f"{len(f)} fields")
        except ValueError as e:
            raise ValueError(f"bad line {line!r} ({e})") from None
    return arcs, finals


def _parse(lat) -> Tuple[List[Arc], List[Tuple[int, float, float]]]:
    """A lattice's arcs and finals, read from its text form (the bindings give no arc iterator over lattices)."""
    return _parse_lines(lat.to_str().split("\n"))


def _build(num_states: int, start: int, arcs: Sequence[Arc], finals: Sequence[Tuple[int, float, float]]):
    lat = kaldifst.Lattice()
    for _ in range(num_states):
        lat.add_state()
    if num_states:
        lat.start = start
    for s, d, i, o, g, a in arcs:
        lat.add_arc(s, kaldifst.LatticeArc(i, o, kaldifst.LatticeWeight(g, a), d))
    for s, g, a in finals:
        lat.set_final(s, kaldifst.LatticeWeight(g, a))
    return lat


def lattice_text(utt: str, lat) -> str:
    """One archive entry: the id, Kaldi's text lines of the lattice (start state first), an empty line."""
    lines = [" ".join(line.split()) for line in lat.to_str().split("\n") if line.strip()]
    return "\n".join([utt, *lines]) + "\n\n"


def _from_text(utt: str, lines: List[str], where: str):
    try:
        arcs, finals = _parse_lines(lines)
    except ValueError as e:
        raise ValueError(f"{where}: lattice {utt}: {e}") from None
    states = max([max(a[0], a[1]) for a in arcs] + [f[0] for f in finals], default=-1) + 1
    return _build(states, int(lines[0].split()[0]) if states else 0, arcs, finals)  # OpenFst prints the start first


def write_lattices(path, lattices: Dict[str, "kaldifst.Lattice"]) -> Path:
    """A Kaldi text archive (``.gz``: gzipped), written atomically, utterances in sorted order."""
    path = Path(path)
    with atomic_path(path) as tmp:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(tmp, "wt", encoding="utf-8") as f:
            for utt in sorted(lattices):
                f.write(lattice_text(utt, lattices[utt]))
    return path


def read_lattices(path) -> Dict[str, "kaldifst.Lattice"]:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    out, utt, lines = {}, None, []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                if utt is not None:
                    out[utt] = _from_text(utt, lines, str(path))
                utt, lines = None, []
            elif utt is None:
                utt = line
            else:
                lines.append(line)
    if utt is not None:
        out[utt] = _from_text(utt, lines, str(path))
    return out


def with_penalty(lat, penalty: float):
    """A copy of ``lat`` whose word arcs cost ``penalty`` more in the graph part (lattice-add-penalty)."""
    arcs, finals = _parse(lat)
    arcs = [(s, d, i, o, g + (penalty if o else 0.0), a) for s, d, i, o, g, a in arcs]
    return _build(lat.num_states, lat.start, arcs, finals)


def _best_arcs(lat, lmwt: float, penalty: float) -> List[Arc]:
    """The arcs of the best path, in order, at LM weight ``lmwt`` (acoustic scale 1/lmwt) and word
    insertion ``penalty`` (Kaldi's lattice-scale | lattice-add-penalty | lattice-best-path)."""
    lat = with_penalty(lat, penalty) if penalty else lat.copy()
    kaldifst.scale_lattice(kaldifst.lattice_scale(1.0, 1.0 / lmwt), lat)
    path = kaldifst.shortest_path(lat)
    if path.num_states == 0:
        return []
    leaving = {a[0]: a for a in _parse(path)[0]}  # a linear FST: one arc out of each state but the last
    out, s = [], path.start
    while s in leaving:
        out.append(leaving[s])
        s = leaving[s][1]
    return out


def best_path(lat, lmwt: float, penalty: float = 0.0) -> Tuple[List[int], List[int]]:
    """(word ids, transition ids) of the best path at LM weight ``lmwt`` and ``penalty``."""
    arcs = _best_arcs(lat, lmwt, penalty)
    return [a[3] for a in arcs if a[3]], [a[2] for a in arcs if a[2]]


def _topological_order(num_states: int, arcs: Sequence[Tuple]) -> List[int]:
    indegree = np.zeros(num_states, np.int64)
    succ: List[List[int]] = [[] for _ in range(num_states)]
    for k, (s, d, *_rest) in enumerate(arcs):
        indegree[d] += 1
        succ[s].append(k)
    order, stack = [], [int(s) for s in np.flatnonzero(indegree == 0)]
    while stack:
        s = stack.pop()
        order.append(s)
        for k in succ[s]:
            d = arcs[k][1]
            indegree[d] -= 1
            if indegree[d] == 0:
                stack.append(d)
    if len(order) != num_states:
        raise ValueError("the lattice has a cycle")
    return order


def oracle_errors(lat, reference: Sequence[int]) -> int:
    """The fewest word errors (substitutions + insertions + deletions) of any complete lattice path
    against ``reference`` (word ids): Kaldi's lattice-oracle."""
    n = lat.num_states
    if n == 0:
        return len(reference)
    arcs, finals = _parse(lat)
    out: List[List[Tuple[int, int]]] = [[] for _ in range(n)]
    for s, d, _, o, _, _ in arcs:
        out[s].append((d, o))
    ref = np.asarray(reference, np.int64)
    m = len(ref)
    inf = np.iinfo(np.int64).max // 4
    cost = np.full((n, m + 1), inf, np.int64)
    cost[lat.start, 0] = 0
    for s in _topological_order(n, arcs):
        row = cost[s]
        for j in range(m):  # deletions of reference words at this state
            row[j + 1] = min(row[j + 1], row[j] + 1)
        for d, o in out[s]:
            if o == 0:
                np.minimum(cost[d], row, out=cost[d])
            else:
                shifted = np.full(m + 1, inf, np.int64)
                shifted[1:] = row[:-1] + (ref != o)  # substitution or match
                np.minimum(cost[d], np.minimum(shifted, row + 1), out=cost[d])  # or an insertion
    return int(min(cost[s, m] for s, _, _ in finals)) if finals else m


def _path_words(lat, lmwt: float, penalty: float) -> List[Tuple[int, int]]:
    """(word, emission frame) along the best path: the frame is the number of frames before the arc."""
    out, frame = [], 0
    for _, _, i, o, _, _ in _best_arcs(lat, lmwt, penalty):
        if o:
            out.append((o, frame))
        frame += i != 0
    return out


def arc_posteriors(lat, lmwt: float, penalty: float = 0.0):
    """Forward-backward over the lattice at LM weight ``lmwt`` (acoustic scale 1/lmwt) and
    ``penalty``: (arcs, posterior of each arc, frame of each state). An arc's posterior is the
    probability mass of the complete paths through it."""
    arcs, finals = _parse(lat)
    n = lat.num_states
    cost = np.array([g + (penalty if o else 0.0) + a / lmwt for _, _, _, o, g, a in arcs])
    order = _topological_order(n, arcs)
    out: List[List[int]] = [[] for _ in range(n)]
    for k, arc in enumerate(arcs):
        out[arc[0]].append(k)
    alpha = np.full(n, -np.inf)
    alpha[lat.start] = 0.0
    frame = np.zeros(n, np.int64)
    for s in order:
        for k in out[s]:
            d = arcs[k][1]
            alpha[d] = np.logaddexp(alpha[d], alpha[s] - cost[k])
            frame[d] = frame[s] + (arcs[k][2] != 0)
    beta = np.full(n, -np.inf)
    for s, g, a in finals:
        beta[s] = -(g + a / lmwt)
    for s in reversed(order):
        for k in out[s]:
            beta[s] = np.logaddexp(beta[s], beta[arcs[k][1]] - cost[k])
    total = beta[lat.start]
    post = np.array([np.exp(alpha[s] - cost[k] + beta[d] - total) for k, (s, d, *_rest) in enumerate(arcs)])
    return arcs, np.clip(post, 0.0, 1.0), frame


def word_confidences(lat, lmwt: float, penalty: float = 0.0) -> List[Tuple[int, int, float]]:
    """(word, emission frame, confidence) for each word of the best path. The confidence is the
    posterior mass of lattice arcs emitting the same word within the word's window (halfway to the
    neighbouring words' emissions): the probability, under the lattice at this scale, that the
    word is there."""
    words = _path_words(lat, lmwt, penalty)
    if not words:
        return []
    arcs, post, frame = arc_posteriors(lat, lmwt, penalty)
    emitted = [(arcs[k][3], int(frame[arcs[k][0]]), post[k]) for k in range(len(arcs)) if arcs[k][3]]
    out = []
    for j, (w, t) in enumerate(words):
        lo = (words[j - 1][1] + t) / 2 if j else -np.inf
        hi = (t + words[j + 1][1]) / 2 if j + 1 < len(words) else np.inf
        mass = sum(p for o, f, p in emitted if o == w and lo <= f < hi or (o == w and f == t))
        out.append((w, t, float(min(1.0, mass))))
    return out


def normalised_cross_entropy(confidences: Sequence[float], correct: Sequence[bool]) -> float:
    """NIST's normalised cross entropy of word confidences: 1 - H(correctness | confidence) /
    H(correctness at the overall rate); > 0 when the confidences carry information, 1 at best."""
    c = np.clip(np.asarray(confidences, np.float64), 1e-6, 1 - 1e-6)
    ok = np.asarray(correct, bool)
    if len(c) == 0 or ok.all() or not ok.any():
        return float("nan")  # undefined without both correct and wrong words
    rate = ok.mean()
    h_max = -(ok.sum() * np.log2(rate) + (~ok).sum() * np.log2(1 - rate))
    h_conf = -(np.log2(c[ok]).sum() + np.log2(1 - c[~ok]).sum())
    return float((h_max - h_conf) / h_max)

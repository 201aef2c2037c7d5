"""Lattices: decode once, then tune, score, rescore and give confidences on the lattices (Kaldi's
``decode_dir`` + ``score.sh`` + ``lattice-oracle`` + ``lattice-to-nbest`` + ``lattice-to-ctm-conf``).

A lattice here is kaldi-decoder's raw lattice (``LatticeSimpleDecoder.get_raw_lattice``): an FST
over transition-ids (input) and words (output) whose ``LatticeWeight`` keeps the graph cost and
the acoustic cost apart. Decoding runs once at a fixed acoustic scale (``decode_lattices``); the
stored acoustic costs are unscaled (-log-likelihood), as Kaldi stores them, so any LM weight L
(acoustic scale 1/L) and word insertion penalty p can be applied afterwards: a path costs
``graph + acoustic / L + p * words`` (Kaldi's lattice-scale --inv-acoustic-scale=L |
lattice-add-penalty | lattice-best-path).

On disk (``write_lattices`` / ``LatticeSet.read``): Kaldi's text archive of ``Lattice`` objects, as
``lattice-copy ark:... ark,t:...`` writes it (optionally gzipped)::

    utt-id
    src dst transition-id word graph-cost,acoustic-cost
    final-state graph-cost,acoustic-cost
    <empty line>

In memory (``LatticeSet``) the lattices of a whole split are numpy arrays, their states numbered
together. Every search is dynamic programming over the states in topological levels (a state's
level is the longest arc count from a state without incoming arcs), one vectorised step per level
for all utterances at once; the best paths of a whole grid of (LM weight, penalty) points are one
pass. Searches:

- ``best_paths``: the best path of each utterance at each grid point (Viterbi);
- ``oracle_errors``: the fewest word errors of any path against a reference (lattice-oracle);
- ``arc_posteriors`` / ``word_confidences``: forward-backward arc posteriors, and the posterior
  mass of the best path's words (the sixth CTM column);
- ``nbest``: the n best distinct word sequences (the lattice projected on words, determinised
  in the tropical semiring and searched with OpenFst's n-shortest paths, through kaldifst).
"""

import gzip
import math
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from asr_kd.kaldi import kaldi_decoder, kaldifst
from asr_kd.utils.io import atomic_path
from asr_kd.utils.numerics import require_finite_utterances

Point = Tuple[float, float]  # (LM weight, word insertion penalty)
_SPACES = re.compile(r"[ \t]+")


LATTICE_BEAM = 6.0  # how far below the best path lattices keep paths (Kaldi's --lattice-beam; k2's output beam)
SEARCH_CHECK_MIN_ACTIVE = 200  # LatticeFasterDecoder's default min-active, which the 1-best check keeps
SEARCH_RETRIES = 3  # wider lattice searches (beam x 2, x 4, x 8) of an utterance the check finds wanting


def _path_cost(lat) -> float:
    """Total cost (graph + acoustic, as searched) of a linear best-path lattice."""
    total = 0.0
    for line in lat.to_str().split("\n"):
        f = line.split()
        if len(f) in (2, 5):
            g, a = f[-1].split(",")[:2]
            total += float(g) + float(a)
    return total


def decode_lattices(
    graph,
    loglikes: Dict[str, np.ndarray],
    acoustic_scale: float,
    *,
    beam: float = 13.0,
    lattice_beam: float = LATTICE_BEAM,
    word_penalty: float = 0.0,
    max_active: int = 7000,
    stats: Optional[Dict[str, int]] = None,
) -> Dict[str, str]:
    """Raw lattices of every utterance, as Kaldi text (``{utt: text}``): ``loglikes`` are per
    transition-id column (``ll[:, id2pdf[1:]]``), unscaled; the search uses ``acoustic_scale`` and
    ``word_penalty`` (added to every word arc of the graph, so the texts' graph costs include it)
    and the lattices keep unscaled acoustic costs. ``graph``: an FST or its path.

    The search is kaldi-decoder's LatticeSimpleDecoder, which has no min-active: on a small graph,
    or on flat posteriors, its beam loses paths that the 1-best LatticeFasterDecoder (which keeps at
    least 200 tokens a frame) finds. So each utterance is also searched 1-best by kaldi-decoder's
    FasterDecoder with the same beam, ``max_active`` and min-active 200; where that path costs less
    than the lattice's best, the utterance's lattice is searched again at twice the beam, up to
    ``SEARCH_RETRIES`` times. A lattice's best path is then never worse than the 1-best search's.
    ``stats`` (when given) counts ``utterances``, ``widened`` (searched again) and ``still_worse``."""
    require_finite_utterances(loglikes)
    if isinstance(graph, (str, Path)):
        from asr_kd.kaldi.fst import read_fst

        graph = read_fst(graph)
    if word_penalty:
        from asr_kd.kaldi.fst import with_word_penalty

        graph = with_word_penalty(graph, word_penalty)

    def lattice_decoder(b: float):
        cfg = kaldi_decoder.LatticeSimpleDecoderConfig(beam=b, lattice_beam=lattice_beam, determinize_lattice=False)
        return kaldi_decoder.LatticeSimpleDecoder(graph, cfg)

    decoders = {0: lattice_decoder(beam)}
    check = kaldi_decoder.FasterDecoder(
        graph,
        kaldi_decoder.FasterDecoderOptions(beam=beam, max_active=max_active, min_active=SEARCH_CHECK_MIN_ACTIVE),
    )
    unscale = kaldifst.lattice_scale(1.0, 1.0 / acoustic_scale)
    stats = stats if stats is not None else {}
    for key in ("utterances", "widened", "still_worse"):
        stats.setdefault(key, 0)
    out = {}
    for utt, ll in loglikes.items():
        decodable = kaldi_decoder.DecodableCtc(np.ascontiguousarray(ll * acoustic_scale, dtype=np.float32))
        check.decode(decodable)
        reached, path = check.get_best_path(use_final_probs=True)
        target = _path_cost(path) if reached and path.num_states else math.inf
        for retry in range(SEARCH_RETRIES + 1):
            if retry not in decoders:
                decoders[retry] = lattice_decoder(beam * 2**retry)
            decoder = decoders[retry]
            decoder.decode(decodable)
            ok, best = decoder.get_best_path(use_final_probs=True)
            cost = _path_cost(best) if ok and best.num_states else math.inf
            if cost <= target + 1e-3 * max(1.0, abs(target)) or retry == SEARCH_RETRIES:
                break
        stats["utterances"] += 1
        stats["widened"] += retry > 0
        stats["still_worse"] += cost > target + 1e-3 * max(1.0, abs(target))
        ok, lat = decoder.get_raw_lattice(use_final_probs=True)
        if not ok or lat.num_states == 0:
            ok, lat = decoder.get_raw_lattice(use_final_probs=False)  # no final state reached: keep the partial lattice
        kaldifst.scale_lattice(unscale, lat)
        out[utt] = _SPACES.sub(" ", lat.to_str()).strip()
    return out


def write_lattices(path, lattices: Dict[str, str]) -> Path:
    """A Kaldi text archive (``.gz``: gzipped) of ``decode_lattices`` texts, written atomically,
    utterances in sorted order."""
    path = Path(path)
    with atomic_path(path) as tmp:
        opener = partial(gzip.open, compresslevel=3) if path.suffix == ".gz" else open
        with opener(tmp, "wt", encoding="utf-8") as f:
            for utt in sorted(lattices):
                f.write(f"{utt}\n{lattices[utt]}\n\n" if lattices[utt] else f"{utt}\n\n")
    return path


def _archive_entries(path: Path) -> Iterator[Tuple[str, List[str]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    utt, lines = None, []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                if utt is not None:
                    yield utt, lines
                utt, lines = None, []
            elif utt is None:
                utt = line
            else:
                lines.append(line)
    if utt is not None:
        yield utt, lines


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """Where runs of equal values begin in sorted ``keys``."""
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


@dataclass
class _Levels:
    """Arcs grouped for level-synchronous passes: ``incoming[L]`` = (arc ids sorted by destination,
    group starts, destinations) of the arcs into level-L states; ``outgoing`` the same by source."""

    incoming: List[Tuple[np.ndarray, np.ndarray, np.ndarray]]
    outgoing: List[Tuple[np.ndarray, np.ndarray, np.ndarray]]
    frame: np.ndarray  # frames consumed before each state


def touched_numbering(utt_of_state: np.ndarray, num_utts: int, touched: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(new number of each state, -1 where not ``touched``; each utterance's first new number, and the
    total): the touched states numbered utterance by utterance, in their old order within each, as a
    ``LatticeSet`` wants its states (what pruning keeps, or a k2 lattice's states with its word chains)."""
    kept = np.flatnonzero(touched)
    kept = kept[np.argsort(utt_of_state[kept], kind="stable")]
    new_id = np.full(len(touched), -1, np.int64)
    new_id[kept] = np.arange(len(kept))
    offset = np.concatenate([[0], np.cumsum(np.bincount(utt_of_state[kept], minlength=num_utts))])
    return new_id, offset.astype(np.int64)


class LatticeSet:
    """The lattices of many utterances as arrays. States of utterance k are numbered from
    ``offset[k]``; arcs (``src``, ``dst``, ``tid``, ``word``, ``graph``, ``acoustic``), final states
    (``final_state``, ``final_graph``, ``final_acoustic``)."""

    def __init__(
        self,
        utts: List[str],
        offset: np.ndarray,
        start: np.ndarray,
        *,
        arcs: Dict[str, np.ndarray],
        finals: Dict[str, np.ndarray],
    ):
        self.utts, self.offset, self.start = utts, offset, start
        self.src, self.dst, self.tid, self.word = arcs["src"], arcs["dst"], arcs["tid"], arcs["word"]
        self.graph, self.acoustic = arcs["graph"], arcs["acoustic"]
        self.final_state, self.final_graph, self.final_acoustic = finals["state"], finals["graph"], finals["acoustic"]
        self.num_states = int(offset[-1])
        self.state_utt = np.repeat(np.arange(len(utts)), np.diff(offset))
        self._levels: Optional[_Levels] = None
        self._bounds: Optional[Tuple[np.ndarray, np.ndarray]] = None

    # -- building ---------------------------------------------------------------------------
    def texts(self, word_penalty: float = 0.0) -> Dict[str, str]:
        """Each utterance's lattice as Kaldi text (``write_lattices``' format), its start state's
        arcs first; graph costs with ``word_penalty`` on every word arc (the archive holds the costs
        as decoded, ``from_texts`` takes the penalty off again)."""
        utt_of_arc = self.state_utt[self.src] if len(self.src) else np.zeros(0, np.int64)
        first = self.src != self.start[utt_of_arc]
        order = np.lexsort((self.src, first, utt_of_arc))
        bounds = np.searchsorted(utt_of_arc[order], np.arange(len(self.utts) + 1))
        graph = self.graph + word_penalty * (self.word != 0)
        rows = zip(
            (self.src - self.offset[utt_of_arc])[order].tolist(),
            (self.dst - self.offset[utt_of_arc])[order].tolist(),
            self.tid[order].tolist(),
            self.word[order].tolist(),
            graph[order].tolist(),
            self.acoustic[order].tolist(),
        )
        lines = [f"{s} {d} {t} {w} {g:.7g},{a:.7g}" for s, d, t, w, g, a in rows]
        final_utt = self.state_utt[self.final_state] if len(self.final_state) else np.zeros(0, np.int64)
        finals: Dict[int, List[str]] = {}
        for k, s, g, a in zip(final_utt.tolist(), self.final_state.tolist(), self.final_graph, self.final_acoustic):
            finals.setdefault(k, []).append(f"{s - int(self.offset[k])} {g:.7g},{a:.7g}")
        return {u: "\n".join(lines[bounds[k] : bounds[k + 1]] + finals.get(k, [])) for k, u in enumerate(self.utts)}

    @classmethod
    def from_texts(
        cls, items: Iterable[Tuple[str, Sequence[str]]], where: str = "lattices", word_penalty: float = 0.0
    ) -> "LatticeSet":
        """From (utt, Kaldi text lines) pairs; ValueError names the utterance and line.
        ``word_penalty``: the texts' graph costs include this insertion penalty on every word arc
        (lattices decoded with it); it is taken off (lattice-add-penalty with its negative)."""
        lats = cls._parse(items, where)
        if word_penalty:
            lats.graph[lats.word != 0] -= word_penalty
        return lats

    @classmethod
    def _parse(cls, items: Iterable[Tuple[str, Sequence[str]]], where: str) -> "LatticeSet":
        utts, offset, start = [], [0], []
        arcs: List[Tuple] = []
        finals: List[Tuple] = []
        for utt, lines in items:
            if isinstance(lines, str):
                lines = [x for x in lines.split("\n") if x.strip()]
            base, top, first = offset[-1], -1, None
            for line in lines:
                f = line.split()
                try:
                    if len(f) == 5:
                        g, a = f[4].split(",")[:2]
                        s, d = int(f[0]), int(f[1])
                        arcs.append((base + s, base + d, int(f[2]), int(f[3]), float(g), float(a)))
                        top = max(top, s, d)
                    elif len(f) in (1, 2):
                        g, a = f[1].split(",")[:2] if len(f) == 2 else ("0", "0")
                        s = int(f[0])
                        finals.append((base + s, float(g), float(a)))
                        top = max(top, s)
                    elif f:
                        raise ValueError(f"{len(f)} fields")
                    if first is None and f:
                        first = int(f[0])  # OpenFst prints the start state first
                except ValueError as e:
                    raise ValueError(f"{where}: lattice {utt}: bad line {line!r} ({e})") from None
            utts.append(utt)
            start.append(base + first if first is not None else -1)
            offset.append(base + top + 1)
        a = np.array(arcs, dtype=np.float64).reshape(-1, 6)
        return cls._from_rows(utts, offset, start, a=a, fi=np.array(finals, dtype=np.float64).reshape(-1, 3))

    @classmethod
    def _from_rows(cls, utts, offset, start, *, a: np.ndarray, fi: np.ndarray) -> "LatticeSet":
        """From arc rows (src, dst, tid, word, graph, acoustic) and final rows (state, graph,
        acoustic), states already numbered together."""
        fi = fi[np.argsort(fi[:, 0], kind="stable")]
        return cls(
            utts,
            np.asarray(offset, np.int64),
            np.asarray(start, np.int64),
            arcs={
                "src": a[:, 0].astype(np.int64),
                "dst": a[:, 1].astype(np.int64),
                "tid": a[:, 2].astype(np.int64),
                "word": a[:, 3].astype(np.int64),
                "graph": a[:, 4],
                "acoustic": a[:, 5],
            },
            finals={"state": fi[:, 0].astype(np.int64), "graph": fi[:, 1], "acoustic": fi[:, 2]},
        )

    @classmethod
    def concatenate(cls, sets: Sequence["LatticeSet"]) -> "LatticeSet":
        """One set holding the utterances of ``sets`` in order (states renumbered)."""
        shifts = np.cumsum([0] + [x.num_states for x in sets])
        offset = np.concatenate([[0]] + [x.offset[1:] + k for x, k in zip(sets, shifts)])

        def cat(name, shifted=False):
            return np.concatenate([getattr(x, name) + (k if shifted else 0) for x, k in zip(sets, shifts)])

        start = np.concatenate([np.where(x.start >= 0, x.start + k, -1) for x, k in zip(sets, shifts)])
        return cls(
            [u for x in sets for u in x.utts],
            offset.astype(np.int64),
            start.astype(np.int64),
            arcs={
                "src": cat("src", True),
                "dst": cat("dst", True),
                "tid": cat("tid"),
                "word": cat("word"),
                "graph": cat("graph"),
                "acoustic": cat("acoustic"),
            },
            finals={"state": cat("final_state", True), "graph": cat("final_graph"), "acoustic": cat("final_acoustic")},
        )

    @classmethod
    def read(cls, path, word_penalty: float = 0.0) -> "LatticeSet":
        """A Kaldi text archive (``.gz``: gzipped); ``word_penalty`` as ``from_texts`` (a decode
        folder's ``lattice_options.json`` gives it per split)."""
        path = Path(path)
        return cls.from_texts(_archive_entries(path), str(path), word_penalty)

    def subset(self, utts: Sequence[str]) -> "LatticeSet":
        """These utterances only (arrays copied), e.g. one utterance for an n-best list."""
        index = {u: k for k, u in enumerate(self.utts)}
        if self._bounds is None:  # arcs and finals are stored utterance by utterance: blocks found once
            au, fu = self.state_utt[self.src], self.state_utt[self.final_state]
            if len(au) > 1 and (au[1:] < au[:-1]).any():
                order = np.argsort(au, kind="stable")
                self.src, self.dst, self.tid, self.word = (
                    self.src[order],
                    self.dst[order],
                    self.tid[order],
                    self.word[order],
                )
                self.graph, self.acoustic = self.graph[order], self.acoustic[order]
                self._levels, au = None, au[order]
            u = np.arange(len(self.utts) + 1)
            self._bounds = (np.searchsorted(au, u), np.searchsorted(fu, u))
        ab, fb = self._bounds
        offset, start, arcs, finals = [0], [], [], []
        for u in utts:
            k = index[u]
            shift = offset[-1] - self.offset[k]
            a, f = slice(ab[k], ab[k + 1]), slice(fb[k], fb[k + 1])
            arcs.append(
                (self.src[a] + shift, self.dst[a] + shift, self.tid[a], self.word[a], self.graph[a], self.acoustic[a])
            )
            finals.append((self.final_state[f] + shift, self.final_graph[f], self.final_acoustic[f]))
            start.append(self.start[k] + shift if self.start[k] >= 0 else -1)
            offset.append(offset[-1] + self.offset[k + 1] - self.offset[k])
        cat = [np.concatenate(x) for x in zip(*arcs)]
        fin = [np.concatenate(x) for x in zip(*finals)]
        return LatticeSet(
            list(utts),
            np.asarray(offset, np.int64),
            np.asarray(start, np.int64),
            arcs=dict(zip(("src", "dst", "tid", "word", "graph", "acoustic"), cat)),
            finals=dict(zip(("state", "graph", "acoustic"), fin)),
        )

    @property
    def levels(self) -> _Levels:
        if self._levels is None:
            self._levels = self._make_levels()
        return self._levels

    def _make_levels(self) -> _Levels:
        n, src, dst = self.num_states, self.src, self.dst
        by_src = np.argsort(src, kind="stable")
        first = np.searchsorted(src[by_src], np.arange(n + 1))
        indegree = np.bincount(dst, minlength=n)
        level = np.full(n, -1, np.int64)
        frontier, depth = np.flatnonzero(indegree == 0), 0
        while frontier.size:  # Kahn's algorithm, one level per step
            level[frontier] = depth
            counts = first[frontier + 1] - first[frontier]
            total = int(counts.sum())
            if not total:
                break
            pos = np.repeat(first[frontier] - np.r_[0, np.cumsum(counts)[:-1]], counts) + np.arange(total)
            reached, times = np.unique(dst[by_src[pos]], return_counts=True)
            indegree[reached] -= times
            frontier = reached[indegree[reached] == 0]
            depth += 1
        if (level < 0).any():
            raise ValueError("a lattice has a cycle")

        def grouped(state_of_arc):
            key = level[state_of_arc]
            order = np.lexsort((state_of_arc, key))
            bounds = np.searchsorted(key[order], np.arange(depth + 2))
            out = []
            for lv in range(depth + 1):
                r = order[bounds[lv] : bounds[lv + 1]]
                starts = _group_starts(state_of_arc[r])
                out.append((r, starts, state_of_arc[r][starts]))
            return out

        incoming, outgoing = grouped(dst), grouped(src)
        frame = np.zeros(n, np.int64)
        for r, starts, states in incoming:
            if len(r):
                first_in = r[starts]
                frame[states] = frame[src[first_in]] + (self.tid[first_in] != 0)
        return _Levels(incoming, outgoing, frame)

    # -- costs ------------------------------------------------------------------------------
    def _arc_costs(self, r: np.ndarray, inv_lmwt: np.ndarray, penalty: np.ndarray) -> np.ndarray:
        return (
            self.graph[r, None] + self.acoustic[r, None] * inv_lmwt[None] + (self.word[r] != 0)[:, None] * penalty[None]
        )

    def _final_costs(self, inv_lmwt: np.ndarray) -> np.ndarray:
        return self.final_graph[:, None] + self.final_acoustic[:, None] * inv_lmwt[None]

    # -- searches ---------------------------------------------------------------------------
    def best_paths(
        self, points: Sequence[Point], alignments: bool = False, max_cells: int = 20_000_000
    ) -> List[Dict[str, Tuple[List[int], List[int], List[int]]]]:
        """For each (LM weight, penalty) point: {utt: (word ids, transition ids, frame of each
        word)} of the best path (transition ids only with ``alignments``; an utterance without a
        complete path: empty). A word's frame is the number of frames before its arc."""
        out: List[Dict] = []
        step = max(1, max_cells // max(1, self.num_states))
        for k in range(0, len(points), step):
            out += self._best_paths(points[k : k + step], alignments)
        return out

    def _best_paths(self, points: Sequence[Point], alignments: bool) -> List[Dict]:
        lv = self.levels
        inv = np.array([1.0 / p[0] for p in points])
        pen = np.array([p[1] for p in points], np.float64)
        G, n = len(points), self.num_states
        alpha = np.full((n, G), np.inf)
        back = np.full((n, G), -1, np.int32 if len(self.src) < 2**31 else np.int64)  # half the memory to fill
        ok = self.start >= 0
        alpha[self.start[ok]] = 0.0
        for r, starts, states in lv.incoming[1:]:
            if not len(r):
                continue
            vals = alpha[self.src[r]] + self._arc_costs(r, inv, pen)
            best = np.minimum.reduceat(vals, starts, axis=0)
            group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(r)]))
            arg = np.where(vals <= best[group], r[:, None], np.iinfo(np.int64).max)
            alpha[states] = best
            back[states] = np.minimum.reduceat(arg, starts, axis=0)
        # the best final state of each utterance
        U = len(self.utts)
        total = alpha[self.final_state] + self._final_costs(inv)
        futt = self.state_utt[self.final_state]
        end = np.full((U, G), -1, np.int64)
        if len(total):
            starts = _group_starts(futt)
            best = np.minimum.reduceat(total, starts, axis=0)
            group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(futt)]))
            arg = np.where((total <= best[group]) & np.isfinite(total), np.arange(len(total))[:, None], len(total))
            pick = np.minimum.reduceat(arg, starts, axis=0)
            has = pick < len(total)
            utt_rows = futt[starts]
            end[utt_rows[:, None].repeat(G, 1)[has], np.nonzero(has)[1]] = self.final_state[pick[has]]
        # back-trace every (utterance, point) at once
        pair_u, pair_g = np.nonzero(end >= 0)
        cur = end[pair_u, pair_g]
        words: List[Tuple[np.ndarray, np.ndarray]] = []
        tids: List[Tuple[np.ndarray, np.ndarray]] = []
        frames: List[Tuple[np.ndarray, np.ndarray]] = []
        frame = lv.frame
        live = np.arange(len(cur))
        while live.size:
            arc = back[cur[live], pair_g[live]]
            moving = arc >= 0
            live, arc = live[moving], arc[moving]
            w = self.word[arc]
            words.append((live[w != 0], w[w != 0]))
            frames.append((live[w != 0], frame[self.src[arc[w != 0]]]))
            if alignments:
                t = self.tid[arc]
                tids.append((live[t != 0], t[t != 0]))
            cur[live] = self.src[arc]
        result: List[Dict] = [{u: ([], [], []) for u in self.utts} for _ in points]

        def collect(parts, slot):
            if not parts:
                return
            who = np.concatenate([p for p, _ in parts])
            what = np.concatenate([x for _, x in parts])
            order = np.argsort(who, kind="stable")
            who, what = who[order], what[order]
            bounds = np.searchsorted(who, np.arange(len(pair_u) + 1))
            for k in range(len(pair_u)):
                seq = what[bounds[k] : bounds[k + 1]][::-1].tolist()
                result[pair_g[k]][self.utts[pair_u[k]]][slot].extend(seq)

        collect(words, 0)
        collect(tids, 1)
        collect(frames, 2)
        return result

    def oracle_errors(self, refs: Dict[str, Sequence[int]]) -> Dict[str, int]:
        """The fewest word errors (substitutions + insertions + deletions) of any complete path of
        each utterance against its reference word ids (Kaldi's lattice-oracle); no complete path:
        the reference length."""
        lv = self.levels
        U = len(self.utts)
        m = np.array([len(refs[u]) for u in self.utts], np.int64)
        M = int(m.max(initial=0))
        ref = np.full((U, max(M, 1)), -7, np.int64)
        for k, u in enumerate(self.utts):
            ref[k, : m[k]] = refs[u]
        big = np.int32(1) << 30  # int32 cells: big plus a reference's length stays below 2**31
        ar = np.arange(M + 1, dtype=np.int32)
        cost = np.full((self.num_states, M + 1), big, np.int32)
        ok = self.start >= 0
        cost[self.start[ok], 0] = 0
        cost[self.start[ok]] = np.minimum.accumulate(cost[self.start[ok]] - ar, axis=1) + ar  # leading deletions
        for r, starts, states in lv.incoming[1:]:
            if not len(r):
                continue
            row = cost[self.src[r]]
            w = self.word[r]
            sub = row[:, :-1] + (ref[self.state_utt[self.src[r]], :M] != w[:, None])
            moved = np.minimum(np.concatenate([np.full((len(r), 1), big), sub], axis=1), row + 1)
            vals = np.where((w != 0)[:, None], moved, row)
            best = np.minimum.reduceat(vals, starts, axis=0)
            cost[states] = np.minimum.accumulate(best - ar, axis=1) + ar  # deletions at the state
        out = {u: int(m[k]) for k, u in enumerate(self.utts)}
        for s in self.final_state:
            k = int(self.state_utt[s])
            out[self.utts[k]] = min(out[self.utts[k]], int(cost[s, m[k]]))
        return out

    def arc_posteriors(self, lmwt: float, penalty: float = 0.0, scale: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
        """Forward-backward at LM weight ``lmwt`` and ``penalty``, every cost times ``scale`` (< 1
        flattens the posteriors): (posterior of each arc, log total of each utterance). An arc's
        posterior is the probability mass of the complete paths through it."""
        lv = self.levels
        inv, pen = np.array([1.0 / lmwt]), np.array([penalty], np.float64)
        n = self.num_states
        alpha = np.full(n, -np.inf)
        ok = self.start >= 0
        alpha[self.start[ok]] = 0.0
        for r, starts, states in lv.incoming[1:]:
            if len(r):
                alpha[states] = np.logaddexp.reduceat(
                    alpha[self.src[r]] - scale * self._arc_costs(r, inv, pen)[:, 0], starts
                )
        beta = np.full(n, -np.inf)
        beta[self.final_state] = -scale * self._final_costs(inv)[:, 0]  # one final weight per state
        for r, starts, states in reversed(lv.outgoing):
            if len(r):
                beta[states] = np.logaddexp(
                    beta[states],
                    np.logaddexp.reduceat(beta[self.dst[r]] - scale * self._arc_costs(r, inv, pen)[:, 0], starts),
                )
        total = np.where(ok, beta[np.maximum(self.start, 0)], -np.inf)
        with np.errstate(invalid="ignore"):
            post = np.exp(
                alpha[self.src]
                - scale * self._arc_costs(np.arange(len(self.src)), inv, pen)[:, 0]
                + beta[self.dst]
                - total[self.state_utt[self.src]]
            )
        return np.clip(np.nan_to_num(post), 0.0, 1.0), total

    def word_confidences(
        self,
        lmwt: float,
        penalty: float = 0.0,
        scale: float = 1.0,
        *,
        paths: Optional[Dict[str, Tuple[List[int], List[int], List[int]]]] = None,
    ) -> Dict[str, List[Tuple[int, int, float]]]:
        """{utt: [(word, emission frame, confidence)]} along each best path. The confidence is the
        posterior mass of the lattice's arcs emitting the same word within the word's window
        (halfway to the neighbouring words' emissions): the probability, under the lattice at this
        scale, that the word is there. ``paths``: ``best_paths`` at this point, when already known."""
        if paths is None:
            paths = self.best_paths([(lmwt, penalty)])[0]
        post, _ = self.arc_posteriors(lmwt, penalty, scale)
        frame = self.levels.frame
        word_arcs = np.flatnonzero(self.word != 0)
        by_utt = self.state_utt[self.src[word_arcs]]
        order = np.argsort(by_utt, kind="stable")
        word_arcs = word_arcs[order]
        bounds = np.searchsorted(by_utt[order], np.arange(len(self.utts) + 1))
        out = {}
        for k, u in enumerate(self.utts):
            hyp = list(zip(paths[u][0], paths[u][2]))
            arcs = word_arcs[bounds[k] : bounds[k + 1]]
            w, f, p = self.word[arcs], frame[self.src[arcs]], post[arcs]
            conf = []
            for j, (word, t) in enumerate(hyp):
                lo = (hyp[j - 1][1] + t) / 2 if j else -math.inf
                hi = (t + hyp[j + 1][1]) / 2 if j + 1 < len(hyp) else math.inf
                sel = (w == word) & (((f >= lo) & (f < hi)) | (f == t))
                conf.append((word, t, float(min(1.0, p[sel].sum()))))
            out[u] = conf
        return out

    def path_slack(self, lmwt: float, penalty: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
        """(arc slack, final slack): how much more than its utterance's best path the best complete
        path through each arc (final state) costs at this point; inf where none is complete."""
        lv = self.levels
        inv, pen = np.array([1.0 / lmwt]), np.array([penalty], np.float64)
        n = self.num_states
        alpha = np.full(n, np.inf)
        ok = self.start >= 0
        alpha[self.start[ok]] = 0.0
        for r, starts, states in lv.incoming[1:]:
            if len(r):
                alpha[states] = np.minimum.reduceat(alpha[self.src[r]] + self._arc_costs(r, inv, pen)[:, 0], starts)
        final = self._final_costs(inv)[:, 0]
        beta = np.full(n, np.inf)
        beta[self.final_state] = final
        for r, starts, states in reversed(lv.outgoing):
            if len(r):
                beta[states] = np.minimum(
                    beta[states], np.minimum.reduceat(beta[self.dst[r]] + self._arc_costs(r, inv, pen)[:, 0], starts)
                )
        best = np.where(ok, beta[np.maximum(self.start, 0)], np.inf)
        cost = self._arc_costs(np.arange(len(self.src)), inv, pen)[:, 0]
        with np.errstate(invalid="ignore"):
            arc = alpha[self.src] + cost + beta[self.dst] - best[self.state_utt[self.src]]
            fin = alpha[self.final_state] + final - best[self.state_utt[self.final_state]]
        return np.nan_to_num(arc, nan=np.inf), np.nan_to_num(fin, nan=np.inf)

    def pruned(self, lmwt: float, penalty: float, beam: float) -> "LatticeSet":
        """Only the arcs and final states on some complete path within ``beam`` of its utterance's best
        path at (``lmwt``, ``penalty``) (Kaldi's lattice pruning: forward-backward with a lattice
        beam), and only the states they touch (renumbered in order, each utterance's start kept): the
        arrays every later pass allocates per state (oracle, posteriors) shrink with the arcs."""
        arc, fin = self.path_slack(lmwt, penalty)
        keep, keep_final = arc <= beam, fin <= beam
        touched = np.zeros(self.num_states, bool)
        touched[self.start[self.start >= 0]] = True
        touched[self.src[keep]] = touched[self.dst[keep]] = True
        touched[self.final_state[keep_final]] = True
        new_id, offset = touched_numbering(self.state_utt, len(self.utts), touched)
        start = np.full(len(self.utts), -1, np.int64)
        start[self.start >= 0] = new_id[self.start[self.start >= 0]]
        return LatticeSet(
            self.utts,
            offset,
            start,
            arcs={
                "src": new_id[self.src[keep]],
                "dst": new_id[self.dst[keep]],
                "tid": self.tid[keep],
                "word": self.word[keep],
                "graph": self.graph[keep],
                "acoustic": self.acoustic[keep],
            },
            finals={
                "state": new_id[self.final_state[keep_final]],
                "graph": self.final_graph[keep_final],
                "acoustic": self.final_acoustic[keep_final],
            },
        )

    def nbest(
        self, utt: str, n: int, lmwt: float, *, penalty: float = 0.0, beam: float = 8.0, max_states: int = 200_000
    ) -> List[Tuple[List[int], float]]:
        """The ``n`` best distinct word sequences of ``utt`` with their costs (graph + acoustic /
        lmwt + penalty x words), best first: the lattice pruned to paths within ``beam`` of the
        best at this scale, projected on words and determinised (as lattice-determinize-pruned |
        lattice-to-nbest), then OpenFst's n-shortest paths. Epsilon removal and determinisation are
        pruned at ``beam`` too, and determinisation stops at ``max_states`` states: bounded work on
        wide lattices."""
        one = self.subset([utt])
        if one.start[0] < 0 or not len(one.final_state):
            return []
        one = one.pruned(lmwt, penalty, beam)
        if not len(one.final_state):
            return []
        cost = one.graph + one.acoustic / lmwt + penalty * (one.word != 0)
        final_cost = one.final_graph + one.final_acoustic / lmwt
        lines = [
            f"{s} {d} {w} {w} {c:.6f}"
            for s, d, w, c in zip(one.src.tolist(), one.dst.tolist(), one.word.tolist(), cost.tolist())
        ]
        lines += [f"{s} {c:.6f}" for s, c in zip(one.final_state.tolist(), final_cost.tolist())]
        start = str(int(one.start[0]))
        lines.sort(
            key=lambda line: line.split()[0] != start
        )  # OpenFst's text format: the first line's source is the start
        fst = kaldifst.compile("\n".join(lines))
        kaldifst.rmepsilon(fst, weight=f"{beam}")  # pruned at the beam: bounded work on wide lattices
        fst = kaldifst.determinize(fst, weight=f"{beam}", nstate=max_states)
        paths = kaldifst.convert_nbest_to_vector(kaldifst.shortest_path(fst, n=n))
        out = []
        for p in paths:
            _, ilabels, _, weight = kaldifst.get_linear_symbol_sequence(p)
            out.append(([w for w in ilabels if w], float(weight.value)))
        return sorted(out, key=lambda x: x[1])


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


@dataclass
class Calibration:
    """``p' = sigmoid(a * logit(p) + b)``: a logistic map of raw lattice confidences fitted on dev
    words (Kaldi's steps/conf logistic-regression calibration, with the raw confidence as its one
    feature). ``a = 1, b = 0`` leaves them as they are. Confidences are clipped to
    [``EPS``, 1 - ``EPS``] before the logit and after the map: a posterior of exactly 0 or 1 says
    no more than "very sure", and no word's confidence may cost unbounded cross entropy."""

    a: float = 1.0
    b: float = 0.0
    EPS = 1e-3

    @classmethod
    def _logit(cls, conf) -> np.ndarray:
        c = np.clip(np.asarray(conf, np.float64), cls.EPS, 1 - cls.EPS)
        return np.log(c / (1 - c))

    def __call__(self, conf) -> np.ndarray:
        z = self.a * self._logit(conf) + self.b
        return np.clip(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))), self.EPS, 1 - self.EPS)

    @classmethod
    def fit(cls, confidences: Sequence[float], correct: Sequence[bool], l2: float = 1e-2) -> "Calibration":
        """Maximum likelihood on (confidence, correct) pairs by Newton's method with step halving
        (the likelihood never falls) and a small ridge; the identity when the words are all right or
        all wrong."""
        y = np.asarray(correct, np.float64)
        if len(y) == 0 or y.min() == y.max():
            return cls()
        x = np.stack([cls._logit(confidences), np.ones(len(y))], axis=1)

        def loss(w):
            z = x @ w
            return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * (w @ w))

        w = np.array([1.0, 0.0])
        current = loss(w)
        for _ in range(100):
            p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
            grad = x.T @ (p - y) + l2 * w
            hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(2)
            step = np.linalg.solve(hess, grad)
            t = 1.0
            while t > 1e-6 and loss(w - t * step) > current:
                t /= 2
            if t <= 1e-6:
                break
            w, previous = w - t * step, current
            current = loss(w)
            if previous - current < 1e-10:
                break
        return cls(float(w[0]), float(w[1]))


def reliability(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> List[Dict]:
    """Reliability diagram rows: per confidence bin, the words in it, their mean confidence and
    the share that is correct (well calibrated: the two agree)."""
    c = np.asarray(confidences, np.float64)
    ok = np.asarray(correct, bool)
    which = np.minimum((c * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            rows.append(
                {
                    "bin": [b / bins, (b + 1) / bins],
                    "words": int(sel.sum()),
                    "mean_confidence": round(float(c[sel].mean()), 4),
                    "correct": round(float(ok[sel].mean()), 4),
                }
            )
    return rows

"""The k2 decoding backend: the same HCLG and the same scaled log-likelihoods as the Kaldi
decoder (asr_kd.decode.decode), searched with k2.

Graph: HCLG (OpenFst, from kaldifst) -> text -> ``k2.Fsa.from_openfst`` (input labels =
transition-ids, aux labels = words) -> ``remove_epsilon`` (k2 would treat label 0 as a symbol that
consumes a frame) -> ``arc_sort``, cached as ``HCLG.k2.wip<P>.pt`` (one file per word insertion penalty; kept while
the HCLG's digest is the one it was built from).
Search: utterances are batched into a ``DenseFsaVec`` whose column t holds the score of
transition-id t (the log-likelihood of its pdf; column 0 is unused), intersected with
``intersect_dense_pruned`` and reduced with ``shortest_path``. ``min_active`` defaults to 200, as
Kaldi's decoders: with k2's usual 30 the dynamic beam narrows early and, on the default graph,
lost better paths that Kaldi's decoder kept (measured: 2 of 360 test utterances differed).

Runs on k2 1.23.4 (the PyPI release: Python 3.9, torch 1.13.1) and on 1.24.x: only calls common
to both are used, and aux labels are read whether they come back as a tensor or a RaggedTensor.
"""

import logging
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from asr_kd.decode.lattice import LatticeSet, touched_numbering
from asr_kd.kaldi.fst import read_fst, with_word_penalty
from asr_kd.nnet.checkpoint import safe_torch_load
from asr_kd.utils.io import atomic_path
from asr_kd.utils.numerics import require_finite_utterances
from asr_kd.utils.validity import file_digest, fingerprint, still_valid

log = logging.getLogger(__name__)


def k2_version() -> str:
    import importlib

    import k2

    try:  # 1.23.4 keeps it in the k2.version module (not imported by ``import k2``)
        return importlib.import_module("k2.version").__version__
    except (ImportError, AttributeError):
        return getattr(k2, "__version__", "unknown")


def hclg_to_k2(hclg_path, word_penalty: float = 0.0):
    import k2

    g = read_fst(hclg_path)
    if word_penalty:
        g = with_word_penalty(g, word_penalty)
    fsa = k2.Fsa.from_openfst(g.to_str(), acceptor=False)
    fsa = k2.remove_epsilon(fsa)
    return k2.arc_sort(fsa)


def load_k2_graph(hclg_path, word_penalty: float = 0.0, device: Optional[torch.device] = None):
    """The k2 graph for ``hclg_path``, built once and cached next to it."""
    import k2

    hclg_path = Path(hclg_path)
    cache = hclg_path.with_name(f"{hclg_path.stem}.k2.wip{word_penalty:g}.pt")
    key = fingerprint({"hclg": file_digest(hclg_path), "word_penalty": word_penalty})
    try:  # a cache: anything unreadable (or holding more than tensors) is rebuilt
        saved = safe_torch_load(cache) if cache.is_file() else None
    except Exception as e:  # noqa: BLE001
        log.warning("%s: unreadable k2 graph cache, rebuilt (%s)", cache, str(e)[:120])
        saved = None
    if still_valid(saved, key):
        fsa = k2.Fsa.from_dict(_from_tensors(saved["fsa"]))
    else:
        t0 = time.time()
        fsa = hclg_to_k2(hclg_path, word_penalty)
        with atomic_path(cache) as tmp:
            torch.save({"fsa": _as_tensors(fsa.as_dict()), "key": key}, tmp)
        log.info(
            "k2 graph from %s: %d states, %d arcs, %.2f s", hclg_path, fsa.shape[0], fsa.num_arcs, time.time() - t0
        )
    return fsa.to(device or "cpu")


def _as_tensors(d: dict) -> dict:
    """An Fsa's dict with each ragged attribute (the word labels) as two tensors, so the cache
    holds tensors only and loads without unpickling any class."""
    import k2

    out = {}
    for k, v in d.items():
        if isinstance(v, k2.RaggedTensor):
            out[f"{k}.row_splits"], out[f"{k}.values"] = v.shape.row_splits(1), v.values
        else:
            out[k] = v
    return out


def _from_tensors(d: dict) -> dict:
    import k2

    out = {k: v for k, v in d.items() if not k.endswith((".row_splits", ".values"))}
    for k in [k[: -len(".row_splits")] for k in d if k.endswith(".row_splits")]:
        shape = k2.ragged.create_ragged_shape2(
            row_splits=d[f"{k}.row_splits"], cached_tot_size=d[f"{k}.values"].numel()
        )
        out[k] = k2.RaggedTensor(shape, d[f"{k}.values"])
    return out


def _words(fsa) -> List[int]:
    aux = fsa.aux_labels
    values = aux.values if hasattr(aux, "values") and not isinstance(aux, torch.Tensor) else aux
    return [int(w) for w in values.tolist() if w > 0]


def _arc_words(aux, num_arcs: int) -> Tuple[np.ndarray, np.ndarray]:
    """(row splits, word ids) of each arc's aux labels, whether k2 gives a tensor or a RaggedTensor."""
    if isinstance(aux, torch.Tensor):
        return np.arange(num_arcs + 1), aux.cpu().numpy().astype(np.int64)
    return aux.shape.row_splits(1).cpu().numpy(), aux.values.cpu().numpy().astype(np.int64)


def lattice_set(
    lattice,
    utts: List[str],
    *,
    acoustic_scale: Optional[float] = None,
    word_penalty: float = 0.0,
    beam: Optional[float] = None,
):
    """k2 lattices (an FsaVec, utterance k at index k) as an ``asr_kd.decode.lattice.LatticeSet``,
    converted for the whole vector at once. Arcs keep their transition-id and word; an arc that
    carries several words (epsilon removal merges them) becomes a chain of arcs, one word each, the
    first with the arc's transition-id and scores; arcs into k2's final state (label -1; its last
    state) are epsilon arcs, the final state's cost 0. With ``acoustic_scale`` (the search's), arcs keep
    graph costs (the ``graph_scores`` attribute, without ``word_penalty``, which the search's graph had
    on every word arc) and unscaled acoustic costs (-log-likelihood), as Kaldi's lattices; without it
    (oracle searches) every cost is 0. With ``beam``, only arcs on a complete path within ``beam`` of
    the utterance's best (k2's tropical arc posteriors; Kaldi's lattice pruning) and the states they
    touch are kept; without it, every arc."""
    if not len(utts):
        arcs = {k: np.zeros(0, np.int64) for k in ("src", "dst", "tid", "word")}
        arcs.update(graph=np.zeros(0), acoustic=np.zeros(0))
        finals = {"state": np.zeros(0, np.int64), "graph": np.zeros(0), "acoustic": np.zeros(0)}
        return LatticeSet([], np.zeros(1, np.int64), np.zeros(0, np.int64), arcs=arcs, finals=finals)
    shape = lattice.arcs.shape()
    state_splits = shape.row_splits(1).cpu().numpy().astype(np.int64)  # utterance -> its states
    state_utt = shape.row_ids(1).cpu().numpy().astype(np.int64)
    arc_state = shape.row_ids(2).cpu().numpy().astype(np.int64)  # each arc's source state (numbered together)
    cols = lattice.arcs.values()[:, :3].cpu().numpy().astype(np.int64)
    arc_utt = state_utt[arc_state]
    src, dst = arc_state, cols[:, 1] + state_splits[arc_utt]
    total = lattice.scores.detach().cpu().numpy().astype(np.float64)
    graph = (
        -lattice.graph_scores.detach().cpu().numpy().astype(np.float64) if hasattr(lattice, "graph_scores") else None
    )
    graph = np.zeros(len(src)) if graph is None else graph
    acoustic = total + graph  # the arc's scaled acoustic score (score = -graph cost + acoustic score)
    splits, values = _arc_words(lattice.aux_labels, len(src))
    keep = np.ones(len(src), bool)
    if beam is not None:  # arcs on no complete path get -inf (or nan where the utterance has none)
        post = lattice.get_arc_post(use_double_scores=True, log_semiring=False).detach().cpu().numpy()
        keep = np.nan_to_num(post, nan=-np.inf) >= -beam
    # words per arc (labels <= 0 dropped): most arcs carry none or one, handled at once
    word_mask = values > 0
    kept_words = np.concatenate([[0], np.cumsum(word_mask)])
    count = kept_words[splits[1:]] - kept_words[splits[:-1]]
    first = np.zeros(len(src), np.int64)
    owner = np.repeat(np.arange(len(src)), np.diff(splits))
    pos = np.flatnonzero(word_mask)
    with_words, at = np.unique(owner[pos], return_index=True)  # each arc's first word
    first[with_words] = values[pos[at]]
    single = keep & (count <= 1)
    out = [src[single], dst[single], np.maximum(cols[single, 2], 0), first[single], graph[single], acoustic[single]]
    num_states = int(state_splits[-1])
    extra_utt: List[int] = []
    more: List[List] = [[], [], [], [], [], []]
    for a in np.flatnonzero(keep & (count > 1)):  # an arc with several words: a chain, one word per arc
        words = values[splits[a] : splits[a + 1]]
        words = words[words > 0]
        chain = [src[a]] + list(range(num_states + len(extra_utt), num_states + len(extra_utt) + len(words) - 1))
        chain.append(dst[a])
        extra_utt += [int(arc_utt[a])] * (len(words) - 1)
        for i, w in enumerate(words):
            row = (chain[i], chain[i + 1], max(int(cols[a, 2]), 0) if i == 0 else 0, int(w))
            for col, v in zip(more, row + ((graph[a], acoustic[a]) if i == 0 else (0.0, 0.0))):
                col.append(v)
    src, dst, tid, word, graph, acoustic = (np.concatenate([c, np.asarray(m, c.dtype)]) for c, m in zip(out, more))
    # states: the kept arcs' and each utterance's start, renumbered utterance by utterance
    utt_of_state = np.concatenate([state_utt, np.asarray(extra_utt, np.int64)])
    has_states = np.diff(state_splits) > 0
    starts, finals = state_splits[:-1][has_states], state_splits[1:][has_states] - 1  # k2's final state: its last
    used = np.zeros(len(utt_of_state), bool)
    used[starts] = used[src] = used[dst] = True
    new_id, offset = touched_numbering(utt_of_state, len(utts), used)
    start = np.full(len(utts), -1, np.int64)
    start[has_states] = new_id[starts]
    finals = finals[used[finals]]
    if acoustic_scale is None:
        graph, acoustic = np.zeros(len(src)), np.zeros(len(src))
    else:
        graph = graph - word_penalty * (word > 0)
        acoustic = -acoustic / acoustic_scale
    return LatticeSet(
        list(utts),
        offset,
        start,
        arcs={
            "src": new_id[src],
            "dst": new_id[dst],
            "tid": np.asarray(tid, np.int64),
            "word": np.asarray(word, np.int64),
            "graph": np.asarray(graph, np.float64),
            "acoustic": np.asarray(acoustic, np.float64),
        },
        finals={"state": new_id[finals], "graph": np.zeros(len(finals)), "acoustic": np.zeros(len(finals))},
    )


# frames per intersect_dense_pruned call of the lattice search: k2's unpruned output grows with the batch
# (read speech's GMM: 12.6M arcs for 20,000 frames, 4.4 GB); 2,000 frames searched its dev 26% faster in 1.5 GB
LATTICE_BATCH_FRAMES = 2000


def _dense_batches(loglikes: Dict[str, np.ndarray], columns, max_frames_per_batch: int):
    """(utterances, DenseFsaVec scores, segments) batches, longest utterances first (DenseFsaVec wants
    decreasing lengths); column t of the scores holds ``loglikes[u][:, columns[t - 1]]`` (column 0 unused)."""
    utts = sorted(loglikes, key=lambda u: -loglikes[u].shape[0])
    start = 0
    while start < len(utts):
        batch, frames = [], 0
        while start < len(utts) and (not batch or frames + loglikes[utts[start]].shape[0] <= max_frames_per_batch):
            batch.append(utts[start])
            frames += loglikes[utts[start]].shape[0]
            start += 1
        t_max = loglikes[batch[0]].shape[0]
        width = len(columns) if columns is not None else loglikes[batch[0]].shape[1]
        dense = torch.full((len(batch), t_max, width + 1), -1e10, dtype=torch.float32)
        for i, u in enumerate(batch):
            m = torch.from_numpy(np.asarray(loglikes[u], dtype=np.float32))
            dense[i, : m.shape[0], 1:] = m if columns is None else m[:, columns]
            dense[i, :, 0] = 0.0
        segs = torch.tensor([[i, 0, loglikes[u].shape[0]] for i, u in enumerate(batch)], dtype=torch.int32)
        yield batch, dense, segs


def decode_lattices_k2(
    graph,
    loglikes: Dict[str, np.ndarray],
    acoustic_scale: float,
    *,
    beam: float = 13.0,
    lattice_beam: float = 6.0,
    word_penalty: float = 0.0,
    max_active: int = 7000,
    min_active: int = 200,
    max_frames_per_batch: int = LATTICE_BATCH_FRAMES,
) -> LatticeSet:
    """``asr_kd.decode.lattice.decode_lattices`` with k2: the lattices of every utterance
    (``intersect_dense_pruned``, search beam ``beam``, output beam ``lattice_beam``, at least
    ``min_active`` and at most ``max_active`` states a frame) as a ``LatticeSet`` whose arcs keep
    graph costs (without ``word_penalty``) and unscaled acoustic costs. ``graph``: a k2 graph with
    ``word_penalty`` on its word arcs (``load_k2_graph(hclg, word_penalty)``); ``loglikes`` per
    transition-id column (``ll[:, id2pdf[1:]]``), unscaled; the search scales them by
    ``acoustic_scale``. k2 keeps min-active itself, so no 1-best check is needed."""
    import k2

    require_finite_utterances(loglikes)
    if not hasattr(graph, "graph_scores"):
        graph.graph_scores = graph.scores.clone()  # carried onto the lattice's arcs: graph and acoustic kept apart
    scaled = {u: np.asarray(m, np.float32) * np.float32(acoustic_scale) for u, m in loglikes.items()}
    sets = []
    for batch, dense, segs in _dense_batches(scaled, None, max_frames_per_batch):
        dense_vec = k2.DenseFsaVec(dense.to(graph.device), segs)
        lattice = k2.intersect_dense_pruned(graph, dense_vec, beam, lattice_beam, min_active, max_active)
        # k2's output beam leaves arcs on no complete path and paths far past the beam: pruned as Kaldi prunes
        sets.append(
            lattice_set(
                lattice, batch, acoustic_scale=acoustic_scale, word_penalty=word_penalty, beam=lattice_beam + 1e-3
            )
        )
    return LatticeSet.concatenate(sets) if sets else lattice_set(None, [])


def decode_k2(
    graph,
    id2pdf: np.ndarray,
    loglikes: Dict[str, np.ndarray],
    *,
    search_beam: float = 20.0,
    output_beam: float = 8.0,
    min_active: int = 200,
    max_active: int = 10000,
    max_frames_per_batch: int = 20000,
    device: Optional[torch.device] = None,
    oracle_refs: Optional[Dict[str, List[int]]] = None,
    stats: Optional[Dict[str, float]] = None,
) -> Dict[str, Dict]:
    """1-best word ids, transition-id alignment (one per frame) and path score per utterance;
    ``loglikes`` (frames x pdfs) are already scaled. ``oracle_refs`` (word ids per utterance):
    each result also gets ``oracle_errors``, the fewest word errors of any path of its lattice
    (``output_beam`` wide; Kaldi's lattice-oracle); ``stats["oracle_seconds"]`` (when given) the
    time that took."""
    import k2

    device = device or graph.device
    require_finite_utterances(loglikes)
    cols = torch.from_numpy(np.asarray(id2pdf[1:], dtype=np.int64))
    out: Dict[str, Dict] = {}
    for batch, dense, segs in _dense_batches(loglikes, cols, max_frames_per_batch):
        dense_vec = k2.DenseFsaVec(dense.to(device), segs)
        lattice = k2.intersect_dense_pruned(graph, dense_vec, search_beam, output_beam, min_active, max_active)
        best = k2.shortest_path(lattice, use_double_scores=True)
        scores = best.get_tot_scores(use_double_scores=True, log_semiring=False).cpu()
        t_oracle = time.time()
        oracle = lattice_set(lattice, batch).oracle_errors({u: oracle_refs[u] for u in batch}) if oracle_refs else {}
        if stats is not None:
            stats["oracle_seconds"] = stats.get("oracle_seconds", 0.0) + time.time() - t_oracle
        for i, u in enumerate(batch):
            ok = bool(torch.isfinite(scores[i]))
            path = best[i]
            out[u] = {
                "words": _words(path) if ok else [],
                "score": float(scores[i]),
                "reached_final": ok,
                "alignment": [int(t) for t in path.labels.tolist() if t > 0] if ok else [],
            }
            if oracle_refs:
                out[u]["oracle_errors"] = oracle[u]
    return out

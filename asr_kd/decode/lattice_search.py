"""Decoding a split into lattices over several processes or Slurm jobs: Kaldi's lattice search
(``asr_kd.decode.lattice.decode_lattices``) or k2's (``asr_kd.decode.k2_decoder.decode_lattices_k2``),
each part writing its share of the Kaldi text archive (k2's parts, given an ``ArchiveWriter``: after
their search, while the caller goes on)."""

from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from asr_kd.decode.k2_decoder import decode_lattices_k2, load_k2_graph
from asr_kd.decode.lattice import LATTICE_BEAM, LatticeSet, decode_lattices, write_lattices
from asr_kd.utils.io import atomic_path
from asr_kd.utils.numerics import require_finite_utterances


@dataclass
class LatticePart:
    """One process's (or Slurm job's) share of a lattice decode: its utterances (or the ``.npz``
    that ``_stash`` wrote them to) and where their archive goes."""

    graph_path: str
    loglikes: Union[Dict[str, np.ndarray], str]
    acoustic_scale: float
    beam: float
    lattice_beam: float
    word_penalty: float
    max_active: int
    archive: str
    search: str = "kaldi"
    write_archive: bool = True  # False: the caller has the archive written (``ArchiveWriter``)


LATTICE_DECODERS = {  # what searches a lattice decode (``search``), as lattice_options.json names it
    "kaldi": "kaldi-decoder's LatticeSimpleDecoder, checked by its FasterDecoder (1-best, min-active 200)",
    "k2": "k2's intersect_dense_pruned (min-active 200)",
}
LATTICE_SEARCHES = tuple(LATTICE_DECODERS)


_K2_POOLS: Dict[int, object] = {}


def _k2_pool(nj: int):
    """``nj`` processes that search with k2, kept for the life of this process: forked from a fresh
    server that has imported asr_kd and k2 (it finds the asr_kd this process runs) and never searched.
    A process that has searched with k2 (or run torch on several threads) keeps worker threads that a
    plain fork of it lacks, and the fork would wait on them forever; the server costs one import."""
    if nj not in _K2_POOLS:
        import multiprocessing as mp
        import os
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["asr_kd.kaldi", "asr_kd.decode.lattice_search"])
        root = str(Path(__file__).resolve().parents[2])
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = root + (os.pathsep + saved if saved else "")  # the server's imports
        try:
            from multiprocessing import forkserver

            forkserver.ensure_running()
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH")
            else:
                os.environ["PYTHONPATH"] = saved
        _K2_POOLS[nj] = ProcessPoolExecutor(nj, mp_context=ctx, initializer=_one_thread)
    return _K2_POOLS[nj]


def _one_thread() -> None:
    """A forked part's torch runs on one thread, before any torch operation: the OpenMP threads of
    the process it was forked from are not in it (a parallel operation would wait on them forever),
    and the parts are the parallelism."""
    import torch

    torch.set_num_threads(1)


def _stash(loglikes: Dict[str, np.ndarray], path: Path) -> str:
    """A part's log-likelihoods in a file for a pool process: the pool's pipe then carries a path, and
    a pool whose process died (out of memory) cannot leave this one blocked writing to that pipe."""
    utts = list(loglikes)
    np.savez(path, utts=np.array(utts), **{f"u{i}": loglikes[u] for i, u in enumerate(utts)})
    return str(path)


def _unstash(loglikes: Union[Dict[str, np.ndarray], str]) -> Dict[str, np.ndarray]:
    if not isinstance(loglikes, str):
        return loglikes
    with np.load(loglikes, allow_pickle=False) as z:
        return {str(u): z[f"u{i}"] for i, u in enumerate(z["utts"])}


def _decode_part(part: LatticePart) -> Tuple["LatticeSet", Dict[str, int]]:
    loglikes = _unstash(part.loglikes)
    settings = {
        "beam": part.beam,
        "lattice_beam": part.lattice_beam,
        "word_penalty": part.word_penalty,
        "max_active": part.max_active,
    }
    if part.search == "k2":  # k2 keeps min-active itself: no 1-best check, nothing searched again
        graph = load_k2_graph(part.graph_path, part.word_penalty)
        lats = decode_lattices_k2(graph, loglikes, part.acoustic_scale, **settings)
        if part.write_archive:
            _write_part(part.archive, lats, part.word_penalty)
        else:  # kept for the pool process that writes the archive later (ArchiveWriter)
            _stash_lattices(lats, _lattice_stash(Path(part.archive)))
        return lats, {"utterances": len(lats.utts), "widened": 0, "still_worse": 0}
    stats: Dict[str, int] = {}
    texts = decode_lattices(part.graph_path, loglikes, part.acoustic_scale, stats=stats, **settings)
    write_lattices(part.archive, texts)
    # parsed here (the parts parse in parallel too), graph costs without the penalty
    return LatticeSet.from_texts(texts.items(), word_penalty=part.word_penalty), stats


def _write_part(path: str, lats: Union[LatticeSet, str], word_penalty: float) -> None:
    """A part's archive from its lattices, or from the ``.npz`` that ``_stash_lattices`` wrote (removed)."""
    if isinstance(lats, str):
        stash, lats = Path(lats), _unstash_lattices(lats)
        stash.unlink()
    write_lattices(path, lats.texts(word_penalty))


_LATTICE_ARRAYS = ("offset", "start", "src", "dst", "tid", "word", "graph", "acoustic")
_FINAL_ARRAYS = ("final_state", "final_graph", "final_acoustic")


def _lattice_stash(part_archive: Path) -> Path:
    return part_archive.with_name(part_archive.name + ".lattices.npz")


def _stash_lattices(lats: LatticeSet, path: Path) -> str:
    """A part's lattices in a file for a pool process (no pickle; as ``_stash``, the pipe carries a path)."""
    np.savez(path, utts=np.array(lats.utts), **{k: getattr(lats, k) for k in _LATTICE_ARRAYS + _FINAL_ARRAYS})
    return str(path)


def _unstash_lattices(path: str) -> LatticeSet:
    with np.load(path, allow_pickle=False) as z:
        a = {k: z[k] for k in _LATTICE_ARRAYS + _FINAL_ARRAYS}
        utts = [str(u) for u in z["utts"]]
    arcs = {k: a[k] for k in ("src", "dst", "tid", "word", "graph", "acoustic")}
    finals = {k.split("_")[1]: a[k] for k in _FINAL_ARRAYS}
    return LatticeSet(utts, a["offset"], a["start"], arcs=arcs, finals=finals)


def _join_parts(archive: Path, part_paths: List[Path]) -> None:
    """The parts' gzipped archives joined into ``archive`` (gzip members: one archive to ``gunzip -c``)."""
    with atomic_path(archive) as tmp:
        with open(tmp, "wb") as out:
            for part in part_paths:
                out.write(part.read_bytes())
    for part in part_paths:
        part.unlink()


@dataclass
class ArchiveWriter:
    """Lattice archives of k2 decodes written by k2's pool processes after their search, while the caller
    tunes on the lattices (formatting Kaldi text and gzip take about a quarter of a part's time, and the
    caller's tuning leaves a core free). ``wait()`` before the archives are read or a stage is marked done:
    it joins each archive's parts, or raises naming the archive whose writing failed."""

    pending: List[Tuple[Path, List[Path], list]] = field(default_factory=list)

    def add(self, archive: Path, part_paths: List[Path], futures: list) -> None:
        self.pending.append((archive, part_paths, futures))

    def wait(self, archive: Optional[Path] = None) -> None:
        """Every pending archive complete, or only ``archive`` (before it is decoded again)."""
        pending = [p for p in self.pending if archive is None or p[0] == Path(archive)]
        self.pending = [p for p in self.pending if p not in pending]
        for archive, part_paths, futures in pending:
            try:
                for future in futures:
                    future.result()
            except Exception as e:
                if isinstance(e, BrokenProcessPool):
                    for pool in _K2_POOLS.values():
                        pool.shutdown(wait=False)
                    _K2_POOLS.clear()
                for part in part_paths:
                    part.unlink(missing_ok=True)
                    _lattice_stash(part).unlink(missing_ok=True)
                raise RuntimeError(f"{archive}: writing the lattice archive failed ({e!r})") from e
            _join_parts(archive, part_paths)


def decode_lattices_parallel(
    graph_path,
    loglikes: Dict[str, np.ndarray],
    acoustic_scale: float,
    *,
    archive,
    beam: float = 13.0,
    lattice_beam: float = LATTICE_BEAM,
    nj: int = 1,
    cmd="local",
    job_dir=None,
    word_penalty: float = 0.0,
    max_active: int = 7000,
    search: str = "kaldi",
    writer: Optional[ArchiveWriter] = None,
) -> Tuple["LatticeSet", Dict[str, int]]:
    """``decode_lattices`` (``search`` "kaldi") or ``decode_lattices_k2`` (``search`` "k2", in a
    Python that imports k2) over ``nj`` forked processes (each reads the graph), or ``nj`` Slurm jobs
    (``cmd`` "slurm ...", ``asr_kd.utils.jobs``); utterances dealt longest first. Each part writes
    its lattices (graph costs with ``word_penalty``) as a gzipped Kaldi text archive and parses
    them; the parts' archives are joined into ``archive`` (gzip members, which ``gunzip -c`` and
    Kaldi's ``ark:gunzip -c ... |`` read as one); with ``writer`` k2's local parts write theirs after
    the search, and ``archive`` is complete after ``writer.wait()``. Returns the ``LatticeSet`` of all utterances
    (graph costs without the penalty) and the search counts (``decode_lattices``)."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp

    from asr_kd.utils.jobs import JobCmd, run_jobs

    require_finite_utterances(loglikes)
    if search not in LATTICE_SEARCHES:
        raise ValueError(f"lattice search must be one of {LATTICE_SEARCHES}, not {search!r}")
    if search == "k2":  # built (and cached beside the HCLG) once, before the parts read it
        load_k2_graph(graph_path, word_penalty)
    archive = Path(archive)
    if writer is not None:
        writer.wait(archive)  # its parts' paths are about to be reused
    utts = sorted(loglikes, key=lambda u: -loglikes[u].shape[0])
    nj = max(1, min(nj, len(utts)))
    part_paths = [archive.with_name(f"{archive.name}.part{i}.gz") for i in range(nj)]
    parts = [
        LatticePart(
            str(graph_path),
            {u: loglikes[u] for u in utts[i::nj]},
            acoustic_scale,
            beam,
            lattice_beam,
            word_penalty,
            max_active,
            str(part_paths[i]),
            search,
        )
        for i in range(nj)
    ]
    local = JobCmd.parse(cmd).local
    later = writer is not None and search == "k2" and local  # the archive written after the search
    for part in parts:
        part.write_archive = not later
    pooled = local and (search == "k2" or nj > 1)
    stashes = [archive.with_name(f"{archive.name}.part{i}.npz") for i in range(nj)] if pooled else []
    archive.parent.mkdir(parents=True, exist_ok=True)
    for part, stash in zip(parts, stashes):
        part.loglikes = _stash(part.loglikes, stash)
    try:
        if search == "k2" and local:
            done = list(_k2_pool(nj).map(_decode_part, parts))
        elif nj == 1 and local:
            done = [_decode_part(parts[0])]
        elif local:
            with ProcessPoolExecutor(nj, mp_context=mp.get_context("fork"), initializer=_one_thread) as ex:
                done = list(ex.map(_decode_part, parts))
        else:
            done = run_jobs(cmd, _decode_part, [(p,) for p in parts], job_dir=job_dir, name="lattice")
    except BrokenProcessPool as e:
        if search == "k2":
            _K2_POOLS.pop(nj).shutdown(wait=False)
        for part in part_paths:  # the parts that finished: the split is decoded again as a whole
            part.unlink(missing_ok=True)
            _lattice_stash(part).unlink(missing_ok=True)
        raise RuntimeError(
            f"{archive}: a lattice search process died ({e}); out of memory? Each of the --nj {nj} processes "
            "holds the graph and its lattices: lower --nj"
        ) from e
    finally:
        for stash in stashes:
            stash.unlink(missing_ok=True)
    if later:
        pool = _k2_pool(nj)
        writer.add(
            archive,
            part_paths,
            [pool.submit(_write_part, str(path), str(_lattice_stash(path)), word_penalty) for path in part_paths],
        )
    else:
        _join_parts(archive, part_paths)
    stats: Dict[str, int] = {}
    for _, st in done:
        for k, v in st.items():
            stats[k] = stats.get(k, 0) + v
    return LatticeSet.concatenate([lats for lats, _ in done]), stats

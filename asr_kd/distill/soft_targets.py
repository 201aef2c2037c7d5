"""Ensemble soft targets for the speech experiment: made at temperature T from the teachers'
checkpoints, stored per cut with lhotse (dense float32, or top-k: int16 indices (int32 past 32,768
pdfs) + float16 log-probabilities, as HDF5 TemporalArrays), checked against the loss that will read
them, and read back for training: dense rows, or top-k kept sparse and densified per batch
(``asr_kd.nnet.targets.TopKTargets``)."""

import gzip
import hashlib
import itertools
import math
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from lhotse import CutSet, NumpyHdf5Writer

from asr_kd.data.features import FeatureNormalizer
from asr_kd.nnet.checkpoint import load_model
from asr_kd.nnet.data import FrameData, ali_cuts, load_frames
from asr_kd.nnet.evaluate import predict_logits
from asr_kd.nnet.losses import LossConfig
from asr_kd.nnet.targets import TopKTargets, ensemble_soft_targets, index_dtype, topk_targets
from asr_kd.utils.device import torch_device
from asr_kd.utils.io import atomic_path, forget_open_arrays, write_json_atomic
from asr_kd.utils.memory import map_large_blocks, release_freed_memory
from asr_kd.utils.jobs import JobCmd, run_jobs
from asr_kd.utils.validity import file_digest, fingerprint, kept_summary

log = logging.getLogger(__name__)


def write_soft_targets(
    cuts: CutSet,
    normalizer: FeatureNormalizer,
    teachers: Sequence,
    *,
    out_dir,
    temperature: float,
    topk: int = 0,
    combine: str = "arithmetic",
    chunk_cuts: int = 64,
    num_jobs: int = 1,
    cmd="local",
) -> Dict:
    """Stream over ``cuts`` (a lazy CutSet is read, never held: ``chunk_cuts`` cuts at a time, so peak
    memory does not grow with the corpus): the teachers' soft targets at T go into HDF5 files of
    per-cut TemporalArrays (``soft_probs`` dense, or ``soft_idx`` + ``soft_logp`` top-k) attached to
    the cuts of ``cuts.jsonl.gz``. With ``num_jobs`` > 1 the cuts are split into that many
    contiguous shards written in parallel processes (``soft_targets.<i>.h5``; one job writes
    ``soft_targets.h5``), or as that many Slurm jobs under ``cmd`` = "slurm [sbatch options]"
    (``asr_kd.utils.jobs``; logs in ``jobs/``; each job takes the GPU when its node has one). Each
    shard writes its part of the manifest as it goes; the parts are joined in cut order.
    ``soft_targets.json`` holds T, k and the storage figures; it is written last, with a key of the
    inputs (teacher checkpoints, T, k, the cuts' ids and lengths, feature statistics), and targets
    of the same key are kept on a rerun. Returns the storage figures."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    num_cuts, cuts_digest = _cuts_digest(cuts)
    key = fingerprint(
        {
            "teachers": [file_digest(t) for t in teachers],
            "temperature": temperature,
            "topk": topk,
            "combine": combine,
            "cuts": cuts_digest,
            "cmvn": normalizer.fingerprint(),
        }
    )
    meta_path = out_dir / "soft_targets.json"
    kept = kept_summary(meta_path, key)
    if kept is not None and (out_dir / "cuts.jsonl.gz").is_file():
        log.info("%s: soft targets of these teachers and settings are there; keeping them", out_dir)
        return kept
    for old in [
        *out_dir.glob("soft_targets*.h5"),
        *out_dir.glob("cuts.*.jsonl.gz"),
    ]:  # another run's (maybe another shard count)
        old.unlink()
    if num_cuts == 0:
        raise ValueError(f"{out_dir}: no cuts to make soft targets for")
    num_jobs = max(1, min(num_jobs, num_cuts))
    bounds = np.linspace(0, num_cuts, num_jobs + 1).astype(int)
    cluster = not JobCmd.parse(cmd).local
    jobs = [
        SoftTargetShard(
            cuts=cuts,
            lo=int(bounds[i]),
            hi=int(bounds[i + 1]),
            normalizer=normalizer,
            teachers=list(teachers),
            h5=out_dir / (f"soft_targets.{i}.h5" if num_jobs > 1 else "soft_targets.h5"),
            part=out_dir / f"cuts.{i}.jsonl.gz",
            temperature=temperature,
            topk=topk,
            combine=combine,
            chunk_cuts=chunk_cuts,
            threads=None if cluster or num_jobs == 1 else 1,
            # a GPU when present for a single or a cluster job; forked shards stay on the CPU (CUDA does not survive fork)
            device=None if cluster or num_jobs == 1 else "cpu",
        )
        for i in range(num_jobs)
    ]
    if cluster:
        results = run_jobs(cmd, _write_shard, [(job,) for job in jobs], job_dir=out_dir / "jobs", name="soft_targets")
    elif num_jobs == 1:
        results = [_write_shard(jobs[0])]
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(num_jobs, mp_context=mp.get_context("fork")) as ex:
            results = list(ex.map(_write_shard, jobs))
    frames = sum(r[0] for r in results)
    topk = max(r[1] for r in results)
    files = sorted(out_dir.glob("soft_targets*.h5"))
    meta = {
        "temperature": temperature,
        "topk": topk,
        "combine": combine,
        "num_frames": frames,
        "shards": num_jobs,
        "bytes": sum(os.path.getsize(f) for f in files),
        "hours": frames * 0.01 / 3600,
        "teachers": [str(t) for t in teachers],
        "key": key,
    }
    meta["mb_per_hour"] = meta["bytes"] / 1e6 / meta["hours"]
    # the cut manifest with the arrays attached: cut.load_soft_probs(), or load_soft_idx() + load_soft_logp()
    parts = [job.part for job in jobs]
    with atomic_path(out_dir / "cuts.jsonl.gz") as tmp:
        with gzip.open(tmp, "wt") as out:
            for part in parts:
                with gzip.open(part, "rt") as f:
                    shutil.copyfileobj(f, out)
    for part in parts:
        part.unlink()
    forget_open_arrays()
    write_json_atomic(meta_path, meta)
    return meta


def _cuts_digest(cuts) -> Tuple[int, str]:
    """(number of cuts, digest of their ids and lengths), in one lazy pass."""
    h, n = hashlib.sha256(), 0
    for cut in cuts:
        h.update(f"{cut.id} {cut.num_frames}\n".encode())
        n += 1
    return n, h.hexdigest()[:16]


@dataclass
class SoftTargetShard:
    """One soft-target job: cuts ``lo`` to ``hi`` (positions in ``cuts``) into ``h5`` and the manifest
    part ``part``. ``threads`` / ``device`` None: torch's default threads, the GPU when present."""

    cuts: CutSet
    lo: int
    hi: int
    normalizer: FeatureNormalizer
    teachers: List[str]
    h5: Path
    part: Path
    temperature: float
    topk: int
    combine: str
    chunk_cuts: int
    threads: Optional[int]
    device: Optional[str]


def _write_shard(job: SoftTargetShard) -> Tuple[int, int]:
    """The shard's soft targets into ``job.h5`` (written atomically), and its cuts with their arrays
    into ``job.part``: (frames, k)."""
    map_large_blocks()  # chunks' arrays must not fragment the heap (asr_kd.utils.memory)
    cuts, normalizer, h5, part, temperature, topk = (
        job.cuts,
        job.normalizer,
        job.h5,
        job.part,
        job.temperature,
        job.topk,
    )
    threads, device = job.threads, job.device
    if threads:
        torch.set_num_threads(threads)
    device = device or str(torch_device())
    models = [load_model(t, device) for t in job.teachers]
    frames = 0
    with (
        atomic_path(h5) as tmp,
        NumpyHdf5Writer(tmp) as w,
        atomic_path(part) as tmp_part,
        CutSet.open_writer(tmp_part) as manifest,
    ):
        for chunk in _chunks(itertools.islice(cuts, job.lo, job.hi), job.chunk_cuts):
            release_freed_memory()
            data = load_frames(CutSet.from_cuts(chunk), normalizer, with_labels=False)
            logits = torch.stack([predict_logits(m, data) for m in models])
            probs = ensemble_soft_targets(logits, temperature, job.combine)
            if topk > probs.shape[-1]:  # top-k of k > C classes is every class: store them all, and say so
                log.warning(
                    "top-%d soft targets asked for, but the teachers have %d classes: storing all of them",
                    topk,
                    probs.shape[-1],
                )
                topk = probs.shape[-1]
            frames += len(data)
            for i, cut in enumerate(chunk):
                p = probs[data.utterance(i)]
                if topk:
                    idx, logp = topk_targets(p, topk)
                    arrays = {
                        "soft_idx": w.store_array(
                            cut.id + "/idx",
                            idx.numpy().astype(index_dtype(probs.shape[-1])),
                            frame_shift=0.01,
                            temporal_dim=0,
                            start=cut.start,
                        ),
                        "soft_logp": w.store_array(
                            cut.id + "/logp",
                            logp.numpy().astype(np.float16),
                            frame_shift=0.01,
                            temporal_dim=0,
                            start=cut.start,
                        ),
                    }
                else:
                    arrays = {
                        "soft_probs": w.store_array(
                            cut.id, p.numpy().astype(np.float32), frame_shift=0.01, temporal_dim=0, start=cut.start
                        )
                    }
                for name, a in arrays.items():  # arrays start where their cut does (Kaldi segments)
                    a.array.storage_path = str(h5)  # the final file, not the temporary one
                    cut = cut.with_custom(name, a)
                manifest.write(cut)
    return frames, topk


def _chunks(items: Iterable, size: int) -> Iterator[List]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def soft_targets_for_split(
    ali_dir,
    fbank_dir,
    corpus: str,
    *,
    split: str,
    teachers: Sequence,
    out_dir,
    temperature: float,
    topk: int = 0,
    combine: str = "arithmetic",
    num_jobs: int = 1,
    cmd="local",
) -> Dict:
    """``write_soft_targets`` over a split of an alignment folder, normalised with the fbank
    folder's statistics, in ``num_jobs`` parallel shards (run as ``cmd`` says)."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"soft targets: the temperature must be a finite number > 0, not {temperature!r}")
    if topk < 0:
        raise ValueError(f"soft targets: topk must be >= 0 (0: dense), not {topk!r}")
    return write_soft_targets(
        ali_cuts(ali_dir, corpus, split, lazy=True),
        FeatureNormalizer.of_features(fbank_dir),
        teachers,
        out_dir=out_dir,
        temperature=temperature,
        topk=topk,
        combine=combine,
        num_jobs=num_jobs,
        cmd=cmd,
    )


def check_soft_targets(soft_dir, loss_cfg: LossConfig) -> Dict:
    """Refuse stored soft targets that do not fit the loss: they are probabilities at the temperature
    they were made at, so logit matching (which needs logits) and a kd loss at another temperature
    would silently train on the wrong targets. Returns their ``soft_targets.json``."""
    meta_path = Path(soft_dir) / "soft_targets.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{meta_path} is missing: run the soft-targets stage (or it was killed before finishing)"
        )
    meta = json.loads(meta_path.read_text())
    if loss_cfg.loss == "logit_match":
        raise ValueError(
            f"loss logit_match needs teacher logits, but {soft_dir} holds probabilities at T={meta['temperature']:g}: "
            "give the teachers instead (train-dnn --teachers CKPT ...), or use loss kd"
        )
    if loss_cfg.loss == "kd" and abs(float(meta["temperature"]) - float(loss_cfg.temperature)) > 1e-9:
        raise ValueError(
            f"{soft_dir} holds soft targets at T={meta['temperature']:g} but training asks for "
            f"T={loss_cfg.temperature:g}: pass --temperature {meta['temperature']:g} or make targets at "
            f"T={loss_cfg.temperature:g} (soft-targets --temperature)"
        )
    return meta


def read_soft_targets(soft_dir, data: FrameData, num_classes: int):
    """Soft targets for the frames of ``data`` from ``soft_dir/cuts.jsonl.gz``: a dense (N, C) tensor,
    or top-k ones as a ``TopKTargets`` (kept sparse; rows densify when indexed)."""
    cuts = CutSet.from_file(Path(soft_dir) / "cuts.jsonl.gz").to_eager()
    missing = [cid for cid in data.cut_ids if cid not in cuts]
    if missing:
        raise KeyError(f"no soft targets for cut {missing[0]} in {soft_dir} ({len(missing)} cuts missing)")
    first = cuts[data.cut_ids[0]]
    if first.has_custom("soft_probs"):
        out = torch.zeros(len(data), num_classes)
        for i, cid in enumerate(data.cut_ids):
            out[data.utterance(i)] = torch.from_numpy(cuts[cid].load_soft_probs())
        return out
    idx = [cuts[cid].load_soft_idx() for cid in data.cut_ids]
    logp = [cuts[cid].load_soft_logp() for cid in data.cut_ids]
    return TopKTargets(torch.from_numpy(np.concatenate(idx)), torch.from_numpy(np.concatenate(logp)), num_classes)

#!/usr/bin/env python3
"""Streamed against in-memory training throughput, interleaved in one process so that the
machine's drift (shared cores, clock changes) falls on both paths alike.

    .venv/bin/python benchmarks/stream_throughput.py [--exp exp] [--data data] [--corpus digits]
        [--ali-dir exp/mono] [--config conf/default.yaml] [--soft-targets exp/soft_T2_top20] [--segment 64] [--epochs 1]

Needs a speech recipe's alignment (and, for distillation, a soft-targets folder). Builds the
config's model twice (same seed) and trains them in alternating segments of ``--segment`` steps:
one on the in-memory split (``FrameData``: windows gathered in this process), one on the stream
(``StreamedFrames`` through its loader workers), until each has seen ``--epochs`` epochs of the
training split. Prints each path's frames/s over its segments, their ratio, and the median of
the per-segment-pair ratios; writes JSON. The kd loss on top-k soft targets when
``--soft-targets`` is given, else cross-entropy.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asr_kd.data.features import FeatureNormalizer  # noqa: E402
from asr_kd.distill.soft_targets import read_soft_targets  # noqa: E402
from asr_kd.gmm.labels import num_pdfs  # noqa: E402
from asr_kd.nnet.data import load_split  # noqa: E402
from asr_kd.nnet.losses import HardLabels, LossConfig, build_criterion  # noqa: E402
from asr_kd.nnet.models import ModelConfig, build_model  # noqa: E402
from asr_kd.nnet.streaming import EpochLoaders, StreamedFrames, labelled_cuts_path  # noqa: E402
from asr_kd.nnet.train import TrainConfig, build_optimizer  # noqa: E402
from asr_kd.utils.config import section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", default="exp")
    ap.add_argument("--data", default="data")
    ap.add_argument("--corpus", default="digits")
    ap.add_argument("--ali-dir", help="the alignment the labels come from (default EXP/mono)")
    ap.add_argument("--config", default="conf/default.yaml")
    ap.add_argument("--soft-targets", help="a soft-targets folder (top-k or dense): kd loss")
    ap.add_argument("--segment", type=int, default=64, help="steps per segment before switching paths")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--out", default="exp/benchmarks/stream_throughput.json")
    a = ap.parse_args()
    ali, fbank = Path(a.ali_dir or Path(a.exp) / "mono"), Path(a.data) / "fbank"
    mcfg, tcfg = section(a.config, "model", ModelConfig), section(a.config, "train", TrainConfig)
    torch.set_num_threads(tcfg.threads)
    n = num_pdfs(ali)
    memory = load_split(ali, fbank, a.corpus, split="train")
    if a.soft_targets:
        memory.soft = read_soft_targets(a.soft_targets, memory, n)
        criterion = build_criterion(section(a.config, "distill", LossConfig))
    else:
        criterion = HardLabels(LossConfig(loss="ce"))
    stream = StreamedFrames(
        labelled_cuts_path(ali, a.corpus, "train", soft_dir=a.soft_targets),
        FeatureNormalizer.of_features(fbank),
        mcfg.context,
        batch_size=tcfg.batch_size,
        num_classes=n,
        seed=1,
        soft=bool(a.soft_targets),
        block_frames=tcfg.block_frames,
    )
    steps = int(a.epochs * stream.steps_per_epoch)
    loaders = EpochLoaders(stream, tcfg.loader_workers, last_epoch=10**6)

    def stream_batches():
        epoch = 1
        while True:
            yield from loaders.batches(epoch)
            epoch += 1

    def memory_batches():
        gen = torch.Generator().manual_seed(1)
        while True:
            perm = torch.randperm(len(memory), generator=gen)
            for s in range(0, len(perm) - tcfg.batch_size + 1, tcfg.batch_size):
                idx = perm[s : s + tcfg.batch_size]
                yield (
                    memory.windows(idx, mcfg.context),
                    memory.labels[idx],
                    memory.soft[idx] if memory.soft is not None else None,
                )

    paths = {}
    for name, batches in (("memory", memory_batches()), ("streamed", stream_batches())):
        torch.manual_seed(1)
        model = build_model(mcfg, memory.feat_dim, n)
        paths[name] = {
            "model": model,
            "opt": build_optimizer(model, tcfg),
            "batches": batches,
            "seconds": [],
            "steps": 0,
        }
    for name in paths:  # warm-up: the stream's first block, allocator and kernels
        _segment(paths[name], criterion, 8)
        paths[name]["seconds"].clear()
    done = 0
    while done < steps:
        k = min(a.segment, steps - done)
        for name in paths:
            paths[name]["seconds"].append(_segment(paths[name], criterion, k))
        done += k
    loaders.close()
    b = tcfg.batch_size
    fps = {name: steps * b / sum(p["seconds"]) for name, p in paths.items()}
    pair_ratios = [m / s for m, s in zip(paths["memory"]["seconds"], paths["streamed"]["seconds"])]
    result = {
        "steps_each": steps,
        "batch_size": b,
        "segment": a.segment,
        "frames_per_second": fps,
        "ratio": fps["streamed"] / fps["memory"],
        "median_segment_ratio": statistics.median(pair_ratios),
        "soft_targets": a.soft_targets,
        "loader_workers": tcfg.loader_workers,
        "frames": len(memory),
    }
    print(
        f"training split: {len(memory):,} frames; {steps} steps of {b} frames on each path, alternating every {a.segment} steps"
    )
    print(
        f"in memory: {fps['memory']:,.0f} frames/s; streamed ({tcfg.loader_workers} loader worker): {fps['streamed']:,.0f} frames/s; "
        f"ratio {result['ratio']:.3f} (median of segment pairs {result['median_segment_ratio']:.3f})"
    )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2))


def _segment(path, criterion, steps: int) -> float:
    """``steps`` training steps on one path; their wall seconds (data wait included)."""
    model, opt = path["model"], path["opt"]
    model.train()
    t = time.perf_counter()
    for _ in range(steps):
        x, y, soft = next(path["batches"])
        opt.zero_grad()
        criterion(model(x), y, soft).backward()
        opt.step()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()

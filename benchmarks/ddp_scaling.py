#!/usr/bin/env python3
"""Data-parallel scaling: training frames/s of N torchrun processes against one, same run, for each
way of keeping the ranks in step (``train.ddp``: asr_kd.nnet.distributed).

    .venv/bin/python benchmarks/ddp_scaling.py [--exp exp] [--data data] [--corpus digits] [--config conf/default.yaml]
        [--procs 2 4] [--batch-sizes 256] [--optimizers fused] [--methods allreduce average ...]
        [--sync-every 4 16]

Needs a speech recipe up to stage 4 (alignment). For each global batch size and optimizer step
(torch's multi-tensor Adam, or the fused one: ``train.fused_optimizer``) it trains the config's
model for one epoch as a single process, then with every method (``accumulate`` and ``average``
once per ``--sync-every``) as each ``--procs`` count of torchrun processes (gloo, one thread each),
and prints frames/s (from history.json) and the scaling against the single process. Process counts
above this machine's cores are a simulation: N processes share the C cores, so each does C/N of a
core's work, and the scaling reported for N is N x (frames/s of the N processes) / (C x frames/s of
one process), i.e. the parallel efficiency measured on C cores applied to N. Also prints a
2048x2048 float32 matmul's GFLOP/s on one thread measured in the same run (the dense-algebra
ceiling of each process) and two concurrent one-thread matmuls' combined rate against one (the
ceiling of two processes on these cores). The ceiling of the training itself: ``min(N, cores)``
independent single-process trainings run at once (different seeds), their combined frames/s
against one alone (the cores' shared caches and memory bandwidth bound every method); the table's
"of ceiling" column is the N processes' frames/s over that combined rate.

``--synthetic FRAMES`` trains on seeded random frames of the recipe's shapes (40-dim features, 74
pdfs, 200-frame utterances) instead of a recipe's data: the cost of a step does not depend on the
values, and the training loop then needs only torch (a GPU machine without lhotse).
``--backend cuda`` trains on the GPU (NCCL, one GPU per process: process counts above the GPU
count are skipped) and reports the model's training FLOP rate against a bf16/fp32 matmul's on
that GPU. Writes JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import matmul_gflops, with_train  # noqa: E402

from asr_kd.nnet.distributed import SYNC_METHODS  # noqa: E402

SYNTH_FEAT_DIM, SYNTH_PDFS, SYNTH_UTT = 40, 74, 200


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", default="exp")
    ap.add_argument("--data", default="data")
    ap.add_argument("--corpus", default="digits")
    ap.add_argument("--config", default="conf/default.yaml")
    ap.add_argument("--procs", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[256])
    ap.add_argument("--optimizers", nargs="+", default=["fused"], choices=["multi-tensor", "fused"])
    ap.add_argument("--methods", nargs="+", default=list(SYNC_METHODS), choices=SYNC_METHODS)
    ap.add_argument(
        "--sync-every",
        type=int,
        nargs="+",
        default=[4, 16],
        help="batches between synchronisations for accumulate and average",
    )
    ap.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="FRAMES",
        help="train on this many seeded random frames instead of the recipe's (needs only torch)",
    )
    ap.add_argument("--backend", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--out", default="exp/benchmarks/ddp_scaling.json")
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    gpus = torch.cuda.device_count() if a.backend == "cuda" else 0
    if a.backend == "cuda" and not gpus:
        raise SystemExit("--backend cuda: no GPU visible")
    slots = gpus or cores  # what one process each can run on
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
        "PYTHONSAFEPATH": "1",
        **({} if a.backend == "cuda" else {"CUDA_VISIBLE_DEVICES": ""}),
    }
    rows, ceilings, singles = [], {}, []
    with tempfile.TemporaryDirectory() as tmp:

        def start(name: str, batch: int, opt: str, train: dict, procs: int, seed: int = 1) -> tuple:
            cfg = Path(tmp) / f"{name}.yaml"
            cfg.write_text(
                with_train(
                    Path(a.config).read_text(),
                    {"batch_size": batch, "threads": 1, "epochs": 1, "fused_optimizer": opt == "fused", **train},
                )
            )
            launcher = (
                [sys.executable]
                if procs == 1
                else [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)]
            )
            out = Path(tmp) / name
            if a.synthetic:
                cmd = [
                    *launcher,
                    str(Path(__file__).resolve()),
                    "--worker",
                    str(cfg),
                    str(out),
                    str(a.synthetic),
                    str(seed),
                ]
            else:
                cmd = [
                    *launcher,
                    "-m",
                    "asr_kd",
                    "train-dnn",
                    "--config",
                    str(cfg),
                    "--ali-dir",
                    str(Path(a.exp).resolve() / "mono"),
                    "--fbank-dir",
                    str(Path(a.data).resolve() / "fbank"),
                    "--corpus",
                    a.corpus,
                    "--seed",
                    str(seed),
                    "--out",
                    str(out),
                ]
            # the manifests' array paths are relative to the recipe folder that holds exp/ and data/
            proc = subprocess.Popen(
                cmd,
                cwd=Path(a.exp).resolve().parent if not a.synthetic else tmp,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            return proc, out

        def finish(proc, out) -> float:
            err = proc.communicate()[1]
            if proc.returncode != 0:
                raise SystemExit(err[-2000:])
            return json.loads((out / "history.json").read_text())[0]["frames_per_second"]

        def epoch_rate(name: str, batch: int, opt: str, train: dict, procs: int) -> float:
            return finish(*start(name, batch, opt, train, procs))

        for batch in a.batch_sizes:
            for opt in a.optimizers:
                one = epoch_rate(f"b{batch}_{opt}_one", batch, opt, {}, 1)
                singles.append({"global_batch": batch, "optimizer": opt, "one": one})
                for procs in sorted({min(p, slots) for p in a.procs if p > 1}):  # independent runs at once
                    runs = [start(f"b{batch}_{opt}_alone{i}", batch, opt, {}, 1, seed=1 + i) for i in range(procs)]
                    ceilings[(batch, opt, procs)] = sum(finish(*r) for r in runs)
                    print(
                        json.dumps(
                            {
                                "global_batch": batch,
                                "optimizer": opt,
                                "independent_processes": procs,
                                "combined": ceilings[(batch, opt, procs)],
                                "one": one,
                            }
                        ),
                        flush=True,
                    )
                for method in a.methods:
                    for every in a.sync_every if method in ("accumulate", "average") else [1]:
                        for procs in a.procs:
                            if gpus and procs > gpus:
                                print(f"skipped: {procs} NCCL processes need {procs} GPUs, {gpus} visible", flush=True)
                                continue
                            many = epoch_rate(
                                f"b{batch}_{opt}_{method}{every}_{procs}",
                                batch,
                                opt,
                                {"ddp": method, "sync_every": every},
                                procs,
                            )
                            ceiling = ceilings[(batch, opt, min(procs, slots))]
                            row = {
                                "global_batch": batch,
                                "optimizer": opt,
                                "method": method,
                                "sync_every": every,
                                "procs": procs,
                                "simulated": procs > slots,
                                "one": one,
                                "many": many,
                                "scaling": procs * many / (min(procs, slots) * one),
                                "of_ceiling": many / ceiling,
                                "ceiling_scaling": ceiling / one,
                            }
                            rows.append(row)
                            print(json.dumps(row), flush=True)
    where = f"{gpus} GPU(s)" if gpus else f"{cores} cores"
    print(
        "\n| batch | optimizer step | method | sync every | processes | 1 process (frames/s) | N processes (frames/s) "
        "| scaling | goal | independent processes at once | of ceiling |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        n = f"{r['procs']} (simulated on {where})" if r["simulated"] else str(r["procs"])
        goal = 1.8 if r["procs"] == 2 else 0.9 * r["procs"]
        print(
            f"| {r['global_batch']} | {r['optimizer']} | {r['method']} | {r['sync_every']} | {n} | {r['one']:,.0f} | "
            f"{r['many']:,.0f} | {r['scaling']:.2f}x | {'met' if r['scaling'] >= goal else 'not met'} ({goal:.1f}x) | "
            f"{r['ceiling_scaling']:.2f}x | {r['of_ceiling']:.0%} |"
        )
    report = {"rows": rows, "single_process": singles, "cores": cores, "gpus": gpus, "backend": a.backend}
    if a.backend == "cuda":
        report["gpu"] = gpu_rates(singles, a)
        print(json.dumps(report["gpu"]))
    else:
        report["matmul_gflops_one_thread"], report["two_matmul_processes_ratio"] = (
            one_thread_matmul(),
            two_matmuls_ratio(),
        )
        print(
            f"\none-thread 2048x2048 matmul in the same run: {report['matmul_gflops_one_thread']:.1f} GFLOP/s; two at once "
            f"on two processes: {report['two_matmul_processes_ratio']:.2f}x one"
        )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2))


def _model_cfg(config: str):
    import yaml

    from asr_kd.nnet.models import ModelConfig

    return ModelConfig(**(yaml.safe_load(Path(config).read_text()) or {}).get("model", {}))


def worker(config: str, out: str, frames: int, *, seed: int) -> None:
    """One rank of a synthetic run (under torchrun, or alone): seeded random frames of the recipe's
    shapes through the library's training loop."""
    import numpy as np
    import yaml

    from asr_kd.nnet import distributed
    from asr_kd.nnet.data import FrameData
    from asr_kd.nnet.train import TrainConfig, train_model

    distributed.init_from_env()
    g = torch.Generator().manual_seed(0)

    def frames_of(n: int) -> FrameData:
        n -= n % SYNTH_UTT
        start = torch.arange(n) // SYNTH_UTT * SYNTH_UTT
        return FrameData(
            torch.randn(n, SYNTH_FEAT_DIM, generator=g),
            torch.randint(0, SYNTH_PDFS, (n,), generator=g),
            start,
            start + SYNTH_UTT,
            [f"u{i}" for i in range(n // SYNTH_UTT)],
            np.arange(0, n + 1, SYNTH_UTT),
        )

    cfg = yaml.safe_load(Path(config).read_text())
    train_model(
        frames_of(frames),
        frames_of(max(SYNTH_UTT, frames // 20)),
        SYNTH_PDFS,
        out_dir=out,
        model_cfg=_model_cfg(config),
        cfg=TrainConfig(**cfg["train"]),
        seed=seed,
    )


def gpu_rates(singles: list, a) -> dict:
    """The model's training FLOP rate (6 x parameters per frame) at each single-process frames/s,
    against large bf16 and fp32 matmuls on the same GPU."""
    from asr_kd.nnet.models import build_model

    params = sum(p.numel() for p in build_model(_model_cfg(a.config), SYNTH_FEAT_DIM, SYNTH_PDFS).parameters())
    out = {"parameters": params, "device": torch.cuda.get_device_name(0)}
    for dtype in (torch.bfloat16, torch.float32):
        x = torch.randn(8192, 8192, device="cuda", dtype=dtype)
        x @ x
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(20):
            x @ x
        torch.cuda.synchronize()
        out[f"matmul_tflops_{str(dtype).split('.')[-1]}"] = 2 * 8192**3 * 20 / (time.perf_counter() - t) / 1e12
    out["single_process"] = [
        {
            **r,
            "training_tflops": 6 * params * r["one"] / 1e12,
            "share_of_fp32_matmul": 6 * params * r["one"] / 1e12 / out["matmul_tflops_float32"],
        }
        for r in singles
    ]
    return out


def one_thread_matmul() -> float:
    torch.set_num_threads(1)
    return matmul_gflops()


def two_matmuls_ratio() -> float:
    """Combined GFLOP/s of two one-thread matmul processes running at once, over one alone."""
    code = (
        "import torch, sys; sys.path.insert(0, %r); from train_throughput import matmul_gflops; "
        "torch.set_num_threads(1); print(matmul_gflops())" % str(Path(__file__).resolve().parent)
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    alone = float(
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    )
    both = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    return sum(float(p.communicate()[0]) for p in both) / alone


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), seed=int(sys.argv[5]))
    else:
        main()

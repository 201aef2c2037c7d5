#!/usr/bin/env python3
"""Data-parallel scaling: training frames/s of N torchrun processes against one, same run.

    .venv/bin/python benchmarks/ddp_scaling.py [--exp exp] [--data data] [--corpus digits] [--config conf/default.yaml]
        [--procs 2] [--batch-sizes 256 2048] [--optimizers multi-tensor fused]

Needs a speech recipe up to stage 4 (alignment). For each global batch size and optimizer step
(torch's multi-tensor Adam, the default, or the fused one: ``train.fused_optimizer``) it trains the
config's model for one epoch as a single process, then as ``--procs`` torchrun processes (gloo, one
thread each, each rank 1/N of every global batch), and prints both epochs' frames/s (from
history.json) and their ratio, next to a 2048x2048 float32 matmul's GFLOP/s on one thread measured
in the same run (the dense-algebra ceiling of each process). Writes JSON.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_memory import _with_train  # noqa: E402
from train_throughput import matmul_gflops  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", default="exp")
    ap.add_argument("--data", default="data")
    ap.add_argument("--corpus", default="digits")
    ap.add_argument("--config", default="conf/default.yaml")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 2048])
    ap.add_argument("--optimizers", nargs="+", default=["multi-tensor", "fused"], choices=["multi-tensor", "fused"])
    ap.add_argument("--out", default="exp/benchmarks/ddp_scaling.json")
    a = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONSAFEPATH": "1"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in a.batch_sizes:
            for opt in a.optimizers:
                cfg = Path(tmp) / f"b{batch}_{opt}.yaml"
                cfg.write_text(_with_train(Path(a.config).read_text(), {"batch_size": batch, "threads": 1, "epochs": 1,
                                                                        "fused_optimizer": opt == "fused"}))
                common = ["-m", "asr_kd", "train-dnn", "--config", str(cfg), "--ali-dir", str(Path(a.exp).resolve() / "mono"),
                          "--fbank-dir", str(Path(a.data).resolve() / "fbank"), "--corpus", a.corpus, "--seed", "1"]
                row = {"global_batch": batch, "optimizer": opt}
                for key, launcher in (("one", [sys.executable]),
                                      ("many", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                "--nproc_per_node", str(a.procs)])):
                    out = Path(tmp) / f"{cfg.stem}_{key}"
                    # the manifests' array paths are relative to the recipe folder that holds exp/ and data/
                    r = subprocess.run([*launcher, *common, "--out", str(out)], cwd=Path(a.exp).resolve().parent, env=env,
                                       capture_output=True, text=True)
                    if r.returncode != 0:
                        raise SystemExit(r.stderr[-2000:])
                    row[key] = json.loads((out / "history.json").read_text())[0]["frames_per_second"]
                row["scaling"] = row["many"] / row["one"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    mm = one_thread_matmul()
    print(f"\n| global batch | optimizer step | 1 process (frames/s) | {a.procs} processes (frames/s) | scaling |")
    print("|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['global_batch']} | {r['optimizer']} | {r['one']:,.0f} | {r['many']:,.0f} | {r['scaling']:.2f}x |")
    print(f"\ngoal >= {0.9 * a.procs:.1f}x; one-thread 2048x2048 matmul in the same run: {mm:.1f} GFLOP/s")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"rows": rows, "procs": a.procs, "matmul_gflops_one_thread": mm}, indent=2))


def one_thread_matmul() -> float:
    torch.set_num_threads(1)
    return matmul_gflops()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Data-parallel scaling: training frames/s of N torchrun processes against one, same run.

    .venv/bin/python benchmarks/ddp_scaling.py [--exp exp] [--data data] [--corpus digits] [--config conf/default.yaml] [--procs 2]

Needs a speech recipe up to stage 4 (alignment). Trains the config's model for one epoch (one
thread per process, the config's global batch size) as a single process, then as ``--procs``
torchrun processes (gloo), and prints both epochs' frames/s (from history.json), their ratio, and
a 2048x2048 float32 matmul's GFLOP/s on one thread measured in the same run (the single-thread
dense-algebra ceiling each process has).
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
from train_throughput import matmul_gflops  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", default="exp")
    ap.add_argument("--data", default="data")
    ap.add_argument("--corpus", default="digits")
    ap.add_argument("--config", default="conf/default.yaml")
    ap.add_argument("--procs", type=int, default=2)
    a = ap.parse_args()
    common = ["-m", "asr_kd", "train-dnn", "--config", str(Path(a.config).resolve()), "--ali-dir", str(Path(a.exp).resolve() / "mono"),
              "--fbank-dir", str(Path(a.data).resolve() / "fbank"), "--corpus", a.corpus, "--epochs", "1", "--seed", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    fps = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, launcher in (("1 process", [sys.executable]),
                               (f"{a.procs} processes", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                          "--nproc_per_node", str(a.procs)])):
            out = Path(tmp) / name.replace(" ", "_")
            # the manifests' array paths are relative to the recipe folder that holds exp/ and data/
            r = subprocess.run([*launcher, *common, "--out", str(out)], cwd=Path(a.exp).resolve().parent,
                               env={**env, "PYTHONPATH": str(ROOT), "PYTHONSAFEPATH": "1"}, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(r.stderr[-2000:])
            fps[name] = json.loads((out / "history.json").read_text())[0]["frames_per_second"]
            print(f"{name}: {fps[name]:,.0f} frames/s", flush=True)
    one, many = fps["1 process"], fps[f"{a.procs} processes"]
    print(f"scaling: {many / one:.2f}x with {a.procs} processes (goal >= {0.9 * a.procs:.1f}x); "
          f"one-thread 2048x2048 matmul in the same run: {one_thread_matmul():.1f} GFLOP/s")


def one_thread_matmul() -> float:
    torch.set_num_threads(1)
    return matmul_gflops()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Training throughput of the default acoustic model next to a matmul-bound figure, same run.

    .venv/bin/python benchmarks/train_throughput.py [--config conf/default.yaml] [--threads 1]

Prints frames/s for training (forward + backward + Adam) on synthetic windows of the default
shape, the model's achieved GFLOP/s (6 x parameters per frame), and a 2048x2048 fp32 matmul's
GFLOP/s measured with the same thread count; the ratio says how close training is to the
machine's dense-algebra limit.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asr_kd.nnet.models import ModelConfig, build_model  # noqa: E402
from asr_kd.utils.config import section  # noqa: E402


def with_train(config_text: str, overrides: dict) -> str:
    """A YAML config's text with ``overrides`` applied to its train section."""
    import yaml

    cfg = yaml.safe_load(config_text) or {}
    cfg.setdefault("train", {}).update(overrides)
    return yaml.safe_dump(cfg)


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="conf/default.yaml")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--num-pdfs", type=int, default=74)
    p.add_argument("--feat-dim", type=int, default=40)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = section(args.config, "model", ModelConfig)
    model = build_model(cfg, args.feat_dim, args.num_pdfs)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    window = 2 * cfg.context + 1
    x = torch.randn(args.batch_size, window, args.feat_dim)
    y = torch.randint(0, args.num_pdfs, (args.batch_size,))
    for _ in range(10):  # warm-up
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    t = time.perf_counter()
    for _ in range(args.steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    secs = time.perf_counter() - t
    fps = args.steps * args.batch_size / secs
    model_gflops = 6 * params * fps / 1e9
    mm = matmul_gflops()
    print(
        f"model: {cfg.name}, {params / 1e6:.2f}M parameters, window {window} x {args.feat_dim}, batch {args.batch_size}, threads {args.threads}"
    )
    print(f"training throughput: {fps:,.0f} frames/s ({3600 * 100 / fps:.1f} s per hour of audio per epoch)")
    print(
        f"achieved: {model_gflops:.1f} GFLOP/s; 2048x2048 matmul in the same run: {mm:.1f} GFLOP/s; ratio {model_gflops / mm:.2f}"
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Memory against corpus size, and streamed against in-memory training throughput (issue: scale out).

    .venv/bin/python benchmarks/scale_memory.py [--exp exp] [--data data] [--corpus digits] [--factors 1 4 16]

Needs a speech recipe up to stage 5 (alignment labels, the ensemble). For each factor F the
training cuts are repeated F times (new ids, same stored arrays) into a scratch alignment folder,
then, each in a fresh process whose peak RSS is read with wait4:
  - top-k soft targets (k 20) of the ensemble over the F-times corpus (``soft-targets``);
  - ``--epochs`` training epochs streamed from disk on those soft targets (``train.streaming``);
  - the same in memory (the path that loads the whole split).
Prints a table (peak memory per step and factor, growth from the smallest factor) and the frames per
second of every streamed and in-memory epoch at each factor, measured in the same run; writes JSON.
Memory: peak RSS (wait4: the process or its largest reaped child, whichever is higher) and the peak
footprint of the whole process tree (the step's RSS + its loader workers' private pages), sampled
every 0.1 s.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import with_train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_run(cmd, log, cwd) -> tuple:
    """(peak RSS MB of the child, peak footprint MB of its process tree, wall seconds); fails loudly
    with the child's log. RSS (wait4) counts one process. The footprint, sampled every 0.1 s, is
    the child's RSS plus the private pages of its descendants (the loader workers: forked, so the
    pages they share with it are counted once); unlike PSS it does not depend on what else runs."""
    t0 = time.time()
    peak_tree = 0.0
    with open(log, "w") as f:
        p = subprocess.Popen(
            cmd,
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONSAFEPATH": "1"},
        )  # this asr_kd, not one in cwd
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            tree = _tree(p.pid)
            kb = _memory_kb(tree[0], ("Rss:",)) + sum(
                _memory_kb(q, ("Private_Clean:", "Private_Dirty:")) for q in tree[1:]
            )
            peak_tree = max(peak_tree, kb / 1024)
            time.sleep(0.1)
    if status != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{Path(log).read_text()[-2000:]}")
    return usage.ru_maxrss / 1024, peak_tree, time.time() - t0


def _tree(root: int) -> list:
    """``root`` and its descendants (from /proc)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _memory_kb(pid: int, fields) -> int:
    """The sum of ``fields`` of /proc/PID/smaps_rollup (0 once the process is gone)."""
    try:
        return sum(
            int(line.split()[1])
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            if line.startswith(fields)
        )
    except OSError:
        return 0


def repeated_ali_dir(ali: Path, corpus: str, factor: int, *, out: Path, base_fraction: float = 1.0) -> Path:
    from lhotse import CutSet
    from lhotse.utils import fastcopy

    out.mkdir(parents=True, exist_ok=True)
    for f in ("pdf_counts.txt", "final.mdl", f"{corpus}_dev_cuts.jsonl.gz"):
        shutil.copy(ali / f, out / f)
    cuts = CutSet.from_file(ali / f"{corpus}_train_cuts.jsonl.gz").to_eager()
    cuts = cuts.subset(first=max(1, int(round(base_fraction * len(cuts)))))
    CutSet.from_cuts(fastcopy(c, id=f"{c.id}_r{r}") for r in range(factor) for c in cuts).to_file(
        out / f"{corpus}_train_cuts.jsonl.gz"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", default="exp")
    ap.add_argument("--data", default="data")
    ap.add_argument("--corpus", default="digits")
    ap.add_argument("--config", default="conf/default.yaml")
    ap.add_argument("--factors", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--topk", type=int, default=20)
    ap.add_argument("--base-fraction", type=float, default=1.0, help="1x = this share of the training cuts")
    ap.add_argument(
        "--epochs",
        type=int,
        default=2,
        help="epochs per training run (throughput per epoch: the first "
        "includes the loader's start, later ones are steady state)",
    )
    ap.add_argument("--modes", nargs="+", default=["streamed", "memory"], choices=["streamed", "memory"])
    ap.add_argument("--out", default="exp/benchmarks/scale_memory.json")
    a = ap.parse_args()
    exp, data = Path(a.exp).resolve(), Path(a.data).resolve()
    teachers = sorted(str(p) for p in (exp / "dnn").glob("seed*/best.pt"))
    if not teachers:
        raise SystemExit(f"no ensemble under {exp}/dnn: run the recipe to stage 5 first")
    py = [sys.executable, "-m", "asr_kd"]
    rows = []
    with tempfile.TemporaryDirectory(dir=exp) as tmp:
        tmp = Path(tmp)
        base = Path(a.config).read_text()
        for factor in a.factors:
            ali = repeated_ali_dir(
                exp / "mono", a.corpus, factor, out=tmp / f"ali_x{factor}", base_fraction=a.base_fraction
            )
            soft = tmp / f"soft_x{factor}"
            common = ["--ali-dir", str(ali), "--fbank-dir", str(data / "fbank"), "--corpus", a.corpus]
            row = {"factor": factor, "frames": None}
            row["soft_targets_mb"], row["soft_targets_tree_mb"], row["soft_targets_s"] = peak_rss_run(
                py
                + [
                    "soft-targets",
                    "--teachers",
                    *teachers,
                    *common,
                    "--temperature",
                    "2",
                    "--topk",
                    str(a.topk),
                    "--out",
                    str(soft),
                ],
                tmp / f"soft_x{factor}.log",
                exp.parent,
            )  # manifests hold paths relative to the recipe folder
            for mode in a.modes:
                cfg = tmp / f"{mode}.yaml"
                cfg.write_text(with_train(base, {"epochs": a.epochs, "streaming": mode == "streamed"}))
                out = tmp / f"{mode}_x{factor}"
                row[f"{mode}_epoch_mb"], row[f"{mode}_epoch_tree_mb"], row[f"{mode}_epoch_s"] = peak_rss_run(
                    py
                    + [
                        "train-dnn",
                        "--config",
                        str(cfg),
                        *common,
                        "--soft-targets",
                        str(soft),
                        "--temperature",
                        "2",
                        "--seed",
                        "1",
                        "--out",
                        str(out),
                    ],
                    tmp / f"{mode}_x{factor}.log",
                    exp.parent,
                )
                history = json.loads((out / "history.json").read_text())
                row[f"{mode}_frames_per_second"] = [h["frames_per_second"] for h in history]
            row["frames"] = json.loads((soft / "soft_targets.json").read_text())["num_frames"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    lo = rows[0]
    steps = ["soft_targets"] + [f"{m}_epoch" for m in a.modes]
    print("\n| factor | frames | " + " | ".join(f"{s}: RSS / tree (MB)" for s in steps) + " |")
    print("|---:|---:|" + "---:|" * len(steps))
    for r in rows:
        cells = []
        for step in steps:
            rss, tree = r[f"{step}_mb"], r[f"{step}_tree_mb"]
            cells.append(f"{rss:.0f} / {tree:.0f} ({rss / lo[step + '_mb']:.2f} / {tree / lo[step + '_tree_mb']:.2f})")
        print(f"| {r['factor']}x | {r['frames']:,} | " + " | ".join(cells) + " |")
    if len(a.modes) == 2:
        print("\n| factor | epoch | streamed (frames/s) | in memory (frames/s) | ratio |")
        print("|---:|---:|---:|---:|---:|")
        for r in rows:
            for e, (s_fps, m_fps) in enumerate(zip(r["streamed_frames_per_second"], r["memory_frames_per_second"]), 1):
                print(f"| {r['factor']}x | {e} | {s_fps:,.0f} | {m_fps:,.0f} | {s_fps / m_fps:.3f} |")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"rows": rows, "teachers": teachers, "topk": a.topk}, indent=2))


if __name__ == "__main__":
    main()

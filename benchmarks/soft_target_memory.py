#!/usr/bin/env python3
"""Peak memory of soft-target generation against corpus size (it streams over cuts).

    .venv/bin/python benchmarks/soft_target_memory.py [--exp exp] [--data data]

Needs the default recipe up to stage 5 (alignment labels and the ensemble). Runs the
soft-target writer in fresh processes on 1/8, 1/2 and all of the training cuts and prints
each one's peak resident memory (ru_maxrss) and the ratio to the smallest.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import resource, sys, json, tempfile
sys.path.insert(0, {root!r})
from pathlib import Path
from lhotse import CutSet
from asr_kd.data.features import FeatureNormalizer
from asr_kd.nnet.data import ali_cuts
from asr_kd.distill.soft_targets import write_soft_targets
cuts = ali_cuts({ali!r}, "digits", "train")
cuts = CutSet.from_cuts(list(cuts)[: {n}])
with tempfile.TemporaryDirectory() as d:
    meta = write_soft_targets(cuts, FeatureNormalizer.load({cmvn!r}), {teachers!r}, d, 2.0)
print(json.dumps({{"frames": meta["num_frames"], "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--exp", default=str(ROOT / "exp"))
    p.add_argument("--data", default=str(ROOT / "data"))
    args = p.parse_args()
    teachers = sorted(str(x) for x in Path(args.exp).glob("dnn/seed*/best.pt"))
    if not teachers:
        sys.exit("no ensemble in exp/dnn: run ./run.sh --stop-stage 5 first")
    ali = str(Path(args.exp) / "mono")
    from lhotse import CutSet

    total = len(CutSet.from_file(Path(ali) / "digits_train_cuts.jsonl.gz"))
    rows = []
    for n in (total // 8, total // 2, total):
        code = CHILD.format(
            root=str(ROOT), ali=ali, n=n, cmvn=str(Path(args.data) / "fbank" / "cmvn.npz"), teachers=teachers
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append((n, r["frames"], r["maxrss_mb"]))
    print(f"{len(teachers)} teachers; peak resident memory of soft-target generation by corpus size:")
    for n, frames, mb in rows:
        print(f"  {n:5d} cuts, {frames:7d} frames: {mb:7.1f} MB (x{mb / rows[0][2]:.2f} of the smallest)")


if __name__ == "__main__":
    main()

"""Compare result tables (JSON) of two runs, RTFs and timings aside: tools/compare_tables.py BEFORE_DIR AFTER_DIR FILE...
Exit 1 when any number differs; used to show that a refactor leaves the recipe's tables unchanged."""

import json
import sys
from pathlib import Path
import math

IGNORE = ("rtf", "seconds", "time", "frames_per_second")


def walk(a, b, path, *, diffs):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if any(x in k.lower() for x in IGNORE):
                continue
            if k not in a or k not in b:
                diffs.append(f"{path}/{k}: only in {'after' if k not in a else 'before'}")
            else:
                walk(a[k], b[k], f"{path}/{k}", diffs=diffs)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append(f"{path}: length {len(a)} vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, f"{path}[{i}]", diffs=diffs)
    elif a != b and not (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)):
        diffs.append(f"{path}: {a!r} vs {b!r}")


total = 0
for f in sys.argv[3:]:
    a = json.loads(Path(sys.argv[1], f).read_text())
    b = json.loads(Path(sys.argv[2], f).read_text())
    d = []
    walk(a, b, "", diffs=d)
    total += len(d)
    print(f"{f}: {'identical' if not d else str(len(d)) + ' differences'}")
    for x in d[:10]:
        print("   ", x)
sys.exit(1 if total else 0)

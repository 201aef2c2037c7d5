"""Compare result tables (JSON) of two runs, RTFs and timings aside:
tools/compare_tables.py [--labels-as-names] BEFORE_DIR AFTER_DIR FILE...
Exit 1 when any number differs; used to show that a refactor leaves the recipe's tables unchanged.
--labels-as-names: AFTER's rows carry a short id (``name``) and a display ``label``, BEFORE's named
rows by their display text; every id in AFTER is read as its label before comparing."""

import json
import sys
from pathlib import Path
import math

IGNORE = ("rtf", "seconds", "time", "frames_per_second", "peak_rss", "compute_ms")  # timings and memory


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


def id_labels(x, found):
    """{id: label} of every dict in x holding both a ``name`` and a ``label``."""
    if isinstance(x, dict):
        if isinstance(x.get("name"), str) and isinstance(x.get("label"), str):
            found[x["name"]] = x["label"]
        for v in x.values():
            id_labels(v, found)
    elif isinstance(x, list):
        for v in x:
            id_labels(v, found)
    return found


def as_labels(before, after, labels):
    """``after`` with every id read as its label (a string; a dict key where BEFORE has the label as
    its key, so schema keys such as ``ensemble`` stay), and its ``label`` fields dropped."""
    if isinstance(after, dict):
        before = before if isinstance(before, dict) else {}
        out = {}
        for k, v in after.items():
            if k != "label":
                key = labels[k] if k in labels and labels[k] in before and k not in before else k
                out[key] = as_labels(before.get(key), v, labels)
        return out
    if isinstance(after, list):
        before = before if isinstance(before, list) else []
        return [as_labels(before[i] if i < len(before) else None, v, labels) for i, v in enumerate(after)]
    return labels.get(after, after) if isinstance(after, str) else after


args = sys.argv[1:]
relabel = args[0] == "--labels-as-names"
args = args[1:] if relabel else args
total = 0
for f in args[2:]:
    # paths inside each run's own folder compare as the same path
    a = json.loads(Path(args[0], f).read_text().replace(str(Path(args[0]).resolve()), "<run>"))
    b = json.loads(Path(args[1], f).read_text().replace(str(Path(args[1]).resolve()), "<run>"))
    if relabel:
        b = as_labels(a, b, id_labels(b, {}))
    d = []
    walk(a, b, "", diffs=d)
    total += len(d)
    print(f"{f}: {'identical' if not d else str(len(d)) + ' differences'}")
    for x in d[:10]:
        print("   ", x)
sys.exit(1 if total else 0)

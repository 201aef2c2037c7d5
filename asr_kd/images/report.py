"""MNIST result tables in the paper's form, from the runs' ``eval.json`` and saved logits.

Layout read (written by recipes/mnist/run.sh):
  EXP/{teacher,small,distilled}/seedN/   the main table (mean ± std over seeds)
  EXP/transfer_no3/                      distilled without any 3 in the transfer set
  EXP/transfer_78/                       distilled on 7s and 8s only
  EXP/tsweep/hH_TT/                      hidden size H, temperature T
"""

import json
import logging
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from asr_kd.images.bias import choose_bias, default_grid, errors, shift_logits
from asr_kd.images.mnist import load_mnist
from asr_kd.utils.results import write_table

log = logging.getLogger(__name__)
PAPER_ERRORS = {"teacher": 67, "small": 146, "distilled": 74}
ROLE_NAMES = {
    "teacher": "teacher: 2x1200, dropout, jitter",
    "small": "small net: 2x800, no regularisation",
    "distilled": "distilled small net: 2x800, T=20",
}


def _evals(pattern_dir: Path) -> List[Dict]:
    return [json.loads(p.read_text()) for p in sorted(pattern_dir.glob("seed*/eval.json"))]


def main_table(exp, results_md=None) -> Dict:
    exp = Path(exp)
    res, lines = (
        {},
        [
            "### MNIST: test errors (out of 10,000)",
            "",
            "| model | test errors, mean ± std | seeds | paper |",
            "|---|---|---|---|",
        ],
    )
    for role in ("teacher", "small", "distilled"):
        ev = _evals(exp / role)
        if not ev:
            raise FileNotFoundError(f"no finished {role} runs under {exp / role}")
        e = np.array([x["test_errors"] for x in ev], float)
        res[role] = {"errors": e.tolist(), "mean": float(e.mean()), "std": float(e.std(ddof=1)) if len(e) > 1 else 0.0}
        lines.append(
            f"| {ROLE_NAMES[role]} | {e.mean():.1f} ± {res[role]['std']:.1f} | {len(e)} | {PAPER_ERRORS[role]} |"
        )
    t, s, d = (res[r]["mean"] for r in ("teacher", "small", "distilled"))
    res["gap_closed"] = (s - d) / (s - t) if s != t else float("nan")
    lines += [
        "",
        f"The distilled net closes {100 * res['gap_closed']:.1f}% of the gap between the small net and the "
        f"teacher (paper: {100 * (146 - 74) / (146 - 67):.1f}%; aim: at least 80%).",
        "",
    ]
    write_table(exp / "main_table", res, lines, results_md=results_md, title="mnist-main")
    return res


def _transfer(run: Path, s, classes: Sequence[int], *, grid) -> Dict:
    ev = json.loads((run / "eval.json").read_text())
    val, test = np.load(run / "valid_logits.npy"), np.load(run / "test_logits.npy")
    pick = choose_bias(val, s.y_valid, classes, grid=grid)
    after = shift_logits(test, classes, pick["delta"])
    out = {
        "run": str(run),
        "train_images": ev["train_images"],
        "classes": list(classes),
        "delta": pick["delta"],
        "valid_errors_after": pick["errors"],
        "test_errors_before": errors(test, s.y_test),
        "test_errors_after": errors(after, s.y_test),
        "test_size": int(len(s.y_test)),
    }
    for c in classes:
        m = s.y_test == c
        out[f"class{c}_right_before"] = float((test[m].argmax(-1) == c).mean())
        out[f"class{c}_right_after"] = float((after[m].argmax(-1) == c).mean())
    return out


def transfer_tables(exp, npz, results_md=None) -> Dict:
    exp, s = Path(exp), load_mnist(npz)
    res, lines = (
        {},
        ["### MNIST transfer sets (distilled 2x800 at T=20; bias chosen on validation, applied to test)", ""],
    )
    if (exp / "transfer_no3" / "eval.json").exists():
        r = res["no3"] = _transfer(exp / "transfer_no3", s, [3], grid=default_grid(0.0, 12.0))
        lines += [
            "No 3s in the transfer set:",
            "",
            "| | test errors | test 3s right | bias of class 3 |",
            "|---|---|---|---|",
            f"| before the bias change | {r['test_errors_before']} | {100 * r['class3_right_before']:.1f}% | +0 |",
            f"| after (chosen on validation) | {r['test_errors_after']} | {100 * r['class3_right_after']:.1f}% | "
            f"{r['delta']:+.1f} |",
            "| paper | 206 -> 109 | 98.6% after | +3.5 |",
            "",
        ]
    if (exp / "transfer_78" / "eval.json").exists():
        r = res["only78"] = _transfer(exp / "transfer_78", s, [7, 8], grid=default_grid(-12.0, 0.0))
        n = r["test_size"]
        lines += [
            "Only 7s and 8s in the transfer set:",
            "",
            "| | test error | bias of classes 7 and 8 |",
            "|---|---|---|",
            f"| before the bias change | {100 * r['test_errors_before'] / n:.1f}% | +0 |",
            f"| after (chosen on validation) | {100 * r['test_errors_after'] / n:.1f}% | {r['delta']:+.1f} |",
            "| paper | 47.3% -> 13.2% | -7.6 |",
            "",
        ]
    if not res:
        raise FileNotFoundError(f"no transfer runs under {exp}")
    write_table(exp / "transfer_table", res, lines, results_md=results_md, title="mnist-transfer")
    return res


def tsweep_table(exp, results_md=None, plot: bool = True) -> Dict:
    exp = Path(exp) / "tsweep"
    runs = [json.loads(p.read_text()) for p in sorted(exp.glob("*/eval.json"))]
    if not runs:
        raise FileNotFoundError(f"no temperature-sweep runs under {exp}")
    sizes = sorted({r["hidden"] for r in runs})
    temps = sorted({r["temperature"] for r in runs})
    grid = {(r["hidden"], r["temperature"]): r["test_errors"] for r in runs}
    valid = {(r["hidden"], r["temperature"]): r["valid_errors"] for r in runs}
    lines = [
        "### MNIST: distilled student size vs. temperature (test errors out of 10,000)",
        "",
        "| hidden units per layer | " + " | ".join(f"T={t:g}" for t in temps) + " |",
        "|---|" + "---|" * len(temps),
    ]
    for h in sizes:
        lines.append(f"| {h} | " + " | ".join(str(grid.get((h, t), "")) for t in temps) + " |")
    # the choice is made on validation errors, never on test (ties: the lower T)
    best = {h: min((t for t in temps if (h, t) in valid), key=lambda t: (valid[(h, t)], t)) for h in sizes}
    lines += [
        "",
        "Best temperature per size, chosen on the validation set: "
        + ", ".join(
            f"{h} units: T={best[h]:g} ({valid[(h, best[h])]} validation / {grid[(h, best[h])]} test errors)"
            for h in sizes
        )
        + " (paper: 300+ units fine at T >= 8; 30 units best at T = 2.5-4).",
        "",
    ]
    res = {
        "sizes": sizes,
        "temperatures": temps,
        "test_errors": {f"{h}_{t:g}": e for (h, t), e in grid.items()},
        "valid_errors": {f"{h}_{t:g}": e for (h, t), e in valid.items()},
        "best_temperature": {str(h): best[h] for h in sizes},
        "best_chosen_on": "validation",
    }
    if plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(5, 3.5))
            for h in sizes:
                ts = [t for t in temps if (h, t) in grid]
                ax.plot(ts, [grid[(h, t)] for t in ts], marker="o", label=f"{h} units")
            ax.set_xscale("log")
            ax.set_xlabel("temperature T")
            ax.set_ylabel("test errors (of 10,000)")
            ax.legend()
            fig.tight_layout()
            fig.savefig(exp / "tsweep.png", dpi=120)
            plt.close(fig)
            lines.insert(-1, f"Plot: `{exp / 'tsweep.png'}`.")
        except ImportError:
            log.warning("matplotlib is not installed: no temperature-sweep plot")
    write_table(exp / "tsweep_table", res, lines, results_md=results_md, title="mnist-tsweep")
    return res


def write_tables(exp, names: Sequence[str], npz=None, *, results_md=None) -> None:
    """The named tables (``main``, ``transfer``, ``tsweep``) of an MNIST experiment folder."""
    for name in names:
        if name == "main":
            main_table(exp, results_md)
        elif name == "transfer":
            transfer_tables(exp, npz, results_md)
        elif name == "tsweep":
            tsweep_table(exp, results_md)
        else:
            raise ValueError(f"unknown MNIST table {name!r}; choose main, transfer or tsweep")

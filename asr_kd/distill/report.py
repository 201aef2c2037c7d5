"""Result tables for the speech experiment (markdown + JSON), in the paper's form."""
import datetime
from pathlib import Path
from typing import Sequence

import numpy as np

from asr_kd.utils.io import write_json_atomic, write_text_atomic


def speech_table(baselines: Sequence, students: Sequence, test, out_stem, results_md=None, title: str = "") -> dict:
    from asr_kd.distill.speech import evaluate

    base = evaluate(baselines, test)
    stud = evaluate(students, test)
    b, e, s = base["single_mean"], base.get("ensemble", base["single_mean"]), stud["single_mean"]
    kept = (s - b) / (e - b) if e != b else float("nan")
    res = {"baseline": base, "student": stud, "gain_kept": kept, "num_members": len(baselines),
           "frames": len(test), "baselines": [str(p) for p in baselines], "students": [str(p) for p in students]}
    def pm(m, sd, n):
        return f"{100 * m:.2f}%" + (f" ± {100 * sd:.2f} (n={n})" if n > 1 else "")
    lines = [f"### {title}", "", f"Test frame accuracy on {len(test)} frames (pdf targets from the GMM alignment).", "",
             "| system | test frame accuracy |", "|---|---|",
             f"| baseline (single model, mean ± std over seeds) | {pm(b, base['single_std'], len(baselines))} |",
             f"| {len(baselines)}-model ensemble | {100 * e:.2f}% |",
             f"| distilled single model | {pm(s, stud['single_std'], len(students))} |", "",
             f"Share of the ensemble's gain kept by the student: {100 * kept:.1f}% (paper: over 80%).", ""]
    out_stem = Path(out_stem)
    write_json_atomic(out_stem.with_suffix(".json"), res)
    write_text_atomic(out_stem.with_suffix(".md"), "\n".join(lines))
    if results_md:
        p = Path(results_md)
        old = p.read_text() if p.is_file() else "# RESULTS\n\n"
        write_text_atomic(p, old + f"<!-- {datetime.date.today()} -->\n" + "\n".join(lines) + "\n")
    return res

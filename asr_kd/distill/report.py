"""Result tables for the speech experiment (markdown + JSON), in the paper's form."""
import datetime
from pathlib import Path
from typing import Sequence


from asr_kd.utils.io import write_json_atomic, write_text_atomic


def update_results_md(path, key: str, lines) -> None:
    """Put a table into a RESULTS.md, replacing the block of an earlier run with the same key."""
    p = Path(path)
    text = p.read_text() if p.is_file() else "# RESULTS\n\n"
    begin, end = f"<!-- begin: {key} -->", f"<!-- end: {key} -->"
    block = f"{begin}\n<!-- written {datetime.date.today()} -->\n" + "\n".join(lines) + f"\n{end}\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text + block + "\n"
    write_text_atomic(p, text)


def write_table(out_stem, res: dict, lines, results_md=None, title: str = "") -> None:
    """OUT.json (the numbers), OUT.md (the table) and the RESULTS.md block."""
    out_stem = Path(out_stem)
    write_json_atomic(out_stem.with_suffix(".json"), res)
    write_text_atomic(out_stem.with_suffix(".md"), "\n".join(lines))
    if results_md:
        update_results_md(results_md, title, lines)


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
    write_table(out_stem, res, lines, results_md, title)
    return res


def rows_table(rows, columns, out_stem, results_md=None, title: str = "", extra=None, note: str = "") -> dict:
    """Frame accuracy of named systems on named data sets.

    ``rows``: [(name, [checkpoints])] (several checkpoints: mean ± std over them);
    ``columns``: [(column name, FrameData)]; ``extra``: {row name: {column: text}} added as is.
    """
    from asr_kd.distill.speech import evaluate

    extra = extra or {}
    extra_cols = sorted({c for v in extra.values() for c in v})
    res = {"title": title, "rows": []}
    lines = [f"### {title}", "", "| system | " + " | ".join([c for c, _ in columns] + extra_cols) + " |",
             "|---|" + "---|" * (len(columns) + len(extra_cols))]
    for name, ckpts in rows:
        row = {"name": name, "checkpoints": [str(c) for c in ckpts]}
        cells = []
        for col, data in columns:
            r = evaluate(ckpts, data)
            row[col] = r
            sd = f" ± {100 * r['single_std']:.2f}" if len(ckpts) > 1 else ""
            cells.append(f"{100 * r['single_mean']:.2f}%{sd}")
        for c in extra_cols:
            row[c] = extra.get(name, {}).get(c, "")
            cells.append(str(row[c]))
        res["rows"].append(row)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if note:
        lines += ["", note]
    lines.append("")
    write_table(out_stem, res, lines, results_md, title)
    return res

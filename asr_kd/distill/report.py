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
    """(5a): baseline seeds, their ensemble and the student seeds on the test frames, with 95%
    bootstrap intervals over test utterances and paired-bootstrap comparisons (asr_kd.scoring)."""
    from asr_kd.distill.speech import evaluate, without_counts
    from asr_kd.scoring.significance import compare, fmt_accuracy, significance_lines, summarise

    base = evaluate(baselines, test)
    stud = evaluate(students, test)
    systems = {"baseline": base["counts"]["single"], "student": stud["counts"]["single"]}
    if "ensemble" in base["counts"]:
        systems["ensemble"] = base["counts"]["ensemble"]
    summary = {k: summarise(v) for k, v in systems.items()}
    pairs = [("baseline", "student")]
    if "ensemble" in systems:
        pairs = [("baseline", "ensemble"), ("baseline", "student"), ("ensemble", "student")]
    sig = compare(systems, pairs, gain_kept=("baseline", "ensemble", "student") if "ensemble" in systems else None)
    b, s = base["single_mean"], stud["single_mean"]
    e = base.get("ensemble", b)
    res = {"baseline": without_counts(base), "student": without_counts(stud), "summary": summary, "significance": sig,
           "gain_kept": sig.get("gain_kept", {}).get("share"), "num_members": len(baselines),
           "frames": len(test), "utterances": len(test.cut_ids),
           "baselines": [str(p) for p in baselines], "students": [str(p) for p in students]}
    lines = [f"### {title}", "",
             f"Test frame accuracy on {len(test)} frames of {len(test.cut_ids)} utterances (pdf targets from the GMM "
             "alignment): mean ± sample std over seeds, [95% bootstrap interval over test utterances].", "",
             "| system | test frame accuracy |", "|---|---|",
             f"| baseline (single model, {len(baselines)} seeds) | {fmt_accuracy(summary['baseline'])} |"]
    if "ensemble" in summary:
        lines.append(f"| {len(baselines)}-model ensemble | {fmt_accuracy(summary['ensemble'])} |")
    lines += [f"| distilled single model ({len(students)} seeds) | {fmt_accuracy(summary['student'])} |", ""]
    lines += significance_lines(sig, "frame error rate")
    write_table(out_stem, res, lines, results_md, title)
    return res


def rows_table(rows, columns, out_stem, results_md=None, title: str = "", extra=None, note: str = "",
               compare_pairs=()) -> dict:
    """Frame accuracy of named systems on named data sets.

    ``rows``: [(name, [checkpoints])] (several checkpoints: seeds, mean ± std over them);
    ``columns``: [(column name, FrameData)]; ``extra``: {row name: {column: text}} added as is.
    Each cell has its 95% bootstrap interval over the column's utterances; ``compare_pairs`` (row
    names A, B) are paired-bootstrap comparisons on the last column (the evaluation split).
    """
    from asr_kd.distill.speech import evaluate, without_counts
    from asr_kd.scoring.significance import compare, fmt_accuracy, significance_lines, summarise

    extra = extra or {}
    extra_cols = sorted({c for v in extra.values() for c in v})
    res = {"title": title, "rows": []}
    last = {}  # row name -> ErrorCounts on the last column
    lines = [f"### {title}", "", "Frame accuracy: mean ± sample std over seeds, [95% bootstrap interval over utterances].", "",
             "| system | " + " | ".join([c for c, _ in columns] + extra_cols) + " |",
             "|---|" + "---|" * (len(columns) + len(extra_cols))]
    for name, ckpts in rows:
        row = {"name": name, "checkpoints": [str(c) for c in ckpts]}
        cells = []
        for col, data in columns:
            r = evaluate(ckpts, data)
            summary = summarise(r["counts"]["single"])
            last[name] = r["counts"]["single"]
            row[col] = {**without_counts(r), "summary": summary}
            cells.append(fmt_accuracy(summary))
        for c in extra_cols:
            row[c] = extra.get(name, {}).get(c, "")
            cells.append(str(row[c]))
        res["rows"].append(row)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if note:
        lines += ["", note]
    lines.append("")
    if compare_pairs:
        unknown = sorted({n for p in compare_pairs for n in p} - set(last))
        if unknown:
            raise ValueError(f"--compare names rows that are not in the table: {unknown}")
        res["significance"] = compare({n: last[n] for p in compare_pairs for n in p}, list(compare_pairs))
        lines += significance_lines(res["significance"], "frame error rate")
    write_table(out_stem, res, lines, results_md, title)
    return res

"""Stages 8-11, frame accuracy (markdown + JSON) in the paper's form: (5a) baseline vs. ensemble vs.
distilled student, and frame-accuracy tables of named systems (5b-5d)."""

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from asr_kd.nnet.data import load_split
from asr_kd.nnet.evaluate import evaluate, without_arrays
from asr_kd.scoring.significance import compare, error_counts, fmt_accuracy, significance_lines, summarise
from asr_kd.utils.results import write_table


def speech_table(
    baselines: Sequence, students: Sequence, test, *, out_stem, results_md=None, title: str = "", subsets=None
) -> dict:
    """(5a): baseline seeds, their ensemble and the student seeds on the test frames, with 95%
    bootstrap intervals over test utterances and paired-bootstrap comparisons (asr_kd.scoring).
    ``subsets``: {name: utterance indices} (e.g. held-out accents) each scored and compared apart."""
    base = evaluate(baselines, test)
    stud = evaluate(students, test)
    systems = {"baseline": error_counts(base, "single"), "student": error_counts(stud, "single")}
    if "ensemble" in base["errors"]:
        systems["ensemble"] = error_counts(base, "ensemble")
    summary = {k: summarise(v) for k, v in systems.items()}
    pairs = [("baseline", "student")]
    if "ensemble" in systems:
        pairs = [("baseline", "ensemble"), ("baseline", "student"), ("ensemble", "student")]
    sig = compare(systems, pairs, gain_kept=("baseline", "ensemble", "student") if "ensemble" in systems else None)
    res = {
        "baseline": without_arrays(base),
        "student": without_arrays(stud),
        "summary": summary,
        "significance": sig,
        "gain_kept": sig.get("gain_kept", {}).get("share"),
        "num_members": len(baselines),
        "frames": len(test),
        "utterances": len(test.cut_ids),
        "baselines": [str(p) for p in baselines],
        "students": [str(p) for p in students],
    }
    lines = [
        f"### {title}",
        "",
        f"Test frame accuracy on {len(test)} frames of {len(test.cut_ids)} utterances (pdf targets from the GMM "
        "alignment): mean ± sample std over seeds, [95% bootstrap interval over test utterances].",
        "",
        "| system | test frame accuracy |",
        "|---|---|",
        f"| baseline (single model, {len(baselines)} seeds) | {fmt_accuracy(summary['baseline'])} |",
    ]
    if "ensemble" in summary:
        lines.append(f"| {len(baselines)}-model ensemble | {fmt_accuracy(summary['ensemble'])} |")
    lines += [f"| distilled single model ({len(students)} seeds) | {fmt_accuracy(summary['student'])} |", ""]
    lines += significance_lines(sig, "frame error rate")
    res["subsets"] = {}
    for name, idx in (subsets or {}).items():
        part = {k: v.subset(idx) for k, v in systems.items()}
        sub_summary = {k: summarise(v) for k, v in part.items()}
        sub_sig = compare(part, pairs, gain_kept=("baseline", "ensemble", "student") if "ensemble" in part else None)
        res["subsets"][name] = {
            "utterances": int(len(idx)),
            "summary": sub_summary,
            "significance": sub_sig,
            "gain_kept": sub_sig.get("gain_kept", {}).get("share"),
        }
        lines += [
            f"#### {name} ({len(idx)} of the {len(test.cut_ids)} test utterances)",
            "",
            "| system | test frame accuracy |",
            "|---|---|",
        ]
        lines += [
            f"| {label} | {fmt_accuracy(sub_summary[k])} |"
            for k, label in (("baseline", "baseline"), ("ensemble", "ensemble"), ("student", "distilled student"))
            if k in sub_summary
        ]
        lines += [""] + significance_lines(sub_sig, "frame error rate", brief=True)
    write_table(out_stem, res, lines, results_md=results_md, title=title)
    return res


def rows_table(
    rows,
    columns,
    out_stem,
    *,
    results_md=None,
    title: str = "",
    extra=None,
    note: str = "",
    compare_pairs=(),
    labels: Optional[Dict[str, str]] = None,
) -> dict:
    """Frame accuracy of systems on named data sets.

    ``rows``: [(id, [checkpoints])] (several checkpoints: seeds, mean ± std over them), shown by their
    ``labels`` (id -> text; default the id); ``columns``: [(column name, FrameData)]; ``extra``:
    {row id: {column: text}} added as is. Each cell has its 95% bootstrap interval over the column's
    utterances; ``compare_pairs`` (row ids A, B) are paired-bootstrap comparisons on the last column
    (the evaluation split).
    """
    extra, labels = extra or {}, labels or {}
    extra_cols = sorted({c for v in extra.values() for c in v})
    res = {"title": title, "rows": []}
    last = {}  # row name -> ErrorCounts on the last column
    lines = [
        f"### {title}",
        "",
        "Frame accuracy: mean ± sample std over seeds, [95% bootstrap interval over utterances].",
        "",
        "| system | " + " | ".join([c for c, _ in columns] + extra_cols) + " |",
        "|---|" + "---|" * (len(columns) + len(extra_cols)),
    ]
    for name, ckpts in rows:
        row = {"name": name, "label": labels.get(name, name), "checkpoints": [str(c) for c in ckpts]}
        cells = []
        for col, data in columns:
            r = evaluate(ckpts, data)
            last[name] = error_counts(r, "single")
            summary = summarise(last[name])
            row[col] = {**without_arrays(r), "summary": summary}
            cells.append(fmt_accuracy(summary))
        for c in extra_cols:
            row[c] = extra.get(name, {}).get(c, "")
            cells.append(str(row[c]))
        res["rows"].append(row)
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    if note:
        lines += ["", note]
    lines.append("")
    if compare_pairs:
        unknown = sorted({n for p in compare_pairs for n in p} - set(last))
        if unknown:
            raise ValueError(f"--compare names rows that are not in the table: {unknown}")
        res["significance"] = compare({n: last[n] for p in compare_pairs for n in p}, list(compare_pairs))
        lines += significance_lines(res["significance"], "frame error rate", labels=labels)
    write_table(out_stem, res, lines, results_md=results_md, title=title)
    return res


def frame_table(
    rows: Sequence[Tuple[str, List[str]]],
    ali_dir,
    fbank_dir,
    *,
    corpus: str,
    out_stem,
    results_md=None,
    title: str = "",
    split: str = "test",
    train_fraction: float = 0.0,
    subset_seed: int = 0,
    storage: Sequence[Tuple[str, str]] = (),
    compare_pairs: Sequence[tuple] = (),
    note: str = "",
    labels: Optional[Dict[str, str]] = None,
) -> dict:
    """``rows_table`` of (id, checkpoints) rows shown by their ``labels``: the ``split`` column (and, with ``train_fraction``, a
    training-subset column before it), a storage column for the rows ``storage`` names with a
    soft-target folder (MB per hour of audio), and ``compare_pairs`` (row ids A, B)."""
    columns = [(f"{split} frame accuracy", load_split(ali_dir, fbank_dir, corpus, split=split))]
    if train_fraction:
        subset = load_split(ali_dir, fbank_dir, corpus, split="train", fraction=train_fraction, seed=subset_seed)
        columns.insert(0, (f"train frame accuracy ({100 * train_fraction:g}% subset)", subset))
    extra = {}
    for name, d in storage:
        meta = json.loads((Path(d) / "soft_targets.json").read_text())
        extra[name] = {"soft-target storage (MB per hour of audio)": f"{meta['mb_per_hour']:.1f}"}
    return rows_table(
        rows,
        columns,
        out_stem,
        results_md=results_md,
        title=title,
        extra=extra,
        note=note,
        compare_pairs=compare_pairs,
        labels=labels,
    )

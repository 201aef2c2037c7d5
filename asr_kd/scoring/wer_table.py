"""The WER table of a decode: one row per system, its seeds pooled, with intervals and comparisons.

A *system* is a name; each of its decoded members (``decode_models`` rows of the same group) is one
training seed, or one ensemble. A row gives dev and test WER as mean ± sample std over its seeds
with the 95% bootstrap interval of the seed-mean test WER over test utterances, and the table ends
with paired-bootstrap comparisons of the named pairs (asr_kd.scoring.significance).
"""

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from asr_kd.decode.pipeline import build_graph, decode_models
from asr_kd.nnet.data import accent_subsets, load_split
from asr_kd.nnet.evaluate import evaluate, utterance_frames
from asr_kd.scoring.significance import (
    ErrorCounts,
    compare,
    fmt_accuracy,
    fmt_rate,
    mean_std,
    significance_lines,
    summarise,
)
from asr_kd.utils.results import write_table


def group_counts(members: Sequence[Dict], split: str) -> ErrorCounts:
    """Stack the per-utterance word errors of a system's members (seeds) for one split."""
    first = members[0]["counts"][split]
    for m in members[1:]:
        if m["counts"][split]["utts"] != first["utts"]:
            raise ValueError(f"{m['name']}: decoded other {split} utterances than {members[0]['name']}")
    return ErrorCounts(np.array([m["counts"][split]["errors"] for m in members]), np.array(first["words"]))


def _mean(members, key) -> float:
    return mean_std([m[key] for m in members])["mean"]


def _std(members, key) -> float:
    return mean_std([m[key] for m in members])["std"]


def wer_table(
    groups: List[Tuple[str, List[Dict]]],
    graph: Dict,
    title: str,
    *,
    compare_pairs: Sequence[Tuple[str, str]] = (),
    gain_kept: Optional[Tuple[str, str, str]] = None,
    frame_acc: Optional[Dict[str, Dict]] = None,
    subsets: Optional[Dict[str, set]] = None,
) -> Tuple[Dict, List[str]]:
    """(JSON result, markdown lines). ``groups``: [(system name, decoded members)];
    ``frame_acc``: {system name: a ``summarise`` of its test frame errors} (networks only);
    ``subsets``: {name: test utterance ids} (e.g. held-out accents), each scored and compared apart."""
    frame_acc = frame_acc or {}
    test_counts = {name: group_counts(members, "test") for name, members in groups}
    rows = []
    for name, members in groups:
        summary = summarise(test_counts[name])
        rows.append(
            {
                "name": name,
                "members": [{k: v for k, v in m.items() if k != "counts"} for m in members],
                "seeds": len(members),
                "dev_wer_mean": _mean(members, "dev_wer"),
                "dev_wer_std": _std(members, "dev_wer"),
                "test_wer": summary,
                "test_frame_acc": frame_acc.get(name),
            }
        )
    missing = [n for pair in compare_pairs for n in pair if n not in test_counts]
    if gain_kept:
        missing += [n for n in gain_kept if n not in test_counts]
    if missing:
        raise ValueError(f"--compare / --gain-kept name systems that were not decoded: {sorted(set(missing))}")
    sig = compare(test_counts, list(compare_pairs), gain_kept=gain_kept) if compare_pairs or gain_kept else None
    first = groups[0][1][0]
    n_utts, n_words = len(first["counts"]["test"]["utts"]), sum(first["counts"]["test"]["words"])
    oov = first.get("test_oov_tokens", 0)
    h = graph["hclg"]
    lines = [
        f"### {title}",
        "",
        f"LM: {graph['lm_order']}-gram "
        + (
            f"(given: {Path(graph['arpa']).name}, {graph.get('words', '?')} words in words.txt)"
            if graph["estimator"] == "given"
            else f"({graph['estimator']}) on the training transcripts"
        )
        + ", perplexity dev "
        f"{graph['perplexity']['dev']:.2f} / test {graph['perplexity']['test']:.2f}; HCLG {h['states']} states, "
        f"{h['arcs']} arcs, built in {h['seconds']:.2f} s. Test set: {n_utts} utterances, {n_words} words, "
        f"OOV rate {100 * oov / max(n_words, 1):.2f}% (OOV words count as errors). LM weight and insertion penalty "
        "chosen on dev per seed (the grid widens when the optimum is on its edge), applied to test. "
        "WER: mean ± sample std over seeds, [95% bootstrap interval of the seed mean over test utterances].",
        "",
        "| system | seeds | test frame accuracy | LM weight / ins. penalty | dev WER | test WER | "
        "test ins / del / sub (per seed) | test RTF |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, members), row in zip(groups, rows):
        acc = fmt_accuracy(row["test_frame_acc"]) if row["test_frame_acc"] else "-"
        settings = ", ".join(f"{m['best_lmwt']:g} / {m['best_wip']:g}" for m in members)
        dev = f"{100 * row['dev_wer_mean']:.2f}%" + (f" ± {100 * row['dev_wer_std']:.2f}" if len(members) > 1 else "")
        ids = " / ".join(
            f"{_mean(members, k):.1f}" if len(members) > 1 else str(members[0][k])
            for k in ("test_ins", "test_del", "test_sub")
        )
        lines.append(
            f"| {name} | {len(members)} | {acc} | {settings} | {dev} | {fmt_rate(row['test_wer'])} | {ids} | "
            f"{_mean(members, 'rtf_test'):.4f} ({members[0]['decoder']}, nj={members[0]['nj']}) |"
        )
    lines.append("")
    lines += lattice_lines(groups)
    if sig:
        lines += significance_lines(sig, "test WER")
    parts = {}
    for part, ids in (subsets or {}).items():
        idx = np.array([i for i, u in enumerate(first["counts"]["test"]["utts"]) if u in ids], dtype=np.int64)
        if not len(idx):
            continue
        counts = {name: c.subset(idx) for name, c in test_counts.items()}
        psig = compare(counts, list(compare_pairs), gain_kept=gain_kept) if compare_pairs or gain_kept else None
        parts[part] = {
            "utterances": int(len(idx)),
            "test_wer": {n: summarise(c) for n, c in counts.items()},
            "significance": psig,
        }
        lines += [f"#### {part} ({len(idx)} of the {n_utts} test utterances)", "", "| system | test WER |", "|---|---|"]
        lines += [f"| {name} | {fmt_rate(parts[part]['test_wer'][name])} |" for name, _ in groups] + [""]
        if psig:
            lines += significance_lines(psig, "test WER", brief=True)
    return {"graph": graph, "rows": rows, "significance": sig, "subsets": parts}, lines


def lattice_lines(groups) -> List[str]:
    """The lattice figures of systems decoded with ``--decoder lattice``: oracle WER, word
    confidence NCE (raw, and calibrated on dev), rescored WER with the gain's interval (means over
    seeds; the interval and p of the first seed)."""
    rows = [(name, members) for name, members in groups if all("test_oracle_wer" in m for m in members)]
    if not rows:
        return []
    rescored = any("test_wer_rescored" in m for _, members in rows for m in members)

    def mean(members, key):
        vals = [m[key] for m in members if m.get(key) is not None]
        return float(np.mean(vals)) if vals else None

    out = [
        "From the lattices (each split decoded once; the grid swept on the stored lattices): test oracle WER "
        "(the fewest errors of any lattice path), normalised cross entropy of the word confidences of test "
        "(> 0: informative; raw lattice posteriors, then calibrated on dev words)"
        + (
            ", test WER after rescoring with the larger LM (first seed's paired-bootstrap 95% interval of the "
            "gain, p)"
            if rescored
            else ""
        )
        + ".",
        "",
        "| system | test WER | test oracle WER | confidence NCE raw -> calibrated |"
        + (" rescored test WER (gain [95% CI], p) |" if rescored else ""),
        "|---|---|---|---|" + ("---|" if rescored else ""),
    ]
    for name, members in rows:
        nce = [mean(members, "test_confidence_nce"), mean(members, "test_confidence_nce_calibrated")]
        line = (
            f"| {name} | {100 * mean(members, 'test_wer'):.2f}% | {100 * mean(members, 'test_oracle_wer'):.2f}% | "
            + " -> ".join("-" if v is None else f"{v:.3f}" for v in nce)
            + " |"
        )
        if rescored:
            first = members[0]
            if "rescored_counts" in first:
                pair = compare(
                    {
                        "first pass": group_counts([first], "test"),
                        "rescored": group_counts([{**first, "counts": {"test": first["rescored_counts"]}}], "test"),
                    },
                    [("first pass", "rescored")],
                )["pairs"][0]
                first["rescore"].update(test_gain_ci95=pair["diff_ci95"], p_value=pair["p_value"])
                lo, hi = pair["diff_ci95"]
                line += (
                    f" {100 * mean(members, 'test_wer_rescored'):.2f}% ({100 * (mean(members, 'test_wer') - mean(members, 'test_wer_rescored')):+.2f} "
                    f"[{100 * lo:+.2f}, {100 * hi:+.2f}], p {pair['p_value']:.3f}) |"
                )
            else:
                line += " - |"
        out.append(line)
    return out + [""]


def group_systems(rows: Sequence[Tuple[str, List[str]]]) -> List[Tuple[str, List[Tuple[str, List[str]]]]]:
    """(name, checkpoints) rows (``asr_kd.cli.common.labelled_paths``) -> [(name, [(member label,
    checkpoints)])]. Several checkpoints in one row are an ensemble (averaged posteriors); several
    rows with the same name are seeds of one system, each decoded and tuned on its own. A member's label (its decode folder) is NAME, or for
    seeds NAME/<folder of its first checkpoint> (e.g. ``baseline/seed2``)."""
    groups: Dict[str, List[List[str]]] = {}
    for name, paths in rows:
        groups.setdefault(name, []).append(list(paths))
    out = []
    for name, members in groups.items():
        if len(members) == 1:
            out.append((name, [(name, members[0])]))
            continue
        tags = [Path(m[0]).parent.name or str(i + 1) for i, m in enumerate(members)]
        if len(set(tags)) < len(tags):
            tags = [str(i + 1) for i in range(len(members))]
        out.append((name, [(f"{name}/{t}", m) for t, m in zip(tags, members)]))
    return out


def decode_table(
    models: Sequence[Tuple[str, List[str]]],
    ali_dir,
    lang_dir,
    *,
    manifest_dir,
    fbank_dir,
    corpus: str,
    graph_dir,
    out_dir,
    title: str,
    compare_pairs: Sequence[Tuple[str, str]] = (),
    gain_kept: Optional[Tuple[str, str, str]] = None,
    lm_order: int = 2,
    arpa=None,
    decoder: str = "lattice",
    results_md=None,
    held_out_accents: Sequence[str] = (),
    **search,
) -> Tuple[Dict, List[str]]:
    """The decode stage: graph, every member of every system of ``models`` ((name, checkpoints) rows,
    ``group_systems``) decoded (tuned on dev), test frame
    accuracy of the networks, and the WER table with intervals and comparisons, written as
    ``out_dir/wer_table.{json,md}`` (and into ``results_md``)."""
    graph = build_graph(
        lang_dir, ali_dir, manifest_dir, corpus=corpus, graph_dir=graph_dir, lm_order=lm_order, arpa=arpa
    )
    systems = group_systems(models)
    flat = [m for _, members in systems for m in members]
    decoded = decode_models(
        flat,
        ali_dir,
        lang_dir,
        fbank_dir=fbank_dir,
        corpus=corpus,
        graph_dir=graph_dir,
        out_dir=out_dir,
        decoder=decoder,
        **search,
    )
    by_label = {r["name"]: r for r in decoded}
    groups = [(name, [by_label[label] for label, _ in members]) for name, members in systems]
    test = load_split(ali_dir, fbank_dir, corpus, split="test")
    frames = utterance_frames(test)
    frame_acc = {}
    for name, members in systems:  # networks only: a GMM has no posteriors here
        if all(p.endswith(".pt") for _, ckpts in members for p in ckpts):
            rows = []
            for _, ckpts in members:
                rows.append(evaluate(ckpts, test)["errors"]["ensemble" if len(ckpts) > 1 else "single"][0])
            frame_acc[name] = summarise(ErrorCounts(np.array(rows), frames))
    subsets = {
        name: {test.cut_ids[i] for i in idx}
        for name, idx in accent_subsets(
            ali_dir, corpus, "test", cut_ids=test.cut_ids, held_out=held_out_accents
        ).items()
    }
    res, lines = wer_table(
        groups, graph, title, compare_pairs=compare_pairs, gain_kept=gain_kept, frame_acc=frame_acc, subsets=subsets
    )
    write_table(Path(out_dir) / "wer_table", res, lines, results_md=results_md, title=title)
    return res, lines

"""Stage 16: GMM systems (monophone, triphone trees) side by side, and the networks trained on each one's labels.

Reads what earlier stages wrote, decodes nothing itself: per system ``<exp>/<system>/`` (timings.json:
pdfs, Gaussians, training time; alignment_report.json: boundaries and frame agreement against the
corpus's oracle phone times, where it has them; tree_info.txt) and a decode folder's wer_table.json
(its ``graph`` block: HCLG size; its rows by system id, as steps/decode_systems.sh names them: ``gmm``
and, for the label systems, ``baseline`` / ``ensemble`` / ``student`` WER with seeds), and beside it ``decode_k2/agreement.json`` when stage 14's k2 decoding ran
(the share of test utterances whose 1-best words k2 and Kaldi's decoder agree on, lowest over rows).
"""

import json
from pathlib import Path
from typing import Dict, Sequence, Tuple

from asr_kd.utils.results import write_table

GMM_ID, NETWORK_IDS = "gmm", ("baseline", "ensemble", "student")  # the decode rows read, by system id


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def system_summary(exp: Path, system: str, decode_dir: Path) -> Dict:
    d = exp / system
    timings = _load(d / "timings.json") or {}
    report = _load(d / "alignment_report.json")
    wer = _load(Path(decode_dir) / "wer_table.json")
    if wer is None:
        raise FileNotFoundError(f"{decode_dir}/wer_table.json is missing: decode system {system} first")
    oracle = None
    if report and report.get("splits", {}).get("test", {}).get("all", {}).get("utterances"):
        a = report["splits"]["test"]["all"]
        oracle = {
            "boundary_accuracy": a.get("boundary_accuracy"),
            "frame_agreement": a.get("frame_agreement"),
            "tolerance_ms": report.get("tolerance_ms"),
        }
    rows = {r["name"]: r for r in wer["rows"]}
    agreement = _load(Path(decode_dir).parent / "decode_k2" / "agreement.json")
    k2_rows = [r for r in (agreement or {}).get("rows", []) if "same_share" in r and r.get("wer_k2") is not None]
    k2 = (
        None
        if not k2_rows
        else {
            "min_same_share": min(r["same_share"] for r in k2_rows),
            "rows": len(k2_rows),
            "gmm_wer_k2": next((r["wer_k2"] for r in k2_rows if r["name"] == GMM_ID), None),
        }
    )
    gmm = rows.get(GMM_ID)
    nets = {}
    for kind in NETWORK_IDS:
        r = rows.get(kind)
        if r is None:
            continue
        nets[kind] = {
            "name": r.get("label", kind),
            "test_wer": r["test_wer"]["rate"],
            "test_wer_std": r["test_wer"].get("std"),
            "seeds": r["test_wer"].get("seeds", 1),
            "ci95": r["test_wer"].get("ci95"),
            "dev_wer": r.get("dev_wer_mean"),
        }
    return {
        "system": system,
        "num_pdfs": timings.get("num_pdfs"),
        "num_gauss": timings.get("num_gauss"),
        "train_seconds": timings.get("train_seconds"),
        "tree_leaves_before_merging": timings.get("tree_leaves_before_merging"),
        "oracle": oracle,
        "hclg": wer.get("graph", {}).get("hclg"),
        "gmm": None
        if gmm is None
        else {
            "name": gmm.get("label", GMM_ID),
            "dev_wer": gmm.get("dev_wer_mean"),
            "test_wer": gmm["test_wer"]["rate"],
            "ci95": gmm["test_wer"].get("ci95"),
        },
        "networks": nets,
        "k2": k2,
        "decode_dir": str(decode_dir),
    }


def systems_table(exp, decoded: Sequence[Tuple[str, str]], out, *, title: str, results_md=None) -> Dict:
    """``decoded``: (system, decode folder) pairs, in the order of the systems."""
    exp = Path(exp)
    systems = [system_summary(exp, s, Path(d)) for s, d in decoded]
    lines = [
        f"### {title}",
        "",
        "| system | pdfs | Gaussians | train (s) | oracle boundaries within 20 ms | oracle frame agreement | HCLG states / arcs "
        "| GMM dev WER | GMM test WER [95% CI] | k2 = Kaldi 1-best (lowest over the decodes) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in systems:
        o, h, g = s["oracle"] or {}, s["hclg"] or {}, s["gmm"] or {}
        ci = g.get("ci95")
        lines.append(
            f"| {s['system']} | {s['num_pdfs']} | {s['num_gauss']} | {s['train_seconds']} | {_pct(o.get('boundary_accuracy'))}% "
            f"| {_pct(o.get('frame_agreement'))}% | {h.get('states', '-')} / {h.get('arcs', '-')} | {_pct(g.get('dev_wer'))}% "
            f"| {_pct(g.get('test_wer'))}%"
            + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "")
            + (
                f" | {_pct(s['k2']['min_same_share'])}% ({s['k2']['rows']} decode{'' if s['k2']['rows'] == 1 else 's'}) |"
                if s["k2"]
                else " | not run |"
            )
        )
    with_nets = [s for s in systems if s["networks"]]
    if with_nets:
        lines += [
            "",
            "Networks trained on each system's labels (test WER %, mean ± std over seeds; the decode stage's settings):",
            "",
            "| labels | pdfs | baseline | ensemble | student |",
            "|---|---:|---:|---:|---:|",
        ]
        for s in with_nets:

            def cell(kind):
                n = s["networks"].get(kind)
                if not n:
                    return "-"
                return _pct(n["test_wer"]) + (
                    f" ± {100 * n['test_wer_std']:.2f} ({n['seeds']} seeds)"
                    if n["seeds"] > 1 and n["test_wer_std"] is not None
                    else ""
                )

            lines.append(
                f"| {s['system']} | {s['num_pdfs']} | {cell('baseline')} | {cell('ensemble')} | {cell('student')} |"
            )
    res = {"title": title, "systems": systems}
    write_table(out, res, lines, results_md=results_md, title=title)
    return res

"""Stage 14: do the Kaldi decoder and k2 agree? Same graph, same scaled log-likelihoods, same settings:
the share of utterances with identical 1-best words, the share with identical best paths (words
and per-frame transition-ids), both WERs, and the largest score difference over identical paths
(Kaldi's best-path log-likelihood against k2's shortest-path total score; both are graph score plus
acoustic score)."""

import json
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from asr_kd.decode.k2_decoder import decode_k2, k2_version, load_k2_graph
from asr_kd.decode.kaldi_decoder import decode
from asr_kd.decode.lattice import LATTICE_BEAM
from asr_kd.decode.search import load_decode_data
from asr_kd.decode.wer import wer_details
from asr_kd.hybrid.likelihoods import model_loglikes
from asr_kd.utils.results import write_table

log = logging.getLogger(__name__)


def compare_decoders(
    graph_path,
    tm,
    loglikes: Dict[str, np.ndarray],
    *,
    refs: Dict[str, List[str]],
    id2word: Dict[int, str],
    beam: float = 13.0,
    max_active: int = 7000,
    word_penalty: float = 0.0,
    device=None,
) -> Dict:
    frames = sum(m.shape[0] for m in loglikes.values())
    t0 = time.time()
    kaldi = decode(graph_path, tm, loglikes, beam=beam, max_active=max_active, word_penalty=word_penalty)
    t_kaldi = time.time() - t0
    graph = load_k2_graph(graph_path, word_penalty, device=device)
    word2id = {w: i for i, w in id2word.items()}
    oracle_refs = {u: [word2id.get(w, -1) for w in refs[u]] for u in loglikes}
    t0, k2_stats = time.time(), {}
    k2res = decode_k2(
        graph,
        np.asarray(tm.id2pdf_id),
        loglikes,
        search_beam=beam,
        output_beam=LATTICE_BEAM,
        max_active=max_active,
        device=device,
        oracle_refs=oracle_refs,
        stats=k2_stats,
    )
    t_k2 = time.time() - t0 - k2_stats.get("oracle_seconds", 0.0)
    same = [u for u in loglikes if kaldi[u]["words"] == k2res[u]["words"]]
    same_path = [u for u in same if list(kaldi[u]["alignment"]) == k2res[u]["alignment"]]
    diffs = [abs(kaldi[u]["log_like"] - k2res[u]["score"]) for u in same_path]
    rel = [d / max(abs(k2res[u]["score"]), 1.0) for d, u in zip(diffs, same_path)]  # Kaldi sums in float32
    hyp = {
        name: {u: [id2word[w] for w in r[u]["words"]] for u in loglikes}
        for name, r in (("kaldi", kaldi), ("k2", k2res))
    }
    wer = {name: wer_details(refs, h)["wer"] for name, h in hyp.items()}
    return {
        "utterances": len(loglikes),
        "same_words": len(same),
        "same_share": len(same) / max(len(loglikes), 1),
        "same_paths": len(same_path),
        "same_path_share": len(same_path) / max(len(loglikes), 1),
        "wer_kaldi": wer["kaldi"],
        "wer_k2": wer["k2"],
        "oracle_wer_k2": sum(r["oracle_errors"] for r in k2res.values()) / max(1, sum(map(len, oracle_refs.values()))),
        "max_score_diff": max(diffs) if diffs else float("nan"),
        "mean_score_diff": float(np.mean(diffs)) if diffs else float("nan"),
        "max_rel_score_diff": max(rel) if rel else float("nan"),
        "rtf_kaldi": t_kaldi / (frames * 0.01),
        "rtf_k2": t_k2 / (frames * 0.01),
        "k2_version": k2_version(),
        "differing": sorted(set(loglikes) - set(same)),
    }


def by_system_lines(table: Dict, rows: List[Dict], beam: float) -> List[str]:
    """The WER table's systems with the k2 WER beside the Kaldi WERs (means over each system's seeds).
    ``rows``: the agreement rows (empty when k2 did not run)."""
    by_name = {r["name"]: r for r in rows}
    beams = (
        f"the Kaldi column of the decode stage used its own beam, the other two beam {beam:g}" if rows else "k2 not run"
    )
    lines = [
        f"WER of every system with both decoders (test set; mean over seeds; {beams}):",
        "",
        "| system | seeds | Kaldi test WER (decode stage) | Kaldi test WER | k2 test WER | same 1-best words |",
        "|---|---|---|---|---|---|",
    ]
    for sys_row in table["rows"]:
        members = [m for m in sys_row["members"] if m["name"] in by_name] or sys_row["members"]
        got = [by_name[m["name"]] for m in members if m["name"] in by_name]
        kaldi13 = f"{100 * float(np.mean([m['test_wer'] for m in members])):.2f}%"  # the same seeds as the others
        seeds = (
            f"{len(members)}"
            if len(members) == len(sys_row["members"])
            else f"{len(members)} of {len(sys_row['members'])}"
        )
        if got:
            mean = lambda key: float(np.mean([g[key] for g in got]))  # noqa: E731
            cells = [
                f"{100 * mean('wer_kaldi'):.2f}%",
                f"{100 * mean('wer_k2'):.2f}%",
                f"{100 * mean('same_share'):.2f}%",
            ]
        else:
            cells = ["-", "not run", "-"]
        lines.append(f"| {sys_row.get('label', sys_row['name'])} | {seeds} | {kaldi13} | " + " | ".join(cells) + " |")
    return lines + [""]


def absent_table(decode_dir, out_stem, title: str, *, reason: str, results_md=None) -> Dict:
    """Stage 14 without k2: the WER table's systems with the k2 column marked as not run, and why."""
    table = json.loads((Path(decode_dir) / "wer_table.json").read_text())
    lines = [f"### {title}", "", f"**k2 did not run: {reason}.**", ""] + by_system_lines(table, [], 0.0)
    write_table(out_stem, {"rows": [], "absent": reason}, lines, results_md=results_md, title=title)
    return {"rows": [], "absent": reason}


def agreement_table(
    decode_dir,
    ali_dir,
    lang_dir,
    *,
    fbank_dir,
    corpus: str,
    graph_dir,
    out_stem,
    title: str,
    results_md=None,
    beam: float = 20.0,
    members: Optional[int] = None,
) -> Dict:
    """k2 vs. Kaldi on the test set, for every decoded member (seed) of every system of an earlier
    decode (``decode_dir/wer_table.json``), or its first ``members`` of each, at the LM weight and
    insertion penalty it chose on dev. Writes OUT.json / OUT.md and the RESULTS.md block; returns
    the rows."""
    table = json.loads((Path(decode_dir) / "wer_table.json").read_text())
    lang, tm, priors, splits = load_decode_data(ali_dir, lang_dir, fbank_dir, corpus=corpus, split_names=("test",))
    cuts, data = splits["test"]
    refs = {c.id: c.supervisions[0].text.split() for c in cuts}
    rows = []
    for r in (m for row in table["rows"] for m in row["members"][:members]):
        lp = model_loglikes(r["checkpoints"], splits, priors)["test"]
        ll = {c.id: lp[data.utterance(i)] / r["best_lmwt"] for i, c in enumerate(cuts)}
        res = compare_decoders(
            Path(graph_dir) / "HCLG.fst", tm, ll, refs=refs, id2word=lang.id2word, beam=beam, word_penalty=r["best_wip"]
        )
        rows.append(
            {
                "name": r["name"],
                "label": r.get("label", r["name"]),
                "lmwt": r["best_lmwt"],
                "wip": r["best_wip"],
                "oracle_wer_kaldi": r.get("test_oracle_wer"),  # the decode stage's lattices, when it made them
                **res,
            }
        )
        log.info(
            "%s: %d/%d same 1-best, WER kaldi %.2f%% k2 %.2f%%, max score diff %.2g",
            r["name"],
            res["same_words"],
            res["utterances"],
            100 * res["wer_kaldi"],
            100 * res["wer_k2"],
            res["max_score_diff"],
        )
    lines = [f"### {title}", ""] + by_system_lines(table, rows, beam)
    lines += [
        f"Per decoded model: same HCLG, same log-likelihoods, test set, LM weight and insertion penalty as tuned "
        f"on dev by the Kaldi decode; beams {beam:g}; k2 {rows[0]['k2_version'] if rows else '?'}.",
        "",
        f"Lattice oracle WER: Kaldi from the decode stage's test lattices (kaldi-decoder, lattice beam 6), "
        f"k2 from intersect_dense_pruned's (output beam {LATTICE_BEAM:g}); the fewest word errors of any path.",
        "",
        "| system | utterances | same 1-best words | same best paths | Kaldi WER | k2 WER | lattice oracle WER, "
        "Kaldi / k2 | max score diff, absolute / relative (same paths) | RTF Kaldi | RTF k2 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        kaldi_oracle = "-" if r.get("oracle_wer_kaldi") is None else f"{100 * r['oracle_wer_kaldi']:.2f}%"
        lines.append(
            f"| {r['label']} | {r['utterances']} | {100 * r['same_share']:.2f}% | {100 * r['same_path_share']:.2f}% | "
            f"{100 * r['wer_kaldi']:.2f}% | {100 * r['wer_k2']:.2f}% | {kaldi_oracle} / {100 * r['oracle_wer_k2']:.2f}% | "
            f"{r['max_score_diff']:.2g} / {r['max_rel_score_diff']:.1g} | {r['rtf_kaldi']:.4f} | {r['rtf_k2']:.4f} |"
        )
    lines.append("")
    write_table(out_stem, {"rows": rows}, lines, results_md=results_md, title=title)
    return {"rows": rows}

"""Forced alignment measured against eSpeak's oracle phone times.

Per split: the share of oracle phone boundaries (every phone's start and end) that have a
forced-alignment phone boundary within ``tolerance`` seconds, and frame-level phone agreement
(a frame's oracle phone is the one covering its centre, SIL outside all phones). Subsets of
each split are reported too (``subsets_of``): by recording condition, and test speakers with
held-out accents apart from the others, whose oracle phones may come
from eSpeak's accent-specific inventory (e.g. ``aI2``), which lowers frame agreement but not
boundary accuracy. Stop onsets are also reported excluded (see STOPS), and boundaries at word
edges (a word's first phone start or last phone end) apart from those inside words: with a small
vocabulary a phone pair that occurs inside one word only (SIX: I k) gives a flat start nothing
to place its boundary by, while word edges meet silence and other words.
"""

import logging
import re
from pathlib import Path
from typing import Dict, List

import numpy as np
from lhotse import CutSet

from asr_kd.data.manifests import WORD_ONLY
from asr_kd.gmm.labels import label_maps, phone_segments, write_pdf_stats
from asr_kd.utils.io import atomic_path, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


# eSpeak's event for a stop fires at the burst: the closure before it is counted in the
# previous phone, while an acoustic aligner (and TIMIT's convention) puts it in the stop.
STOPS = {"p", "t", "k", "b", "d", "g"}


def _boundaries(segs, skip_stop_onsets: bool = False) -> np.ndarray:
    def stop_onset(j: int) -> bool:  # phone j is a stop that starts where phone j-1 ends
        return (
            skip_stop_onsets and 0 < j < len(segs) and segs[j][0] in STOPS and abs(segs[j - 1][2] - segs[j][1]) < 1e-6
        )

    out = []
    for i, (p, s, e) in enumerate(segs):
        if not stop_onset(i):
            out.append(s)
        if not stop_onset(i + 1):
            out.append(e)
    return np.unique(np.array(out, dtype=np.float64))


_ARPABET_STRESS = re.compile(r"^(AA|AE|AH|AO|AW|AY|EH|ER|EY|IH|IY|OW|OY|UH|UW)[012]$")


def base_phone(phone: str) -> str:
    """A lang phone as the oracle names it: word-position suffix (_B _I _E _S) and ARPAbet stress
    digit removed (eSpeak's own names, e.g. "@2", are left alone)."""
    if len(phone) > 2 and phone[-2] == "_" and phone[-1] in "BIES":
        phone = phone[:-2]
    return phone[:-1] if _ARPABET_STRESS.match(phone) else phone


def score_cut(cut, maps, id2phone, *, tolerance: float, frame_shift: float) -> Dict[str, float]:
    oracle = [(a.symbol, a.start, a.end) for a in cut.supervisions[0].alignment["phone"]]
    tids = cut.load_tid_ali()
    forced = [(id2phone[p], s * frame_shift, e * frame_shift) for p, s, e in phone_segments(tids, maps)]
    forced_b = np.array([b for ph, s, e in forced if ph != "SIL" for b in (s, e)])

    def nearest(ob):
        return np.abs(ob[:, None] - forced_b[None, :]).min(1) if len(forced_b) else np.full(len(ob), np.inf)

    ob = _boundaries(oracle)
    dist = nearest(ob)
    dist_ns = nearest(_boundaries(oracle, skip_stop_onsets=True))
    word_edges = np.array([t for w in cut.supervisions[0].alignment.get("word", []) for t in (w.start, w.end)])
    at_edge = np.abs(ob[:, None] - word_edges[None, :]).min(1) < 1e-3 if len(word_edges) else np.zeros(len(ob), bool)
    ok = dist <= tolerance + 1e-9
    centres = (np.arange(len(tids)) + 0.5) * frame_shift
    oracle_frames = np.array(["SIL"] * len(tids), dtype=object)
    for p, s, e in oracle:
        oracle_frames[(centres >= s) & (centres < e)] = p
    forced_frames = np.array([base_phone(id2phone[p]) for p in maps["phone"][np.asarray(tids)]], dtype=object)
    compared = oracle_frames != WORD_ONLY
    agree = sum(f in o.split(" ") for o, f in zip(oracle_frames[compared], forced_frames[compared]))
    return {
        "boundaries": len(dist),
        "within": int(ok.sum()),
        "edge_boundaries": int(at_edge.sum()),
        "edge_within": int(ok[at_edge].sum()),
        "boundaries_ns": len(dist_ns),
        "within_ns": int((dist_ns <= tolerance + 1e-9).sum()),
        "frames": int(compared.sum()),
        "agree": int(agree),
        "mean_abs_ms": float(np.mean(np.minimum(dist, 1.0)) * 1000) if len(dist) else 0.0,
    }


SNR_LOW_DB = 5.0
SUBSETS = ("all", "seen_accents", "held_out_accents", "no_added_noise", "snr_below_5db", "reverberant")


def subsets_of(custom: Dict, held_out_accents=()) -> List[str]:
    """The subsets an utterance is also reported in, read from its supervision's custom fields:
    seen or held-out accent, and for the embedded corpus the degradation it was synthesised with
    (no added noise, SNR below 5 dB, reverberation), which shows how much of the gap to the oracle
    is the recording condition rather than the aligner."""
    out = []
    accent = custom.get("accent")
    if held_out_accents and accent is not None:
        out.append("held_out_accents" if accent in held_out_accents else "seen_accents")
    degradation = custom.get("degradation")
    if degradation:
        noise = degradation.get("noise")
        if not noise:
            out.append("no_added_noise")
        elif noise["snr_db"] < SNR_LOW_DB:
            out.append("snr_below_5db")
        if degradation.get("reverb_rt60"):
            out.append("reverberant")
    return out


def alignment_report(
    cuts_by_split: Dict[str, CutSet],
    tm,
    lang,
    *,
    out_dir,
    held_out_accents=(),
    tolerance: float = 0.02,
    frame_shift: float = 0.01,
) -> Dict:
    maps = label_maps(tm)
    report = {"tolerance_ms": tolerance * 1000, "splits": {}}
    for split, cuts in cuts_by_split.items():
        groups: Dict[str, List[Dict]] = {"all": []}
        for cut in cuts:
            if not cut.supervisions[0].alignment:
                continue
            s = score_cut(cut, maps, lang.id2phone, tolerance=tolerance, frame_shift=frame_shift)
            for name in ["all"] + subsets_of(cut.supervisions[0].custom or {}, held_out_accents):
                groups.setdefault(name, []).append(s)
        # a subset holding the whole split would repeat the "all" row
        report["splits"][split] = {
            name: _summary(groups[name])
            for name in SUBSETS
            if groups.get(name) and (name == "all" or len(groups[name]) < len(groups["all"]))
        }
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "alignment_report.json", report)
    lines = [
        f"# Forced alignment vs. eSpeak oracle (boundary tolerance {tolerance * 1000:.0f} ms)",
        "",
        "| split | subset | utterances | boundaries within tolerance | same, stop onsets excluded | at word edges | inside words | mean abs. boundary error (ms) | frame phone agreement |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for split, groups in report["splits"].items():
        for name, s in groups.items():
            lines.append(
                f"| {split} | {name} | {s['utterances']} | {100 * s['boundary_accuracy']:.1f}% | "
                f"{100 * s['boundary_accuracy_no_stop_onsets']:.1f}% | "
                f"{100 * s['boundary_accuracy_word_edges']:.1f}% | {100 * s['boundary_accuracy_inside_words']:.1f}% | "
                f"{s['mean_abs_ms']:.1f} | {100 * s['frame_agreement']:.1f}% |"
            )
    if not any(report["splits"].values()):
        lines.append("| (no split has oracle phone times: nothing to compare) | | | | | | | | |")
    write_text_atomic(out_dir / "alignment_report.md", "\n".join(lines) + "\n")
    return report


def _summary(rows: List[Dict]) -> Dict:
    b = sum(r["boundaries"] for r in rows)
    f = sum(r["frames"] for r in rows)
    b_ns = sum(r["boundaries_ns"] for r in rows)
    edge = sum(r["edge_boundaries"] for r in rows)
    edge_within = sum(r["edge_within"] for r in rows)
    return {
        "utterances": len(rows),
        "boundary_accuracy": sum(r["within"] for r in rows) / max(b, 1),
        "boundary_accuracy_word_edges": edge_within / max(edge, 1),
        "boundary_accuracy_inside_words": (sum(r["within"] for r in rows) - edge_within) / max(b - edge, 1),
        "boundary_accuracy_no_stop_onsets": sum(r["within_ns"] for r in rows) / max(b_ns, 1),
        "frame_agreement": sum(r["agree"] for r in rows) / max(f, 1),
        "mean_abs_ms": float(np.mean([r["mean_abs_ms"] for r in rows])),
    }


def example_cut(cuts, min_words: int = 3):
    """The cut to draw: the first with at least ``min_words`` words, else the one with the most words
    (isolated-word corpora have none longer than one), else None (no cuts)."""
    best = None
    for c in cuts:
        n = len(c.supervisions[0].text.split()) if c.supervisions else 0
        if n >= min_words:
            return c
        if best is None or n > best[0]:
            best = (n, c)
    return best[1] if best else None


def plot_alignment(cut, tm, lang, *, path, frame_shift: float = 0.01) -> None:
    """Spectrogram (log-mel) with the oracle and the forced phone segments underneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = label_maps(tm)
    feats = cut.load_features()
    ali = cut.supervisions[0].alignment or {}
    oracle = [(a.symbol, a.start, a.end) for a in ali.get("phone", [])]  # empty for real corpora
    forced = [
        (lang.id2phone[p], s * frame_shift, e * frame_shift) for p, s, e in phone_segments(cut.load_tid_ali(), maps)
    ]
    dur = feats.shape[0] * frame_shift
    fig, axes = plt.subplots(3, 1, figsize=(12, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1, 1]})
    axes[0].imshow(feats.T, origin="lower", aspect="auto", extent=[0, dur, 0, feats.shape[1]], cmap="magma")
    axes[0].set_ylabel("mel bin")
    axes[0].set_title(f"{cut.id}: {cut.supervisions[0].text}")
    for ax, segs, name, colour in (
        (axes[1], oracle, "eSpeak oracle" if oracle else "(no oracle)", "tab:blue"),
        (axes[2], forced, "forced (GMM)", "tab:orange"),
    ):
        for sym, s, e in segs:
            ax.axvspan(
                s, e, ymin=0.1, ymax=0.9, facecolor=colour if sym != "SIL" else "lightgrey", alpha=0.35, edgecolor="k"
            )
            ax.text((s + e) / 2, 0.5, sym, ha="center", va="center", fontsize=8)
        for sym, s, e in segs:
            axes[0].axvline(
                s,
                color=colour,
                lw=0.8,
                alpha=0.8,
                ymin=0 if colour == "tab:blue" else 0.5,
                ymax=0.5 if colour == "tab:blue" else 1,
            )
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    axes[2].set_xlabel("time (s)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def finish_alignment(ali_cuts: Dict[str, CutSet], tm, lang, *, out_dir, held_out_accents=()):
    """The tail of every alignment run: pdf statistics of the first (training) split, the report
    against the oracle and a picture of one example. Returns (pdf counts, report)."""
    out_dir = Path(out_dir)
    splits = list(ali_cuts)
    counts = write_pdf_stats(ali_cuts[splits[0]], tm, lang, out_dir=out_dir)
    report = alignment_report(ali_cuts, tm, lang, out_dir=out_dir, held_out_accents=held_out_accents)
    example = example_cut(ali_cuts[splits[-1]])
    if example is not None:
        plot_alignment(example, tm, lang, path=out_dir / "alignment_example.png")
    return counts, report

"""WER scoring as Kaldi's score_kaldi_wer.sh: edit distance per utterance (kaldialign), totals,
per-speaker figures, and Kaldi-style output files; optional token maps (e.g. TIMIT's 48 -> 39
phone folding)."""

from pathlib import Path
from typing import Dict, List

import kaldialign

from asr_kd.utils.io import write_json_atomic, write_text_atomic


def read_score_map(path) -> Dict[str, str]:
    """Lines ``FROM TO`` (or ``FROM`` alone: the token is deleted before scoring)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if parts:
            out[parts[0]] = parts[1] if len(parts) > 1 else ""
    return out


def wer_details(refs: Dict[str, List[str]], hyps: Dict[str, List[str]], speakers: Dict[str, str] = None) -> Dict:
    tot = {"ins": 0, "del": 0, "sub": 0, "ref_len": 0}
    per_spk: Dict[str, Dict[str, int]] = {}
    per_utt = {}
    for utt, ref in refs.items():
        hyp = hyps.get(utt, [])
        e = kaldialign.edit_distance(ref, hyp)
        per_utt[utt] = {
            "ref": ref,
            "hyp": hyp,
            "ins": e["ins"],
            "del": e["del"],
            "sub": e["sub"],
            "alignment": kaldialign.align(ref, hyp, "*"),
        }
        for k in tot:
            tot[k] += e[k]
        if speakers:
            s = per_spk.setdefault(speakers[utt], {"ins": 0, "del": 0, "sub": 0, "ref_len": 0})
            for k in s:
                s[k] += e[k]
    errors = tot["ins"] + tot["del"] + tot["sub"]
    res = {
        **tot,
        "errors": errors,
        "wer": errors / max(tot["ref_len"], 1),
        "utterances": len(refs),
        "sentence_errors": sum(1 for r in per_utt.values() if r["ins"] + r["del"] + r["sub"] > 0),
        "per_utt": per_utt,
    }
    res["per_speaker"] = {
        s: {**v, "wer": (v["ins"] + v["del"] + v["sub"]) / max(v["ref_len"], 1)} for s, v in per_spk.items()
    }
    return res


def write_scoring(out_dir, name: str, details: Dict) -> None:
    """Kaldi-style outputs: hyp text (utt-id words), per_utt alignments, per-speaker WER, summary."""
    out_dir = Path(out_dir)
    utts = sorted(details["per_utt"])
    write_text_atomic(
        out_dir / f"{name}.hyp.txt", "".join(f"{u} {' '.join(details['per_utt'][u]['hyp'])}\n" for u in utts)
    )
    write_text_atomic(
        out_dir / f"{name}.hyp.trn", "".join(f"{' '.join(details['per_utt'][u]['hyp'])} ({u})\n" for u in utts)
    )
    lines = []
    for u in utts:
        ali = details["per_utt"][u]["alignment"]
        lines.append(f"{u} ref  {' '.join(r for r, _ in ali)}")
        lines.append(f"{u} hyp  {' '.join(h for _, h in ali)}")
        lines.append(
            f"{u} op   {' '.join('C' if r == h else ('I' if r == '*' else ('D' if h == '*' else 'S')) for r, h in ali)}"
        )
    write_text_atomic(out_dir / f"{name}.per_utt.txt", "\n".join(lines) + "\n")
    write_text_atomic(
        out_dir / f"{name}.per_spk.txt",
        "".join(
            f"{s} {v['ref_len']} ins {v['ins']} del {v['del']} sub {v['sub']} wer {100 * v['wer']:.2f}\n"
            for s, v in sorted(details["per_speaker"].items())
        ),
    )
    summary = {k: v for k, v in details.items() if k not in ("per_utt",)}
    write_json_atomic(out_dir / f"{name}.wer.json", summary)


def utterance_counts(details: Dict) -> Dict[str, List]:
    """Per utterance (sorted ids): word errors and reference words, for the significance tests."""
    utts = sorted(details["per_utt"])
    pu = details["per_utt"]
    return {
        "utts": utts,
        "errors": [pu[u]["ins"] + pu[u]["del"] + pu[u]["sub"] for u in utts],
        "words": [len(pu[u]["ref"]) for u in utts],
    }

"""Stage 12, which alignment gives the better DNN: alignments compared by their labels and by the DNNs they train.

Each row is an alignment folder (``final.mdl``, ``pdf_counts.txt``, test cuts, ``alignment_report.json``)
and the checkpoints of DNNs trained on its labels, one per seed. Per row:

* the alignment's own figures against the corpus's oracle phone times (the embedded corpus, TIMIT),
  when the report has them;
* per DNN, the share of test frames whose predicted pdf belongs to the oracle's phone (a measure that
  does not depend on which alignment trained the DNN);
* per DNN, with a decoding graph, word error rate: the LM weight and insertion penalty chosen on dev,
  test decoded with them, each DNN over the priors of its own alignment. This is the yardstick that
  needs no oracle, as Kaldi compares alignments by the WER of the systems they train.

Decision: a row's several checkpoints are seeds (mean ± sample std over them), not an ensemble; the
rows should use the same seeds so that only the labels differ. Every row shares one HCLG, built from
the first row's transition model: realignment and the oracle-trained reference keep the GMM's tree
and topology, so their transition-ids are the same (checked).
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from lhotse import CutSet

from asr_kd.data.features import FeatureNormalizer
from asr_kd.decode.search import build_graph, load_decode_splits
from asr_kd.stages.decode import decode_models
from asr_kd.gmm.mono import GmmAligner
from asr_kd.hybrid.likelihoods import dnn_logposteriors
from asr_kd.nnet.checkpoint import load_model
from asr_kd.nnet.data import load_frames
from asr_kd.scoring.significance import compare, mean_std, pair_sentence, summarise
from asr_kd.utils.results import write_table
from asr_kd.stages.decode import group_counts

log = logging.getLogger(__name__)


@dataclass
class AlignmentRow:
    """A row of the alignment table: ``name`` its short id (JSON key, decode folder prefix),
    ``label`` the text the table shows (default: the id)."""

    name: str
    ali_dir: Path
    checkpoints: List[str]
    label: str = ""

    def __post_init__(self):
        self.label = self.label or self.name


@dataclass
class DecodeSettings:
    """Where and how to decode (the options of ``asr_kd decode``)."""

    lang_dir: str
    manifest_dir: str
    graph_dir: str
    lm_order: int = 2
    arpa: Optional[str] = None
    lmwts: Sequence[float] = (5, 7, 10, 14, 20)
    penalties: Sequence[float] = (0.0, 0.5, 1.0)
    beam: float = 13.0
    max_active: int = 7000
    nj: int = 1
    cmd: str = "local"
    score_map: Optional[Dict[str, str]] = field(default=None, repr=False)
    decoder: str = "lattice"
    lm_tuning: str = "each"  # shared: one point for a row's seeds (``decode_models``)


def _pm(s: Optional[Dict], digits: int = 2) -> str:
    if s is None:
        return "-"
    out = f"{100 * s['mean']:.{digits}f}%"
    out += f" ± {100 * s['std']:.{digits}f}" if s["n"] > 1 else ""
    if "ci95" in s:
        out += f" [{100 * s['ci95'][0]:.{digits}f}, {100 * s['ci95'][1]:.{digits}f}]"
    return out


def _oracle_report(ali_dir: Path) -> Optional[Dict]:
    path = ali_dir / "alignment_report.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("splits", {}).get("test", {}).get("all")


def _same_transition_ids(a: Path, b: Path, lang_dir) -> bool:
    def ids(d):
        return list(GmmAligner.load(d / "final.mdl", lang_dir).tm.id2pdf_id)

    return ids(a) == ids(b)


def oracle_phone_accuracy(
    model_paths: Sequence, cuts: CutSet, normalizer: FeatureNormalizer, *, pdf_to_phone: Dict[int, str]
) -> List[float]:
    """Per model: the share of frames whose most likely pdf belongs to the phone that eSpeak's
    oracle puts at the frame centre (SIL outside the oracle's phones). It does not depend on which
    alignment trained the model, so it compares alignments by the DNNs they give. The frames and
    the oracle labels are read once for all models."""
    data = load_frames(cuts, normalizer, with_labels=False)
    oracle = np.array(["SIL"] * len(data), dtype=object)
    for i, cut in enumerate(cuts):
        sl = data.utterance(i)
        centres = (np.arange(sl.stop - sl.start) + 0.5) * 0.01
        lab = oracle[sl]  # a view: filled in place
        for a in cut.supervisions[0].alignment["phone"]:
            lab[(centres >= a.start) & (centres < a.end)] = a.symbol
    pdf_phone = np.array([pdf_to_phone[p] for p in range(max(pdf_to_phone) + 1)], dtype=object)
    out = []
    for path in model_paths:
        pred = dnn_logposteriors([load_model(path)], data).argmax(-1).numpy()
        out.append(float((pdf_phone[pred] == oracle).sum()) / max(len(oracle), 1))
    return out


def compare_alignments(
    rows: Sequence[AlignmentRow], fbank_dir, corpus: str, *, out_dir, decode: Optional[DecodeSettings] = None
) -> List[Dict]:
    """One result dict per row (see the module docstring); decoding output goes under ``out_dir``."""
    normalizer = FeatureNormalizer.of_features(fbank_dir)
    if decode is not None:
        build_graph(
            decode.lang_dir,
            rows[0].ali_dir,
            decode.manifest_dir,
            corpus=corpus,
            graph_dir=decode.graph_dir,
            lm_order=decode.lm_order,
            arpa=decode.arpa,
        )
        decode_splits = load_decode_splits(fbank_dir, corpus)  # the same frames for every row
    results, counts = [], {}
    for i, row in enumerate(rows):
        res = {
            "name": row.name,
            "label": row.label,
            "ali_dir": str(row.ali_dir),
            "checkpoints": list(row.checkpoints),
            "oracle": _oracle_report(row.ali_dir),
        }
        cuts = CutSet.from_file(row.ali_dir / f"{corpus}_test_cuts.jsonl.gz").to_eager()
        if all((c.supervisions[0].alignment or {}).get("phone") for c in cuts):
            pdf2phone = {
                int(a): b
                for a, b in (line.split() for line in (row.ali_dir / "pdf_to_phone.txt").read_text().splitlines())
            }
            res["dnn_oracle_phone_accuracy"] = mean_std(
                oracle_phone_accuracy(row.checkpoints, cuts, normalizer, pdf_to_phone=pdf2phone)
            )
        if decode is not None:
            if i > 0 and not _same_transition_ids(rows[0].ali_dir, row.ali_dir, decode.lang_dir):
                raise ValueError(
                    f"{row.ali_dir}: its transition model differs from {rows[0].ali_dir}'s, so the shared graph does not fit it"
                )
            dec = decode_models(
                [(f"row{i}_seed{k}", [c]) for k, c in enumerate(row.checkpoints)],
                row.ali_dir,
                decode.lang_dir,
                fbank_dir=fbank_dir,
                corpus=corpus,
                graph_dir=decode.graph_dir,
                out_dir=out_dir,
                lmwts=decode.lmwts,
                penalties=decode.penalties,
                beam=decode.beam,
                max_active=decode.max_active,
                nj=decode.nj,
                cmd=decode.cmd,
                score_map=decode.score_map,
                decoder=decode.decoder,
                lm_tuning=decode.lm_tuning,
                splits=decode_splits,
            )
            counts[row.name] = group_counts(dec, "test")
            res["decode"] = [{k: v for k, v in d.items() if k != "counts"} for d in dec]
            res["dev_wer"] = mean_std([d["dev_wer"] for d in dec])
            res["test_wer"] = mean_std([d["test_wer"] for d in dec])
            res["test_wer"]["ci95"] = summarise(counts[row.name])["ci95"]
        log.info("%s: %s", row.name, {k: v for k, v in res.items() if k in ("dnn_oracle_phone_accuracy", "test_wer")})
        results.append(res)
    if len(counts) > 1:  # every row against the first (paired over test utterances and seeds)
        first = rows[0].name
        sig = compare(counts, [(first, r.name) for r in rows[1:]])
        for res, p in zip(results[1:], sig["pairs"]):
            res["test_wer_vs_first"] = p
    return results


def alignment_table_lines(results: Sequence[Dict], title: str) -> List[str]:
    n = max(len(r["checkpoints"]) for r in results)
    seeds = f"mean ± std over {n} seeds" if n > 1 else "one seed"
    lines = [
        f"### {title}",
        "",
        "| alignment | test boundaries within 20 ms | at word edges | inside words | test frame phone agreement "
        f"| DNN trained on it: test frames whose predicted pdf is the oracle's phone ({seeds}) | DNN: dev WER | DNN: test WER |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        o = r["oracle"]
        cells = (
            ["-"] * 4
            if o is None
            else [
                f"{100 * o[k]:.1f}%"
                for k in (
                    "boundary_accuracy",
                    "boundary_accuracy_word_edges",
                    "boundary_accuracy_inside_words",
                    "frame_agreement",
                )
            ]
        )
        lines.append(
            f"| {r['label']} | " + " | ".join(cells) + f" | {_pm(r.get('dnn_oracle_phone_accuracy'))} | "
            f"{_pm(r.get('dev_wer'))} | {_pm(r.get('test_wer'))} |"
        )
    lines += [
        "",
        "Boundaries and agreement: the alignment against the oracle phone times (- where the corpus has "
        "none). WER: each DNN over its own alignment's priors, LM weight and insertion penalty chosen on dev; "
        "mean ± sample std over seeds, [95% bootstrap interval of the seed mean over test utterances].",
        "",
    ]
    pairs = [r["test_wer_vs_first"] for r in results if "test_wer_vs_first" in r]
    if pairs:
        lines += [
            "Test WER against the first row (paired bootstrap over test utterances and seeds): "
            + "; ".join(pair_sentence(p, "test WER", labels={r["name"]: r["label"] for r in results}) for p in pairs)
            + ".",
            "",
        ]
    return lines


def alignment_table(
    rows: Sequence[AlignmentRow],
    fbank_dir,
    corpus: str,
    *,
    out_stem,
    title: str,
    decode: Optional[DecodeSettings] = None,
    results_md=None,
) -> List[Dict]:
    """``compare_alignments`` (decodes under ``OUT_decode``) written as OUT.json / OUT.md and the
    RESULTS.md block."""
    results = compare_alignments(rows, fbank_dir, corpus, out_dir=f"{out_stem}_decode", decode=decode)
    write_table(out_stem, results, alignment_table_lines(results, title), results_md=results_md, title=title)
    return results

"""The alignment stage as one call: GMM features -> monophone training -> alignment of every
split -> labels stored with lhotse -> pdf statistics -> report against the oracle.

Resumable: the trained model (``<exp>/final.mdl``) and each split's labels are kept once
written; a rerun loads them instead of redoing the work.
"""
import json
import logging
import time
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
from lhotse import CutSet

from asr_kd.align.gmm_features import gmm_features
from asr_kd.align.labels import store_alignments, write_pdf_stats
from asr_kd.align.mono import MonoConfig, MonophoneAligner
from asr_kd.data.features import FeatureNormalizer, feature_cuts_path
from asr_kd.utils.io import fingerprint, is_done, mark_done, write_json_atomic

log = logging.getLogger(__name__)


def load_gmm_inputs(cuts: CutSet, normalizer: FeatureNormalizer, cfg: MonoConfig):
    """GMM features, transcripts and per-frame log energy (mean log-mel) by cut id."""
    feats, texts, energy = {}, {}, {}
    for cut in cuts:
        fbank = cut.load_features()
        feats[cut.id] = gmm_features(normalizer(fbank, cut.supervisions[0].speaker), cfg.num_cepstra, cfg.use_deltas,
                                     cfg.utterance_cmvn)
        texts[cut.id] = cut.supervisions[0].text
        energy[cut.id] = fbank.mean(axis=1)
    return feats, texts, energy


def train_and_align(fbank_dir, corpus: str, splits: Sequence[str], lang_dir, exp_dir, cfg: MonoConfig,
                    nj: int = 1, held_out_accents: Sequence[str] = (), cmvn_mode=None) -> Dict:
    import kaldi_hmm_gmm  # noqa: F401  (import order: before kaldifst)

    from asr_kd.align.report import alignment_report, plot_alignment

    fbank_dir, exp_dir = Path(fbank_dir), Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    normalizer = FeatureNormalizer.load(fbank_dir / "cmvn.npz", mode=cmvn_mode)
    cuts = {s: CutSet.from_file(feature_cuts_path(fbank_dir, corpus, s)) for s in splits}
    t0 = time.time()
    feats, texts, energy = {}, {}, {}
    for s in splits:
        f, t, e = load_gmm_inputs(cuts[s], normalizer, cfg)
        feats.update(f)
        texts.update(t)
        energy.update(e)
    log.info("GMM features for %d cuts (%d-dim) in %.1f s", len(feats), next(iter(feats.values())).shape[1], time.time() - t0)

    key = fingerprint({"cfg": cfg.__dict__, "train": sorted(c.id for c in cuts[splits[0]]),
                       "lang": (Path(lang_dir) / "phones.txt").read_text()})
    model_path = exp_dir / "final.mdl"
    if is_done(exp_dir, key) and model_path.is_file():
        log.info("%s is trained; loading it", model_path)
        aligner = MonophoneAligner.load(model_path, lang_dir, nj)
        aligner.set_data(feats, texts)
        timings = json.loads((exp_dir / "timings.json").read_text())
    else:
        aligner = MonophoneAligner(lang_dir, cfg, nj)
        aligner.set_data(feats, texts)
        t_train = time.time()
        history = aligner.train([c.id for c in cuts[splits[0]]], log_path=exp_dir / "train_history.json",
                                log_energy=energy)
        aligner.save(model_path)
        em = [h for h in history[1:]]
        realign = [h["align_seconds"] for h in em if h["align"] == "viterbi"]
        timings = {"train_seconds": round(time.time() - t_train, 2),
                   "mean_update_seconds_per_iter": round(float(np.mean([h["update_seconds"] for h in em])), 3),
                   "mean_align_seconds_per_pass": round(float(np.mean(realign)), 3) if realign else None,
                   "num_pdfs": aligner.tm.num_pdfs, "num_gauss": aligner.am.num_gauss, "nj": nj}
        write_json_atomic(exp_dir / "timings.json", timings)
        mark_done(exp_dir, key)

    ali_cuts, failures = {}, {}
    for s in splits:
        out_name = f"{corpus}_{s}"
        split_key = key + ":" + s
        marker_dir = exp_dir / f".ali_{s}"
        if is_done(marker_dir, split_key) and (exp_dir / f"{out_name}_cuts.jsonl.gz").is_file():
            ali_cuts[s] = CutSet.from_file(exp_dir / f"{out_name}_cuts.jsonl.gz")
            failures[s] = [l for l in (exp_dir / f"{out_name}_failed.txt").read_text().split()]
            continue
        t_ali = time.time()
        res = aligner.align([c.id for c in cuts[s]])
        log.info("aligned %s: %d ok, %d retried, %d failed in %.1f s", s, len(res.alignments), len(res.retried),
                 len(res.failed), time.time() - t_ali)
        ali_cuts[s] = store_alignments(cuts[s], res.alignments, aligner.tm, exp_dir, out_name)
        failures[s] = res.failed
        mark_done(marker_dir, split_key)
    aligner.close()

    counts = write_pdf_stats(ali_cuts[splits[0]], aligner.tm, aligner.lang, exp_dir)
    occupied = int((counts > 0).sum())
    if occupied < len(counts):
        log.warning("%d of %d pdfs have no training frames", len(counts) - occupied, len(counts))
    report = alignment_report(ali_cuts, aligner.tm, aligner.lang, exp_dir, held_out_accents)
    example = next(c for c in ali_cuts[splits[-1]] if len(c.supervisions[0].text.split()) >= 3) if len(ali_cuts[splits[-1]]) else None
    if example is not None:
        plot_alignment(example, aligner.tm, aligner.lang, exp_dir / "alignment_example.png")
    summary = {"timings": timings, "num_pdfs": int(len(counts)), "pdfs_with_frames": occupied,
               "failed": {s: len(f) for s, f in failures.items()}, "report": report["splits"]}
    write_json_atomic(exp_dir / "summary.json", summary)
    for s, groups in report["splits"].items():
        for name, r in groups.items():
            log.info("%s/%s: %.1f%% of oracle boundaries within %.0f ms, frame phone agreement %.1f%%", s, name,
                     100 * r["boundary_accuracy"], report["tolerance_ms"], 100 * r["frame_agreement"])
    return summary

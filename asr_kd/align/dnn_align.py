"""Realignment with trained DNNs (as Kaldi's align_nnet): the GMM's training graphs and
transition model, with hybrid pseudo log-likelihoods from the DNN(s) instead of the GMM.

    loglik[t, pdf] = acoustic_scale * (log p(pdf | x_t) - log prior(pdf))

with priors from the alignment's pdf counts; several models are combined by averaging their
posteriors. The graph's input labels are transition-ids, so the decodable gets one column per
transition-id (``loglik[:, id2pdf[1:]]``: DecodableCtc reads column ``ilabel - 1``).

Also: the label-independent measure used to compare alignments by the DNNs they give, the
share of test frames whose predicted pdf belongs to the oracle's phone.
"""
import logging
import pickle
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
from lhotse import CutSet

from asr_kd.align.labels import read_pdf_counts, store_alignments, write_pdf_stats
from asr_kd.align.mono import MonophoneAligner, _graph, _worker_init
from asr_kd.data.features import FeatureNormalizer, feature_cuts_path
from asr_kd.nnet.data import load_frames
from asr_kd.nnet.train import load_model, predict_logits
from asr_kd.utils.io import dir_digest, file_digest, fingerprint, kept_summary, write_json_atomic

log = logging.getLogger(__name__)


def log_priors(pdf_counts: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    p = pdf_counts.astype(np.float64) / max(1, pdf_counts.sum())
    return np.log(np.maximum(p, floor)).astype(np.float32)


def dnn_logposteriors(models, data) -> torch.Tensor:
    """log of the mean posterior of ``models`` on every frame of ``data``."""
    logits = torch.stack([predict_logits(m, data) for m in models])
    return torch.log_softmax(logits, -1).exp().mean(0).clamp_min(1e-30).log()


def realign(model_paths: Sequence, gmm_dir, lang_dir, fbank_dir, corpus: str, splits: Sequence[str], out_dir,
            acoustic_scale: float = 0.1, beam: float = 10.0, retry_beam: float = 40.0,
            held_out_accents: Sequence[str] = ()) -> Dict:
    from asr_kd.align.report import alignment_report, example_cut, plot_alignment

    gmm_dir, out_dir = Path(gmm_dir), Path(out_dir)
    normalizer = FeatureNormalizer.load(Path(fbank_dir) / "cmvn.npz")
    # a rerun keeps a realignment made from the same models, GMM, lang, features and settings
    key = fingerprint({"models": [file_digest(p) for p in model_paths], "gmm": file_digest(gmm_dir / "final.mdl"),
                       "pdf_counts": file_digest(gmm_dir / "pdf_counts.txt"), "lang": dir_digest(lang_dir),
                       "cmvn": normalizer.fingerprint(),
                       "cuts": {s: file_digest(feature_cuts_path(fbank_dir, corpus, s)) for s in splits},
                       "settings": [acoustic_scale, beam, retry_beam, list(held_out_accents)]})
    kept = kept_summary(out_dir / "summary.json", key)
    if kept is not None:
        log.info("%s: realigned before with these models and settings; keeping it", out_dir)
        return kept
    aligner = MonophoneAligner.load(gmm_dir / "final.mdl", lang_dir, nj=1)
    tm = aligner.tm
    priors = log_priors(read_pdf_counts(gmm_dir / "pdf_counts.txt"))
    models = [load_model(p) for p in model_paths]
    ali_cuts, summary = {}, {"failed": {}, "retried": {}, "seconds": {}}
    for split in splits:
        t0 = time.time()
        cuts = CutSet.from_file(feature_cuts_path(fbank_dir, corpus, split)).to_eager()
        data = load_frames(cuts, normalizer, with_labels=False)
        loglik = ((dnn_logposteriors(models, data).numpy() - priors) * acoustic_scale).astype(np.float32)
        alignments, failed, retried = align_with_loglikes(
            aligner, cuts, {c.id: loglik[data.utterance(i)] for i, c in enumerate(cuts)}, acoustic_scale, beam, retry_beam)
        if failed:
            log.warning("DNN realignment failed for %d %s utterance(s): %s", len(failed), split, ", ".join(failed[:20]))
        ali_cuts[split] = store_alignments(cuts, alignments, tm, out_dir, f"{corpus}_{split}")
        summary["failed"][split], summary["retried"][split] = len(failed), len(retried)
        summary["seconds"][split] = round(time.time() - t0, 2)
        log.info("realigned %s with %d DNN(s): %d ok, %d failed, %.1f s", split, len(models), len(alignments), len(failed), time.time() - t0)
    counts = write_pdf_stats(ali_cuts[splits[0]], tm, aligner.lang, out_dir)
    report = alignment_report(ali_cuts, tm, aligner.lang, out_dir, held_out_accents)
    example = example_cut(ali_cuts[splits[-1]])
    if example is not None:
        plot_alignment(example, tm, aligner.lang, out_dir / "alignment_example.png")
    # downstream stages load the GMM (transition model) from the alignment folder
    (out_dir / "final.mdl").write_bytes((gmm_dir / "final.mdl").read_bytes())
    summary.update({"models": [str(p) for p in model_paths], "num_pdfs": int(len(counts)), "report": report["splits"], "key": key})
    write_json_atomic(out_dir / "summary.json", summary)
    return summary


def align_with_loglikes(aligner: MonophoneAligner, cuts, loglikes: Dict[str, np.ndarray], acoustic_scale: float = 0.1,
                        beam: float = 10.0, retry_beam: float = 40.0):
    """Forced alignment of ``cuts`` with per-frame pdf log-likelihoods (already scaled), through the
    aligner's training graphs and transition model. Returns (alignments, failed ids, retried ids)."""
    import kaldi_hmm_gmm as khg

    from asr_kd.align import mono

    tm = aligner.tm
    id2pdf = np.asarray(tm.id2pdf_id)
    if mono._W.get("lang_dir") != str(aligner.lang_dir):  # graphs compiled in this process (the GMM's compiler)
        _worker_init(aligner.lang_dir, pickle.dumps(tm), pickle.dumps(aligner.tree))
    cfg = khg.AlignConfig()
    cfg.beam, cfg.retry_beam, cfg.careful = beam, retry_beam, False
    alignments, failed, retried = {}, [], []
    for cut in cuts:
        mono._DATA["texts"][cut.id] = cut.supervisions[0].text
        fst = _graph(cut.id).copy()
        khg.add_transition_probs(trans_model=tm, transition_scale=1.0, self_loop_scale=0.1, fst=fst)
        mat = np.ascontiguousarray(loglikes[cut.id][:, id2pdf[1:]], dtype=np.float32)  # one column per transition-id
        done, err, ret, _, _, ali, _ = khg.align_utterance_wrapper(
            config=cfg, utt=cut.id, acoustic_scale=acoustic_scale, fst=fst, decodable=khg.DecodableCtc(mat),
            num_done=0, num_error=0, num_retried=0, tot_like=0.0, frame_count=0)
        if done == 1 and err == 0 and len(ali) == cut.num_frames:
            alignments[cut.id] = list(ali)
        else:
            failed.append(cut.id)
        if ret:
            retried.append(cut.id)
    return alignments, failed, retried


def oracle_phone_accuracy(model_paths: Sequence, cuts: CutSet, normalizer: FeatureNormalizer, pdf_to_phone: Dict[int, str]) -> List[float]:
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

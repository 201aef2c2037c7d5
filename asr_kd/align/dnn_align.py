"""Realignment with trained DNNs (as Kaldi's align_nnet): the GMM's training graphs and
transition model, with hybrid pseudo log-likelihoods from the DNN(s) instead of the GMM.

    loglik[t, pdf] = acoustic_scale * (log p(pdf | x_t) - log prior(pdf))

with priors from the alignment's pdf counts; several models are combined by averaging their
posteriors (asr_kd.hybrid). The graph's input labels are transition-ids, so the decodable gets one
column per transition-id (``loglik[:, id2pdf[1:]]``: DecodableCtc reads column ``ilabel - 1``).
"""

import logging
import shutil
import time
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
from lhotse import CutSet

from asr_kd.align.report import finish_alignment
from asr_kd.data.features import FeatureNormalizer, feature_cuts_path
from asr_kd.gmm.labels import store_alignments
from asr_kd.gmm.graphs import align_utterance
from asr_kd.gmm.mono import GmmAligner
from asr_kd.hybrid.likelihoods import alignment_log_priors, dnn_logposteriors
from asr_kd.kaldi import khg
from asr_kd.nnet.checkpoint import load_model
from asr_kd.nnet.data import load_frames
from asr_kd.utils.device import torch_device
from asr_kd.utils.io import write_json_atomic
from asr_kd.utils.made_from import write_made_from
from asr_kd.utils.validity import dir_digest, file_digest, fingerprint, kept_summary

log = logging.getLogger(__name__)


def realign(
    model_paths: Sequence,
    gmm_dir,
    lang_dir,
    *,
    fbank_dir,
    corpus: str,
    splits: Sequence[str],
    out_dir,
    acoustic_scale: float = 0.1,
    beam: float = 10.0,
    retry_beam: float = 40.0,
    held_out_accents: Sequence[str] = (),
) -> Dict:
    gmm_dir, out_dir = Path(gmm_dir), Path(out_dir)
    write_made_from(out_dir, {"fbank_dir": fbank_dir, "lang": lang_dir}, {"corpus": corpus})
    normalizer = FeatureNormalizer.of_features(fbank_dir)
    # a rerun keeps a realignment made from the same models, GMM, lang, features and settings
    key = fingerprint(
        {
            "models": [file_digest(p) for p in model_paths],
            "gmm": file_digest(gmm_dir / "final.mdl"),
            "pdf_counts": file_digest(gmm_dir / "pdf_counts.txt"),
            "lang": dir_digest(lang_dir),
            "cmvn": normalizer.fingerprint(),
            "cuts": {s: file_digest(feature_cuts_path(fbank_dir, corpus, s)) for s in splits},
            "settings": [acoustic_scale, beam, retry_beam, list(held_out_accents)],
        }
    )
    kept = kept_summary(out_dir / "summary.json", key)
    if kept is not None:
        log.info("%s: realigned before with these models and settings; keeping it", out_dir)
        return kept
    aligner = GmmAligner.load(gmm_dir / "final.mdl", lang_dir, nj=1)
    tm = aligner.tm
    priors = alignment_log_priors(gmm_dir)
    models = [load_model(p, torch_device()) for p in model_paths]  # a GPU when present
    ali_cuts, summary = {}, {"failed": {}, "retried": {}, "seconds": {}}
    for split in splits:
        t0 = time.time()
        cuts = CutSet.from_file(feature_cuts_path(fbank_dir, corpus, split)).to_eager()
        data = load_frames(cuts, normalizer, with_labels=False)
        loglik = ((dnn_logposteriors(models, data).numpy() - priors) * acoustic_scale).astype(np.float32)
        alignments, failed, retried = align_with_loglikes(
            aligner,
            cuts,
            {c.id: loglik[data.utterance(i)] for i, c in enumerate(cuts)},
            acoustic_scale=acoustic_scale,
            beam=beam,
            retry_beam=retry_beam,
        )
        if failed:
            log.warning("DNN realignment failed for %d %s utterance(s): %s", len(failed), split, ", ".join(failed[:20]))
        ali_cuts[split] = store_alignments(cuts, alignments, tm, out_dir=out_dir, name=f"{corpus}_{split}")
        summary["failed"][split], summary["retried"][split] = len(failed), len(retried)
        summary["seconds"][split] = round(time.time() - t0, 2)
        log.info(
            "realigned %s with %d DNN(s): %d ok, %d failed, %.1f s",
            split,
            len(models),
            len(alignments),
            len(failed),
            time.time() - t0,
        )
    counts, report = finish_alignment(ali_cuts, tm, aligner.lang, out_dir=out_dir, held_out_accents=held_out_accents)
    # downstream stages load the GMM (transition model) from the alignment folder
    shutil.copyfile(gmm_dir / "final.mdl", out_dir / "final.mdl")
    summary.update(
        {"models": [str(p) for p in model_paths], "num_pdfs": int(len(counts)), "report": report["splits"], "key": key}
    )
    write_json_atomic(out_dir / "summary.json", summary)
    return summary


def align_with_loglikes(
    aligner: GmmAligner,
    cuts,
    loglikes: Dict[str, np.ndarray],
    *,
    acoustic_scale: float = 0.1,
    beam: float = 10.0,
    retry_beam: float = 40.0,
):
    """Forced alignment of ``cuts`` with per-frame pdf log-likelihoods (already scaled), through the
    aligner's training graphs and transition model. Returns (alignments, failed ids, retried ids)."""
    tm, graphs = aligner.tm, aligner.training_graphs()
    id2pdf = np.asarray(tm.id2pdf_id)
    alignments, failed, retried = {}, [], []
    for cut in cuts:
        mat = np.ascontiguousarray(loglikes[cut.id][:, id2pdf[1:]], dtype=np.float32)  # one column per transition-id
        ali, _, ret = align_utterance(
            graphs.graph(cut.id, cut.supervisions[0].text),
            tm,
            khg.DecodableCtc(mat),
            utt=cut.id,
            num_frames=cut.num_frames,
            acoustic_scale=acoustic_scale,
            beam=beam,
            retry_beam=retry_beam,
        )
        if ali is not None:
            alignments[cut.id] = ali
        else:
            failed.append(cut.id)
        if ret:
            retried.append(cut.id)
    return alignments, failed, retried

"""Hybrid DNN-HMM scoring: what the decoders and the DNN aligner consume.

    loglik[t, pdf] = log p(pdf | x_t) - log prior(pdf)     (scaled by the caller: 1 / LM weight)

with priors from the alignment's pdf counts; several networks are combined by averaging their
posteriors. A GMM (a ``.mdl`` of the monophone stage) gives its own log-likelihoods instead.
"""

from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch

from asr_kd.gmm.features import gmm_features_for
from asr_kd.gmm.labels import read_pdf_counts
from asr_kd.gmm.mono import load_gmm
from asr_kd.nnet.checkpoint import load_model
from asr_kd.nnet.evaluate import predict_logits
from asr_kd.utils.device import torch_device


def log_priors(pdf_counts: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    p = pdf_counts.astype(np.float64) / max(1, pdf_counts.sum())
    return np.log(np.maximum(p, floor)).astype(np.float32)


def alignment_log_priors(ali_dir) -> np.ndarray:
    """Log priors from an alignment folder's ``pdf_counts.txt``."""
    return log_priors(read_pdf_counts(Path(ali_dir) / "pdf_counts.txt"))


def dnn_logposteriors(models, data) -> torch.Tensor:
    """log of the mean posterior of ``models`` on every frame of ``data``."""
    logits = torch.stack([predict_logits(m, data) for m in models])
    return torch.log_softmax(logits, -1).exp().mean(0).clamp_min(1e-30).log()


def gmm_loglikes(model_path, data, cuts) -> np.ndarray:
    """(frames, pdfs) GMM log-likelihoods on the GMM's own features, in ``data``'s frame order."""
    m = load_gmm(model_path)
    am = m["am"]
    # features per utterance (deltas and splicing stop at its edges), then one library call per pdf
    x = (
        np.concatenate(
            [
                gmm_features_for(data.feats[data.utterance(i)].numpy(), m["cfg"], m["transform"])
                for i in range(len(cuts))
            ]
        )
        if len(cuts)
        else np.zeros((0, 1), np.float32)
    )
    out = np.empty((len(x), am.num_pdfs), np.float32)
    for p in range(am.num_pdfs):  # log-sum-exp over the pdf's Gaussians in float64, on torch's threads
        comp = torch.from_numpy(np.asarray(am.get_pdf(p).log_likelihoods_matrix(x), dtype=np.float64))
        out[:, p] = torch.logsumexp(comp, 1).numpy()
    return out


def model_loglikes(ckpts: Sequence[str], splits: Dict, priors: np.ndarray) -> Dict[str, np.ndarray]:
    """Unscaled (frames, pdfs) log-likelihoods per split (``{split: (cuts, frames)}``): a single
    ``.mdl`` is the GMM (its own likelihoods, no priors); ``.pt`` checkpoints are networks (their
    averaged posteriors over priors)."""
    if len(ckpts) == 1 and str(ckpts[0]).endswith(".mdl"):
        return {s: gmm_loglikes(ckpts[0], d, cuts) for s, (cuts, d) in splits.items()}
    models = [load_model(c, torch_device()) for c in ckpts]  # a GPU when present
    return {s: dnn_logposteriors(models, d).numpy() - priors for s, (_, d) in splits.items()}

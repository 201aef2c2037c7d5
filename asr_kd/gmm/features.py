"""GMM features derived from the stored fbank: CMVN -> DCT (MFCC-like cepstra) -> deltas.

Diagonal-covariance GMMs want decorrelated features, so the GMM sees cepstra (the DCT of
the normalised log-mel energies, i.e. MFCCs without liftering) with delta and delta-delta
coefficients, as Kaldi's monophone systems do; kaldi-hmm-gmm has no delta code, so it is
here. They are computed frame by frame from the same lhotse features as the DNN inputs,
so frame counts agree exactly.
"""

import numpy as np

from asr_kd.gmm.lda_mllt import splice


def dct_matrix(num_in: int, num_out: int) -> np.ndarray:
    """Orthonormal DCT-II basis, shape (num_in, num_out)."""
    n = np.arange(num_in)
    k = np.arange(num_out)
    m = np.cos(np.pi / num_in * (n[:, None] + 0.5) * k[None, :]) * np.sqrt(2.0 / num_in)
    m[:, 0] /= np.sqrt(2.0)
    return m.astype(np.float32)


def deltas(x: np.ndarray, window: int = 2) -> np.ndarray:
    """Regression deltas with edge frames replicated (Kaldi's DeltaFeatures, one order)."""
    t = x.shape[0]
    padded = np.concatenate([np.repeat(x[:1], window, 0), x, np.repeat(x[-1:], window, 0)])
    num = sum(
        n * (padded[window + n : window + n + t] - padded[window - n : window - n + t]) for n in range(1, window + 1)
    )
    return (num / (2 * sum(n * n for n in range(1, window + 1)))).astype(np.float32)


def gmm_features(
    normalized_fbank: np.ndarray, num_cepstra: int = 13, use_deltas: bool = True, *, utterance_cmvn: bool = False
) -> np.ndarray:
    c = normalized_fbank @ dct_matrix(normalized_fbank.shape[1], num_cepstra)
    if utterance_cmvn:
        c = (c - c.mean(0)) / np.maximum(c.std(0), 1e-3)
    if not use_deltas:
        return np.ascontiguousarray(c, dtype=np.float32)
    d = deltas(c)
    return np.ascontiguousarray(np.concatenate([c, d, deltas(d)], axis=1), dtype=np.float32)


def gmm_features_for(normalized_fbank: np.ndarray, cfg, transform: np.ndarray = None) -> np.ndarray:
    """The features a GMM trained with ``cfg`` (MonoConfig or TriConfig) sees, alignment and decoding
    alike: cepstra with deltas, or (``cfg.splice`` > 0, Kaldi's LDA+MLLT systems) static cepstra
    spliced over +-splice frames, times ``transform`` (the model's LDA+MLLT matrix) when given."""
    context = getattr(cfg, "splice", 0)
    x = gmm_features(
        normalized_fbank, cfg.num_cepstra, cfg.use_deltas and not context, utterance_cmvn=cfg.utterance_cmvn
    )
    if context:
        x = splice(x, context)
    if transform is not None:
        x = x @ transform.T.astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)

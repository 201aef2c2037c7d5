"""The Kaldi decoding backend: LatticeFasterDecoder (kaldi-hmm-gmm) over an HCLG whose input labels
are transition-ids. The decodable gets one column per transition-id (``loglik[:, id2pdf[1:]]``;
DecodableCtc reads column ``ilabel - 1``). Utterances are decoded in ``nj`` forked processes, each
reading the graph from disk (FSTs do not pickle)."""

import multiprocessing as mp
import pickle
from dataclasses import dataclass
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Tuple

import numpy as np

from asr_kd.decode.lattice import LATTICE_BEAM
from asr_kd.kaldi import khg
from asr_kd.kaldi.fst import read_fst, with_word_penalty
from asr_kd.utils.jobs import JobCmd, run_jobs
from asr_kd.utils.numerics import require_finite_utterances

_D: Dict = {}  # this process's decoder (set by _init)


@dataclass(frozen=True)
class DecoderSpec:
    """What a decoding process builds its decoder from (pickled to Slurm jobs, or a pool's initializer)."""

    graph_path: str
    tm_bytes: bytes  # the pickled transition model
    beam: float
    max_active: int
    lattice_beam: float
    penalty: float  # word insertion penalty, added to the graph's word arcs


def _init(spec: DecoderSpec) -> None:
    g = read_fst(spec.graph_path)
    if spec.penalty:
        g = with_word_penalty(g, spec.penalty)
    cfg = khg.LatticeFasterDecoderConfig(beam=spec.beam, max_active=spec.max_active, lattice_beam=spec.lattice_beam)
    tm = pickle.loads(spec.tm_bytes)
    _D.update(graph=g, tm=tm, id2pdf=np.asarray(tm.id2pdf_id), decoder=khg.LatticeFasterDecoder(g, cfg))


def _decode_chunk(items: List[Tuple[str, np.ndarray]]) -> List[Tuple[str, List[int], List[int], float, bool]]:
    out = []
    for utt, loglik in items:
        mat = np.ascontiguousarray(loglik[:, _D["id2pdf"][1:]], dtype=np.float32)
        ok, ali, words, like = khg.decode_utterance_lattice_faster(
            decoder=_D["decoder"], decodable=khg.DecodableCtc(mat), trans_model=_D["tm"], utt=utt, allow_partial=True
        )
        out.append((utt, list(words), list(ali), float(like), bool(ok)))
    return out


def _decode_job(spec: DecoderSpec, items: List[Tuple[str, np.ndarray]]):
    """``_decode_chunk`` as a self-contained job (a fresh process reads the graph itself)."""
    _init(spec)
    return _decode_chunk(items)


def decode(
    graph_path,
    tm,
    loglikes: Dict[str, np.ndarray],
    *,
    beam: float = 13.0,
    max_active: int = 7000,
    lattice_beam: float = LATTICE_BEAM,
    word_penalty: float = 0.0,
    nj: int = 1,
    cmd="local",
    job_dir=None,
) -> Dict[str, Dict]:
    """1-best words (ids) and alignment per utterance. ``loglikes`` are already scaled, per pdf.
    ``cmd`` "slurm ...": the utterances go out as ``nj`` Slurm jobs (their log-likelihoods pickled
    to ``job_dir``), else ``nj`` forked processes."""
    require_finite_utterances(loglikes)
    utts = sorted(loglikes, key=lambda u: -loglikes[u].shape[0])
    spec = DecoderSpec(str(graph_path), pickle.dumps(tm), beam, max_active, lattice_beam, word_penalty)
    results = {}
    if not JobCmd.parse(cmd).local:
        chunks = [[(u, loglikes[u]) for u in utts[i::nj]] for i in range(nj)]
        parts = run_jobs(cmd, _decode_job, [(spec, c) for c in chunks if c], job_dir=job_dir, name="decode")
    elif nj <= 1:
        _init(spec)
        parts = [_decode_chunk([(u, loglikes[u]) for u in utts])]
    else:
        chunks = [[(u, loglikes[u]) for u in utts[i :: nj * 4]] for i in range(nj * 4)]
        with ProcessPoolExecutor(nj, mp_context=mp.get_context("fork"), initializer=_init, initargs=(spec,)) as ex:
            parts = list(ex.map(_decode_chunk, [c for c in chunks if c]))
    for part in parts:
        for utt, words, ali, like, ok in part:
            results[utt] = {"words": words, "alignment": ali, "log_like": like, "reached_final": ok}
    return results

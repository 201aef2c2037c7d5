"""What a decode needs besides the search itself: the LM, G and HCLG (``build_graph``), the dev and
test frames with the alignment's transition model and priors (``load_decode_data``), the lattices of a
split decoded once and searched at every grid point (``LatticeStore``), and the dev tuning of LM weight
and insertion penalty (``tune_on_dev``). The decode stage (``asr_kd.stages.decode``) puts them together.

    loglik = acoustic_scale * (log posterior - log prior)     (priors: the alignment's pdf counts)
"""

import logging
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from lhotse import CutSet, SupervisionSet

from asr_kd.data.features import FeatureNormalizer, feature_cuts_path
from asr_kd.data.manifests import manifest_paths
from asr_kd.decode.graph import make_hclg
from asr_kd.gmm.mono import GmmAligner
from asr_kd.hybrid.likelihoods import alignment_log_priors
from asr_kd.decode.lattice import (
    LATTICE_BEAM,
    Calibration,
    LatticeSet,
    normalised_cross_entropy,
    reliability,
)
from asr_kd.decode.lattice_search import LATTICE_DECODERS, ArchiveWriter, decode_lattices_parallel
from asr_kd.kaldi.fst import arpa_to_fst
from asr_kd.lang.lm import ngram_counts, perplexity, train_arpa
from asr_kd.lang.prepare_lang import Lang
from asr_kd.nnet.data import load_frames
from asr_kd.utils.io import write_json_atomic, write_text_atomic
from asr_kd.utils.validity import dir_digest, file_digest, fingerprint, kept_summary

log = logging.getLogger(__name__)


def on_grid_edge(point: Tuple[float, float], lmwts: Sequence[float], penalties: Sequence[float]) -> bool:
    """Whether (LM weight, penalty) lies on an edge of the sorted grid ``lmwts`` x ``penalties`` (an axis
    of one value has no edge): dev ties prefer points inside, and an optimum on an edge widens the grid."""
    return (len(lmwts) > 1 and point[0] in (lmwts[0], lmwts[-1])) or (
        len(penalties) > 1 and point[1] in (penalties[0], penalties[-1])
    )


def tune_on_dev(dev_wer, lmwts: Sequence[float], penalties: Sequence[float], *, max_widen: int = 4, batch=None):
    """The (LM weight, insertion penalty) with the lowest ``dev_wer(lmwt, wip)`` over the grid
    ``lmwts`` x ``penalties``. Where the optimum sits on an edge of the grid (and no interior point
    ties with it), the grid widens past that edge (LM weight / 1.5 or x 1.5, penalty by its spacing,
    at most ``max_widen`` times per edge) and the new row or column is decoded, until the optimum
    is inside. Ties prefer interior points, then the lower LM weight and penalty. ``batch``, when
    given, is called with each round's new points before they are scored (lattice scoring does a
    whole round in one pass). Returns (grid [{lmwt, wip, wer}], best, widened [(axis, value)])."""
    lm, wp = sorted(set(lmwts)), sorted(set(penalties))
    scores: Dict[Tuple[float, float], float] = {}
    widened: List[Tuple[str, float]] = []
    counts = {"lmwt_low": 0, "lmwt_high": 0, "wip_low": 0, "wip_high": 0}

    while True:
        new = [(a, b) for a in lm for b in wp if (a, b) not in scores]
        if batch is not None and new:
            batch(new)
        for a, b in new:
            scores[(a, b)] = dev_wer(a, b)
        best = min(scores, key=lambda k: (scores[k], on_grid_edge(k, lm, wp), k[0], k[1]))
        moves = []
        if on_grid_edge(best, lm, wp):
            if len(lm) > 1 and best[0] == lm[0] and counts["lmwt_low"] < max_widen:
                moves.append(("lmwt_low", round(lm[0] / 1.5, 3)))
            elif len(lm) > 1 and best[0] == lm[-1] and counts["lmwt_high"] < max_widen:
                moves.append(("lmwt_high", round(lm[-1] * 1.5, 3)))
            if len(wp) > 1 and best[1] == wp[0] and counts["wip_low"] < max_widen:
                moves.append(("wip_low", round(wp[0] - (wp[1] - wp[0]), 3)))
            elif len(wp) > 1 and best[1] == wp[-1] and counts["wip_high"] < max_widen:
                moves.append(("wip_high", round(wp[-1] + (wp[-1] - wp[-2]), 3)))
        if not moves:
            break
        for side, value in moves:
            counts[side] += 1
            (lm if side.startswith("lmwt") else wp).append(value)
            widened.append((side.split("_")[0], value))
        lm.sort()
        wp.sort()
    grid = [{"lmwt": a, "wip": b, "wer": w} for (a, b), w in sorted(scores.items())]
    return grid, {"lmwt": best[0], "wip": best[1], "wer": scores[best]}, widened


# -- the decode stage -------------------------------------------------------------------------
def build_graph(lang_dir, ali_dir, manifest_dir, *, corpus: str, graph_dir, lm_order: int = 2, arpa=None) -> Dict:
    """LM (or a given ARPA), perplexities, G.fst and HCLG.fst in ``graph_dir`` (kept if built from
    the same lang, transition model, LM text and order or ARPA)."""
    graph_dir = Path(graph_dir)
    info_path = graph_dir / "graph_summary.json"
    texts = {
        s: [x.text for x in SupervisionSet.from_file(manifest_paths(manifest_dir, corpus, s)["supervisions"])]
        for s in ("train", "dev", "test")
    }
    aligner = GmmAligner.load(Path(ali_dir) / "final.mdl", lang_dir)
    # what the graph is built from: a graph of another lang, transition model, LM or LM text is rebuilt
    key = fingerprint(
        {
            "lang": dir_digest(lang_dir),
            "transition_ids": list(aligner.tm.id2pdf_id),
            "texts": texts,
            "lm_order": lm_order,
            "arpa": file_digest(arpa) if arpa else None,
        }
    )
    kept = kept_summary(info_path, key)
    if kept is not None and (graph_dir / "HCLG.fst").is_file():
        return kept
    if info_path.is_file():
        log.info("%s was built from other inputs: rebuilding it", graph_dir)
    lang = Lang(lang_dir)
    if lang.oov_word:  # words without a pronunciation are the OOV word in G too
        texts = {
            s: [" ".join(w if w in lang.word2id else lang.oov_word for w in t.split()) for t in ts]
            for s, ts in texts.items()
        }
    graph_dir.mkdir(parents=True, exist_ok=True)
    if arpa:
        estimator, arpa_path = "given", Path(arpa)
        lm_order = max(ngram_counts(arpa_path))
    else:
        arpa_path = graph_dir / f"lm_{lm_order}gram.arpa"
        estimator = train_arpa(texts["train"], lm_order, arpa_path)
    ppl = {s: perplexity(arpa_path, texts[s]) for s in ("dev", "test")}
    arpa_to_fst(arpa_path, Path(lang_dir) / "words.txt", graph_dir / "G.fst")
    _, info = make_hclg(lang, aligner.tm, aligner.tree, G_path=graph_dir / "G.fst", out_dir=graph_dir)
    summary = {
        "lm_order": lm_order,
        "estimator": estimator,
        "arpa": str(arpa_path),
        "ngrams": {str(n): c for n, c in ngram_counts(arpa_path).items()},  # str keys: as JSON reads them back
        "words": len(lang.word2id),
        "perplexity": ppl,
        "hclg": info,
        "key": key,
    }
    write_json_atomic(info_path, summary)
    log.info("LM (%s, order %d): perplexity dev %.2f, test %.2f", estimator, lm_order, ppl["dev"], ppl["test"])
    return summary


def load_decode_splits(fbank_dir, corpus: str, split_names=("dev", "test")) -> Dict:
    """{split: (cuts, normalised frames)}: the input of every model decoded on these splits."""
    norm = FeatureNormalizer.of_features(fbank_dir)
    splits = {}
    for s in split_names:
        cuts = CutSet.from_file(feature_cuts_path(fbank_dir, corpus, s)).to_eager()
        splits[s] = (cuts, load_frames(cuts, norm, with_labels=False))
    return splits


def load_decode_data(
    ali_dir, lang_dir, fbank_dir, *, corpus: str, split_names=("dev", "test"), splits: Optional[Dict] = None
):
    """(lang, transition model, log priors, {split: (cuts, frames)}) for decoding; ``splits``, when
    given, is a ``load_decode_splits`` result reused instead of reading the frames again."""
    lang = Lang(lang_dir)
    tm = GmmAligner.load(Path(ali_dir) / "final.mdl", lang_dir).tm
    priors = alignment_log_priors(ali_dir)
    return lang, tm, priors, splits if splits is not None else load_decode_splits(fbank_dir, corpus, split_names)


class LatticeStore:
    """One system's lattices per split, decoded once and written beside its scoring as
    ``lat.<split>.gz`` (Kaldi text archive, ``asr_kd.decode.lattice``) with ``lattice_options.json``;
    best paths of any (LM weight, penalty) points come from one pass over a split's lattices.
    The tuning split is decoded at the acoustic scale of the middle of the LM-weight grid (Kaldi's
    fixed acwt) without a penalty; a split scored at one tuned point is decoded at that point (its
    scale, its penalty in the graph), so its best path is the search's own there, as re-decoding's."""

    def __init__(
        self,
        out_dir: Path,
        graph_path: Path,
        id2pdf: np.ndarray,
        *,
        lmwts: Sequence[float],
        beam: float,
        lattice_beam: float = LATTICE_BEAM,
        nj: int = 1,
        cmd="local",
        max_active: int = 7000,
        search: str = "kaldi",
        writer: Optional[ArchiveWriter] = None,
    ):
        self.out_dir, self.graph_path, self.id2pdf, self.search = out_dir, graph_path, id2pdf, search
        self.writer = writer  # k2's archives written while the caller tunes; complete after writer.wait()
        self.acoustic_scale = 1.0 / float(np.median(lmwts))
        self.beam, self.lattice_beam, self.max_active, self.nj, self.cmd = beam, lattice_beam, max_active, nj, cmd
        self.lattices: Dict[str, LatticeSet] = {}
        self.seconds: Dict[str, float] = {}
        self.paths: Dict[Tuple[str, float, float], Dict] = {}
        self.decoded_at: Dict[str, Dict[str, float]] = {}

    def decode(self, split: str, loglikes, point: Optional[Tuple[float, float]] = None) -> LatticeSet:
        """The split's lattices (decoded on the first call; ``loglikes()`` gives the unscaled per-pdf
        ones), at ``point`` (LM weight, penalty) when given, else at the store's scale."""
        if split not in self.lattices:
            scale, penalty = (1.0 / point[0], float(point[1])) if point else (self.acoustic_scale, 0.0)
            ll = loglikes()
            t0 = time.time()
            lattice_set, search = decode_lattices_parallel(
                self.graph_path,
                {u: m[:, self.id2pdf[1:]] for u, m in ll.items()},
                scale,
                archive=self.out_dir / f"lat.{split}.gz",
                beam=self.beam,
                lattice_beam=self.lattice_beam,
                nj=self.nj,
                cmd=self.cmd,
                job_dir=self.out_dir / "jobs",
                word_penalty=penalty,
                max_active=self.max_active,
                search=self.search,
                writer=self.writer,
            )
            self.seconds[split] = time.time() - t0
            self.decoded_at[split] = {"acoustic_scale": scale, "word_penalty": penalty, "search": search}
            if search.get("widened"):
                log.info(
                    "%s %s: %d of %d utterances searched again at a wider beam (the 1-best check found a better "
                    "path), %d still worse",
                    self.out_dir.name,
                    split,
                    search["widened"],
                    search["utterances"],
                    search["still_worse"],
                )
            write_json_atomic(
                self.out_dir / "lattice_options.json",
                {
                    "graph": str(self.graph_path),
                    "graph_digest": file_digest(self.graph_path),
                    "decoder": LATTICE_DECODERS[self.search],
                    "beam": self.beam,
                    "max_active": self.max_active,
                    "lattice_beam": self.lattice_beam,
                    "splits": self.decoded_at,
                    "costs": "graph (with the split's word_penalty on every word arc), acoustic (unscaled: "
                    "-log-likelihood)",
                    "format": "Kaldi text archive of Lattice (lattice-copy ark,t)",
                },
            )
            self.lattices[split] = lattice_set
        return self.lattices[split]

    def best(self, split: str, points: Sequence[Tuple[float, float]]) -> None:
        """Best paths of the split at every point not yet searched (one pass)."""
        todo = [p for p in points if (split, *p) not in self.paths]
        for p, paths in zip(todo, self.lattices[split].best_paths(todo) if todo else []):
            self.paths[(split, *p)] = paths

    def words(self, split: str, lmwt: float, wip: float) -> Dict[str, List[int]]:
        self.best(split, [(lmwt, wip)])
        return {u: p[0] for u, p in self.paths[(split, lmwt, wip)].items()}

    def confidences(
        self,
        split: str,
        lmwt: float,
        wip: float,
        *,
        hyps: Dict[str, List[str]],
        refs: Dict[str, List[str]],
        id2word: Dict[int, str],
    ) -> Tuple[List[Tuple[str, str, float]], List[bool]]:
        """((utt, word, raw confidence), correct) of the scored hypothesis words (an utterance whose
        words a score map changed is left out: no one-to-one confidence)."""
        from kaldialign import align

        self.best(split, [(lmwt, wip)])
        conf = self.lattices[split].word_confidences(lmwt, wip, paths=self.paths[(split, lmwt, wip)])
        words, correct = [], []
        for u in sorted(conf):
            ws = [id2word[w] for w, _, _ in conf[u]]
            if ws != hyps.get(u, ws):
                continue
            ok = [r == h for r, h in align(refs[u], ws, "*") if h != "*"]
            words += [(u, w, c) for w, (_, _, c) in zip(ws, conf[u])]
            correct += ok
        return words, correct

    def calibrated_confidences(self, dev: Tuple, test: Tuple) -> Dict:
        """Calibration fitted on dev words, applied to test; ``test.conf.txt`` (utt word confidence
        raw-confidence correct), ``confidence.json`` (NCE raw / calibrated, reliability rows) and a
        reliability plot. Returns the figures for the row."""
        cal = Calibration.fit([c for _, _, c in dev[0]], dev[1])
        raw = np.array([c for _, _, c in test[0]])
        fixed = cal(raw) if len(raw) else raw
        write_text_atomic(
            self.out_dir / "test.conf.txt",
            "".join(f"{u} {w} {c:.4f} {r:.4f} {int(ok)}\n" for (u, w, r), c, ok in zip(test[0], fixed, test[1])),
        )

        def nce(c, ok):
            v = normalised_cross_entropy(c, ok)
            return None if np.isnan(v) else round(v, 4)

        info = {
            "calibration": {"a": cal.a, "b": cal.b, "fitted_on_dev_words": len(dev[1])},
            "nce": {
                "dev_raw": nce([c for _, _, c in dev[0]], dev[1]),
                "test_raw": nce(raw, test[1]),
                "test_calibrated": nce(fixed, test[1]),
            },
            "test_words": len(raw),
            "test_correct": int(np.sum(test[1])),
            "reliability_raw": reliability(raw, test[1]),
            "reliability_calibrated": reliability(fixed, test[1]),
        }
        write_json_atomic(self.out_dir / "confidence.json", info)
        _reliability_plot(self.out_dir / "reliability.png", info)
        return info["nce"]

    def oracle_wer(self, split: str, refs: Dict[str, List[int]]) -> float:
        lats = self.lattices[split]
        errors = lats.oracle_errors({u: refs[u] for u in lats.utts})
        return sum(errors.values()) / max(1, sum(len(refs[u]) for u in lats.utts))


def _reliability_plot(path: Path, info: Dict) -> None:
    """Share correct against mean confidence per bin (the diagonal: calibrated)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the figures are in confidence.json either way
        return
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    for key, label in (
        ("reliability_raw", f"raw (NCE {info['nce']['test_raw']})"),
        ("reliability_calibrated", f"calibrated on dev (NCE {info['nce']['test_calibrated']})"),
    ):
        rows = info[key]
        ax.plot([r["mean_confidence"] for r in rows], [r["correct"] for r in rows], marker="o", label=label)
    ax.set_xlabel("word confidence")
    ax.set_ylabel("share of words correct")
    ax.set_title(f"test words: {info['test_words']}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)

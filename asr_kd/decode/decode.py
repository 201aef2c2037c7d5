"""Hybrid decoding with Kaldi's LatticeFasterDecoder (kaldi-hmm-gmm) over an HCLG whose input
labels are transition-ids, and WER scoring like Kaldi's score_kaldi_wer.sh.

    loglik = acoustic_scale * (log posterior - log prior)     (priors: the alignment's pdf counts)

The decodable gets one column per transition-id (``loglik[:, id2pdf[1:]]``; DecodableCtc reads
column ``ilabel - 1``). Utterances are decoded in ``nj`` forked processes, each reading the graph
from disk (FSTs do not pickle). Scoring: a grid over LM weight (= 1 / acoustic scale) and word
insertion penalty, the best pair chosen on dev and applied unchanged to test.
"""
import logging
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from asr_kd.utils.io import dir_digest, file_digest, fingerprint, kept_summary, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

_D: Dict = {}


def with_word_penalty(fst, penalty: float):
    """A copy of ``fst`` whose word-emitting arcs cost ``penalty`` more (Kaldi's word insertion penalty)."""
    from asr_kd.decode.graph import map_arcs

    return map_arcs(fst, lambda a: (a.ilabel, a.olabel, a.weight.value + (penalty if a.olabel != 0 else 0.0)))


def _init(graph_path: str, tm_bytes: bytes, beam: float, max_active: int, lattice_beam: float, penalty: float) -> None:
    import pickle

    import kaldi_hmm_gmm as khg
    import kaldifst

    g = kaldifst.StdVectorFst.read(graph_path)
    if penalty:
        g = with_word_penalty(g, penalty)
    cfg = khg.LatticeFasterDecoderConfig(beam=beam, max_active=max_active, lattice_beam=lattice_beam)
    tm = pickle.loads(tm_bytes)
    _D.update(graph=g, tm=tm, id2pdf=np.asarray(tm.id2pdf_id), decoder=khg.LatticeFasterDecoder(g, cfg))


def _decode_chunk(items: List[Tuple[str, np.ndarray]]) -> List[Tuple[str, List[int], List[int], float, bool]]:
    import kaldi_hmm_gmm as khg

    out = []
    for utt, loglik in items:
        if not np.isfinite(loglik).all():
            raise FloatingPointError(f"utterance {utt}: log-likelihoods contain NaN or inf")
        mat = np.ascontiguousarray(loglik[:, _D["id2pdf"][1:]], dtype=np.float32)
        ok, ali, words, like = khg.decode_utterance_lattice_faster(
            decoder=_D["decoder"], decodable=khg.DecodableCtc(mat), trans_model=_D["tm"], utt=utt, allow_partial=True)
        out.append((utt, list(words), list(ali), float(like), bool(ok)))
    return out


def decode(graph_path, tm, loglikes: Dict[str, np.ndarray], beam: float = 13.0, max_active: int = 7000,
           lattice_beam: float = 6.0, word_penalty: float = 0.0, nj: int = 1) -> Dict[str, Dict]:
    """1-best words (ids) and alignment per utterance. ``loglikes`` are already scaled, per pdf."""
    import pickle

    for utt, m in loglikes.items():
        if not np.isfinite(m).all():
            raise FloatingPointError(f"utterance {utt}: log-likelihoods contain NaN or inf")
    utts = sorted(loglikes, key=lambda u: -loglikes[u].shape[0])
    chunks = [[(u, loglikes[u]) for u in utts[i :: nj * 4]] for i in range(nj * 4)]
    args = (str(graph_path), pickle.dumps(tm), beam, max_active, lattice_beam, word_penalty)
    results = {}
    if nj <= 1:
        _init(*args)
        parts = [_decode_chunk(c) for c in chunks if c]
    else:
        with ProcessPoolExecutor(nj, mp_context=mp.get_context("fork"), initializer=_init, initargs=args) as ex:
            parts = list(ex.map(_decode_chunk, [c for c in chunks if c]))
    for part in parts:
        for utt, words, ali, like, ok in part:
            results[utt] = {"words": words, "alignment": ali, "log_like": like, "reached_final": ok}
    return results


# -- scoring ----------------------------------------------------------------------------------
def tune_on_dev(dev_wer, lmwts: Sequence[float], penalties: Sequence[float], max_widen: int = 4):
    """The (LM weight, insertion penalty) with the lowest ``dev_wer(lmwt, wip)`` over the grid
    ``lmwts`` x ``penalties``. Where the optimum sits on an edge of the grid (and no interior point
    ties with it), the grid widens past that edge (LM weight / 1.5 or x 1.5, penalty by its spacing,
    at most ``max_widen`` times per edge) and the new row or column is decoded, until the optimum
    is inside. Ties prefer interior points, then the lower LM weight and penalty.
    Returns (grid [{lmwt, wip, wer}], best, widened [(axis, value)])."""
    lm, wp = sorted(set(lmwts)), sorted(set(penalties))
    scores: Dict[Tuple[float, float], float] = {}
    widened: List[Tuple[str, float]] = []
    counts = {"lmwt_low": 0, "lmwt_high": 0, "wip_low": 0, "wip_high": 0}

    def edge(k):
        return (len(lm) > 1 and k[0] in (lm[0], lm[-1])) or (len(wp) > 1 and k[1] in (wp[0], wp[-1]))

    while True:
        for a in lm:
            for b in wp:
                if (a, b) not in scores:
                    scores[(a, b)] = dev_wer(a, b)
        best = min(scores, key=lambda k: (scores[k], edge(k), k[0], k[1]))
        moves = []
        if edge(best):
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


def utterance_counts(details: Dict) -> Dict[str, List]:
    """Per utterance (sorted ids): word errors and reference words, for the significance tests."""
    utts = sorted(details["per_utt"])
    pu = details["per_utt"]
    return {"utts": utts, "errors": [pu[u]["ins"] + pu[u]["del"] + pu[u]["sub"] for u in utts],
            "words": [len(pu[u]["ref"]) for u in utts]}


def torch_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def read_score_map(path) -> Dict[str, str]:
    """Lines ``FROM TO`` (or ``FROM`` alone: the token is deleted before scoring)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if parts:
            out[parts[0]] = parts[1] if len(parts) > 1 else ""
    return out


def wer_details(refs: Dict[str, List[str]], hyps: Dict[str, List[str]], speakers: Dict[str, str] = None) -> Dict:
    import kaldialign

    tot = {"ins": 0, "del": 0, "sub": 0, "ref_len": 0}
    per_spk: Dict[str, Dict[str, int]] = {}
    per_utt = {}
    for utt, ref in refs.items():
        hyp = hyps.get(utt, [])
        e = kaldialign.edit_distance(ref, hyp)
        per_utt[utt] = {"ref": ref, "hyp": hyp, "ins": e["ins"], "del": e["del"], "sub": e["sub"],
                        "alignment": kaldialign.align(ref, hyp, "*")}
        for k in tot:
            tot[k] += e[k]
        if speakers:
            s = per_spk.setdefault(speakers[utt], {"ins": 0, "del": 0, "sub": 0, "ref_len": 0})
            for k in s:
                s[k] += e[k]
    errors = tot["ins"] + tot["del"] + tot["sub"]
    res = {**tot, "errors": errors, "wer": errors / max(tot["ref_len"], 1), "utterances": len(refs),
           "sentence_errors": sum(1 for r in per_utt.values() if r["ins"] + r["del"] + r["sub"] > 0), "per_utt": per_utt}
    res["per_speaker"] = {s: {**v, "wer": (v["ins"] + v["del"] + v["sub"]) / max(v["ref_len"], 1)} for s, v in per_spk.items()}
    return res


def write_scoring(out_dir, name: str, details: Dict) -> None:
    """Kaldi-style outputs: hyp text (utt-id words), per_utt alignments, per-speaker WER, summary."""
    out_dir = Path(out_dir)
    utts = sorted(details["per_utt"])
    write_text_atomic(out_dir / f"{name}.hyp.txt", "".join(f"{u} {' '.join(details['per_utt'][u]['hyp'])}\n" for u in utts))
    write_text_atomic(out_dir / f"{name}.hyp.trn", "".join(f"{' '.join(details['per_utt'][u]['hyp'])} ({u})\n" for u in utts))
    lines = []
    for u in utts:
        ali = details["per_utt"][u]["alignment"]
        lines.append(f"{u} ref  {' '.join(r for r, _ in ali)}")
        lines.append(f"{u} hyp  {' '.join(h for _, h in ali)}")
        lines.append(f"{u} op   {' '.join('C' if r == h else ('I' if r == '*' else ('D' if h == '*' else 'S')) for r, h in ali)}")
    write_text_atomic(out_dir / f"{name}.per_utt.txt", "\n".join(lines) + "\n")
    write_text_atomic(out_dir / f"{name}.per_spk.txt", "".join(
        f"{s} {v['ref_len']} ins {v['ins']} del {v['del']} sub {v['sub']} wer {100 * v['wer']:.2f}\n"
        for s, v in sorted(details["per_speaker"].items())))
    summary = {k: v for k, v in details.items() if k not in ("per_utt",)}
    write_json_atomic(out_dir / f"{name}.wer.json", summary)


def gmm_loglikes(model_path, data, cuts) -> np.ndarray:
    """(frames, pdfs) GMM log-likelihoods on the GMM's own features, in ``data``'s frame order."""
    import pickle

    from asr_kd.align.gmm_features import gmm_features_for
    from asr_kd.align.mono import MonoConfig

    with open(model_path, "rb") as f:
        m = pickle.load(f)
    cfg = MonoConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in m["cfg"].items()})
    am = m["am"]
    out = np.empty((len(data), am.num_pdfs), np.float32)
    for i, cut in enumerate(cuts):
        sl = data.utterance(i)
        x = gmm_features_for(data.feats[sl].numpy(), cfg)  # data holds normalised fbank
        for p in range(am.num_pdfs):
            comp = np.asarray(am.get_pdf(p).log_likelihoods_matrix(x), dtype=np.float64)
            top = comp.max(1, keepdims=True)
            out[sl, p] = (top + np.log(np.exp(comp - top).sum(1, keepdims=True)))[:, 0]
    return out


# -- the decode stage -------------------------------------------------------------------------
def build_graph(lang_dir, ali_dir, manifest_dir, corpus: str, graph_dir, lm_order: int = 2, arpa=None) -> Dict:
    """LM (or a given ARPA), perplexities, G.fst and HCLG.fst in ``graph_dir`` (kept if built from
    the same lang, transition model, LM text and order or ARPA)."""
    import kaldi_hmm_gmm  # noqa: F401  (import order)
    from lhotse import SupervisionSet

    from asr_kd.align.mono import MonophoneAligner
    from asr_kd.data.manifests import manifest_paths
    from asr_kd.decode.graph import make_hclg
    from asr_kd.decode.lm import arpa_to_G, perplexity, train_arpa
    from asr_kd.lang.prepare_lang import Lang

    graph_dir = Path(graph_dir)
    info_path = graph_dir / "graph_summary.json"
    texts = {s: [x.text for x in SupervisionSet.from_file(manifest_paths(manifest_dir, corpus, s)["supervisions"])]
             for s in ("train", "dev", "test")}
    aligner = MonophoneAligner.load(Path(ali_dir) / "final.mdl", lang_dir)
    # what the graph is built from: a graph of another lang, transition model, LM or LM text is rebuilt
    key = fingerprint({"lang": dir_digest(lang_dir),
                       "transition_ids": list(aligner.tm.id2pdf_id), "texts": texts, "lm_order": lm_order,
                       "arpa": file_digest(arpa) if arpa else None})
    kept = kept_summary(info_path, key)
    if kept is not None and (graph_dir / "HCLG.fst").is_file():
        return kept
    if info_path.is_file():
        log.info("%s was built from other inputs: rebuilding it", graph_dir)
    lang = Lang(lang_dir)
    if lang.oov_word:  # words without a pronunciation are the OOV word in G too
        texts = {s: [" ".join(w if w in lang.word2id else lang.oov_word for w in t.split()) for t in ts]
                 for s, ts in texts.items()}
    graph_dir.mkdir(parents=True, exist_ok=True)
    if arpa:
        estimator, arpa_path = "given", Path(arpa)
    else:
        arpa_path = graph_dir / f"lm_{lm_order}gram.arpa"
        estimator = train_arpa(texts["train"], lm_order, arpa_path)
    ppl = {s: perplexity(arpa_path, texts[s]) for s in ("dev", "test")}
    arpa_to_G(arpa_path, Path(lang_dir) / "words.txt", graph_dir / "G.fst")
    _, info = make_hclg(lang, aligner.tm, aligner.tree, graph_dir / "G.fst", graph_dir)
    summary = {"lm_order": lm_order, "estimator": estimator, "arpa": str(arpa_path), "perplexity": ppl, "hclg": info, "key": key}
    write_json_atomic(info_path, summary)
    log.info("LM (%s, order %d): perplexity dev %.2f, test %.2f", estimator, lm_order, ppl["dev"], ppl["test"])
    return summary


def load_decode_splits(fbank_dir, corpus: str, split_names=("dev", "test")) -> Dict:
    """{split: (cuts, normalised frames)}: the input of every model decoded on these splits."""
    from lhotse import CutSet

    from asr_kd.data.features import FeatureNormalizer, feature_cuts_path
    from asr_kd.nnet.data import load_frames

    norm = FeatureNormalizer.load(Path(fbank_dir) / "cmvn.npz")
    splits = {}
    for s in split_names:
        cuts = CutSet.from_file(feature_cuts_path(fbank_dir, corpus, s)).to_eager()
        splits[s] = (cuts, load_frames(cuts, norm, with_labels=False))
    return splits


def load_decode_data(ali_dir, lang_dir, fbank_dir, corpus: str, split_names=("dev", "test"), splits: Optional[Dict] = None):
    """(lang, transition model, log priors, {split: (cuts, frames)}) for decoding; ``splits``, when
    given, is a ``load_decode_splits`` result reused instead of reading the frames again."""
    import kaldi_hmm_gmm  # noqa: F401

    from asr_kd.align.dnn_align import log_priors
    from asr_kd.align.labels import read_pdf_counts
    from asr_kd.align.mono import MonophoneAligner
    from asr_kd.lang.prepare_lang import Lang

    lang = Lang(lang_dir)
    tm = MonophoneAligner.load(Path(ali_dir) / "final.mdl", lang_dir).tm
    priors = log_priors(read_pdf_counts(Path(ali_dir) / "pdf_counts.txt"))
    return lang, tm, priors, splits if splits is not None else load_decode_splits(fbank_dir, corpus, split_names)


def model_loglikes(ckpts: Sequence[str], splits: Dict, priors: np.ndarray) -> Dict[str, np.ndarray]:
    """Unscaled (frames, pdfs) log-likelihoods per split: a single ``.mdl`` is the GMM (its own
    likelihoods, no priors); ``.pt`` checkpoints are networks (their averaged posteriors over priors)."""
    from asr_kd.align.dnn_align import dnn_logposteriors
    from asr_kd.nnet.train import load_model

    if len(ckpts) == 1 and str(ckpts[0]).endswith(".mdl"):
        return {s: gmm_loglikes(ckpts[0], d, cuts) for s, (cuts, d) in splits.items()}
    models = [load_model(c) for c in ckpts]
    return {s: dnn_logposteriors(models, d).numpy() - priors for s, (_, d) in splits.items()}


def decode_models(rows: Sequence[Tuple[str, List[str]]], ali_dir, lang_dir, fbank_dir, corpus: str, graph_dir, out_dir,
                  lmwts: Sequence[float] = (5, 7, 10, 14, 20), penalties: Sequence[float] = (0.0, 0.5, 1.0),
                  beam: float = 13.0, max_active: int = 7000, nj: int = 1,
                  score_map: Optional[Dict[str, str]] = None, decoder: str = "kaldi",
                  splits: Optional[Dict] = None) -> List[Dict]:
    """For each (name, checkpoints): posteriors on dev and test (a single ``.mdl`` checkpoint is the
    GMM, decoded through the same path with its own likelihoods); the (LM weight, insertion penalty)
    with the lowest dev WER; test decoded with it. Writes per-model scoring under ``out_dir/name``.
    ``score_map`` maps reference and hypothesis tokens before scoring (an empty target deletes the
    token), e.g. TIMIT's 48 -> 39 phone folding for PER. ``decoder``: ``kaldi`` (LatticeFasterDecoder)
    or ``k2`` (asr_kd.decode.k2_decode, same graph and likelihoods). ``splits``: dev and test frames
    already read by ``load_decode_splits`` (callers decoding several alignments read them once)."""
    if decoder not in ("kaldi", "k2"):
        raise ValueError(f"decoder must be kaldi or k2, not {decoder!r}")
    lang, tm, priors, splits = load_decode_data(ali_dir, lang_dir, fbank_dir, corpus, splits=splits)
    graph = Path(graph_dir) / "HCLG.fst"

    def fold(tokens):
        if not score_map:
            return tokens
        return [m for m in (score_map.get(t, t) for t in tokens) if m]

    out, k2_graphs = [], {}
    for name, ckpts in rows:
        lp = model_loglikes(ckpts, splits, priors)

        def run(split, lmwt, wip):
            cuts, data = splits[split]
            ll = {c.id: lp[split][data.utterance(i)] / lmwt for i, c in enumerate(cuts)}
            t0 = time.time()
            if decoder == "k2":
                from asr_kd.decode.k2_decode import decode_k2, load_k2_graph

                if wip not in k2_graphs:
                    k2_graphs[wip] = load_k2_graph(graph, wip, device=torch_device())
                res = decode_k2(k2_graphs[wip], np.asarray(tm.id2pdf_id), ll, search_beam=beam, max_active=max_active)
            else:
                res = decode(graph, tm, ll, beam=beam, max_active=max_active, word_penalty=wip, nj=nj)
            secs = time.time() - t0
            refs = {c.id: fold(c.supervisions[0].text.split()) for c in cuts}
            hyps = {u: fold([lang.id2word[w] for w in r["words"]]) for u, r in res.items()}
            spk = {c.id: c.supervisions[0].speaker for c in cuts}
            details = wer_details(refs, hyps, spk)
            # OOV words (outside words.txt) stay in the references: no hypothesis can hold them, so they count as errors
            details["oov_tokens"] = sum(1 for c in cuts for w in c.supervisions[0].text.split() if w not in lang.word2id)
            return details, secs / max(len(data) * 0.01, 1e-9)

        dev_runs = {}  # the grid's dev decodes, kept so the chosen one is not decoded twice

        def dev_wer(lmwt, wip):
            dev_runs[(lmwt, wip)] = run("dev", lmwt, wip)[0]
            return dev_runs[(lmwt, wip)]["wer"]

        grid, best, widened = tune_on_dev(dev_wer, lmwts, penalties)
        if widened:
            log.info("%s: the dev optimum sat on the grid's edge; grid widened by %s", name, widened)
        dev = dev_runs[(best["lmwt"], best["wip"])]
        test, rtf = run("test", best["lmwt"], best["wip"])
        d = Path(out_dir) / name
        write_scoring(d, "dev", dev)
        write_scoring(d, "test", test)
        write_json_atomic(d / "grid_dev.json", {"grid": grid, "best": best, "widened": widened})
        row = {"name": name, "checkpoints": list(ckpts), "best_lmwt": best["lmwt"], "best_wip": best["wip"],
               "grid_widened": widened, "dev_wer": dev["wer"], "test_wer": test["wer"], "test_ins": test["ins"],
               "test_del": test["del"], "test_sub": test["sub"], "test_words": test["ref_len"],
               "test_oov_tokens": test["oov_tokens"], "rtf_test": rtf, "nj": nj if decoder == "kaldi" else 1,
               "decoder": decoder, "counts": {"dev": utterance_counts(dev), "test": utterance_counts(test)}}
        out.append(row)
        log.info("%s: dev WER %.2f%% (LM weight %g, penalty %g) -> test WER %.2f%% [ins %d del %d sub %d / %d], RTF %.4f",
                 name, 100 * dev["wer"], best["lmwt"], best["wip"], 100 * test["wer"], test["ins"], test["del"],
                 test["sub"], test["ref_len"], rtf)
    return out

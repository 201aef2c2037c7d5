"""Context-dependent triphone GMM-HMMs: Kaldi's train_deltas.sh (tri1) and train_lda_mllt.sh (tri2).

From a previous system's alignments (monophone, or tri1 for tri2):

1. (tri2 only) LDA on the spliced static cepstra with the previous alignment's pdfs as classes.
2. Tree statistics per (left, centre, right, pdf-class) event, accumulated in ``nj`` processes;
   question sets by clustering the phones, plus the silence phones and any recipe questions; the
   tree built (``asr_kd.gmm.tree_build``) and written in Kaldi's formats (``tree``, ``tree.txt``,
   ``tree_info.txt``).
3. One Gaussian per tree leaf from the statistics (gmm-init-model); the previous alignments
   converted to the new tree (convert-ali: same phones, states and transitions, new pdfs).
4. Viterbi EM as the monophone stage (``GmmAligner``): realignment on ``realign_iters``,
   Gaussians split up to ``total_gauss``; (tri2) MLLT re-estimated on ``mllt_iters``, the model
   and features moved into the new space (gmm-transform-means).

MLLT statistics use each frame's best Gaussian within its aligned pdf (Kaldi weights by the
Gaussian posteriors); the transform is the same Gales update.
"""

import logging
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from asr_kd.gmm.configs import TriConfig
from asr_kd.gmm.labels import label_maps, phone_segments
from asr_kd.gmm.lda_mllt import estimate_lda, estimate_mllt, lda_stats
from asr_kd.gmm.mono import GmmAligner
from asr_kd.gmm.tree import ContextTree
from asr_kd.gmm.tree_build import (
    PDF_CLASS,
    TreeConfig,
    TreeStats,
    accumulate_tree_stats,
    build_tree,
    cluster_phones,
    frame_events,
    leaf_gaussians,
    pdf_class_questions,
)
from asr_kd.kaldi import khg
from asr_kd.utils.io import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


class TransitionTable:
    """Per transition-id of a TransitionModel: phone, HMM state, pdf, pdf-class and index among its
    transition state's transitions; and the transition state of (phone, HMM state, pdf). Kaldi's
    transition tuples are not exposed by the bindings: they are recovered from the tree's pdf info
    and the topology, and checked against the model."""

    def __init__(self, tm, tree, topo):
        n = tm.num_transition_ids
        maps = label_maps(tm)
        self.tm, self.maps = tm, maps
        self.phone, self.pdf, self.tstate = maps["phone"], maps["pdf"], maps["tstate"]
        self.first_tid = np.asarray(tm.state2id, np.int64)
        self.index = np.arange(n + 1) - self.first_tid[self.tstate]
        pdf_info = tree.get_pdf_info(topo.phones, topo.get_phone_to_num_pdf_classes())  # pdf -> [(phone, pdf-class)]
        groups: Dict[Tuple[int, int], List[int]] = {}
        for s in range(1, tm.num_transition_states + 1):
            tid = int(self.first_tid[s])
            groups.setdefault((int(self.phone[tid]), int(self.pdf[tid])), []).append(s)
        self.hmm_state_of_tstate = np.zeros(tm.num_transition_states + 1, np.int64)
        self.lookup: Dict[Tuple[int, int, int], int] = {}
        for (phone, pdf), tstates in groups.items():
            classes = {c for ph, c in pdf_info[pdf] if ph == phone}
            entry = topo.topology_for_phone(phone)
            states = [h for h, st in enumerate(entry) if st.forward_pdf_class in classes]
            if len(states) != len(tstates) or any(
                entry[h].self_loop_pdf_class != entry[h].forward_pdf_class for h in states
            ):
                raise ValueError(f"transition model: cannot recover the HMM states of phone {phone}, pdf {pdf}")
            for h, s in zip(states, sorted(tstates)):
                self.hmm_state_of_tstate[s] = h
                self.lookup[(phone, h, pdf)] = s
        self.hmm_state = self.hmm_state_of_tstate[self.tstate]
        self.pdf_class = np.array(
            [0]
            + [
                topo.topology_for_phone(int(self.phone[t]))[int(self.hmm_state[t])].forward_pdf_class
                for t in range(1, n + 1)
            ],
            np.int64,
        )

    def segments(self, tids) -> List[Tuple[int, int, int]]:
        return phone_segments(tids, self.maps)

    def events(self, tids) -> np.ndarray:
        tids = np.asarray(tids)
        return frame_events(self.segments(tids), self.pdf_class[tids])


def convert_alignment(tids, old: TransitionTable, new: TransitionTable, *, new_tree: ContextTree) -> np.ndarray:
    """Kaldi's convert-ali: each frame keeps its phone, HMM state and transition; the pdf (hence the
    transition-id) comes from the new tree for the phone's context in the utterance."""
    tids = np.asarray(tids)
    events = old.events(tids)
    out = np.empty_like(tids)
    cache: Dict[Tuple[int, ...], int] = {}
    for t, tid in enumerate(tids):
        key = (*events[t], int(old.hmm_state[tid]))
        s = cache.get(key)
        if s is None:
            pdf = new_tree.pdf(events[t][:3], events[t][3])
            s = cache[key] = new.lookup[(int(events[t][1]), int(old.hmm_state[tid]), pdf)]
        out[t] = new.first_tid[s] + old.index[tid]
    return out


# -- tree statistics in parallel (forked workers inherit the inputs) -----------------------------
_STATS_INPUT: Dict = {}


def _stats_shard(utts: Sequence[str]) -> TreeStats:
    feats, events = _STATS_INPUT["feats"], _STATS_INPUT["events"]
    return accumulate_tree_stats((feats[u], events[u]) for u in utts)


def parallel_tree_stats(feats: Dict[str, np.ndarray], events: Dict[str, np.ndarray], nj: int) -> TreeStats:
    utts = sorted(events)
    shards = [utts[i::nj] for i in range(nj) if utts[i::nj]]
    _STATS_INPUT.update(feats=feats, events=events)
    try:
        if len(shards) == 1:
            return _stats_shard(shards[0])
        with ProcessPoolExecutor(len(shards), mp_context=mp.get_context("fork")) as pool:
            return TreeStats.merge(list(pool.map(_stats_shard, shards)))
    finally:
        _STATS_INPUT.clear()


def questions_for(
    stats: TreeStats, lang, topo, *, extra: Sequence[Sequence[str]] = ()
) -> Dict[int, List[Tuple[int, ...]]]:
    """Context questions: clustered non-silence phone sets, the silence phones (with the utterance
    edge, phone 0) and the recipe's sets; pdf-class questions from the topology."""
    sil = sorted(lang.silence_ids)
    nonsil = sorted(p for p in topo.phones if p not in sil)
    phone_sets = cluster_phones(stats, nonsil)
    phone_sets += [tuple(sil), tuple([0] + sil)]
    for names in extra:
        unknown = [n for n in names if n not in lang.phone2id]
        if unknown:
            raise ValueError(f"extra question {list(names)}: phones not in the lang: {unknown}")
        phone_sets.append(tuple(sorted(lang.phone2id[n] for n in names)))
    phone_sets = list(dict.fromkeys(phone_sets))  # unique, first occurrence kept
    max_classes = max(topo.num_pdf_classes(p) for p in topo.phones)
    return {0: phone_sets, 2: phone_sets, PDF_CLASS: pdf_class_questions(max_classes)}


def write_tree_files(tree: ContextTree, questions, lang, *, out_dir: Path, info: Dict) -> None:
    tree.write(out_dir / "tree")
    tree.write(out_dir / "tree.txt", binary=False)
    write_text_atomic(out_dir / "tree_info.txt", tree.info_text())
    names = lambda ids: " ".join(lang.id2phone.get(i, "<edge>") for i in ids)  # noqa: E731
    write_text_atomic(out_dir / "questions.txt", "".join(names(q) + "\n" for q in questions[0]))
    write_json_atomic(out_dir / "tree_build.json", info)


def _init_am(counts, means, variances):
    import torch

    am = khg.AmDiagGmm()
    for m, v in zip(means, variances):
        g = khg.DiagGmm(nmix=1, dim=len(m))
        g.set_weights(torch.ones(1))
        g.set_means(torch.from_numpy(m[None].astype(np.float32)))
        g.set_invvars(torch.from_numpy((1.0 / v)[None].astype(np.float32)))
        g.compute_gconsts()
        am.add_pdf(g)
    return am


def _mllt_update(aligner: GmmAligner, feats: Dict[str, np.ndarray], ali: Dict[str, np.ndarray]):
    """One MLLT estimate from the current model and alignment; returns (A, gain per frame), or
    (None, 0) when the statistics give no finite transform (e.g. far too few frames)."""
    id2pdf = np.asarray(aligner.tm.id2pdf_id)
    x = np.concatenate([feats[u] for u in ali]).astype(np.float64)
    pdfs = np.concatenate([id2pdf[np.asarray(ali[u])] for u in ali])
    dim = x.shape[1]
    G = np.zeros((dim, dim, dim))
    for p in np.unique(pdfs):
        xp = x[pdfs == p]
        gmm = aligner.am.get_pdf(int(p))
        best = np.asarray(gmm.log_likelihoods_matrix(xp.astype(np.float32))).argmax(1)
        means, var = np.asarray(gmm.means, np.float64), np.asarray(gmm.vars, np.float64)
        for g in np.unique(best):
            c = xp[best == g] - means[g]
            G += np.einsum("i,de->ide", 1.0 / var[g], c.T @ c)
    A, gain = estimate_mllt(G, float(len(x)))
    if not np.isfinite(A).all() or not np.isfinite(gain):
        log.warning("MLLT: no finite transform from %d frames; keeping the current one", len(x))
        return None, 0.0
    return A, gain


def _transform_model(am, A: np.ndarray) -> None:
    """Means and (diagonal) variances moved into the space of ``A x`` (gmm-transform-means; the
    variances' next ML update re-estimates them)."""
    import torch

    for p in range(am.num_pdfs):
        g = am.get_pdf(p)
        means, var = np.asarray(g.means, np.float64), np.asarray(g.vars, np.float64)
        g.set_means(torch.from_numpy((means @ A.T).astype(np.float32)))
        g.set_invvars(torch.from_numpy((1.0 / np.maximum(var @ (A**2).T, 1e-4)).astype(np.float32)))
        g.compute_gconsts()


def train_triphone(
    lang_dir,
    cfg: TriConfig,
    nj: int,
    *,
    feats: Dict[str, np.ndarray],
    texts: Dict[str, str],
    prev_model: Dict,
    prev_ali: Dict[str, np.ndarray],
    train_utts: Sequence[str],
    out_dir,
    log_path=None,
) -> Tuple[GmmAligner, Dict]:
    """A triphone system from ``prev_model`` (``load_gmm``'s dict) and its training alignments;
    ``feats`` are ``gmm_features_for(..., cfg)`` without a transform. Returns (aligner with its
    data set, info: tree, LDA/MLLT and per-iteration history)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from asr_kd.lang.prepare_lang import Lang

    lang = Lang(lang_dir)
    topo = lang.topology()
    prev = TransitionTable(prev_model["tm"], prev_model["tree"], topo)
    utts = [u for u in train_utts if u in prev_ali]
    if not utts:
        raise ValueError("triphone training: no training utterance has a previous alignment")
    info: Dict = {"utterances": len(utts), "left_out_unaligned": len(train_utts) - len(utts)}
    transform = None
    t0 = time.time()
    if cfg.splice:
        counts, sums, scatter = lda_stats(
            ((feats[u], prev.pdf[np.asarray(prev_ali[u])]) for u in utts), prev_model["tm"].num_pdfs
        )
        transform = estimate_lda(counts, sums, scatter, dim=cfg.lda_dim)
        feats = {u: (f @ transform.T).astype(np.float32) for u, f in feats.items()}
        info["lda"] = {
            "input_dim": int(transform.shape[1]),
            "output_dim": int(transform.shape[0]),
            "classes": int((counts > 0).sum()),
        }
    events = {u: prev.events(prev_ali[u]) for u in utts}
    stats = parallel_tree_stats(feats, events, nj)
    questions = questions_for(stats, lang, topo, extra=cfg.extra_questions)
    tree, tree_info = build_tree(
        stats,
        topo.phones,
        questions,
        cfg=TreeConfig(num_leaves=cfg.num_leaves, min_count=cfg.min_leaf_count, cluster_thresh=cfg.cluster_thresh),
    )
    write_tree_files(tree, questions, lang, out_dir=out_dir, info={**tree_info, "questions": len(questions[0])})
    info["tree"] = {**tree_info, "seconds": round(time.time() - t0, 2)}
    aligner = GmmAligner(lang_dir, cfg, nj, tree=tree.to_kaldi())
    aligner.transform = transform
    aligner.am = _init_am(*leaf_gaussians(tree, stats))
    aligner.set_data(feats, texts)
    new = TransitionTable(aligner.tm, aligner.tree, topo)
    ali = {u: convert_alignment(prev_ali[u], prev, new, new_tree=tree) for u in utts}
    history: List[Dict] = []
    num_gauss = aligner.am.num_gauss
    inc = max(0, (cfg.total_gauss - num_gauss) // max(1, cfg.max_iter_inc))
    for it in range(1, cfg.num_iters + 1):
        rec: Dict = {"iter": it}
        t_align = time.time()
        if it in cfg.realign_iters:
            res = aligner.align(utts)
            ali = {u: np.asarray(a) for u, a in res.alignments.items()}
            rec.update(align="viterbi", failed=len(res.failed), retried=len(res.retried))
        rec["align_seconds"] = round(time.time() - t_align, 3)
        if cfg.splice and it in cfg.mllt_iters:
            A, gain = _mllt_update(aligner, feats, ali)
            if A is not None:
                _transform_model(aligner.am, A)
                feats = {u: (f @ A.T.astype(np.float32)).astype(np.float32) for u, f in feats.items()}
                aligner.transform = A @ aligner.transform
                aligner.set_data(feats, texts)
            rec["mllt_gain_per_frame"] = round(float(gain), 4)
        t_upd = time.time()
        if it <= cfg.max_iter_inc:
            num_gauss += inc
        like, frames = aligner.accumulate_and_update(ali, num_gauss)
        rec.update(
            log_like=like, frames=frames, gauss=aligner.am.num_gauss, update_seconds=round(time.time() - t_upd, 3)
        )
        history.append(rec)
        log.info(
            "iter %d: %.3f per frame, %d Gaussians%s%s",
            it,
            like,
            rec["gauss"],
            f", realigned in {rec['align_seconds']:.1f} s" if "align" in rec else "",
            f", MLLT gain {rec['mllt_gain_per_frame']:.3f}" if "mllt_gain_per_frame" in rec else "",
        )
        if log_path:
            write_json_atomic(log_path, history)
    info["history"] = history
    info["config"] = asdict(cfg)
    return aligner, info

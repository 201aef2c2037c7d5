"""Monophone GMM-HMM training from a flat start and forced alignment (Kaldi's train_mono.sh
and align_si.sh) with kaldi-hmm-gmm.

Schedule: one Gaussian per pdf at the global mean/variance -> equal alignment -> Viterbi EM
(realign on ``realign_iters``), Gaussians split by occupancy up to ``total_gauss``.
Training graphs are compiled with transition_scale = self_loop_scale = 0 and transition
probabilities are added at alignment time (so they are not counted twice).

Alignment runs in ``nj`` forked processes over utterances (kaldi-hmm-gmm holds the GIL);
statistics are accumulated in the parent from the returned alignments. An utterance that
fails at ``beam`` is retried at ``retry_beam`` (Kaldi's AlignConfig); one that fails both is
counted, logged by id, and left out of that iteration, never silently.
"""

import logging
import multiprocessing as mp
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from asr_kd.gmm.configs import CONFIG_CLASSES, MonoConfig
from asr_kd.gmm.graphs import TrainingGraphs, align_utterance
from asr_kd.gmm.labels import label_maps
from asr_kd.gmm.model_file import load_gmm_file, save_gmm_file
from asr_kd.kaldi import kaldifst, khg
from asr_kd.lang.prepare_lang import Lang
from asr_kd.utils.io import write_json_atomic
from asr_kd.utils.jobs import JobCmd, run_jobs

log = logging.getLogger(__name__)


# -- worker side (forked; the features and transcripts are inherited, not pickled) ----------------
_WORKER: Dict = {}  # this process's training graphs (set by _worker_init)
_DATA: Dict = {"feats": {}, "texts": {}}  # set in the parent before forking (GmmAligner.set_data)


def _worker_init(lang_dir: str, tm_bytes: bytes, tree_bytes: bytes) -> None:
    _WORKER["graphs"] = TrainingGraphs(Lang(lang_dir), pickle.loads(tm_bytes), pickle.loads(tree_bytes))


def _graph(utt: str):
    return _WORKER["graphs"].graph(utt, _DATA["texts"][utt])


def _align_chunk(task) -> List[Tuple[str, Optional[List[int]], float, bool]]:
    """Returns (utt, transition-ids or None, log-likelihood, retried) per utterance."""
    mode, model_bytes, utts, cfg = task
    out = []
    if mode == "equal":
        for utt in utts:
            n = _DATA["feats"][utt].shape[0]
            ok, path = kaldifst.equal_align(ifst=_graph(utt), length=n, rand_seed=cfg.seed, num_retries=10)
            ali = None
            if ok:
                ok, ali, _, _ = kaldifst.get_linear_symbol_sequence(path)
            out.append((utt, list(ali) if ok else None, 0.0, False))
        return out
    tm, am = pickle.loads(model_bytes)
    for utt in utts:
        feats = _DATA["feats"][utt]
        dec = khg.DecodableAmDiagGmmScaled(am=am, tm=tm, feats=feats, scale=cfg.acoustic_scale)
        ali, like, retried = align_utterance(
            _graph(utt),
            tm,
            dec,
            utt=utt,
            num_frames=feats.shape[0],
            acoustic_scale=cfg.acoustic_scale,
            beam=cfg.beam,
            retry_beam=cfg.retry_beam,
            transition_scale=cfg.transition_scale,
            self_loop_scale=cfg.self_loop_scale,
        )
        out.append((utt, ali, like, retried))
    return out


@dataclass
class AlignJob:
    """One Slurm job's share of an alignment pass: what it builds its graphs from, its utterances'
    features and transcripts, and the ``_align_chunk`` task."""

    lang_dir: str
    tm_bytes: bytes
    tree_bytes: bytes
    feats: Dict
    texts: Dict
    task: tuple


def _align_job(job: AlignJob):
    """``_align_chunk`` as a self-contained job (a fresh process: data and graphs passed in)."""
    _DATA["feats"], _DATA["texts"] = job.feats, job.texts
    _worker_init(job.lang_dir, job.tm_bytes, job.tree_bytes)
    return _align_chunk(job.task)


class AlignmentFailures(RuntimeError):
    pass


@dataclass
class AlignPassResult:
    alignments: Dict[str, List[int]]
    failed: List[str]
    retried: List[str]
    log_like: float


def mono_config(saved: Dict, cls_name: str = "MonoConfig") -> MonoConfig:
    """The config a model was trained with, from its saved ``asdict`` (lists back to tuples)."""
    return CONFIG_CLASSES[cls_name](**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})


def load_gmm(path) -> Dict:
    """A saved model's parts: ``tm``, ``tree``, ``am``, its ``cfg`` (MonoConfig or TriConfig) and
    ``transform`` (the LDA+MLLT matrix of its features, or None)."""
    d = load_gmm_file(path)
    meta = d["meta"]
    return {
        "tm": d["tm"],
        "tree": d["tree"],
        "am": d["am"],
        "lang_dir": meta["lang_dir"],
        "cfg": mono_config(meta["cfg"], meta.get("cfg_class", "MonoConfig")),
        "transform": d["transform"],
    }


class GmmAligner:
    """Owns a GMM-HMM (TransitionModel, tree, AmDiagGmm) and a pool of alignment workers: monophone
    by default, any tree (``asr_kd.gmm.triphone``) when given one."""

    def __init__(self, lang_dir, cfg: MonoConfig, nj: int = 1, *, tree=None):
        """``tree``: a ``kaldi_hmm_gmm.ContextDependency`` (e.g. a triphone tree); default monophone."""
        self.cfg, self.nj, self.lang_dir = cfg, max(1, nj), str(lang_dir)
        self.lang = Lang(lang_dir)
        topo = self.lang.topology()
        self.tree = (
            tree
            if tree is not None
            else khg.monophone_context_dependency(
                phones=topo.phones, phone2num_pdf_classes=topo.get_phone_to_num_pdf_classes()
            )
        )
        self.tm = khg.TransitionModel(ctx_dep=self.tree, hmm_topo=topo)
        self.am = None
        self.transform = None  # a feature transform the model's features went through (LDA+MLLT), or None
        self._pool = None
        self._graphs = None

    def training_graphs(self) -> TrainingGraphs:
        """This process's training graphs for the model (e.g. to align with a DNN's likelihoods)."""
        if self._graphs is None:
            self._graphs = TrainingGraphs(self.lang, self.tm, self.tree)
        return self._graphs

    # -- data and processes ------------------------------------------------------------------
    def set_data(self, feats: Dict[str, np.ndarray], texts: Dict[str, str]) -> None:
        for utt, text in texts.items():
            self.lang.word_ids(text.split(), utt)  # OOV -> clear error before any work starts
        self.close()
        _DATA["feats"], _DATA["texts"] = feats, texts

    def _pool_(self):
        if self._pool is None:
            # concurrent.futures, not multiprocessing.Pool: a crashed worker raises
            # BrokenProcessPool instead of hanging the stage forever
            self._pool = ProcessPoolExecutor(
                self.nj,
                mp_context=mp.get_context("fork"),
                initializer=_worker_init,
                initargs=(self.lang_dir, pickle.dumps(self.tm), pickle.dumps(self.tree)),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def align(self, utts: Sequence[str], mode: str = "viterbi", cmd="local", *, job_dir=None) -> AlignPassResult:
        """Align ``utts`` in the forked pool, or (``cmd`` "slurm ...") as ``nj`` Slurm jobs, each
        given its utterances' features and transcripts (logs in ``job_dir``)."""
        utts = sorted(utts, key=lambda u: -_DATA["feats"][u].shape[0])
        model = pickle.dumps((self.tm, self.am)) if mode != "equal" else b""
        if JobCmd.parse(cmd).local:
            chunks = [utts[i :: self.nj * 4] for i in range(self.nj * 4)]  # longest first, balanced
            results = list(self._pool_().map(_align_chunk, [(mode, model, c, self.cfg) for c in chunks if c]))
        else:
            chunks = [c for c in (utts[i :: self.nj] for i in range(self.nj)) if c]
            graphs = (self.lang_dir, pickle.dumps(self.tm), pickle.dumps(self.tree))
            results = run_jobs(
                cmd,
                _align_job,
                [
                    (
                        AlignJob(
                            *graphs,
                            feats={u: _DATA["feats"][u] for u in c},
                            texts={u: _DATA["texts"][u] for u in c},
                            task=(mode, model, c, self.cfg),
                        ),
                    )
                    for c in chunks
                ],
                job_dir=job_dir,
                name="align",
            )
        ali, failed, retried, like = {}, [], [], 0.0
        for chunk in results:
            for utt, a, ll, r in chunk:
                if a is None:
                    failed.append(utt)
                else:
                    ali[utt] = a
                    like += ll
                if r:
                    retried.append(utt)
        if failed:
            log.warning(
                "alignment failed for %d of %d utterances (after retry beam %.0f): %s",
                len(failed),
                len(utts),
                self.cfg.retry_beam,
                ", ".join(sorted(failed)[:20]),
            )
        return AlignPassResult(ali, sorted(failed), sorted(retried), like)

    # -- model -------------------------------------------------------------------------------
    def init_model(self, feats: Sequence[np.ndarray]) -> None:
        import torch

        x = np.concatenate(feats).astype(np.float64)
        mean, var = x.mean(0), np.maximum(x.var(0), 1e-4)
        g = khg.DiagGmm(nmix=1, dim=x.shape[1])
        g.set_weights(torch.ones(1))
        g.set_means(torch.from_numpy(mean[None].astype(np.float32)))
        g.set_invvars(torch.from_numpy((1.0 / var)[None].astype(np.float32)))
        g.compute_gconsts()
        self.am = khg.AmDiagGmm()
        for _ in range(self.tree.num_pdfs):
            self.am.add_pdf(g)

    def phone_pdfs(self) -> Dict[int, List[int]]:
        """phone id -> its pdf-ids in HMM-state order (monophone tree)."""
        maps = label_maps(self.tm)
        phone_pdfs: Dict[int, set] = {}
        for tid in range(1, self.tm.num_transition_ids + 1):
            phone_pdfs.setdefault(int(maps["phone"][tid]), set()).add(int(maps["pdf"][tid]))
        return {p: sorted(v) for p, v in phone_pdfs.items()}  # monophone pdfs come in state order

    def oracle_pdf_labels(self, cut, frame_shift: float = 0.01) -> Optional[np.ndarray]:
        """pdf-id per frame from the cut's oracle phone times (``supervision.alignment["phone"]``):
        each phone's frames (by frame centre) shared equally among its states, SIL in the gaps (a
        gap too short for SIL's states goes to the phone before it). None when the cut has no
        phone times or a phone is not in the lang or has fewer frames than states."""
        ali = cut.supervisions[0].alignment or {}
        if not ali.get("phone") or any(a.symbol not in self.lang.phone2id for a in ali["phone"]):
            return None
        pdfs, phone2id = self.phone_pdfs(), self.lang.phone2id
        sil = pdfs[phone2id["SIL"]]

        def frame(t: float) -> int:  # the first frame whose centre is at or after t
            return int(np.clip(np.ceil(t / frame_shift - 0.5 - 1e-6), 0, cut.num_frames))

        segs, t = [], 0
        for a in ali["phone"]:
            start, end = frame(a.start), frame(a.end)
            if start - t >= len(sil) or not segs:
                segs.append(("SIL", t, start))
            else:
                segs[-1] = (segs[-1][0], segs[-1][1], start)
            segs.append((a.symbol, start, end))
            t = end
        segs.append(("SIL", t, cut.num_frames))
        lab = np.full(cut.num_frames, -1, np.int64)
        for phone, start, end in segs:
            states, n = pdfs[phone2id[phone]], end - start
            if n < len(states):
                if phone == "SIL" and n == 0:
                    continue
                return None
            lab[start:end] = np.array(states)[(np.arange(n) * len(states)) // n]
        return lab if (lab >= 0).all() else None

    def vad_flat_start_labels(self, utts: Sequence[str], log_energy: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """pdf-id per frame for pass 0 (see MonoConfig.flat_start)."""
        phone_pdfs = self.phone_pdfs()
        prons = self.lang.first_pronunciations()
        sil = phone_pdfs[self.lang.phone2id["SIL"]]
        out = {}
        for utt in utts:
            e = log_energy[utt]
            lo, hi = np.percentile(e, 10), np.percentile(e, 95)
            if hi - lo < self.cfg.vad_min_range:
                continue
            speech = np.flatnonzero(e > lo + 0.3 * (hi - lo))
            start, end = int(speech[0]), int(speech[-1]) + 1
            states = [
                pdf
                for w in _DATA["texts"][utt].split()
                for ph in prons[w]
                for pdf in phone_pdfs[self.lang.phone2id[ph]]
            ]
            if end - start < len(states):
                continue
            lab = np.empty(len(e), np.int64)
            lab[:start] = np.array(sil)[(np.arange(start) * len(sil)) // max(start, 1)]
            lab[end:] = np.array(sil)[(np.arange(len(e) - end) * len(sil)) // max(len(e) - end, 1)]
            lab[start:end] = np.array(states)[(np.arange(end - start) * len(states)) // (end - start)]
            out[utt] = lab
        return out

    def update_from_pdf_labels(self, labels: Dict[str, np.ndarray]) -> Tuple[float, int]:
        """GMM re-estimation from per-frame pdf labels (transition probabilities stay at the topology's)."""
        acc = khg.AccumAmDiagGmm()
        acc.init(model=self.am, flags=khg.GmmUpdateFlags.kGmmAll)
        like, frames = 0.0, 0
        for utt, lab in labels.items():
            x = _DATA["feats"][utt]
            for t, pdf in enumerate(lab):
                like += acc.accumulate_for_gmm(model=self.am, data=x[t], gmm_index=int(pdf), weight=1.0)
            frames += len(lab)
        if frames == 0:
            raise AlignmentFailures(
                "flat start: no utterance has a usable speech/silence contrast; use flat_start: equal"
            )
        opts = khg.MleDiagGmmOptions()
        opts.min_gaussian_occupancy = self.cfg.min_gaussian_occupancy
        khg.mle_am_diag_gmm_update(config=opts, amdiag_gmm_acc=acc, flags=khg.str_to_gmm_flags("mvw"), am_gmm=self.am)
        return like / frames, frames

    def accumulate_and_update(self, alignments: Dict[str, List[int]], mixup: int) -> Tuple[float, int]:
        """One ML re-estimation from hard alignments; returns (average log-likelihood per frame, frames)."""
        import torch

        acc = khg.AccumAmDiagGmm()
        acc.init(model=self.am, flags=khg.GmmUpdateFlags.kGmmAll)
        id2pdf = np.asarray(self.tm.id2pdf_id)
        tstats = np.zeros(self.tm.num_transition_ids + 1, np.float64)
        like, frames = 0.0, 0
        for utt, ali in alignments.items():
            x = _DATA["feats"][utt]
            tids = np.asarray(ali)
            tstats += np.bincount(tids, minlength=len(tstats))
            for t, pdf in enumerate(id2pdf[tids]):
                like += acc.accumulate_for_gmm(model=self.am, data=x[t], gmm_index=int(pdf), weight=1.0)
            frames += len(tids)
        if frames == 0:
            raise AlignmentFailures("no utterance could be aligned: nothing to train on")
        self.tm.mle_update(torch.from_numpy(tstats), khg.MleTransitionUpdateConfig())
        opts = khg.MleDiagGmmOptions()
        opts.min_gaussian_occupancy = self.cfg.min_gaussian_occupancy
        khg.mle_am_diag_gmm_update(config=opts, amdiag_gmm_acc=acc, flags=khg.str_to_gmm_flags("mvwt"), am_gmm=self.am)
        if mixup > self.am.num_gauss:
            self._mix_up(np.array([acc.get_acc(i).occupancy.sum().item() for i in range(acc.num_accs)]), mixup)
        return like / frames, frames

    def _mix_up(self, occupancy: np.ndarray, target: int) -> None:
        """Split Gaussians by state occupancy up to ``target`` components."""
        import torch

        before = [self.am.num_gauss_in_pdf(i) for i in range(self.am.num_pdfs)]
        # The library perturbs split means with an unseeded generator, so reruns would drift
        # apart: split without perturbation, then perturb the split pdfs with a seeded one.
        self.am.split_by_count(
            state_occs=torch.tensor(occupancy, dtype=torch.float32),
            target_components=target,
            perturb_factor=0.0,
            power=self.cfg.power,
            min_count=20.0,
        )
        rng = np.random.default_rng([self.cfg.seed, self.am.num_gauss])
        for i in range(self.am.num_pdfs):
            if self.am.num_gauss_in_pdf(i) != before[i]:
                g = self.am.get_pdf(i)  # a reference into the model
                means, std = np.asarray(g.means), np.sqrt(np.asarray(g.vars))
                g.set_means(
                    torch.from_numpy(
                        (means + self.cfg.perturb_factor * std * rng.standard_normal(means.shape)).astype(np.float32)
                    )
                )
                g.compute_gconsts()

    def train_from_pdf_labels(self, labels: Dict[str, np.ndarray], log_path=None) -> List[Dict]:
        """Supervised training from fixed per-frame pdf labels (e.g. from oracle phone times): ML
        re-estimation with Gaussian splitting on the MonoConfig schedule, no realignment."""
        cfg = self.cfg
        self.init_model([_DATA["feats"][u] for u in labels])
        occupancy = np.bincount(np.concatenate(list(labels.values())), minlength=self.tm.num_pdfs).astype(np.float64)
        num_gauss = self.am.num_gauss
        inc = max(0, (cfg.total_gauss - num_gauss) // max(1, cfg.max_iter_inc))
        history = []
        for it in range(cfg.num_iters):
            t0 = time.time()
            like, frames = self.update_from_pdf_labels(labels)
            if it < cfg.max_iter_inc:
                num_gauss += inc
                self._mix_up(occupancy, num_gauss)
            history.append(
                {
                    "iter": it,
                    "align": "fixed labels",
                    "log_like": like,
                    "frames": frames,
                    "gauss": self.am.num_gauss,
                    "update_seconds": round(time.time() - t0, 3),
                }
            )
            if log_path:
                write_json_atomic(log_path, history)
        return history

    def train(
        self, train_utts: Sequence[str], log_path=None, log_energy: Optional[Dict[str, np.ndarray]] = None
    ) -> List[Dict]:
        """Flat start + Viterbi EM. Returns the per-iteration history (also written to ``log_path``).
        ``log_energy`` (per-frame log energy by utterance) is needed for ``flat_start: vad``."""
        cfg = self.cfg
        self.init_model([_DATA["feats"][u] for u in train_utts])
        history = []
        t0 = time.time()
        num_gauss = self.am.num_gauss
        inc = max(0, (cfg.total_gauss - num_gauss) // max(1, cfg.max_iter_inc))
        if cfg.flat_start == "vad":
            if log_energy is None:
                raise ValueError("flat_start 'vad' needs per-frame log energies")
            labels = self.vad_flat_start_labels(train_utts, log_energy)
            like, frames = self.update_from_pdf_labels(labels)
            failed = len(train_utts) - len(labels)
            ali = {}
        elif cfg.flat_start == "equal":
            res = self.align(train_utts, mode="equal")
            if res.failed:
                log.warning(
                    "equal alignment failed for %d utterance(s) (too short for their transcript?)", len(res.failed)
                )
            ali, failed = res.alignments, len(res.failed)
            like, frames = self.accumulate_and_update(ali, num_gauss)
        else:
            raise ValueError(f"flat_start must be 'vad' or 'equal', not {cfg.flat_start!r}")
        history.append(
            {
                "iter": 0,
                "align": cfg.flat_start,
                "log_like": like,
                "frames": frames,
                "gauss": self.am.num_gauss,
                "failed": failed,
                "align_seconds": 0.0,
                "update_seconds": round(time.time() - t0, 3),
            }
        )
        log.info(
            "iter 0 (%s flat start): %.3f per frame over %d frames (%d utterances left out)",
            cfg.flat_start,
            like,
            frames,
            failed,
        )
        for it in range(1, cfg.num_iters):
            if it == 1 and not ali:  # the vad start has no transition-level alignment yet
                ali = self.align(train_utts).alignments
            t_align = time.time()
            failed = retried = 0
            if it in cfg.realign_iters:
                res = self.align(train_utts)
                ali, failed, retried = res.alignments, len(res.failed), len(res.retried)
            t_upd = time.time()
            if it <= cfg.max_iter_inc:
                num_gauss += inc
            like, frames = self.accumulate_and_update(ali, num_gauss)
            rec = {
                "iter": it,
                "align": "viterbi" if it in cfg.realign_iters else "none",
                "log_like": like,
                "frames": frames,
                "gauss": self.am.num_gauss,
                "failed": failed,
                "retried": retried,
                "align_seconds": round(t_upd - t_align, 3),
                "update_seconds": round(time.time() - t_upd, 3),
            }
            history.append(rec)
            log.info(
                "iter %d: %.3f per frame, %d Gaussians, align %.1f s, update %.1f s%s",
                it,
                like,
                rec["gauss"],
                rec["align_seconds"],
                rec["update_seconds"],
                f", {failed} failed" if failed else "",
            )
            if log_path:
                write_json_atomic(log_path, history)
        return history

    def state_occupancy(self, alignments: Dict[str, List[int]]) -> np.ndarray:
        id2pdf = np.asarray(self.tm.id2pdf_id)
        return np.bincount(
            np.concatenate([id2pdf[np.asarray(a)] for a in alignments.values()]), minlength=self.tm.num_pdfs
        )

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path) -> None:
        meta = {"cfg": asdict(self.cfg), "cfg_class": type(self.cfg).__name__, "lang_dir": str(self.lang_dir)}
        save_gmm_file(path, self.tm, self.tree, am=self.am, meta=meta, transform=self.transform)

    @classmethod
    def load(cls, path, lang_dir=None, nj: int = 1) -> "GmmAligner":
        d = load_gmm(path)
        obj = cls(lang_dir or d["lang_dir"], d["cfg"], nj, tree=d["tree"])
        obj.tm, obj.am, obj.transform = d["tm"], d["am"], d.get("transform")
        return obj

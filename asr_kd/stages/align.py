"""Stage 4, alignment, as one call per GMM system: GMM features -> monophone (or triphone) training ->
alignment of every split -> labels stored with lhotse -> pdf statistics -> report against the oracle.

Resumable: the trained model (``<exp>/final.mdl``) and each split's labels are kept once
written; a rerun loads them instead of redoing the work.
"""

import json
import logging
import time
from pathlib import Path
from typing import Callable, Dict, Sequence

import numpy as np
from lhotse import CutSet

from asr_kd.align.report import finish_alignment
from asr_kd.data.features import FeatureNormalizer, feature_cuts_path
from asr_kd.gmm.features import gmm_features_for
from asr_kd.gmm.labels import store_alignments
from asr_kd.gmm.mono import MonoConfig, GmmAligner
from asr_kd.utils.io import write_json_atomic
from asr_kd.utils.made_from import write_made_from
from asr_kd.utils.validity import file_digest, fingerprint, is_done, mark_done

log = logging.getLogger(__name__)


def load_gmm_inputs(cuts: CutSet, normalizer: FeatureNormalizer, cfg: MonoConfig):
    """GMM features, transcripts and per-frame log energy (mean log-mel) by cut id."""
    feats, texts, energy = {}, {}, {}
    for cut in cuts:
        fbank = cut.load_features()
        feats[cut.id] = gmm_features_for(normalizer(fbank, cut.supervisions[0].speaker), cfg)
        texts[cut.id] = cut.supervisions[0].text
        energy[cut.id] = fbank.mean(axis=1)
    return feats, texts, energy


def _load_inputs(fbank_dir, corpus: str, splits: Sequence[str], *, exp_dir: Path, cfg: MonoConfig, cmvn_mode):
    exp_dir.mkdir(parents=True, exist_ok=True)
    normalizer = FeatureNormalizer.of_features(fbank_dir, mode=cmvn_mode)
    cuts = {s: CutSet.from_file(feature_cuts_path(fbank_dir, corpus, s)).to_eager() for s in splits}
    t0 = time.time()
    feats, texts, energy = {}, {}, {}
    for s in splits:
        f, t, e = load_gmm_inputs(cuts[s], normalizer, cfg)
        feats.update(f)
        texts.update(t)
        energy.update(e)
    if not feats:
        raise ValueError(f"no {corpus} cuts with features in {fbank_dir} for splits {list(splits)}")
    log.info(
        "GMM features for %d cuts (%d-dim) in %.1f s", len(feats), next(iter(feats.values())).shape[1], time.time() - t0
    )
    return cuts, feats, texts, energy


def train_and_align(
    fbank_dir,
    corpus: str,
    splits: Sequence[str],
    *,
    lang_dir,
    exp_dir,
    cfg: MonoConfig,
    nj: int = 1,
    held_out_accents: Sequence[str] = (),
    cmvn_mode=None,
    cmd="local",
) -> Dict:
    """The monophone GMM-HMM from a flat start, then every split aligned with it and reported."""
    exp_dir = Path(exp_dir)

    def train(aligner: GmmAligner, cuts, energy) -> Dict:
        history = aligner.train(
            [c.id for c in cuts[splits[0]]], log_path=exp_dir / "train_history.json", log_energy=energy
        )
        em = history[1:]
        realign = [h["align_seconds"] for h in em if h["align"] == "viterbi"]
        return {
            "mean_update_seconds_per_iter": round(float(np.mean([h["update_seconds"] for h in em])), 3),
            "mean_align_seconds_per_pass": round(float(np.mean(realign)), 3) if realign else None,
        }

    return _train_system(
        fbank_dir,
        corpus,
        splits,
        lang_dir=lang_dir,
        exp_dir=exp_dir,
        cfg=cfg,
        nj=nj,
        held_out_accents=held_out_accents,
        cmvn_mode=cmvn_mode,
        cmd=cmd,
        train=train,
    )


def _train_system(
    fbank_dir,
    corpus: str,
    splits: Sequence[str],
    *,
    lang_dir,
    exp_dir: Path,
    cfg: MonoConfig,
    nj: int,
    held_out_accents: Sequence[str],
    cmvn_mode,
    cmd,
    train: Callable,
    key_inputs: Callable[[Dict], Dict] = lambda cuts: {},
) -> Dict:
    """What the monophone systems share: inputs loaded, the run's key (config, training cuts,
    transcripts, phones and ``key_inputs(cuts)``), ``train(aligner, cuts, energy)`` unless a model
    of that key is kept, every split aligned and reported."""
    write_made_from(exp_dir, {"fbank_dir": fbank_dir, "lang": lang_dir}, {"corpus": corpus})
    cuts, feats, texts, energy = _load_inputs(fbank_dir, corpus, splits, exp_dir=exp_dir, cfg=cfg, cmvn_mode=cmvn_mode)
    key = fingerprint(
        {
            "cfg": cfg.__dict__,
            "train": sorted(c.id for c in cuts[splits[0]]),
            "texts": sorted(texts.items()),
            "lang": (Path(lang_dir) / "phones.txt").read_text(),
            **key_inputs(cuts),
        }
    )
    aligner, timings = _train_or_load(
        exp_dir,
        key,
        lang_dir,
        cfg=cfg,
        nj=nj,
        feats=feats,
        texts=texts,
        train=lambda aligner: train(aligner, cuts, energy),
    )
    return _align_and_report(
        aligner,
        cuts,
        splits,
        corpus=corpus,
        exp_dir=exp_dir,
        key=key,
        timings=timings,
        held_out_accents=held_out_accents,
        cmd=cmd,
    )


def _train_or_load(
    exp_dir: Path, key: str, lang_dir, *, cfg: MonoConfig, nj: int, feats, texts, train: Callable[[GmmAligner], Dict]
):
    """The model in ``exp_dir`` if it was trained with the same key, else ``train(aligner)`` on a
    new one, saved with timings.json; returns (aligner with the data set, timings)."""
    model_path = exp_dir / "final.mdl"
    if is_done(exp_dir, key) and model_path.is_file():
        log.info("%s is trained; loading it", model_path)
        aligner = GmmAligner.load(model_path, lang_dir, nj)
        aligner.set_data(feats, texts)
        return aligner, json.loads((exp_dir / "timings.json").read_text())
    aligner = GmmAligner(lang_dir, cfg, nj)
    aligner.set_data(feats, texts)
    t0 = time.time()
    extra = train(aligner)
    aligner.save(model_path)
    timings = {
        "train_seconds": round(time.time() - t0, 2),
        **extra,
        "num_pdfs": aligner.tm.num_pdfs,
        "num_gauss": aligner.am.num_gauss,
        "nj": nj,
    }
    write_json_atomic(exp_dir / "timings.json", timings)
    mark_done(exp_dir, key)
    return aligner, timings


def _align_and_report(
    aligner: GmmAligner,
    cuts: Dict[str, CutSet],
    splits: Sequence[str],
    *,
    corpus: str,
    exp_dir: Path,
    key: str,
    timings: Dict,
    held_out_accents: Sequence[str],
    cmd="local",
) -> Dict:
    """Align every split (resumable per split; ``nj`` jobs run as ``cmd`` says: Kaldi's
    align_si.sh after training), store the labels, pdf statistics, the report against the oracle
    and its picture, and summary.json. Training's own realignment stays in forked processes."""
    ali_cuts, failures = {}, {}
    for s in splits:
        out_name = f"{corpus}_{s}"
        split_key = key + ":" + s
        marker_dir = exp_dir / f".ali_{s}"
        if is_done(marker_dir, split_key) and (exp_dir / f"{out_name}_cuts.jsonl.gz").is_file():
            ali_cuts[s] = CutSet.from_file(exp_dir / f"{out_name}_cuts.jsonl.gz")
            failures[s] = (exp_dir / f"{out_name}_failed.txt").read_text().split()
            continue
        t_ali = time.time()
        res = aligner.align([c.id for c in cuts[s]], cmd=cmd, job_dir=exp_dir / "jobs")
        log.info(
            "aligned %s: %d ok, %d retried, %d failed in %.1f s",
            s,
            len(res.alignments),
            len(res.retried),
            len(res.failed),
            time.time() - t_ali,
        )
        ali_cuts[s] = store_alignments(cuts[s], res.alignments, aligner.tm, out_dir=exp_dir, name=out_name)
        failures[s] = res.failed
        mark_done(marker_dir, split_key)
    aligner.close()

    counts, report = finish_alignment(
        ali_cuts, aligner.tm, aligner.lang, out_dir=exp_dir, held_out_accents=held_out_accents
    )
    occupied = int((counts > 0).sum())
    if occupied < len(counts):
        log.warning("%d of %d pdfs have no training frames", len(counts) - occupied, len(counts))
    summary = {
        "timings": timings,
        "num_pdfs": int(len(counts)),
        "pdfs_with_frames": occupied,
        "failed": {s: len(f) for s, f in failures.items()},
        "report": report["splits"],
    }
    write_json_atomic(exp_dir / "summary.json", summary)
    for s, groups in report["splits"].items():
        for name, r in groups.items():
            log.info(
                "%s/%s: %.1f%% of oracle boundaries within %.0f ms, frame phone agreement %.1f%%",
                s,
                name,
                100 * r["boundary_accuracy"],
                report["tolerance_ms"],
                100 * r["frame_agreement"],
            )
    return summary


def train_triphone_and_align(
    fbank_dir,
    corpus: str,
    splits: Sequence[str],
    *,
    lang_dir,
    prev_dir,
    exp_dir,
    cfg,
    nj: int = 1,
    held_out_accents: Sequence[str] = (),
    cmvn_mode=None,
    cmd="local",
) -> Dict:
    """tri1 / tri2 (``asr_kd.gmm.triphone``) from the system in ``prev_dir`` (its model and training
    alignments), then every split aligned and reported as for the monophone stage. Resumable: a
    model trained from the same inputs is loaded; a changed previous system retrains."""
    from asr_kd.gmm.mono import load_gmm
    from asr_kd.gmm.triphone import train_triphone

    exp_dir, prev_dir = Path(exp_dir), Path(prev_dir)
    write_made_from(exp_dir, {"fbank_dir": fbank_dir, "lang": lang_dir}, {"corpus": corpus})
    prev_cuts_path = prev_dir / f"{corpus}_{splits[0]}_cuts.jsonl.gz"
    for f in (prev_dir / "final.mdl", prev_cuts_path):
        if not f.is_file():
            raise FileNotFoundError(f"{f} is missing: train and align the previous system ({prev_dir}) first")
    cuts, feats, texts, _ = _load_inputs(fbank_dir, corpus, splits, exp_dir=exp_dir, cfg=cfg, cmvn_mode=cmvn_mode)
    key = fingerprint(
        {
            "cfg": cfg.__dict__,
            "train": sorted(c.id for c in cuts[splits[0]]),
            "texts": sorted(texts.items()),
            "lang": (Path(lang_dir) / "phones.txt").read_text(),
            "prev_model": file_digest(prev_dir / "final.mdl"),
            "prev_ali": file_digest(prev_dir / f"{corpus}_{splits[0]}_ali.h5"),
        }
    )
    model_path = exp_dir / "final.mdl"
    if is_done(exp_dir, key) and model_path.is_file():
        log.info("%s is trained; loading it", model_path)
        aligner = GmmAligner.load(model_path, lang_dir, nj)
        if aligner.transform is not None:
            feats = {u: f @ aligner.transform.T.astype(np.float32) for u, f in feats.items()}
        aligner.set_data(feats, texts)
        timings = json.loads((exp_dir / "timings.json").read_text())
    else:
        t0 = time.time()
        prev_ali = {c.id: c.load_tid_ali() for c in CutSet.from_file(prev_cuts_path)}
        aligner, info = train_triphone(
            lang_dir,
            cfg,
            nj,
            feats=feats,
            texts=texts,
            prev_model=load_gmm(prev_dir / "final.mdl"),
            prev_ali=prev_ali,
            train_utts=[c.id for c in cuts[splits[0]]],
            out_dir=exp_dir,
            log_path=exp_dir / "train_history.json",
        )
        aligner.save(model_path)
        em = info["history"]
        realign = [h["align_seconds"] for h in em if h.get("align") == "viterbi"]
        timings = {
            "train_seconds": round(time.time() - t0, 2),
            "tree_seconds": info["tree"]["seconds"],
            "mean_update_seconds_per_iter": round(float(np.mean([h["update_seconds"] for h in em])), 3),
            "mean_align_seconds_per_pass": round(float(np.mean(realign)), 3) if realign else None,
            "num_pdfs": aligner.tm.num_pdfs,
            "num_gauss": aligner.am.num_gauss,
            "nj": nj,
            "tree_leaves_before_merging": info["tree"]["leaves_split"],
            "previous": str(prev_dir),
            **({"lda": info["lda"]} if "lda" in info else {}),
        }
        write_json_atomic(exp_dir / "timings.json", timings)
        mark_done(exp_dir, key)
    return _align_and_report(
        aligner,
        cuts,
        splits,
        corpus=corpus,
        exp_dir=exp_dir,
        key=key,
        timings=timings,
        held_out_accents=held_out_accents,
        cmd=cmd,
    )


def train_oracle_reference(
    fbank_dir,
    corpus: str,
    splits: Sequence[str],
    *,
    lang_dir,
    exp_dir,
    cfg: MonoConfig,
    nj: int = 1,
    held_out_accents: Sequence[str] = (),
    cmvn_mode=None,
    cmd="local",
) -> Dict:
    """A reference for corpora with oracle phone times (the embedded one): the same GMM-HMM trained
    on the training split's oracle times instead of from a flat start, then Viterbi-aligned like the
    flat-start model. Its report shows what this model class reaches when it learns the oracle's
    boundary conventions; it is not an aligner for corpora without phone times."""
    exp_dir = Path(exp_dir)

    def oracle_times(cuts) -> Dict:
        return {
            "oracle": [
                [(a.symbol, a.start, a.end) for a in (c.supervisions[0].alignment or {}).get("phone", [])]
                for c in cuts[splits[0]]
            ]
        }

    def train(aligner: GmmAligner, cuts, _energy) -> Dict:
        labels = {}
        for cut in cuts[splits[0]]:
            lab = aligner.oracle_pdf_labels(cut)
            if lab is not None:
                labels[cut.id] = lab
        if not labels:
            raise ValueError(
                f"no {corpus} {splits[0]} cut has usable oracle phone times (supervision.alignment['phone'])"
            )
        log.info("oracle phone times for %d of %d training cuts", len(labels), len(cuts[splits[0]]))
        aligner.train_from_pdf_labels(labels, log_path=exp_dir / "train_history.json")
        return {"training_cuts_with_oracle_times": len(labels)}

    return _train_system(
        fbank_dir,
        corpus,
        splits,
        lang_dir=lang_dir,
        exp_dir=exp_dir,
        cfg=cfg,
        nj=nj,
        held_out_accents=held_out_accents,
        cmvn_mode=cmvn_mode,
        cmd=cmd,
        train=train,
        key_inputs=oracle_times,
    )

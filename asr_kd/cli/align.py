"""Alignment: train-mono, train-oracle-gmm, train-tri, realign-dnn."""

import json
import logging

from asr_kd.align.dnn_align import realign
from asr_kd.stages.align import train_and_align, train_oracle_reference, train_triphone_and_align
from asr_kd.cli.common import (
    FBANK_HELP,
    LANG_HELP,
    add_corpus_arg,
    held_out_accents,
    model_paths,
    transcribed_splits,
)
from asr_kd.gmm.mono import MonoConfig
from asr_kd.gmm.configs import TriConfig
from asr_kd.utils.config import load_yaml, merge, section
from asr_kd.utils.jobs import add_cmd_arg

log = logging.getLogger("asr_kd")


def train_mono(args) -> None:
    """train-mono (flat start) and train-oracle-gmm (the reference trained on oracle phone times)."""
    # the reference is its own variant of the flat-start config: features that drift from a flat start may suit it
    cfg = (
        section(args.config, "mono_reference", MonoConfig, base="mono")
        if args.oracle
        else section(args.config, "mono", MonoConfig)
    )
    trainer = train_oracle_reference if args.oracle else train_and_align
    summary = trainer(
        args.fbank_dir,
        args.corpus,
        transcribed_splits(args.splits),
        lang_dir=args.lang,
        exp_dir=args.exp,
        cfg=cfg,
        nj=args.nj,
        held_out_accents=held_out_accents(args.config, args.corpus),
        cmd=args.cmd,
    )
    log.info(
        "%s: %d pdfs, alignment failures: %s; report: %s/alignment_report.md",
        args.command,
        summary["num_pdfs"],
        json.dumps(summary["failed"]),
        args.exp,
    )


# what a system's section starts from: Kaldi's tri1 (deltas) and tri2 (LDA+MLLT on +-3 spliced frames)
TRI_DEFAULTS = {"tri1": {}, "tri2": {"splice": 3, "use_deltas": False}}
SHARED_FEATURE_KEYS = ("num_cepstra", "utterance_cmvn")  # taken from 'mono': every system sees the same cepstra


def tri_config(path, system: str) -> TriConfig:
    """Section ``system`` of the config over the system's defaults and the mono section's feature keys."""
    config = load_yaml(path) if path else {}
    mono = config.get("mono", {}) or {}
    data = {**{k: mono[k] for k in SHARED_FEATURE_KEYS if k in mono}, **(config.get(system, {}) or {})}
    return merge(TriConfig(**TRI_DEFAULTS.get(system, {})), data, f"{system}")


def train_tri(args) -> None:
    cfg = tri_config(args.config, args.system)
    summary = train_triphone_and_align(
        args.fbank_dir,
        args.corpus,
        transcribed_splits(args.splits),
        lang_dir=args.lang,
        prev_dir=args.prev_dir,
        exp_dir=args.exp,
        cfg=cfg,
        nj=args.nj,
        held_out_accents=held_out_accents(args.config, args.corpus),
        cmd=args.cmd,
    )
    log.info(
        "train-tri %s: %d pdfs, alignment failures: %s; report: %s/alignment_report.md",
        args.system,
        summary["num_pdfs"],
        json.dumps(summary["failed"]),
        args.exp,
    )


def realign_dnn(args) -> None:
    s = realign(
        args.models,
        args.gmm_dir,
        args.lang,
        fbank_dir=args.fbank_dir,
        corpus=args.corpus,
        splits=transcribed_splits(args.splits),
        out_dir=args.out,
        acoustic_scale=args.acoustic_scale,
        held_out_accents=held_out_accents(args.config, args.corpus),
    )
    log.info("DNN realignment: failures %s; report: %s/alignment_report.md", json.dumps(s["failed"]), args.out)


def _gmm_training_args(s) -> None:
    """The options every GMM training command shares."""
    s.add_argument("--fbank-dir", required=True, help=FBANK_HELP)
    add_corpus_arg(s)
    s.add_argument("--splits", default="train,dev,test", help="comma-separated; the first is trained on")
    s.add_argument("--lang", required=True, help=LANG_HELP)
    s.add_argument("--exp", required=True, help="the system's folder: model, alignments of every split, reports")
    s.add_argument(
        "--nj", type=int, default=1, help="parallel processes; the final alignment of each split in --nj jobs"
    )
    add_cmd_arg(s)


def register(sub) -> None:
    for name, oracle, text, sections in (
        ("train-mono", False, "monophone GMM-HMM from a flat start; align every split", "section 'mono'"),
        (
            "train-oracle-gmm",
            True,
            "reference: the monophone GMM-HMM trained on oracle phone times, then aligning",
            "section 'mono', overridden by 'mono_reference'",
        ),
    ):
        s = sub.add_parser(name, help=text)
        s.add_argument("--config", help=f"YAML config ({sections})")
        _gmm_training_args(s)
        s.set_defaults(func=train_mono, oracle=oracle)

    s = sub.add_parser(
        "train-tri", help="triphone GMM-HMM (tree, tri1 deltas / tri2 LDA+MLLT) from a previous system's alignments"
    )
    s.add_argument("--config", help="YAML config (section named by --system; mono's num_cepstra / utterance_cmvn)")
    s.add_argument(
        "--system",
        default="tri1",
        help="config section, and its defaults: tri1 (deltas) or tri2 (LDA+MLLT); " "another name starts from tri1's",
    )
    s.add_argument("--prev-dir", required=True, help="the system whose alignments start this one (e.g. exp/mono)")
    _gmm_training_args(s)
    s.set_defaults(func=train_tri)

    s = sub.add_parser("realign-dnn", help="realign every split with trained DNNs (hybrid likelihoods, GMM graphs)")
    s.add_argument("--config", help="YAML config (section 'corpus' for the held-out accents)")
    s.add_argument(
        "--models",
        nargs="+",
        required=True,
        type=model_paths,
        help="network checkpoints (best.pt) or model folders; several: their averaged posteriors",
    )
    s.add_argument("--gmm-dir", required=True, help="the GMM alignment folder (final.mdl, pdf_counts.txt)")
    s.add_argument("--lang", required=True, help=LANG_HELP)
    s.add_argument("--fbank-dir", required=True, help=FBANK_HELP)
    add_corpus_arg(s)
    s.add_argument("--splits", default="train,dev,test", help="comma-separated splits to realign")
    s.add_argument(
        "--acoustic-scale",
        type=float,
        default=0.1,
        help="scale of the network's log-likelihoods against the graph's costs",
    )
    s.add_argument("--out", required=True, help="the new alignment folder")
    s.set_defaults(func=realign_dnn)

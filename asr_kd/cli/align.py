"""Alignment: train-mono, train-oracle-gmm, realign-dnn."""
import json
import logging

from asr_kd.align.dnn_align import realign
from asr_kd.align.pipeline import train_and_align, train_oracle_reference
from asr_kd.cli.common import held_out_accents, splits
from asr_kd.gmm.mono import MonoConfig
from asr_kd.utils.config import section

log = logging.getLogger("asr_kd")


def train_mono(args) -> None:
    """train-mono (flat start) and train-oracle-gmm (the reference trained on oracle phone times)."""
    # the reference is its own variant of the flat-start config: features that drift from a flat start may suit it
    cfg = section(args.config, "mono_reference", MonoConfig, base="mono") if args.oracle else section(args.config, "mono", MonoConfig)
    trainer = train_oracle_reference if args.oracle else train_and_align
    summary = trainer(args.fbank_dir, args.corpus, splits(args.splits), args.lang, args.exp, cfg, nj=args.nj,
                      held_out_accents=held_out_accents(args.config, args.corpus))
    log.info("%s: %d pdfs, alignment failures: %s; report: %s/alignment_report.md", args.command, summary["num_pdfs"],
             json.dumps(summary["failed"]), args.exp)


def realign_dnn(args) -> None:
    s = realign(args.models, args.gmm_dir, args.lang, args.fbank_dir, args.corpus, splits(args.splits), args.out,
                acoustic_scale=args.acoustic_scale, held_out_accents=held_out_accents(args.config, args.corpus))
    log.info("DNN realignment: failures %s; report: %s/alignment_report.md", json.dumps(s["failed"]), args.out)


def register(sub) -> None:
    for name, oracle, text, sections in (
            ("train-mono", False, "monophone GMM-HMM from a flat start; align every split", "section 'mono'"),
            ("train-oracle-gmm", True, "reference: the monophone GMM-HMM trained on oracle phone times, then aligning",
             "section 'mono', overridden by 'mono_reference'")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--config", help=f"YAML config ({sections})")
        s.add_argument("--fbank-dir", required=True)
        s.add_argument("--corpus", default="digits")
        s.add_argument("--splits", default="train,dev,test", help="comma-separated; the first is trained on")
        s.add_argument("--lang", required=True)
        s.add_argument("--exp", required=True)
        s.add_argument("--nj", type=int, default=1)
        s.set_defaults(func=train_mono, oracle=oracle)

    s = sub.add_parser("realign-dnn", help="realign every split with trained DNNs (hybrid likelihoods, GMM graphs)")
    s.add_argument("--config", help="YAML config (section 'corpus' for the held-out accents)")
    s.add_argument("--models", nargs="+", required=True)
    s.add_argument("--gmm-dir", required=True, help="the GMM alignment folder (final.mdl, pdf_counts.txt)")
    s.add_argument("--lang", required=True)
    s.add_argument("--fbank-dir", required=True)
    s.add_argument("--corpus", default="digits")
    s.add_argument("--splits", default="train,dev,test")
    s.add_argument("--acoustic-scale", type=float, default=0.1)
    s.add_argument("--out", required=True)
    s.set_defaults(func=realign_dnn)

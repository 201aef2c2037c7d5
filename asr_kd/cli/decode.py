"""Decoding: decode (WER table, tuned on dev), decoder-agreement (k2 vs. Kaldi, the k2 environment)."""

from pathlib import Path

from asr_kd.cli.common import (
    FBANK_HELP,
    GRAPH_HELP,
    LANG_HELP,
    RECORDED,
    add_corpus_arg,
    add_decode_search_args,
    add_table_output_args,
    from_alignment,
    held_out_accents,
    add_systems_args,
    compare_pairs,
    id_paths,
    id_tuple,
    system_labels,
    search_settings,
    show_table,
)
from asr_kd.stages.k2_decode import absent_table, agreement_table
from asr_kd.stages.decode import decode_table


def decode(args) -> None:
    models = [id_paths(m, "--models") for m in args.models]
    ids = [sid for sid, _ in models]
    decode_table(
        models,
        args.ali_dir,
        args.lang,
        manifest_dir=args.manifest_dir,
        fbank_dir=args.fbank_dir,
        corpus=args.corpus,
        graph_dir=args.graph_dir,
        out_dir=args.out,
        title=args.title,
        compare_pairs=compare_pairs(args, ids),
        gain_kept=id_tuple(args.gain_kept, 3, "--gain-kept", ids=ids) if args.gain_kept else None,
        labels=system_labels(args, ids),
        lm_order=args.lm_order,
        arpa=args.arpa,
        results_md=args.results_md,
        rescore_arpa=args.rescore_arpa,
        rescore_nbest=args.rescore_nbest,
        held_out_accents=held_out_accents(args.config, args.corpus),
        **search_settings(args),
    )
    show_table(Path(args.out) / "wer_table")


def decoder_agreement(args) -> None:
    """k2 vs. Kaldi on the test set, per model of an earlier decode, at the settings tuned on dev."""
    if args.absent:
        absent_table(args.decode_dir, args.out, args.title, reason=args.absent, results_md=args.results_md)
        show_table(args.out)
        return
    agreement_table(
        args.decode_dir,
        args.ali_dir,
        args.lang,
        fbank_dir=args.fbank_dir,
        corpus=args.corpus,
        graph_dir=args.graph_dir,
        out_stem=args.out,
        title=args.title,
        results_md=args.results_md,
        beam=args.beam,
        members=args.members,
    )
    show_table(args.out)


def register(sub) -> None:
    s = sub.add_parser("decode", help="n-gram LM, HCLG, hybrid decoding of dev/test and WER (tuned on dev)")
    add_systems_args(
        s,
        "--models",
        form="ID=CKPT[,CKPT...]",
        help_text="a system: a checkpoint (a GMM's final.mdl, or a network's), or several (an ensemble's "
        "averaged posteriors; a model folder stands for its checkpoints); repeat an ID for its seeds",
    )
    s.add_argument(
        "--gain-kept",
        metavar="BASE,ENSEMBLE,STUDENT",
        help="three system ids: the share of the ensemble's gain kept by the student (default: none)",
    )
    s.add_argument(
        "--ali-dir", required=True, help="GMM alignment folder: final.mdl (transition model), pdf_counts.txt"
    )
    s.add_argument("--lang", help=LANG_HELP + RECORDED)
    s.add_argument("--fbank-dir", help=FBANK_HELP + RECORDED)
    add_corpus_arg(s)
    s.add_argument("--config", help="the recipe's config: its corpus's held-out test accents are also scored apart")
    s.add_argument("--graph-dir", required=True, help=GRAPH_HELP)
    s.add_argument(
        "--rescore-arpa",
        help="rescore the lattices with this ARPA LM (e.g. the unpruned or a 4-gram) in "
        "place of the graph's: WER before and after, gain interval (lattice decoder)",
    )
    s.add_argument(
        "--rescore-nbest", type=int, default=100, help="distinct word sequences rescored per utterance [%(default)s]"
    )
    add_decode_search_args(s, manifest_required=True)
    add_table_output_args(s, "WER (hybrid decoding with HCLG)")
    from_alignment(s, "lang", "fbank_dir")
    s.set_defaults(func=decode)

    s = sub.add_parser(
        "decoder-agreement", help="k2 vs. Kaldi decoder on the same graph and likelihoods (k2 environment)"
    )
    s.add_argument(
        "--decode-dir", required=True, help="an earlier decode's output (wer_table.json: models, tuned settings)"
    )
    s.add_argument("--ali-dir", help="alignment folder (labelled cuts, pdf_counts.txt); default: the decode folder's")
    s.add_argument("--lang", help=LANG_HELP + RECORDED)
    s.add_argument("--fbank-dir", help=FBANK_HELP + RECORDED)
    add_corpus_arg(s)
    s.add_argument("--graph-dir", help=GRAPH_HELP + "; default: the decode folder's")
    s.add_argument("--beam", type=float, default=20.0, help="Kaldi beam and k2 search beam")
    s.add_argument(
        "--members",
        type=int,
        help="decode only the first N members (seeds) of each system (default: every member)",
    )
    s.add_argument(
        "--absent",
        metavar="REASON",
        help="k2 is not available: write the table with the k2 column marked "
        "as not run, and REASON (needs only --decode-dir, --out)",
    )
    add_table_output_args(s, "k2 vs. Kaldi decoder agreement")
    s.set_defaults(func=decoder_agreement)

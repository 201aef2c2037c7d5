"""Result tables: speech-table (5a), frame-table (5b-5d), alignment-table, systems-table."""

from dataclasses import replace

from asr_kd.cli.common import (
    model_paths,
    alignment_row,
    FBANK_HELP,
    add_corpus_arg,
    add_decode_search_args,
    add_labelled_data_args,
    add_systems_args,
    add_table_output_args,
    compare_pairs,
    held_out_accents,
    id_paths,
    id_value,
    known_ids,
    search_settings,
    show_table,
    system_labels,
)
from asr_kd.stages.frame_tables import frame_table, speech_table
from asr_kd.nnet.data import accent_subsets, load_split
from asr_kd.stages.realign import DecodeSettings, alignment_table
from asr_kd.stages.systems import systems_table
from asr_kd.utils.results import set_results_footer


def speech_table_cmd(args) -> None:
    test = load_split(args.ali_dir, args.fbank_dir, args.corpus, split=args.split)
    subsets = accent_subsets(
        args.ali_dir, args.corpus, args.split, cut_ids=test.cut_ids, held_out=held_out_accents(args.config, args.corpus)
    )
    speech_table(
        args.baselines,
        args.students,
        test,
        out_stem=args.out,
        results_md=args.results_md,
        title=args.title,
        subsets=subsets,
    )
    show_table(args.out)


def frame_table_cmd(args) -> None:
    rows = [id_paths(r, "--rows") for r in args.rows]
    ids = [sid for sid, _ in rows]
    storage = [id_value(s, "--storage", "ID=SOFT_TARGET_DIR") for s in args.storage]
    known_ids([sid for sid, _ in storage], "--storage", ids)
    frame_table(
        rows,
        args.ali_dir,
        args.fbank_dir,
        corpus=args.corpus,
        out_stem=args.out,
        results_md=args.results_md,
        title=args.title,
        split=args.split,
        train_fraction=args.train_fraction,
        subset_seed=args.subset_seed,
        storage=storage,
        compare_pairs=compare_pairs(args, ids),
        note=args.note or "",
        labels=system_labels(args, ids),
    )
    show_table(args.out)


def alignment_table_cmd(args) -> None:
    """Alignments compared by their oracle boundaries and by the DNNs trained on them."""
    decode = None
    if args.graph_dir:
        if not (args.lang and args.manifest_dir):
            raise ValueError("alignment-table: --graph-dir needs --lang and --manifest-dir")
        decode = DecodeSettings(
            args.lang, args.manifest_dir, args.graph_dir, args.lm_order, args.arpa, **search_settings(args)
        )
    rows = [alignment_row(spec) for spec in args.rows]
    labels = system_labels(args, [r.name for r in rows])
    alignment_table(
        [replace(r, label=labels[r.name]) for r in rows],
        args.fbank_dir,
        args.corpus,
        out_stem=args.out,
        title=args.title,
        decode=decode,
        results_md=args.results_md,
    )
    show_table(args.out)


def systems_table_cmd(args) -> None:
    systems_table(
        args.exp,
        [id_value(d, "--decoded", "SYSTEM=DECODE_DIR") for d in args.decoded],
        args.out,
        title=args.title,
        results_md=args.results_md,
    )
    show_table(args.out)


def results_footer(args) -> None:
    print(
        set_results_footer(
            args.results_md,
            args.command,
            args.commit,
            uncommitted=args.uncommitted,
            stage_times=args.stage_times,
            example=args.example,
        )
    )


def register(sub) -> None:
    s = sub.add_parser("speech-table", help="test frame accuracy: baselines, their ensemble, distilled students")
    s.add_argument(
        "--baselines",
        nargs="+",
        required=True,
        type=model_paths,
        help="ensemble members (each also a baseline) or their folder",
    )
    s.add_argument(
        "--students",
        nargs="+",
        required=True,
        type=model_paths,
        help="the distilled students' checkpoints or their folder",
    )
    add_labelled_data_args(s)
    s.add_argument("--split", default="test", help="the split scored")
    s.add_argument("--config", help="the recipe's config: its corpus's held-out accents are also scored apart")
    add_table_output_args(s, "Baseline vs. ensemble vs. distilled student")
    s.set_defaults(func=speech_table_cmd)

    s = sub.add_parser("frame-table", help="frame accuracy of systems (ID=CKPT[,CKPT...]) -> md + json")
    add_systems_args(
        s, "--rows", form="ID=CKPT[,CKPT...]", help_text="one row per system; several checkpoints: its seeds"
    )
    add_labelled_data_args(s)
    s.add_argument("--split", default="test", help="the split scored")
    s.add_argument("--train-fraction", type=float, default=0.0, help="also score this training subset")
    s.add_argument("--subset-seed", type=int, default=0, help="seed of the bootstrap resampling")
    s.add_argument(
        "--storage",
        nargs="*",
        default=[],
        metavar="ID=SOFT_TARGET_DIR",
        help="a storage column: the soft targets a row was trained on (default: none)",
    )
    s.add_argument("--note", default="", help="a sentence printed under the table")
    add_table_output_args(s, "")
    s.set_defaults(func=frame_table_cmd)

    s = sub.add_parser("alignment-table", help="compare alignments: oracle boundaries and the DNNs they give")
    add_systems_args(
        s,
        "--rows",
        form="ID=ALI_DIR=CKPT[,CKPT...]",
        help_text="one row per alignment and the DNNs trained on it (several: one per seed); the first is "
        "the reference of the WER comparisons",
        pairs=False,
    )
    s.add_argument("--fbank-dir", required=True, help=FBANK_HELP)
    add_corpus_arg(s)
    s.add_argument("--lang", help="lang folder (with --graph-dir)")
    s.add_argument("--graph-dir", help="decode every DNN with this HCLG (built here if missing) for a WER column")
    add_decode_search_args(s)
    add_table_output_args(s, "Which alignment gives the better DNN")
    s.set_defaults(func=alignment_table_cmd)

    s = sub.add_parser(
        "systems-table", help="GMM systems (mono / triphone) and the networks on their labels, from earlier decodes"
    )
    s.add_argument("--exp", required=True, help="the recipe's exp folder (exp/<system>/ of each GMM system)")
    s.add_argument(
        "--decoded",
        nargs="+",
        required=True,
        metavar="SYSTEM=DECODE_DIR",
        help="per system, the decode folder whose wer_table.json holds its GMM (and networks)",
    )
    add_table_output_args(s, "GMM systems and the networks trained on their labels")
    s.set_defaults(func=systems_table_cmd)

    s = sub.add_parser("results-footer", help="end a RESULTS.md with the command, commit and machine that made it")
    s.add_argument("--results-md", required=True, help="the RESULTS.md (created when missing)")
    s.add_argument("--command", required=True, help="the recipe command line, as run")
    s.add_argument("--commit", required=True, help="the repository's commit")
    s.add_argument("--uncommitted", action="store_true", help="the working tree had uncommitted changes")
    s.add_argument(
        "--stage-times",
        default=None,
        help="the recipe's stage-times file (N, name, seconds a line; utils/stages.sh), summed in the footer",
    )
    s.add_argument("--example", default=None, help="a file shown verbatim above the footer (a transcription example)")
    s.set_defaults(func=results_footer)

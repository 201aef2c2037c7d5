"""Options several command groups share, and the small translations they need."""

import argparse
import math
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from asr_kd.data.manifests import corpora_in
from asr_kd.data.synth.digits import DigitsCorpusConfig
from asr_kd.data.synth.readspeech import ReadSpeechCorpusConfig
from asr_kd.decode.wer import read_score_map
from asr_kd.utils.config import section
from asr_kd.utils.io import confined
from asr_kd.utils.jobs import add_cmd_arg
from asr_kd.utils.made_from import MADE_FROM, read_made_from


FBANK_HELP = "features folder (compute-fbank's --out: <corpus>_cuts_<split>.jsonl.gz, cmvn.npz)"
LANG_HELP = "lang folder (prepare-lang's --out: words.txt, L.fst, topo)"
RECORDED = "; default: the one the alignment folder was made from (its made_from.json)"
GRAPH_HELP = "graph folder: HCLG.fst and the LM, built there when missing"

# the folders, in this order, whose manifest file names give a command's corpus when --corpus is not given
CORPUS_FOLDERS = ("fbank_dir", "manifest_dir")
# folders whose made_from.json fills the options a command was not given, in this order (a decode
# folder names its alignment folder, which names its features, corpus and lang)
RECORDING_FOLDERS = ("decode_dir", "ali_dir")


def from_alignment(s, *dests: str) -> None:
    """Options of ``s`` that default to what the alignment folder records, and are needed."""
    s.set_defaults(from_alignment=dests)


def resolve_made_from(args) -> None:
    """Fill the options a command was not given from the records of its decode and alignment
    folders; an option still missing that the command needs is one error saying what to pass."""
    for source in RECORDING_FOLDERS:
        folder = getattr(args, source, None)
        if folder:
            for dest, value in read_made_from(folder).items():
                if hasattr(args, dest) and getattr(args, dest) is None:
                    setattr(args, dest, value)
    for dest in getattr(args, "from_alignment", ()):
        if getattr(args, dest) is None:
            option = "--" + dest.replace("_", "-")
            folders = [getattr(args, f) for f in RECORDING_FOLDERS if getattr(args, f, None)]
            source = (
                (" and ".join(folders) + (" records" if len(folders) == 1 else " record"))
                if folders
                else "nothing records"
            )
            raise ValueError(f"{option} not given, and {source} no {dest} ({MADE_FROM}): pass {option}")


def add_corpus_arg(s, folder: str = "--fbank-dir") -> None:
    """``--corpus``: the name in the manifest files; by default the only one in ``folder``."""
    s.add_argument(
        "--corpus",
        help="corpus name in the manifest file names (<corpus>_cuts_<split>.jsonl.gz); default: the one an "
        f"alignment folder records, else the only one in {folder}",
    )


def resolve_corpus(args) -> None:
    """Fill a missing ``--corpus`` from the manifests in the command's features or manifest folder,
    or say what to pass."""
    if not hasattr(args, "corpus") or args.corpus is not None:
        return
    for dest in CORPUS_FOLDERS:
        folder = getattr(args, dest, None)
        if folder is None:
            continue
        found = corpora_in(folder)
        if len(found) == 1:
            args.corpus = found[0]
            return
        held = f"manifests of {', '.join(found)}" if found else "no manifests (<corpus>_cuts_<split>.jsonl.gz)"
        raise ValueError(f"--{dest.replace('_', '-')} {folder} holds {held}: pass --corpus NAME")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def add_labelled_data_args(s) -> None:
    """The options of every command on aligned data."""
    s.add_argument("--ali-dir", required=True, help="alignment folder (labelled cuts, pdf_counts.txt)")
    s.add_argument("--fbank-dir", help=FBANK_HELP + RECORDED)
    add_corpus_arg(s)
    from_alignment(s, "fbank_dir")


def add_decode_search_args(s, manifest_required: bool = False) -> None:
    """The LM, tuning grid and search options of ``decode`` and ``alignment-table``."""
    s.add_argument("--manifest-dir", required=manifest_required, help="transcripts for the LM and the perplexities")
    s.add_argument("--lm-order", type=int, default=2, help="n-gram order of the decoding LM")
    s.add_argument("--arpa", help="use this ARPA LM instead of estimating one")
    s.add_argument("--lmwt", default="5,7,10,14,20", help="LM weights to try on dev (acoustic scale = 1/LM weight)")
    s.add_argument("--wip", default="0,0.5,1", help="word insertion penalties to try on dev")
    s.add_argument("--score-map", help="token map applied to ref and hyp before scoring (FROM TO, or FROM: delete)")
    s.add_argument("--beam", type=float, default=13.0, help="decoding beam")
    s.add_argument("--max-active", type=int, default=7000, help="most active states per frame")
    s.add_argument("--nj", type=int, default=1, help="parallel decoding processes")
    add_cmd_arg(s)
    s.add_argument(
        "--decoder",
        choices=["lattice", "k2-lattice", "kaldi", "k2"],  # asr_kd.stages.decode.DECODERS
        default="lattice",
        help="lattice (each split decoded once into lattices, lat.<split>.gz beside the scoring; the grid "
        "swept on them, oracle WER, word confidences), k2-lattice (the same, lattices searched by k2: run "
        "with the k2 environment's Python, .venv-k2; faster on large graphs), kaldi (re-decodes every grid "
        "point, 1-best), k2 (the k2 environment, re-decodes)",
    )
    s.add_argument(
        "--lm-tuning",
        choices=["each", "shared"],  # asr_kd.stages.decode.LM_TUNINGS (not imported here: it brings in torch)
        default="each",
        help="each: every model decodes test at its own dev optimum (Kaldi's convention); shared: one LM weight "
        "and penalty for every network of the command, the lowest mean dev WER over them (a GMM keeps its own), "
        "so that the networks' WERs differ by their acoustic models alone",
    )


def search_settings(args) -> dict:
    return {
        "lmwts": [float(x) for x in args.lmwt.split(",")],
        "penalties": [float(x) for x in args.wip.split(",")],
        "beam": args.beam,
        "max_active": args.max_active,
        "nj": args.nj,
        "cmd": args.cmd,
        "score_map": read_score_map(args.score_map) if args.score_map else None,
        "decoder": args.decoder,
        "lm_tuning": args.lm_tuning,
    }


def add_table_output_args(s, title: str) -> None:
    """The options of every command that writes a result table."""
    s.add_argument("--title", default=title, help="the table's heading")
    s.add_argument("--out", required=True, help="output stem: writes OUT.md and OUT.json")
    s.add_argument("--results-md", help="also put the table into this RESULTS.md")


def show_table(out_stem) -> None:
    """Print the markdown table a command wrote (OUT.md)."""
    print(Path(out_stem).with_suffix(".md").read_text())


def held_out_accents(config: Optional[str], corpus: str) -> Tuple[str, ...]:
    """The synthetic corpora's held-out test accents (reported apart); none for other corpora."""
    configs = {"digits": DigitsCorpusConfig, "readspeech": ReadSpeechCorpusConfig}
    return tuple(section(config, "corpus", configs[corpus]).held_out_accents) if corpus in configs else ()


SYSTEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
SYSTEM_ID_RULE = "a system id: letters, digits and _ . + - (e.g. student, T2, top-5); display text goes in --labels"


def system_id(text: str, option: str) -> str:
    """A table row's short id: its key in JSON, its folder name, what --compare and --labels name."""
    if not SYSTEM_ID.fullmatch(text):
        raise ValueError(f"{option}: {text!r} is not {SYSTEM_ID_RULE}")
    return text


def id_value(spec: str, option: str, form: str = "ID=PATH") -> Tuple[str, str]:
    """``ID=VALUE`` -> (id, value), or an error naming the option."""
    sid, sep, value = spec.partition("=")
    if not sep or not value:
        raise ValueError(f"{option}: {spec!r} should be {form}")
    return system_id(sid, option), value


def id_paths(spec: str, option: str) -> Tuple[str, List[str]]:
    """``ID=PATH[,PATH...]`` -> (id, paths): a system of one checkpoint, or an ensemble's (a model
    folder stands for its checkpoints, ``model_paths``)."""
    sid, value = id_value(spec, option, "ID=PATH[,PATH...]")
    return sid, flatten([model_paths(p) for p in value.split(",") if p])


def add_systems_args(s, option: str, *, form: str, help_text: str, pairs: bool = True) -> None:
    """A table command's rows (``option``, each ``form`` with a short id), their display labels and,
    with ``pairs``, the paired comparisons of rows."""
    s.add_argument(option, nargs="+", required=True, metavar=form, help=f"{help_text}; ID is {SYSTEM_ID_RULE}")
    s.add_argument(
        "--labels",
        nargs="*",
        default=[],
        metavar="ID=TEXT",
        help="the text the table shows for a system id (any characters, e.g. 'distilled student (T=2)') "
        "(default: the id itself)",
    )
    if pairs:
        s.add_argument(
            "--compare",
            nargs="*",
            default=[],
            metavar="A,B",
            help="paired-bootstrap comparisons of two row ids: is B better than A? (default: none)",
        )


def system_labels(args, ids: Sequence[str]) -> Dict[str, str]:
    """{id: display text} for every id of the table (``--labels``; an id without one shows itself)."""
    given = dict(id_value(spec, "--labels", "ID=TEXT") for spec in args.labels)
    known_ids(list(given), "--labels", ids)
    return {sid: given.get(sid, sid) for sid in ids}


def id_tuple(spec: str, n: int, option: str, *, ids: Sequence[str]) -> Tuple[str, ...]:
    """``A,B[,...]`` -> its n system ids, each one of the table's ``ids``, or an error naming the option."""
    parts = tuple(spec.split(","))
    if len(parts) != n:
        raise ValueError(f"{option}: {spec!r} should name {n} system ids separated by ','")
    return known_ids(parts, option, ids)


def known_ids(given: Sequence[str], option: str, ids: Sequence[str]) -> Tuple[str, ...]:
    """``given``, each one of the table's ``ids``, or an error naming the option and listing the ids."""
    unknown = [g for g in given if g not in ids]
    if unknown:
        raise ValueError(f"{option}: {unknown} name no row of this table (its ids: {', '.join(dict.fromkeys(ids))})")
    return tuple(given)


def compare_pairs(args, ids: Sequence[str]) -> List[Tuple[str, ...]]:
    return [id_tuple(c, 2, "--compare", ids=ids) for c in args.compare]


MODELS_LIST = "models.txt"


def model_paths(path: str):
    """argparse type of the checkpoint options: a checkpoint, or a model folder (an ensemble's or the
    students', written by steps/train_ensemble.sh and steps/distill.sh) whose ``models.txt`` lists its
    checkpoints relative to it; such a folder gives that list (``flatten`` joins the lists up)."""
    listed = Path(path) / MODELS_LIST
    if not listed.is_file():
        return path
    found = [str(confined(path, line.strip(), f"{listed}: checkpoint")) for line in listed.read_text().splitlines()]
    found = [p for p in found if p != path]
    if not found:
        raise ValueError(f"{listed} lists no checkpoints")
    return found


def flatten(values: Sequence) -> List[str]:
    return [y for x in values for y in (x if isinstance(x, list) else [x])]


def expand_model_folders(args) -> None:
    """Checkpoint options given model folders: each folder's checkpoints in its place."""
    for option, value in vars(args).items():
        if isinstance(value, list) and any(isinstance(x, list) for x in value):
            setattr(args, option, flatten(value))


def alignment_row(spec: str) -> "AlignmentRow":  # noqa: F821 (imported on use: it brings in torch)
    """``ID=ALI_DIR=CKPT[,CKPT...]`` (alignment-table --rows)."""
    from asr_kd.stages.realign import AlignmentRow

    parts = spec.split("=")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"--rows: {spec!r} should be ID=ALI_DIR=CKPT[,CKPT...]")
    return AlignmentRow(system_id(parts[0], "--rows"), Path(parts[1]), parts[2].split(","))


def splits(text: str) -> Sequence[str]:
    return text.split(",")


def transcribed_splits(text: str) -> Sequence[str]:
    """``splits`` for a command that reads transcripts (alignment, lexicon, LM): never the untranscribed
    transfer split."""
    out = splits(text)
    if "unlabelled" in out:
        raise ValueError("the unlabelled split has no transcripts: it cannot be aligned or give words")
    return out

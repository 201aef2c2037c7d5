"""Deployment: export (a self-contained model directory), transcribe (audio files, offline or
streaming), deploy-eval (one system on a test set), deploy-table (the deployment table)."""

import logging
import re
import sys
from pathlib import Path
from typing import Dict, Sequence

from asr_kd.cli.common import (
    model_paths,
    FBANK_HELP,
    GRAPH_HELP,
    LANG_HELP,
    RECORDED,
    add_corpus_arg,
    add_table_output_args,
    from_alignment,
    add_systems_args,
    id_value,
    known_ids,
    positive_float,
    positive_int,
    show_table,
    system_labels,
)
from asr_kd.data.features import FeatureConfig
from asr_kd.deploy.audio import AudioError, audio_blocks, feature_difference, rechunk
from asr_kd.deploy.model_dir import ModelDir, decoded_settings, export_model_dir, fbank_settings
from asr_kd.deploy.networks import FORMATS
from asr_kd.deploy.recognizer import Endpointing, Recognizer, ctm_lines
from asr_kd.stages.deploy import deployment_table, evaluate
from asr_kd.utils.config import section
from asr_kd.utils.io import write_json_atomic, write_text_atomic

log = logging.getLogger("asr_kd")


def export(args) -> None:
    tuned = decoded_settings(args.decode_dir, args.checkpoints) if args.decode_dir else None
    if tuned is None and (args.lmwt is None or args.wip is None):
        raise ValueError("give --decode-dir (a decode stage that decoded these checkpoints) or both --lmwt and --wip")
    lmwt = args.lmwt if args.lmwt is not None else tuned["lmwt"]
    wip = args.wip if args.wip is not None else tuned["wip"]
    settings = fbank_settings(args.fbank_dir, args.corpus, section(args.config, "features", FeatureConfig).frame_length)
    out = export_model_dir(
        args.out,
        args.checkpoints,
        args.ali_dir,
        lang_dir=args.lang,
        graph_dir=args.graph_dir,
        fbank_dir=args.fbank_dir,
        settings=settings,
        name=args.name,
        corpus=args.corpus,
        lmwt=lmwt,
        wip=wip,
        formats=args.formats.split(","),
        wer=tuned,
        beam=args.beam,
        max_active=args.max_active,
    )
    card = ModelDir.load(out).card
    log.info(
        "exported %s: %d member(s), %s parameters, sizes (MB) %s",
        out,
        len(card["members"]),
        f"{card['parameters']:,}",
        card["sizes_mb"],
    )


def ctm_ids(paths: Sequence[str]) -> Dict[str, str]:
    """A CTM id per input file: its stem, or, where two inputs share a stem, its path without the
    suffix ('/' -> '-'); whitespace becomes '_' (a CTM line has exactly five fields)."""
    stems = [Path(p).stem for p in paths]
    ids = {}
    for p, stem in zip(paths, stems):
        name = stem if stems.count(stem) == 1 else str(Path(p).with_suffix("")).strip("/").replace("/", "-")
        ids[p] = re.sub(r"\s+", "_", name) or "_"
    return ids


def transcribe(args) -> None:
    rec = Recognizer(
        ModelDir.load(args.model_dir), args.format, args.threads, confidences=bool(args.ctm) and not args.no_confidence
    )
    sample_rate = rec.model.settings.sample_rate
    ids = ctm_ids(args.audio)
    failed, ctm = 0, []
    for path in args.audio:
        try:
            blocks = audio_blocks(path, sample_rate)
            if args.streaming:
                stream, shown = rec.stream(), None
                for c in rechunk(blocks, max(1, round(args.chunk_ms / 1000 * sample_rate))):
                    partial = stream.accept(c)
                    if partial != shown:
                        print(f"{path} (partial): {' '.join(partial)}", file=sys.stderr)
                        shown = partial
                result = stream.finish()
            else:
                result = rec.transcribe(blocks, Endpointing())  # long files: segments closed at silences
        except AudioError as e:
            failed += 1
            print(f"ERROR {e}", file=sys.stderr)
            continue
        print(f"{path}\t{' '.join(result.words)}", flush=True)
        if args.ctm:  # rewritten after each file, atomically: a crash keeps the files done so far
            ctm += ctm_lines(ids[path], result)
            write_text_atomic(args.ctm, "".join(line + "\n" for line in ctm))
    if failed:
        raise ValueError(f"{failed} of {len(args.audio)} audio file(s) could not be transcribed (named above)")


def deploy_eval(args) -> None:
    write_json_atomic(
        args.out,
        evaluate(args.model_dir, args.cuts, args.format, threads=args.threads, stream_chunk_ms=args.stream_chunk_ms),
    )


def deploy_table(args) -> None:
    systems = []
    for spec in args.systems:
        form = f"ID=MODEL_DIR:FORMAT (FORMAT one of {FORMATS})"
        sid, rest = id_value(spec, "--systems", form)
        mdir, _, fmt = rest.rpartition(":")
        if not mdir or fmt not in FORMATS:
            raise ValueError(f"--systems: {spec!r} should be {form}")
        systems.append((sid, mdir, fmt))
    ids = [sid for sid, _, _ in systems]
    for option in ("streaming", "parity"):
        known_ids([getattr(args, option)] if getattr(args, option) else [], f"--{option}", ids)
    check = None
    if args.feature_cuts:
        from lhotse import CutSet

        check = feature_difference(
            CutSet.from_file(args.feature_cuts).to_eager(), ModelDir.load(systems[0][1]).settings
        )
    deployment_table(
        systems,
        args.cuts,
        args.out,
        title=args.title,
        results_md=args.results_md,
        streaming=args.streaming,
        stream_chunk_ms=args.chunk_ms,
        feature_check=check,
        parity_of=args.parity,
        labels=system_labels(args, ids),
    )
    show_table(args.out)


def register(sub) -> None:
    s = sub.add_parser(
        "export", help="a self-contained model directory (networks in PyTorch/TorchScript/ONNX/int8, HCLG, card)"
    )
    s.add_argument(
        "--checkpoints",
        nargs="+",
        required=True,
        type=model_paths,
        help="network checkpoint(s) or a model folder; several: an ensemble",
    )
    s.add_argument("--name", required=True, help="the system's name (on the card)")
    s.add_argument("--config", help="YAML config (its 'features' section: frame length)")
    s.add_argument(
        "--ali-dir",
        help="alignment folder: final.mdl (transitions), pdf_counts.txt (priors); default: the decode folder's",
    )
    s.add_argument("--lang", help=LANG_HELP + RECORDED)
    s.add_argument("--graph-dir", help=GRAPH_HELP + "; default: the decode folder's")
    s.add_argument("--fbank-dir", help=FBANK_HELP + RECORDED)
    add_corpus_arg(s)
    s.add_argument(
        "--decode-dir", help="the decode stage's output: LM weight and penalty tuned on dev, WER for the card"
    )
    s.add_argument("--lmwt", type=float, help="LM weight (overrides the tuned one)")
    s.add_argument("--wip", type=float, help="word insertion penalty (overrides the tuned one)")
    s.add_argument("--beam", type=float, default=13.0, help="decoding beam of the exported decoder")
    s.add_argument("--max-active", type=int, default=7000, help="most active states per frame")
    s.add_argument("--formats", default=",".join(FORMATS), help=f"network formats to write, from {FORMATS}")
    s.add_argument("--out", required=True, help="the model directory")
    from_alignment(s, "ali_dir", "graph_dir", "lang", "fbank_dir")
    s.set_defaults(func=export)

    s = sub.add_parser("transcribe", help="transcribe audio files with a model directory (offline or streaming)")
    s.add_argument("--model-dir", required=True, help="a model directory export wrote")
    s.add_argument("audio", nargs="+", help="audio files (any sample rate; stereo is mixed down)")
    s.add_argument("--format", choices=FORMATS, default="pt", help="network format to run")
    s.add_argument("--threads", type=positive_int, default=1, help="inference threads")
    s.add_argument(
        "--ctm",
        help="write word times here (Kaldi CTM: id 1 start duration word confidence; the id is the "
        "file's stem, or its path where two files share a stem; the confidence is the word's "
        "lattice posterior)",
    )
    s.add_argument("--no-confidence", action="store_true", help="CTM without the confidence column (no lattice pass)")
    s.add_argument("--streaming", action="store_true", help="feed the audio in chunks; print partial results to stderr")
    s.add_argument("--chunk-ms", type=positive_float, default=160.0, help="streaming chunk length (ms) [%(default)s]")
    s.set_defaults(func=transcribe)

    s = sub.add_parser(
        "deploy-eval", help="WER, RTF and peak memory of a model directory on a test CutSet (one process)"
    )
    s.add_argument("--model-dir", required=True, help="a model directory export wrote")
    s.add_argument("--cuts", required=True, help="a CutSet with recordings and supervisions (the test set)")
    s.add_argument("--format", choices=FORMATS, default="onnx", help="which exported network serves")
    s.add_argument("--threads", type=int, default=1, help="inference threads")
    s.add_argument(
        "--stream-chunk-ms", type=float, default=0.0, help="also stream each utterance in chunks of this length"
    )
    s.add_argument("--out", required=True, help="JSON result")
    s.set_defaults(func=deploy_eval)

    s = sub.add_parser("deploy-table", help="the deployment table: cost and WER of each system as served")
    add_systems_args(
        s,
        "--systems",
        form="ID=MODEL_DIR:FORMAT",
        help_text="the rows: an id, a model directory and the format it serves in",
        pairs=False,
    )
    s.add_argument("--cuts", required=True, help="the test CutSet (recordings and supervisions)")
    s.add_argument("--feature-cuts", help="the test set's stored feature cuts: kaldi-native-fbank vs. lhotse")
    s.add_argument("--streaming", metavar="ID", help="also stream this system's test set and compare with offline")
    s.add_argument("--chunk-ms", type=float, default=160.0, help="streaming chunk length in milliseconds")
    s.add_argument("--parity", metavar="ID", help="compare this system's exported formats with PyTorch")
    add_table_output_args(s, "Deployment: what each system costs to serve")
    s.set_defaults(func=deploy_table)

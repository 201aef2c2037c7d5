"""Networks: train-dnn (baseline, ensemble member or distilled student), soft-targets."""

import argparse
import logging
from dataclasses import replace

from asr_kd.cli.common import (
    add_labelled_data_args,
    add_table_output_args,
    flatten,
    add_systems_args,
    id_paths,
    system_id,
    system_labels,
    model_paths,
    positive_float,
    show_table,
)
from asr_kd.distill.soft_targets import soft_targets_for_split
from asr_kd.distill.teaching import TeachingConfig
from asr_kd.utils.jobs import add_cmd_arg
from asr_kd.distill.training import is_student, train_speech_model
from asr_kd.nnet import distributed
from asr_kd.nnet.losses import LOSSES, LossConfig
from asr_kd.nnet.models import MODELS, ModelConfig
from asr_kd.nnet.train import TrainConfig
from asr_kd.utils.config import section

log = logging.getLogger("asr_kd")


def train_dnn(args) -> None:
    ranks = distributed.init_from_env()  # under torchrun: one data-parallel model over the ranks
    if not ranks.main:
        logging.getLogger("asr_kd").setLevel(logging.WARNING)
    teaching = section(args.config, "teaching", TeachingConfig)
    overrides = (
        ("online", args.online_teacher),
        ("augment", args.augment),
        ("unlabelled_ratio", args.unlabelled_ratio),
    )
    if any(v is not None for _, v in overrides):
        teaching = replace(teaching, **{k: v for k, v in overrides if v is not None})
        teaching.validate()
    distilling = is_student(args.soft_targets, args.teachers, args.teacher_models, teaching=teaching)
    # a student's schedule: the train section with the student section's overrides (patient teaching)
    schedule = (
        section(args.config, "student", TrainConfig, base="train")
        if distilling
        else section(args.config, "train", TrainConfig)
    )
    train_cfg = replace(schedule, threads=args.threads, **({"epochs": args.epochs} if args.epochs is not None else {}))
    # the distill section applies to students; a model without teachers trains on hard labels
    loss_cfg = section(args.config, "distill", LossConfig) if distilling else LossConfig(loss="ce")
    loss_cfg = replace(
        loss_cfg,
        **{
            k: v
            for k, v in (("temperature", args.temperature), ("loss", args.loss), ("hard_weight", args.hard_weight))
            if v is not None
        },
    )
    model_cfg = section(args.config, "model", ModelConfig)
    if args.model is not None:
        model_cfg = replace(model_cfg, name=args.model)
    if args.hidden is not None:
        model_cfg = replace(model_cfg, hidden=args.hidden)
    for key in ("select_on", "schedule", "halve_below", "max_halvings"):
        if getattr(args, key) is not None:
            train_cfg = replace(train_cfg, **{key: getattr(args, key)})
    res = train_speech_model(
        args.ali_dir,
        args.fbank_dir,
        args.corpus,
        out_dir=args.out,
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        loss_cfg=loss_cfg,
        seed=args.seed,
        fraction=args.fraction,
        subset_seed=args.subset_seed,
        soft_targets=args.soft_targets,
        teachers=args.teachers,
        teacher_models=args.teacher_models or (),
        teaching=teaching,
    )
    log.info("best dev frame accuracy %.4f", res["best_dev_frame_acc"])


def soft_targets(args) -> None:
    meta = soft_targets_for_split(
        args.ali_dir,
        args.fbank_dir,
        args.corpus,
        split=args.split,
        teachers=args.teachers,
        out_dir=args.out,
        temperature=args.temperature,
        topk=args.topk,
        combine=args.combine,
        num_jobs=args.nj,
        cmd=args.cmd,
    )
    log.info(
        "soft targets (T=%g, %s) for %d frames: %.1f MB per hour of audio",
        args.temperature,
        f"top-{args.topk}" if args.topk else "dense",
        meta["num_frames"],
        meta["mb_per_hour"],
    )


def diagnose_student(args) -> None:
    from asr_kd.stages.teaching import diagnose, write_diagnosis

    res = diagnose(
        args.students,
        args.teachers,
        args.ali_dir,
        fbank_dir=args.fbank_dir,
        corpus=args.corpus,
        temperature=args.temperature,
        train_fraction=args.train_fraction,
        references=args.references or (),
    )
    path = write_diagnosis(res, args.out, args.title)
    log.info("verdict: %s (%s, diagnosis.png beside it)", res["verdict"], path)


def _table_on_split(args, table_frames, rows, *, ids, teachers=()) -> None:
    """A (5e) table command: ``table_frames`` on the frames of ``--split`` (after ``teachers``, where the
    table takes them), then the table shown; ``ids``: the rows' system ids, for ``--labels``."""
    from asr_kd.nnet.data import load_split

    table_frames(
        rows,
        *teachers,
        load_split(args.ali_dir, args.fbank_dir, args.corpus, split=args.split),
        temperature=args.temperature,
        out_stem=args.out,
        results_md=args.results_md,
        title=args.title,
        split=args.split,
        labels=system_labels(args, ids),
    )
    show_table(args.out)


def teaching_table_cmd(args) -> None:
    from asr_kd.stages.teaching import teaching_table_frames

    rows = [id_paths(r, "--rows") for r in args.rows]
    _table_on_split(args, teaching_table_frames, rows, ids=[sid for sid, _ in rows], teachers=[args.teachers])


def teacher_row(spec: str) -> "TeacherRow":  # noqa: F821 (imported on use: it brings in torch)
    """``ID=ENSEMBLE=RUN_DIR[,RUN_DIR...]`` (teacher-table --rows): the ensemble's checkpoints or folder
    (``+`` joins several), its students' training folders."""
    from asr_kd.stages.teaching import TeacherRow

    parts = spec.split("=")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"--rows: {spec!r} should be ID=ENSEMBLE=RUN_DIR[,RUN_DIR...]")
    teachers = flatten([model_paths(p) for p in parts[1].split("+") if p])
    students = tuple(p for p in parts[2].split(",") if p)
    return TeacherRow(system_id(parts[0], "--rows"), tuple(teachers), students)


def teacher_table_cmd(args) -> None:
    from asr_kd.stages.teaching import teacher_table_frames

    rows = [teacher_row(r) for r in args.rows]
    _table_on_split(args, teacher_table_frames, rows, ids=[r.name for r in rows])


def register(sub) -> None:
    s = sub.add_parser(
        "train-dnn", help="train a frame-level DNN acoustic model (baseline, ensemble member or student)"
    )
    s.add_argument("--config", help="YAML config (sections 'model', 'train', 'distill')")
    add_labelled_data_args(s)
    s.add_argument("--out", required=True, help="model folder (best.pt, epoch checkpoints, history.json)")
    s.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the shuffles")
    s.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    s.add_argument("--fraction", type=float, default=1.0, help="train on this fraction of the training cuts")
    s.add_argument("--subset-seed", type=int, default=0, help="which fraction (same seed, same cuts)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--soft-targets", help="stored soft targets (soft-targets command) -> distillation")
    g.add_argument(
        "--teachers",
        nargs="+",
        type=model_paths,
        help="teacher checkpoints or model folder: soft targets computed on the fly",
    )
    s.add_argument("--loss", choices=sorted(LOSSES), help="override distill.loss")
    s.add_argument("--temperature", type=positive_float, help="override distill.temperature (> 0)")
    s.add_argument(
        "--hard-weight", type=float, help="override distill.hard_weight (the hard-label term's weight, >= 0)"
    )
    s.add_argument("--epochs", type=int, help="override train.epochs")
    s.add_argument("--model", choices=sorted(MODELS), help="override model.name (e.g. tdnn members beside dnn ones)")
    s.add_argument("--hidden", type=int, help="override model.hidden (e.g. a smaller student)")
    s.add_argument(
        "--teacher-models",
        nargs="+",
        type=model_paths,
        help="the ensemble (checkpoints or its folder) behind --soft-targets: dev KL to the teacher per "
        "epoch, and the online teacher of teaching.online",
    )
    s.add_argument(
        "--online-teacher",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override teaching.online: the ensemble scores every (augmented) batch",
    )
    s.add_argument("--augment", help="override teaching.augment (specaugment, mixup, tempo, chained with +)")
    s.add_argument(
        "--unlabelled-ratio",
        type=float,
        help="override teaching.unlabelled_ratio: R x the training frames of untranscribed audio (the fbank "
        "folder's unlabelled split) taught by the ensemble (--teacher-models)",
    )
    s.add_argument("--select-on", choices=["dev_acc", "dev_kl"], help="override train.select_on")
    s.add_argument("--schedule", choices=["newbob", "cosine"], help="override train.schedule")
    s.add_argument("--halve-below", type=float, help="override train.halve_below (newbob)")
    s.add_argument("--max-halvings", type=int, help="override train.max_halvings (newbob)")
    s.set_defaults(func=train_dnn)

    s = sub.add_parser("soft-targets", help="ensemble soft targets at temperature T, stored with lhotse (HDF5)")
    s.add_argument(
        "--teachers",
        nargs="+",
        required=True,
        type=model_paths,
        help="the ensemble's checkpoints (best.pt) or its folder",
    )
    add_labelled_data_args(s)
    s.add_argument("--temperature", type=positive_float, default=2.0, help="softmax temperature T > 0 [%(default)s]")
    s.add_argument(
        "--combine",
        choices=["arithmetic", "geometric"],
        default="arithmetic",
        help="mean of the members' probabilities, or of their log-probabilities",
    )
    s.add_argument("--topk", type=int, default=0, help="0: dense; k: top-k indices + renormalised log-probs")
    s.add_argument("--split", default="train", help="the split whose frames get targets")
    s.add_argument("--nj", type=int, default=1, help="shards written in parallel jobs (soft_targets.<i>.h5)")
    add_cmd_arg(s)
    s.add_argument("--out", required=True, help="soft-target folder (cuts, HDF5 shards, soft_targets.json)")
    s.set_defaults(func=soft_targets)

    s = sub.add_parser(
        "diagnose-student",
        help="per epoch: a student's KL to and agreement with its teacher on train "
        "and dev frames, and the verdict (cannot fit / generalisation / targets)",
    )
    s.add_argument("--students", nargs="+", required=True, help="student training folders (with epoch-N.pt)")
    s.add_argument(
        "--teachers", nargs="+", required=True, type=model_paths, help="the ensemble's member checkpoints or its folder"
    )
    s.add_argument("--references", nargs="*", help="single models measured beside them (e.g. baselines)")
    add_labelled_data_args(s)
    s.add_argument(
        "--temperature", type=positive_float, default=2.0, help="the temperature the student was distilled at"
    )
    s.add_argument("--train-fraction", type=float, default=0.1, help="share of training cuts scored [%(default)s]")
    s.add_argument("--title", default="", help="heading of the diagnosis")
    s.add_argument("--out", required=True, help="folder for diagnosis.json and diagnosis.png")
    s.set_defaults(func=diagnose_student)

    s = sub.add_parser(
        "teaching-table",
        help="(5e) students of several teaching recipes against their ensemble on dev: "
        "frame accuracy, KL, agreement, gain kept, epochs, time",
    )
    add_systems_args(
        s,
        "--rows",
        form="ID=RUN_DIR[,RUN_DIR...]",
        help_text="one row per teaching recipe: its training folders, one per seed",
        pairs=False,
    )
    s.add_argument(
        "--teachers", nargs="+", required=True, type=model_paths, help="the ensemble's member checkpoints or its folder"
    )
    add_labelled_data_args(s)
    s.add_argument("--temperature", type=positive_float, default=2.0, help="the temperature of the KL to the ensemble")
    s.add_argument("--split", default="dev", help="the split the students are scored on")
    add_table_output_args(s, "(5e) What makes the student keep the gain")
    s.set_defaults(func=teaching_table_cmd)

    s = sub.add_parser(
        "teacher-table",
        help="(5e) teacher quality and diversity: ensembles of other sizes and architectures, each with its "
        "students, on dev",
    )
    add_systems_args(
        s,
        "--rows",
        form="ID=ENSEMBLE=RUN_DIR[,RUN_DIR...]",
        help_text="one row per teacher: its members (checkpoints or model folders joined by +) and its "
        "students' training folders, one per seed; the first row is the recipe's own ensemble",
        pairs=False,
    )
    add_labelled_data_args(s)
    s.add_argument("--temperature", type=positive_float, default=2.0, help="the temperature of the KL to the ensemble")
    s.add_argument("--split", default="dev", help="the split the students are scored on")
    add_table_output_args(s, "(5e) Teacher quality and diversity")
    s.set_defaults(func=teacher_table_cmd)

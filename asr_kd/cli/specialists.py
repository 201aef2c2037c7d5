"""Specialists (the paper's section 5): specialists-data, -generalist, -cluster, -train, -report on
images, and specialists-speech over HMM states."""

import logging
from pathlib import Path

from asr_kd.cli.common import FBANK_HELP, RECORDED, add_corpus_arg, add_table_output_args, from_alignment, show_table
from asr_kd.nnet.train import TrainConfig
from asr_kd.specialists import data as sdata
from asr_kd.specialists import experiment as ex
from asr_kd.specialists.speech import speech_specialists_table

log = logging.getLogger("asr_kd")


def make_data(args) -> None:
    d = sdata.make_dataset(args.data, folder=args.image_folder, mnist_npz=args.mnist_npz, fashion_dir=args.fashion_dir)
    log.info(
        "%d classes; train %d, valid %d, test %d -> %s",
        len(d["names"]),
        len(d["y_train"]),
        len(d["y_valid"]),
        len(d["y_test"]),
        args.data,
    )


def generalist(args) -> None:
    res = ex.train_generalist(args.data, Path(args.exp) / "generalist", ex.load_config(args.config))
    log.info("generalist test accuracy %.4f", res["test_accuracy"])


def cluster(args) -> None:
    cfg = ex.load_config(args.config)
    ex.find_clusters(
        Path(args.exp) / "generalist",
        args.data,
        args.num_clusters or cfg.num_clusters,
        seed=cfg.seed,
        out_dir=args.exp,
        num_clusterings=cfg.num_clusterings,
    )


def train(args) -> None:
    ex.train_specialist_in(
        args.exp, args.data, args.index, cfg=ex.load_config(args.config), soft_targets=args.soft_targets
    )


def report(args) -> None:
    ex.report(args.exp, args.data, top_n=ex.load_config(args.config).top_n, results_md=args.results_md)
    show_table(Path(args.exp) / "specialists_table")


def speech(args) -> None:
    speech_specialists_table(
        args.generalist,
        args.ali_dir,
        args.fbank_dir,
        corpus=args.corpus,
        out_dir=args.out_dir,
        out_stem=args.out,
        title=args.title,
        results_md=args.results_md,
        num_clusters=args.num_clusters,
        num_clusterings=args.num_clusterings,
        train_cfg=TrainConfig(epochs=args.epochs, lr=args.lr),
        seed=args.seed,
    )
    show_table(args.out)


def register(sub) -> None:
    for step, helptext, handler in (
        ("data", "20-class MNIST + Fashion-MNIST (or an ImageFolder) -> one .npz", make_data),
        ("generalist", "train the generalist; save its probabilities", generalist),
        ("cluster", "confusable-class clusters from the generalist's predictions (+ heat map)", cluster),
        ("train", "train one specialist (cluster --index), optionally with soft targets", train),
        ("report", "generalist vs. generalist + specialists; gains by coverage", report),
    ):
        s = sub.add_parser(f"specialists-{step}", help=helptext)
        s.add_argument("--data", required=True, help="the .npz of specialists-data")
        s.add_argument("--config", help="YAML with a 'specialists' section")
        if step != "data":
            s.add_argument("--exp", required=True, help="the recipe's exp folder")
        if step == "data":
            s.add_argument("--mnist-npz", help="mnist.npz from mnist-prepare")
            s.add_argument(
                "--fashion-dir", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST's idx files"
            )
            s.add_argument("--image-folder", help="an ImageFolder-style directory instead")
        if step == "cluster":
            s.add_argument("--num-clusters", type=int, help="clusters of confusable classes (default: the config's)")
        if step == "train":
            s.add_argument("--index", type=int, required=True, help="which cluster's specialist to train")
            s.add_argument("--soft-targets", action="store_true", help="add the generalist's folded soft targets")
        if step == "report":
            s.add_argument("--results-md", help="also put the tables into this RESULTS.md")
        s.set_defaults(func=handler)

    s = sub.add_parser(
        "specialists-speech", help="specialists over HMM states: clusters, specialists, KL-combined frame accuracy"
    )
    s.add_argument("--generalist", required=True, help="a frame-level DNN checkpoint (e.g. exp/dnn/seed1/best.pt)")
    s.add_argument("--ali-dir", required=True, help="alignment folder (labelled cuts, pdf_counts.txt)")
    s.add_argument("--fbank-dir", help=FBANK_HELP + RECORDED)
    add_corpus_arg(s)
    s.add_argument("--num-clusters", type=int, default=6, help="clusters of confusable pdfs")
    s.add_argument("--num-clusterings", type=int, default=1, help="independent clusterings (overlapping specialists)")
    s.add_argument("--epochs", type=int, default=3, help="epochs of each specialist")
    s.add_argument("--lr", type=float, default=3e-4, help="learning rate of each specialist")
    s.add_argument("--seed", type=int, default=1, help="seed of the clustering and the specialists")
    s.add_argument("--out-dir", required=True, help="specialist checkpoints")
    add_table_output_args(s, "Specialists over HMM states (embedded corpus)")
    from_alignment(s, "fbank_dir")
    s.set_defaults(func=speech)

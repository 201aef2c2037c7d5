"""Command line: ``python -m asr_kd <command> ...`` (or ``asr-kd <command>``). One module per
command group, in the manner of lhotse's ``bin/modes``; each command's options sit next to its
handler, and a handler only translates its arguments into one library call, so the CLI mirrors the
Python API. ``--help`` lists the commands a user runs apart from the recipe steps that write the
result tables (``RECIPE_STEPS``); every option shows its default."""

import argparse
import logging
import sys
from importlib.metadata import PackageNotFoundError, version

from asr_kd.cli import align, data, decode, deploy, images, lang, nnet, specialists, tables
from asr_kd.cli.common import expand_model_folders, resolve_corpus, resolve_made_from
from asr_kd.gmm.mono import AlignmentFailures
from asr_kd.utils.io import check_name
from asr_kd.utils.logging import setup_logging

log = logging.getLogger("asr_kd")

GROUPS = (data, lang, align, nnet, tables, decode, deploy, specialists, images)


# commands that score finished systems into a recipe's tables; the others are what a user runs
RECIPE_STEPS = (
    "diagnose-student",
    "teaching-table",
    "teacher-table",
    "speech-table",
    "frame-table",
    "alignment-table",
    "systems-table",
    "decoder-agreement",
    "deploy-table",
    "specialists-report",
    "mnist-report",
    "results-footer",
    "example-audio",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="asr_kd",
        description="asr_kd: Kaldi-style knowledge distillation of speech acoustic models (Hinton et al. 2015)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an error")
    p.add_argument("--version", action="version", version=f"asr_kd {_installed_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    listed = [(a.dest, a.help or "") for a in sub._choices_actions]
    sub._choices_actions.clear()  # listed in two groups below instead of one flat list
    p.epilog = "\n\n".join(
        [
            _command_list("commands", [c for c in listed if c[0] not in RECIPE_STEPS]),
            _command_list("recipe steps (result tables)", [c for c in listed if c[0] in RECIPE_STEPS]),
            "python -m asr_kd COMMAND --help: the command's options and their defaults",
        ]
    )
    for command in sub.choices.values():
        command.formatter_class = ShowDefaults
    return p


class ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, unless there is none to show (unset, a flag that is off)."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _installed_version() -> str:
    try:
        return version("asr_kd")
    except PackageNotFoundError:  # a source tree that pip never installed
        return "(not installed)"


def _command_list(title: str, commands) -> str:
    width = max(len(name) for name, _ in commands) + 2
    return "\n".join([f"{title}:"] + [f"  {name:<{width}}{text}" for name, text in commands])


def main(argv=None) -> int:
    """Run one command. Any error reaches the user as one line (``ERROR Type: message``, exit 1);
    ``-v`` shows the traceback instead."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        expand_model_folders(args)
        resolve_made_from(args)
        resolve_corpus(args)
        for option in ("corpus", "split"):  # names that become parts of file names
            value = getattr(args, option, None)
            if isinstance(value, str):
                check_name(f"--{option}", value)
        args.func(args)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as e:  # noqa: BLE001  one clear line; -v for the traceback
        if args.verbose:
            raise
        message = " ".join(str(e).split()) if str(e).strip() else "(no message)"
        if not isinstance(e, (ValueError, FileNotFoundError, KeyError, FloatingPointError, AlignmentFailures, OSError)):
            message += " (an unexpected error: rerun with -v for the traceback and report it)"
        log.error("%s: %s", type(e).__name__, message[:2000])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``python -m asr_kd <command> ...`` (or ``asr-kd <command>``); ``--help`` lists
every command. One module per command group, in the manner of lhotse's ``bin/modes``; each
command's options sit next to its handler, and a handler only translates its arguments into one
library call, so the CLI mirrors the Python API:

  data         synth-digits, prepare-digits, synth-readspeech, prepare-readspeech, compute-fbank, prepare-yesno, prepare-librispeech,
               prepare-timit, import-kaldi-dir, import-audio-folder          (asr_kd.data)
  lang         prepare-lang                                                  (asr_kd.lang)
  align        train-mono, train-oracle-gmm, realign-dnn                     (asr_kd.align)
  nnet         train-dnn, soft-targets                                       (asr_kd.distill, asr_kd.nnet)
  tables       speech-table, frame-table, alignment-table                    (asr_kd.distill, asr_kd.scoring)
  decode       decode, decoder-agreement                                     (asr_kd.scoring, asr_kd.decode)
  deploy       export, transcribe, deploy-eval, deploy-table                 (asr_kd.deploy)
  specialists  specialists-data, -generalist, -cluster, -train, -report, specialists-speech
  images       mnist-prepare, mnist-train, mnist-report                      (asr_kd.images)
"""

import argparse
import logging
import sys

from asr_kd.cli import align, data, decode, deploy, images, lang, nnet, specialists, tables
from asr_kd.gmm.mono import AlignmentFailures
from asr_kd.utils.io import check_name
from asr_kd.utils.logging import setup_logging

log = logging.getLogger("asr_kd")

GROUPS = (data, lang, align, nnet, tables, decode, deploy, specialists, images)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="asr_kd", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv=None) -> int:
    """Run one command. Any error reaches the user as one line (``ERROR Type: message``, exit 1);
    ``-v`` shows the traceback instead."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
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

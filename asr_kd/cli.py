"""Command line: ``python -m asr_kd <command> ...`` (or ``asr-kd <command>``).

Each command is a thin wrapper over one library function, so the CLI mirrors the Python API:

  synth-digits     asr_kd.data.synth.digits.generate_corpus
  prepare-digits   asr_kd.data.manifests.prepare_digits
  compute-fbank    asr_kd.data.features.compute_fbank (+ compute_cmvn)
  prepare-lang     asr_kd.lang.lexicon.build_lexicon + asr_kd.lang.prepare_lang.prepare_lang
  train-mono       asr_kd.align.pipeline.train_and_align (monophone GMM-HMM, labels, report)
"""
import argparse
import json
import logging
import sys
import time
from pathlib import Path

from asr_kd.utils.config import section
from asr_kd.utils.logging import setup_logging

log = logging.getLogger("asr_kd")


def cmd_synth_digits(args) -> None:
    from asr_kd.data.synth.digits import DigitsCorpusConfig, generate_corpus

    cfg = section(args.config, "corpus", DigitsCorpusConfig)
    t0 = time.time()
    counts = generate_corpus(cfg, args.out, num_jobs=args.nj)
    log.info("corpus in %s: %s (%.1f s)", args.out, json.dumps(counts), time.time() - t0)


def cmd_prepare_digits(args) -> None:
    from asr_kd.data.manifests import prepare_digits
    from asr_kd.data.synth.digits import DigitsCorpusConfig

    cfg = section(args.config, "corpus", DigitsCorpusConfig)
    counts = prepare_digits(args.corpus_dir, args.out, sample_rate=cfg.sample_rate)
    log.info("manifests in %s: %s", args.out, json.dumps(counts))


def cmd_compute_fbank(args) -> None:
    from asr_kd.data.features import FeatureConfig, compute_cmvn, compute_fbank
    from asr_kd.data.synth.digits import DigitsCorpusConfig

    fcfg = section(args.config, "features", FeatureConfig)
    sr = args.sample_rate or section(args.config, "corpus", DigitsCorpusConfig).sample_rate
    splits = args.splits.split(",")
    cuts = compute_fbank(args.manifest_dir, args.out, args.corpus, splits, fcfg, sample_rate=sr, num_jobs=args.nj)
    normalizer = compute_cmvn(cuts, fcfg.cmvn, train_split=splits[0])
    normalizer.save(Path(args.out) / "cmvn.npz")
    log.info("fbank (%d bins) and %s CMVN statistics in %s", fcfg.num_mel_bins, fcfg.cmvn, args.out)


def cmd_prepare_lang(args) -> None:
    import kaldi_hmm_gmm  # noqa: F401  (import order: kaldi_hmm_gmm before kaldifst)
    from lhotse import SupervisionSet

    from asr_kd.data.manifests import manifest_paths
    from asr_kd.lang.lexicon import LexiconConfig, build_lexicon, train_bpe
    from asr_kd.lang.prepare_lang import LangConfig, prepare_lang

    lcfg = section(args.config, "lexicon", LexiconConfig)
    words, train_texts = set(), []
    for split in args.splits.split(","):
        sups = SupervisionSet.from_file(manifest_paths(args.manifest_dir, args.corpus, split)["supervisions"])
        for s in sups:
            words.update(s.text.split())
            if split == args.splits.split(",")[0]:
                train_texts.append(s.text)
    bpe_model = None
    if lcfg.units == "bpe":
        bpe_model = train_bpe(train_texts, Path(args.dict_dir) / "bpe", lcfg.bpe_vocab_size)
    lexicon, stats = build_lexicon(sorted(words), dictionary=lcfg.dictionary, g2p_voices=lcfg.g2p_voices,
                                   units=lcfg.units, bpe_model=bpe_model)
    lexicon.write(Path(args.dict_dir) / "lexicon.txt")
    log.info("lexicon: %d words, %d pronunciations, sources %s", len(lexicon), sum(1 for _ in lexicon), stats)
    prepare_lang(lexicon, args.out, section(args.config, "lang", LangConfig))


def cmd_train_mono(args) -> None:
    from asr_kd.align.mono import MonoConfig
    from asr_kd.align.pipeline import train_and_align
    from asr_kd.data.synth.digits import DigitsCorpusConfig

    cfg = section(args.config, "mono", MonoConfig)
    held_out = section(args.config, "corpus", DigitsCorpusConfig).held_out_accents if args.corpus == "digits" else ()
    summary = train_and_align(args.fbank_dir, args.corpus, args.splits.split(","), args.lang, args.exp, cfg,
                              nj=args.nj, held_out_accents=held_out)
    log.info("pdfs: %d, alignment failures: %s; report: %s/alignment_report.md", summary["num_pdfs"],
             json.dumps(summary["failed"]), args.exp)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr_kd", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth-digits", help="generate the embedded digit-string corpus with eSpeak NG")
    s.add_argument("--config", help="YAML config (section 'corpus')")
    s.add_argument("--out", required=True)
    s.add_argument("--nj", type=int, default=1)
    s.set_defaults(func=cmd_synth_digits)

    s = sub.add_parser("prepare-digits", help="lhotse manifests for the embedded corpus")
    s.add_argument("--config", help="YAML config (section 'corpus')")
    s.add_argument("--corpus-dir", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_prepare_digits)

    s = sub.add_parser("compute-fbank", help="fbank features with lhotse and CMVN statistics")
    s.add_argument("--config", help="YAML config (section 'features')")
    s.add_argument("--manifest-dir", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--corpus", default="digits")
    s.add_argument("--splits", default="train,dev,test", help="comma-separated; the first gives global CMVN")
    s.add_argument("--sample-rate", type=int, default=None)
    s.add_argument("--nj", type=int, default=1)
    s.set_defaults(func=cmd_compute_fbank)

    s = sub.add_parser("prepare-lang", help="lexicon (dictionary / eSpeak G2P / graphemes / BPE) and lang directory")
    s.add_argument("--config", help="YAML config (sections 'lexicon', 'lang')")
    s.add_argument("--manifest-dir", required=True, help="supervision manifests give the word list")
    s.add_argument("--corpus", default="digits")
    s.add_argument("--splits", default="train,dev,test", help="comma-separated; the first trains BPE units")
    s.add_argument("--dict-dir", required=True, help="where lexicon.txt is written (Kaldi's data/local/dict)")
    s.add_argument("--out", required=True, help="the lang directory")
    s.set_defaults(func=cmd_prepare_lang)

    s = sub.add_parser("train-mono", help="monophone GMM-HMM from a flat start; align every split")
    s.add_argument("--config", help="YAML config (section 'mono')")
    s.add_argument("--fbank-dir", required=True)
    s.add_argument("--corpus", default="digits")
    s.add_argument("--splits", default="train,dev,test", help="comma-separated; the first is trained on")
    s.add_argument("--lang", required=True)
    s.add_argument("--exp", required=True)
    s.add_argument("--nj", type=int, default=1)
    s.set_defaults(func=cmd_train_mono)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as e:
        # input problems: one clear line, no traceback (use -v for the traceback)
        if args.verbose:
            raise
        log.error("%s: %s", type(e).__name__, e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

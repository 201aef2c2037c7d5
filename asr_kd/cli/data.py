"""Corpora and features: synth-digits, prepare-digits, synth-readspeech, prepare-readspeech, compute-fbank, prepare-yesno,
prepare-librispeech, prepare-timit, import-kaldi-dir, import-audio-folder."""

import json
import logging
import time
from pathlib import Path
from typing import List

from asr_kd.cli.common import add_corpus_arg, splits
from asr_kd.data import librispeech
from asr_kd.data.features import FeatureConfig, compute_features
from asr_kd.data.importers import download_yesno, import_audio_folder, import_kaldi_dir, prepare_yesno
from asr_kd.data.manifests import example_recording, prepare_digits, prepare_readspeech
from asr_kd.data.synth.corpus import UNLABELLED
from asr_kd.data.synth.digits import DigitsCorpusConfig, generate_corpus, generate_unlabelled
from asr_kd.data.synth.readspeech import ReadSpeechCorpusConfig, generate_readspeech, generate_readspeech_unlabelled
from asr_kd.data.timit import prepare_timit
from asr_kd.utils.config import section

log = logging.getLogger("asr_kd")


def add_unlabelled_hours_arg(parser, what: str) -> None:
    parser.add_argument(
        "--unlabelled-hours",
        type=float,
        default=0.0,
        help=f"also an untranscribed transfer split of about this many hours in OUT/unlabelled ({what}, new "
        "speakers of the training accents); what it says never reaches the manifests [0: none]",
    )


def synth_digits(args) -> None:
    t0 = time.time()
    cfg = section(args.config, "corpus", DigitsCorpusConfig)
    counts = generate_corpus(cfg, args.out, num_jobs=args.nj)
    if args.unlabelled_hours:
        unlabelled = Path(args.out) / UNLABELLED
        counts.update(generate_unlabelled(cfg, args.unlabelled_hours, unlabelled, num_jobs=args.nj))
    log.info("corpus in %s: %s (%.1f s)", args.out, json.dumps(counts), time.time() - t0)


def prepare_digits_manifests(args) -> None:
    counts = prepare_digits(
        args.corpus_dir, args.out, sample_rate=section(args.config, "corpus", DigitsCorpusConfig).sample_rate
    )
    log.info("manifests in %s: %s", args.out, json.dumps(counts))


def synth_readspeech(args) -> None:
    t0 = time.time()
    cfg = section(args.config, "corpus", ReadSpeechCorpusConfig)
    counts = generate_readspeech(cfg, args.text, args.out, num_jobs=args.nj)
    if args.unlabelled_hours:
        unlabelled = Path(args.out) / UNLABELLED
        counts.update(
            generate_readspeech_unlabelled(cfg, args.text, args.unlabelled_hours, out_dir=unlabelled, num_jobs=args.nj)
        )
    log.info("corpus in %s: %s (%.1f s)", args.out, json.dumps(counts), time.time() - t0)


def prepare_readspeech_manifests(args) -> None:
    counts = prepare_readspeech(
        args.corpus_dir, args.out, sample_rate=section(args.config, "corpus", ReadSpeechCorpusConfig).sample_rate
    )
    log.info("manifests in %s: %s", args.out, json.dumps(counts))


def feature_splits(manifest_dir, corpus: str) -> List[str]:
    """train, dev, test, and the untranscribed transfer split when the corpus stages made one."""
    found = (Path(manifest_dir) / f"{corpus}_cuts_{UNLABELLED}.jsonl.gz").is_file()
    return ["train", "dev", "test"] + ([UNLABELLED] if found else [])


def compute_fbank(args) -> None:
    sample_rate = args.sample_rate or section(args.config, "corpus", DigitsCorpusConfig).sample_rate
    compute_features(
        args.manifest_dir,
        args.out,
        args.corpus,
        splits=splits(args.splits) if args.splits else feature_splits(args.manifest_dir, args.corpus),
        cfg=section(args.config, "features", FeatureConfig),
        sample_rate=sample_rate,
        num_jobs=args.nj,
        allow_pipes=args.allow_pipes,
    )


def prepare_yesno_manifests(args) -> None:
    corpus_dir = download_yesno(args.download) if args.download else args.corpus_dir
    prepare_yesno(corpus_dir, args.out, num_dev=args.num_dev, sample_rate=args.sample_rate)


def prepare_librispeech_manifests(args) -> None:
    librispeech.prepare_from_options(
        args.out,
        corpus_dir=args.corpus_dir,
        download_dir=args.download,
        lm_dir=args.download_lm,
        mini=args.mini,
        train_parts=args.train_parts,
        speed_factors=args.speed_perturb,
        musan_dir=args.musan_dir,
        seed=args.seed,
        num_jobs=args.nj,
    )


def prepare_timit_manifests(args) -> None:
    prepare_timit(args.corpus_dir, args.out, num_jobs=args.nj)


def import_kaldi_data_dir(args) -> None:
    import_kaldi_dir(
        args.data_dir,
        args.out,
        args.corpus,
        split=args.split,
        sample_rate=args.sample_rate,
        allow_pipes=args.allow_pipes,
        resample=args.resample,
    )


def import_folder(args) -> None:
    import_audio_folder(
        args.folder, args.out, args.corpus, split=args.split, sample_rate=args.sample_rate, resample=args.resample
    )


def example_audio(args) -> None:
    path, text = example_recording(args.manifest_dir, args.corpus, args.split)
    print(f"{path}\t{text}")


def register(sub) -> None:
    s = sub.add_parser("synth-digits", help="generate the embedded digit-string corpus with eSpeak NG")
    s.add_argument("--config", help="YAML config (section 'corpus')")
    s.add_argument("--out", required=True, help="corpus folder (wav/ and the transcripts)")
    s.add_argument("--nj", type=int, default=1, help="parallel synthesis processes")
    add_unlabelled_hours_arg(s, "digit strings of no dev or test utterance")
    s.set_defaults(func=synth_digits)

    s = sub.add_parser("prepare-digits", help="lhotse manifests for the embedded corpus")
    s.add_argument("--config", help="YAML config (section 'corpus')")
    s.add_argument("--corpus-dir", required=True, help="the corpus folder synth-digits wrote")
    s.add_argument("--out", required=True, help="manifest folder")
    s.set_defaults(func=prepare_digits_manifests)

    s = sub.add_parser(
        "synth-readspeech", help="generate a read-speech corpus from a text (one sentence a line) with eSpeak NG"
    )
    s.add_argument("--config", help="YAML config (section 'corpus': ReadSpeechCorpusConfig)")
    s.add_argument("--text", required=True, help="UTF-8 text, one sentence a line (normalised here)")
    s.add_argument("--out", required=True, help="corpus folder (wav/ and the transcripts)")
    s.add_argument("--nj", type=int, default=1, help="parallel synthesis processes")
    add_unlabelled_hours_arg(s, "sentences no dev or test utterance reads")
    s.set_defaults(func=synth_readspeech)

    s = sub.add_parser(
        "prepare-readspeech", help="lhotse manifests for the read-speech corpus (oracle phones in ARPAbet)"
    )
    s.add_argument("--config", help="YAML config (section 'corpus')")
    s.add_argument("--corpus-dir", required=True, help="the corpus folder synth-readspeech wrote")
    s.add_argument("--out", required=True, help="manifest folder")
    s.set_defaults(func=prepare_readspeech_manifests)

    s = sub.add_parser("compute-fbank", help="fbank features with lhotse and CMVN statistics")
    s.add_argument("--config", help="YAML config (section 'features')")
    s.add_argument(
        "--manifest-dir", required=True, help="lhotse manifest folder (a prepare-* or import-* command's --out)"
    )
    s.add_argument("--out", required=True, help="features folder (cuts with fbank, cmvn.npz)")
    add_corpus_arg(s, "--manifest-dir")
    s.add_argument(
        "--splits",
        help="comma-separated; the first gives global CMVN (default: train,dev,test, and the untranscribed "
        "transfer split 'unlabelled' when the manifest folder has one)",
    )
    s.add_argument(
        "--sample-rate", type=int, default=None, help="resample to this rate in Hz (default: the recordings' own)"
    )
    s.add_argument("--nj", type=int, default=1, help="parallel feature extraction processes")
    s.add_argument("--allow-pipes", action="store_true", help="read audio that the manifests get by running commands")
    s.set_defaults(func=compute_fbank)

    s = sub.add_parser("example-audio", help="print the path and transcript of a split's first audio file")
    s.add_argument("--manifest-dir", required=True, help="lhotse manifest folder")
    add_corpus_arg(s, "--manifest-dir")
    s.add_argument("--split", default="test", help="the split to take it from")
    s.set_defaults(func=example_audio)

    s = sub.add_parser("prepare-yesno", help="manifests for OpenSLR yesno (train/dev/test)")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus-dir", help="folder of the 60 yesno wav files")
    src.add_argument("--download", metavar="DIR", help="download with lhotse into DIR first (needs the internet)")
    s.add_argument("--num-dev", type=int, default=6, help="training files held out as dev")
    s.add_argument("--sample-rate", type=int, default=8000, help="the recordings' sample rate in Hz")
    s.add_argument("--out", required=True, help="manifest folder")
    s.set_defaults(func=prepare_yesno_manifests)

    s = sub.add_parser(
        "prepare-librispeech", help="manifests for (mini) LibriSpeech, optional speed perturbation / MUSAN"
    )
    src = s.add_mutually_exclusive_group()
    src.add_argument("--corpus-dir", help="folder holding LibriSpeech/<part>/ (or the LibriSpeech folder itself)")
    src.add_argument(
        "--download", metavar="DIR", help="download the parts with lhotse into DIR first (needs the internet)"
    )
    s.add_argument(
        "--download-lm", metavar="DIR", help="also fetch the official lexicon and ARPA LMs (OpenSLR 11) into DIR"
    )
    s.add_argument(
        "--mini",
        type=lambda v: v.lower() in ("1", "true", "yes"),
        default=True,
        help="true: mini LibriSpeech (train-clean-5, dev-clean-2); false: full",
    )
    s.add_argument("--train-parts", nargs="+", default=["train-clean-100"], help="full LibriSpeech training parts")
    s.add_argument("--speed-perturb", type=float, nargs="*", default=[], help="extra training copies at these speeds")
    s.add_argument("--musan-dir", help="MUSAN folder: extra training copies mixed with its noise at 10-20 dB SNR")
    s.add_argument("--seed", type=int, default=0, help="seed of the noise and speed copies")
    s.add_argument("--nj", type=int, default=1, help="parallel processes")
    s.add_argument("--out", required=True, help="manifest folder")
    s.set_defaults(func=prepare_librispeech_manifests)

    s = sub.add_parser("prepare-timit", help="TIMIT manifests for phone recognition (+ phone lexicon, 48->39 map)")
    s.add_argument("--corpus-dir", required=True, help="the TIMIT folder holding data/TRAIN and data/TEST")
    s.add_argument("--nj", type=int, default=1, help="parallel processes")
    s.add_argument("--out", required=True, help="manifest folder")
    s.set_defaults(func=prepare_timit_manifests)

    for name, helptext, handler in (
        (
            "import-kaldi-dir",
            "a Kaldi data directory (wav.scp, text, utt2spk, [segments]) -> manifests",
            import_kaldi_data_dir,
        ),
        ("import-audio-folder", "a folder of wav/flac files with transcripts -> manifests", import_folder),
    ):
        s = sub.add_parser(name, help=helptext)
        if name == "import-kaldi-dir":
            s.add_argument("--data-dir", required=True, help="the Kaldi data directory")
            s.add_argument(
                "--allow-pipes",
                action="store_true",
                help="run wav.scp commands ('cmd |') through the shell; only for data directories you trust",
            )
        else:
            s.add_argument(
                "--folder",
                required=True,
                help="audio folder; transcripts in a text file or .txt/.lab files beside the audio",
            )
        s.add_argument("--resample", action="store_true", help="resample other rates instead of failing")
        s.add_argument("--corpus", required=True, help="corpus name used in the manifest file names")
        s.add_argument(
            "--split", required=True, help="train, dev or test; unlabelled: untranscribed transfer audio (no text read)"
        )
        s.add_argument("--sample-rate", type=int, default=16000, help="expected sample rate")
        s.add_argument("--out", required=True, help="manifest folder")
        s.set_defaults(func=handler)

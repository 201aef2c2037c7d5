#!/usr/bin/env python3
"""``transcribe`` on long audio: peak memory against file length, and streaming cost per chunk
over a long file.

    .venv/bin/python benchmarks/transcribe_scaling.py [--work /tmp/transcribe_bench] [--model-dir DIR]
        [--minutes 1 10 60] [--stream-minutes 10] [--chunk-ms 160] [--out transcribe_scaling.json]

Without ``--model-dir`` it first builds a small system in ``--work`` (a tiny embedded corpus,
a monophone GMM, its HCLG and a 2x64 DNN, exported), as the tests do. Long files are test
utterances tiled with 0.5 s pauses and written as 16-bit WAV.

1. Memory: each length is transcribed by ``python -m asr_kd transcribe`` in a process of its own;
   its peak RSS (ru_maxrss of the child) is printed with the ratio to the shortest file's.
2. Streaming: one ``--stream-minutes`` file (speech) and one of digital silence are streamed in
   ``--chunk-ms`` chunks through ``Recognizer.stream()`` (partial result at every chunk, the
   default endpointing); the mean cost per chunk in the first and the last minute and their
   ratio are printed, beside the offline time of the same audio.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build_model(work: Path) -> Path:
    from asr_kd.stages.align import train_and_align
    from asr_kd.data.features import FeatureConfig, compute_cmvn, compute_fbank
    from asr_kd.data.manifests import prepare_digits
    from asr_kd.data.synth.digits import DIGIT_WORDS, DigitsCorpusConfig, generate_corpus
    from asr_kd.decode.search import build_graph
    from asr_kd.deploy.model_dir import export_model_dir, fbank_settings
    from asr_kd.distill.training import train_speech_model
    from asr_kd.gmm.mono import MonoConfig
    from asr_kd.lang.lexicon import build_lexicon
    from asr_kd.lang.prepare_lang import prepare_lang
    from asr_kd.nnet.losses import LossConfig
    from asr_kd.nnet.models import ModelConfig
    from asr_kd.nnet.train import TrainConfig

    model = work / "model"
    if (model / "card.json").is_file():
        return model
    generate_corpus(
        DigitsCorpusConfig(train_speakers=4, dev_speakers=2, test_speakers=2, utts_per_speaker=5),
        work / "corpus",
        num_jobs=2,
    )
    prepare_digits(work / "corpus", work / "manifests")
    cuts = compute_fbank(
        work / "manifests", work / "fbank", "digits", splits=["train", "dev", "test"], cfg=FeatureConfig(), num_jobs=2
    )
    compute_cmvn(cuts, "global").save(work / "fbank" / "cmvn.npz")
    lex, _ = build_lexicon([w.upper() for w in DIGIT_WORDS], g2p_voices=["en-us"])
    prepare_lang(lex, work / "lang")
    train_and_align(
        work / "fbank",
        "digits",
        ["train", "dev", "test"],
        lang_dir=work / "lang",
        exp_dir=work / "exp",
        cfg=MonoConfig(num_iters=8, max_iter_inc=5, realign_iters=(1, 2, 3, 4, 5, 6), total_gauss=200),
        nj=2,
    )
    build_graph(work / "lang", work / "exp", work / "manifests", corpus="digits", graph_dir=work / "graph", lm_order=2)
    train_speech_model(
        work / "exp",
        work / "fbank",
        "digits",
        out_dir=work / "dnn",
        model_cfg=ModelConfig(context=3, hidden=64, num_layers=2),
        train_cfg=TrainConfig(epochs=3, batch_size=128, lr=0.003),
        loss_cfg=LossConfig(loss="ce"),
        seed=1,
    )
    return export_model_dir(
        model,
        [work / "dnn" / "best.pt"],
        work / "exp",
        lang_dir=work / "lang",
        graph_dir=work / "graph",
        fbank_dir=work / "fbank",
        settings=fbank_settings(work / "fbank", "digits"),
        name="bench dnn",
        corpus="digits",
        lmwt=5.0,
        wip=0.5,
        formats=("pt",),
    )


def speech_samples(cuts_path: Path, sample_rate: int) -> np.ndarray:
    from lhotse import CutSet

    pause = np.zeros(int(0.5 * sample_rate), np.float32)
    parts = []
    for cut in CutSet.from_file(cuts_path):
        parts += [cut.load_audio()[0].astype(np.float32), pause]
    return np.concatenate(parts)


def long_file(path: Path, unit: np.ndarray, minutes: float, *, sample_rate: int) -> Path:
    if not path.is_file():
        n = int(minutes * 60 * sample_rate)
        with sf.SoundFile(str(path), "w", sample_rate, 1, subtype="PCM_16") as f:
            written = 0
            while written < n:
                piece = unit[: n - written]
                f.write(piece)
                written += len(piece)
    return path


def peak_rss_mb(cmd) -> float:
    """Peak RSS of ``cmd`` run in a fresh wrapper process (so ru_maxrss covers it alone)."""
    probe = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True); "
        "assert r.returncode == 0, r.stderr.decode()[-2000:]; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *map(str, cmd)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


def stream_costs(model_dir: Path, audio: np.ndarray, chunk: int):
    from asr_kd.deploy.audio import chunks
    from asr_kd.deploy.model_dir import ModelDir
    from asr_kd.deploy.recognizer import Recognizer

    rec = Recognizer(ModelDir.load(model_dir), "pt")
    t0 = time.perf_counter()
    rec.transcribe(audio)
    offline = time.perf_counter() - t0
    s = rec.stream()
    t0 = time.perf_counter()
    for c in chunks(audio, chunk):
        s.accept(c)
    s.finish()
    return offline, time.perf_counter() - t0, np.array(s.chunk_seconds[:-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/transcribe_bench")
    ap.add_argument("--model-dir")
    ap.add_argument("--cuts", help="speech to tile (a CutSet with recordings); default: the built system's test split")
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    ap.add_argument("--stream-minutes", type=float, default=10)
    ap.add_argument("--chunk-ms", type=float, default=160)
    ap.add_argument("--out", default="transcribe_scaling.json")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = Path(args.model_dir) if args.model_dir else build_model(work)
    sr = json.loads((model / "features.json").read_text())["sample_rate"]
    unit = speech_samples(Path(args.cuts) if args.cuts else work / "manifests" / "digits_cuts_test.jsonl.gz", sr)
    result = {"model_dir": str(model), "memory": [], "streaming": []}
    print("peak RSS of transcribe (one process per file)")
    for m in args.minutes:
        f = long_file(work / f"speech_{m:g}min.wav", unit, m, sample_rate=sr)
        t0 = time.perf_counter()
        mb = peak_rss_mb([sys.executable, "-m", "asr_kd", "transcribe", "--model-dir", model, f])
        row = {"minutes": m, "peak_rss_mb": round(mb, 1), "seconds": round(time.perf_counter() - t0, 1)}
        row["ratio_to_first"] = round(mb / result["memory"][0]["peak_rss_mb"], 3) if result["memory"] else 1.0
        result["memory"].append(row)
        print(
            f"  {m:6g} min: {mb:8.1f} MB  ({row['ratio_to_first']:.3f} x the {args.minutes[0]:g}-min file), "
            f"{row['seconds']} s"
        )
    chunk = int(args.chunk_ms / 1000 * sr)
    n = int(args.stream_minutes * 60 * sr)
    per_minute = int(60 * 1000 / args.chunk_ms)
    print(f"streaming {args.stream_minutes:g} min in {args.chunk_ms:g} ms chunks (partial result every chunk)")
    for name, audio in (("speech", np.resize(unit, n)), ("silence", np.zeros(n, np.float32))):
        offline, streamed, costs = stream_costs(model, audio, chunk)
        first, last = costs[:per_minute].mean(), costs[-per_minute:].mean()
        row = {
            "audio": name,
            "minutes": args.stream_minutes,
            "offline_s": round(offline, 2),
            "streamed_s": round(streamed, 2),
            "chunk_ms_first_minute": round(1000 * first, 3),
            "chunk_ms_last_minute": round(1000 * last, 3),
            "last_to_first": round(last / first, 3),
        }
        result["streaming"].append(row)
        print(
            f"  {name:8s}: offline {offline:6.1f} s, streamed {streamed:6.1f} s; per chunk {1000 * first:.2f} ms in the "
            f"first minute, {1000 * last:.2f} ms in the last ({last / first:.2f}x)"
        )
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

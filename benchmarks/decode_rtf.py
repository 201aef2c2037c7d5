#!/usr/bin/env python3
"""Decoding real-time factor on one core: decode time / audio duration, per model, plus the graph size.

    .venv/bin/python benchmarks/decode_rtf.py [--exp exp] [--data data] [--lmwt 5]

Needs the default recipe through stage 13 (models and exp/graph/HCLG.fst). The neural network's
forward pass is timed separately from the search, so the search RTF is the decoder's alone.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch
    from lhotse import CutSet

    from asr_kd.hybrid.likelihoods import dnn_logposteriors, log_priors
    from asr_kd.gmm.labels import read_pdf_counts
    from asr_kd.gmm.mono import GmmAligner
    from asr_kd.data.features import FeatureNormalizer, feature_cuts_path
    from asr_kd.decode.kaldi_decoder import decode
    from asr_kd.nnet.data import load_frames
    from asr_kd.nnet.checkpoint import load_model

    p = argparse.ArgumentParser()
    p.add_argument("--exp", default=str(ROOT / "exp"))
    p.add_argument("--data", default=str(ROOT / "data"))
    p.add_argument("--lmwt", type=float, default=5.0)
    args = p.parse_args()
    torch.set_num_threads(1)
    exp, data = Path(args.exp), Path(args.data)
    graph = exp / "graph" / "HCLG.fst"
    if not graph.is_file():
        sys.exit("no exp/graph/HCLG.fst: run ./run.sh first")
    info = json.loads((exp / "graph" / "graph_summary.json").read_text())["hclg"]
    tm = GmmAligner.load(exp / "mono" / "final.mdl", data / "lang").tm
    priors = log_priors(read_pdf_counts(exp / "mono" / "pdf_counts.txt"))
    cuts = CutSet.from_file(feature_cuts_path(data / "fbank", "digits", "test")).to_eager()
    frames = load_frames(cuts, FeatureNormalizer.of_features(data / "fbank"), with_labels=False)
    audio = len(frames) * 0.01
    print(
        f"graph: {info['states']} states, {info['arcs']} arcs; test: {len(cuts)} utterances, {audio:.0f} s of audio; one core"
    )
    systems = {
        "baseline": sorted(exp.glob("dnn/seed1/best.pt")),
        "ensemble": sorted(exp.glob("dnn/seed*/best.pt")),
        "student": sorted(exp.glob("student_T*/seed101/best.pt"))[:1],  # one student, whatever its T
    }
    for name, ckpts in systems.items():
        if not ckpts:
            continue
        t0 = time.perf_counter()
        lp = dnn_logposteriors([load_model(c) for c in ckpts], frames).numpy() - priors
        t_nn = time.perf_counter() - t0
        ll = {c.id: lp[frames.utterance(i)] / args.lmwt for i, c in enumerate(cuts)}
        t0 = time.perf_counter()
        decode(graph, tm, ll, nj=1)
        t_search = time.perf_counter() - t0
        print(
            f"{name:9s} ({len(ckpts)} model(s)): search RTF {t_search / audio:.4f}, network RTF {t_nn / audio:.4f}, "
            f"total {(t_search + t_nn) / audio:.4f} (target <= 0.05)"
        )


if __name__ == "__main__":
    main()

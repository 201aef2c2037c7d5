#!/usr/bin/env python3
"""Decoding real-time factor of the Kaldi decoder and of k2 on the same graph and the same
log-likelihoods (the default recipe's test set), on one CPU core, and of k2 on a GPU when present.

    .venv-k2/bin/python benchmarks/k2_vs_kaldi_rtf.py [--exp exp] [--data data] [--lmwt 3] [--beam 20]

Runs in the k2 environment (tools/k2_lane.sh --setup); needs the default recipe through stage 13.
RTF = search time / audio duration (the network's forward pass is not included).
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import numpy as np
    import torch

    from asr_kd.decode.kaldi_decoder import decode
    from asr_kd.decode.search import load_decode_data
    from asr_kd.hybrid.likelihoods import model_loglikes
    from asr_kd.decode.k2_decoder import decode_k2, k2_version, load_k2_graph

    p = argparse.ArgumentParser()
    p.add_argument("--exp", default=str(ROOT / "exp"))
    p.add_argument("--data", default=str(ROOT / "data"))
    p.add_argument("--corpus", default="digits")
    p.add_argument("--lmwt", type=float, default=3.0)
    p.add_argument("--beam", type=float, default=20.0)
    args = p.parse_args()
    torch.set_num_threads(1)
    exp, data = Path(args.exp), Path(args.data)
    graph = exp / "graph" / "HCLG.fst"
    if not graph.is_file():
        sys.exit(f"{graph} not found: run the default recipe through stage 13 first")
    lang, tm, priors, splits = load_decode_data(
        exp / "mono", data / "lang", data / "fbank", corpus=args.corpus, split_names=("test",)
    )
    cuts, frames = splits["test"]
    seconds = len(frames) * 0.01
    k2_cpu = load_k2_graph(graph)
    print(
        f"graph {graph}: k2 {k2_version()}, {k2_cpu.shape[0]} states, {k2_cpu.num_arcs} arcs; test audio {seconds:.0f} s"
    )
    models = {"GMM": [str(exp / "mono" / "final.mdl")], "baseline": [str(exp / "dnn" / "seed1" / "best.pt")]}
    gpu = torch.device("cuda") if torch.cuda.is_available() else None
    for name, ckpts in models.items():
        lp = model_loglikes(ckpts, splits, priors)["test"]
        ll = {c.id: lp[frames.utterance(i)] / args.lmwt for i, c in enumerate(cuts)}
        t0 = time.time()
        decode(graph, tm, ll, beam=args.beam)
        t_kaldi = time.time() - t0
        t0 = time.time()
        decode_k2(k2_cpu, np.asarray(tm.id2pdf_id), ll, search_beam=args.beam)
        t_k2 = time.time() - t0
        line = f"{name:9s} RTF kaldi (1 core) {t_kaldi / seconds:.4f}  k2 CPU (1 thread) {t_k2 / seconds:.4f}  ratio {t_k2 / t_kaldi:.2f}"
        if gpu is not None:
            g = load_k2_graph(graph, device=gpu)
            decode_k2(g, np.asarray(tm.id2pdf_id), ll, search_beam=args.beam, device=gpu)  # warm-up
            torch.cuda.synchronize()
            t0 = time.time()
            decode_k2(g, np.asarray(tm.id2pdf_id), ll, search_beam=args.beam, device=gpu)
            torch.cuda.synchronize()
            line += f"  k2 GPU {(time.time() - t0) / seconds:.4f}"
        else:
            line += "  (no GPU: k2 GPU not measured)"
        print(line)


if __name__ == "__main__":
    main()

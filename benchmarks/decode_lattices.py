#!/usr/bin/env python3
"""The decode stage before and after lattices, measured in one run on a recipe's outputs.

    .venv/bin/python benchmarks/decode_lattices.py --data DATA --exp EXP --corpus NAME
        [--systems "NAME=CKPT[,CKPT...]" ...] [--old-lmwt 1,2,3,5,8,13 --old-wip 0,1]
        [--new-lmwt ... --new-wip ...] [--beam 13 --max-active 7000 --nj 2] [--rtf-utts 40]
        [--out /tmp/decode_lattices]

Needs a recipe run through its network stages (``--stop-stage 8``) and ``EXP/graph/HCLG.fst``
(stage 13 builds it; ``asr_kd.decode.search.build_graph``). Default systems: the GMM of
``EXP/mono``, the first baseline seed and the first student seed found.

1. The stage, each way, on the same systems and the same frames (read once, outside the clocks):
   ``re-decoding`` (every dev grid point decoded again, test once more: the decode stage before
   lattices) on the old grid (``redecode-new``: on the new one); ``lattice`` (each split decoded once
   into lattices, every grid point a best path on them) on the old grid (do they choose the same?)
   and on the new, wider grid.
   Per system: wall seconds, chosen LM weight / penalty, dev and test WER, oracle WER, confidence
   NCE (raw and calibrated on dev), lattice size on disk per hour of audio.
   ``k2 lattice`` (``--decoder k2-lattice``: the lattices searched by k2; the benchmark then runs
   in the k2 environment, ``.venv-k2/bin/python benchmarks/decode_lattices.py ...``).
2. Single-thread search RTF on ``--rtf-utts`` test utterances of the first network system at the
   lattice stage's beam: LatticeSimpleDecoder (lattice beam 6; it has no max-active), k2's
   intersect_dense_pruned (output beam 6, --max-active; with the k2 ways) vs. the re-decoding
   stage's LatticeFasterDecoder (1-best, --beam, --max-active) at the dev-tuned LM weight (the graph
   is read before any clock starts).
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def floats(text):
    return [float(x) for x in text.split(",")]


def default_systems(exp: Path):
    rows = [("GMM", [str(exp / "mono" / "final.mdl")])]
    base = sorted((exp / "dnn").glob("seed*/best.pt"))
    stud = sorted(exp.glob("student_T*/seed*/best.pt"))
    if base:
        rows.append(("baseline", [str(base[0])]))
    if stud:
        rows.append(("student", [str(stud[0])]))
    return rows


def main() -> None:
    import numpy as np
    import torch

    from asr_kd.decode.search import load_decode_data, load_decode_splits
    from asr_kd.stages.decode import decode_models
    from asr_kd.hybrid.likelihoods import model_loglikes

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--exp", required=True)
    p.add_argument("--corpus", required=True)
    p.add_argument("--ali", help="alignment folder (default EXP/mono)")
    p.add_argument("--systems", nargs="*", help="NAME=CKPT[,CKPT...] (a .mdl: the GMM)")
    p.add_argument("--old-lmwt", default="1,2,3,5,8,13")
    p.add_argument("--old-wip", default="0,1")
    p.add_argument("--new-lmwt", default="1,1.5,2,2.5,3,4,5,6.5,8,10,13")
    p.add_argument("--new-wip", default="0,0.5,1,1.5")
    p.add_argument("--beam", type=float, default=13.0, help="re-decoding's beam (with --max-active)")
    p.add_argument(
        "--lattice-search-beam",
        type=float,
        help="the lattice decoder's beam (its 1-best check: --max-active, min-active 200) [--beam]",
    )
    p.add_argument("--rescore-arpa", help="the lattice ways also rescore with this LM")
    p.add_argument("--max-active", type=int, default=7000)
    p.add_argument("--nj", type=int, default=2)
    p.add_argument("--rtf-utts", type=int, default=40)
    p.add_argument(
        "--ways",
        default="redecode-old,lattice-old,lattice-new",
        help="which of redecode-old, redecode-new, lattice-old, lattice-new, k2lattice-old, k2lattice-new to run (k2lattice: "
        "the lattices searched by k2; run the benchmark with .venv-k2/bin/python) [%(default)s]",
    )
    p.add_argument("--out", default="/tmp/decode_lattices")
    args = p.parse_args()
    data, exp, out = Path(args.data), Path(args.exp), Path(args.out)
    ali = Path(args.ali) if args.ali else exp / "mono"
    graph_dir = exp / "graph"
    if not (graph_dir / "HCLG.fst").is_file():
        sys.exit(f"no {graph_dir}/HCLG.fst: run the recipe's stage 13 (or build_graph) first")
    systems = (
        [(s.split("=", 1)[0], s.split("=", 1)[1].split(",")) for s in args.systems]
        if args.systems
        else default_systems(exp)
    )
    splits = load_decode_splits(data / "fbank", args.corpus)
    hours = sum(c.duration for s in ("dev", "test") for c in splits[s][0]) / 3600
    common = dict(max_active=args.max_active, nj=args.nj, splits=splits)
    lattice_beam = args.lattice_search_beam or args.beam
    ways = [
        ("re-decoding, old grid", "kaldi", args.old_lmwt, args.old_wip),
        ("re-decoding, new grid", "kaldi", args.new_lmwt, args.new_wip),
        ("lattice, old grid", "lattice", args.old_lmwt, args.old_wip),
        ("lattice, new grid", "lattice", args.new_lmwt, args.new_wip),
        ("k2 lattice, old grid", "k2-lattice", args.old_lmwt, args.old_wip),
        ("k2 lattice, new grid", "k2-lattice", args.new_lmwt, args.new_wip),
    ]
    chosen_ways = args.ways.split(",")
    keys = ("redecode-old", "redecode-new", "lattice-old", "lattice-new", "k2lattice-old", "k2lattice-new")
    ways = [w for w, key in zip(ways, keys) if key in chosen_ways]
    report = {
        "systems": systems,
        "audio_hours_dev_test": round(hours, 3),
        "nj": args.nj,
        "beam": args.beam,
        "lattice_search_beam": lattice_beam,
        "max_active": args.max_active,
        "ways": {},
    }
    for label, decoder, lmwt, wip in ways:
        rows = []
        for name, ckpts in systems:
            t0 = time.time()
            row = decode_models(
                [(name, ckpts)],
                ali,
                data / "lang",
                fbank_dir=data / "fbank",
                corpus=args.corpus,
                graph_dir=graph_dir,
                out_dir=out / label.replace(", ", "_").replace(" ", "-"),
                lmwts=floats(lmwt),
                penalties=floats(wip),
                decoder=decoder,
                beam=args.beam if decoder == "kaldi" else lattice_beam,
                rescore_arpa=args.rescore_arpa if decoder.endswith("lattice") else None,
                **common,
            )[0]
            row["wall_seconds"] = round(time.time() - t0, 1)
            if decoder.endswith("lattice"):
                d = out / label.replace(", ", "_").replace(" ", "-") / name
                row["lattice_mb_per_hour"] = round(sum(f.stat().st_size for f in d.glob("lat.*.gz")) / 1e6 / hours, 1)
            rows.append(row)
            print(
                f"{label:24s} {name:10s} {row['wall_seconds']:8.1f} s  lmwt {row['best_lmwt']:g} wip {row['best_wip']:g}"
                f"  dev {100 * row['dev_wer']:.2f}  test {100 * row['test_wer']:.2f}"
                + (
                    f"  oracle {100 * row['test_oracle_wer']:.2f}  NCE {row['test_confidence_nce']} -> "
                    f"{row['test_confidence_nce_calibrated']}  {row['lattice_mb_per_hour']} MB/h  lattice decode "
                    f"{row['lattice_decode_seconds']}"
                    if decoder.endswith("lattice")
                    else ""
                )
                + (
                    f"  rescored dev {100 * row['dev_wer_rescored']:.2f} test {100 * row['test_wer_rescored']:.2f} "
                    f"(paired bootstrap: the WER table) "
                    f"({row['rescore']['seconds'] + row['rescore']['dev_seconds']:.0f} s)"
                    if "rescore" in row
                    else ""
                ),
                flush=True,
            )
        report["ways"][label] = {
            "grid": {"lmwt": lmwt, "wip": wip},
            "rows": rows,
            "wall_seconds": round(sum(r["wall_seconds"] for r in rows), 1),
        }
    wall = {k: v["wall_seconds"] for k, v in report["ways"].items()}
    for label in [w[0] for w in ways if w[1] != "kaldi"]:  # against the old stage, and against re-decoding its grid
        for base in dict.fromkeys(("re-decoding, old grid", "re-decoding, " + label.split(", ")[-1])):
            if base in wall and label in wall:
                report[f"speedup ({label} vs {base})"] = round(wall[base] / wall[label], 2)
                print(
                    f"decode stage on these systems: {base} {wall[base]:.0f} s, {label} {wall[label]:.0f} s: "
                    f"{wall[base] / wall[label]:.2f}x"
                )

    # 2. single-thread search RTF on the first network system
    torch.set_num_threads(1)
    net = next(((n, c) for n, c in systems if not c[0].endswith(".mdl")), systems[0])
    lang, tm, priors, _ = load_decode_data(ali, data / "lang", data / "fbank", corpus=args.corpus, splits=splits)
    cuts, frames = splits["test"]
    ll = model_loglikes(net[1], {"test": splits["test"]}, priors)["test"]
    utts = {c.id: ll[frames.utterance(i)] for i, c in enumerate(cuts)}
    chosen = sorted(utts)[: args.rtf_utts]
    lmwt = next(r["best_lmwt"] for w in report["ways"].values() for r in w["rows"] if r["name"] == net[0])
    audio = sum(utts[u].shape[0] for u in chosen) * 0.01
    from asr_kd.decode.lattice import decode_lattices
    from asr_kd.kaldi.fst import read_fst

    id2pdf = np.asarray(tm.id2pdf_id)
    graph = read_fst(graph_dir / "HCLG.fst")
    t0 = time.time()
    decode_lattices(
        graph,
        {u: utts[u][:, id2pdf[1:]] for u in chosen},
        1.0 / lmwt,
        beam=lattice_beam,
        lattice_beam=6.0,
        max_active=args.max_active,
    )
    rtf_lattice = (time.time() - t0) / audio
    rtf_k2 = None
    if any(w[1] == "k2-lattice" for w in ways):  # k2's lattice search, the graph loaded before the clock
        from asr_kd.decode.k2_decoder import decode_lattices_k2, load_k2_graph

        k2_graph = load_k2_graph(graph_dir / "HCLG.fst")
        t0 = time.time()
        decode_lattices_k2(
            k2_graph,
            {u: utts[u][:, id2pdf[1:]] for u in chosen},
            1.0 / lmwt,
            beam=lattice_beam,
            lattice_beam=6.0,
            max_active=args.max_active,
        )
        rtf_k2 = (time.time() - t0) / audio
    from asr_kd.decode import kaldi_decoder as kd

    kd._init(
        kd.DecoderSpec(
            str(graph_dir / "HCLG.fst"), __import__("pickle").dumps(tm), args.beam, args.max_active, 6.0, 0.0
        )
    )
    t0 = time.time()
    kd._decode_chunk([(u, utts[u] / lmwt) for u in chosen])
    rtf_faster = (time.time() - t0) / audio
    report["rtf"] = {
        "system": net[0],
        "utterances": len(chosen),
        "audio_seconds": round(audio, 1),
        "lmwt": lmwt,
        f"LatticeSimpleDecoder (beam {lattice_beam:g}, lattice beam 6)": round(rtf_lattice, 4),
        "LatticeFasterDecoder (1-best, max-active)": round(rtf_faster, 4),
    }
    if rtf_k2 is not None:
        report["rtf"][f"k2 intersect_dense_pruned (beam {lattice_beam:g}, output beam 6, max-active)"] = round(
            rtf_k2, 4
        )
    print(
        f"single-thread search RTF ({net[0]}, {len(chosen)} test utterances, {audio:.0f} s): LatticeSimpleDecoder "
        f"(beam {lattice_beam:g}) {rtf_lattice:.4f}, LatticeFasterDecoder (beam {args.beam:g}, max-active "
        f"{args.max_active}) {rtf_faster:.4f}" + (f", k2 lattices {rtf_k2:.4f}" if rtf_k2 is not None else "")
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "decode_lattices.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {out / 'decode_lattices.json'}")


if __name__ == "__main__":
    main()

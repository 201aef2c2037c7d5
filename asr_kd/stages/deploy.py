"""Stage 15, what a system costs to serve, measured: the deployment table.

Each system is a model directory and a network format. ``evaluate`` transcribes a test set with the
deployed path (``asr_kd.deploy.recognizer``: kaldi-native-fbank, the network in that format on one
thread, FasterDecoder) and reports WER, real-time factor and the process's peak memory. The table
runs each evaluation in its own process, forked after the imports, so every peak RSS is that
system's alone: the pages it touches (model, graph, buffers, the library code it runs), not the
imported library pages it never uses (a fresh ``asr-kd transcribe`` process adds about 250 MB).

Columns: parameters and MFLOPs per second of audio (from the card: linear and convolution layers,
multiply-add = 2 flops, 100 frames a second), the network files' size on disk in that format, peak
RSS, RTF on one thread (processing time over audio time, audio reading excluded), the deployed WER
and the WER the decode stage measured for the same networks (LatticeFasterDecoder, PyTorch).
"""

import json
import resource
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from lhotse import CutSet

from asr_kd.decode.wer import wer_details
from asr_kd.deploy.audio import chunks
from asr_kd.deploy.model_dir import ModelDir
from asr_kd.deploy.recognizer import FrameWindows, Recognizer
from asr_kd.deploy.networks import runtime
from asr_kd.utils.io import write_json_atomic
from asr_kd.utils.results import write_table


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _samples(cut, sample_rate: int) -> np.ndarray:
    x = cut.load_audio()
    x = x.mean(0) if x.ndim == 2 else x
    if cut.sampling_rate != sample_rate:
        raise ValueError(f"{cut.id}: {cut.sampling_rate} Hz audio for a {sample_rate} Hz model")
    return np.ascontiguousarray(x, np.float32)


def evaluate(model_dir, cuts_path, fmt: str = "onnx", *, threads: int = 1, stream_chunk_ms: float = 0.0) -> Dict:
    """WER, RTF and peak RSS of the deployed path on every cut of ``cuts_path``. With
    ``stream_chunk_ms``, each utterance is also streamed in chunks of that length: how many streamed
    results differ from the offline ones, and the processing time per chunk."""
    rss_start = _peak_rss_mb()
    model = ModelDir.load(model_dir)
    rec = Recognizer(model, fmt, threads)
    cuts = CutSet.from_file(cuts_path).to_eager()
    refs, hyps, spk = {}, {}, {}
    busy = audio = 0.0
    streamed_differ, chunk_times = [], []
    for cut in cuts:
        x = _samples(cut, model.settings.sample_rate)
        t0 = time.perf_counter()
        res = rec.transcribe(x)
        busy += time.perf_counter() - t0
        audio += len(x) / model.settings.sample_rate
        refs[cut.id], hyps[cut.id], spk[cut.id] = (
            cut.supervisions[0].text.split(),
            res.words,
            cut.supervisions[0].speaker,
        )
        if stream_chunk_ms:
            s = rec.stream()
            for c in chunks(x, int(stream_chunk_ms / 1000 * model.settings.sample_rate)):
                s.accept(c)
            final = s.finish()
            chunk_times += s.chunk_seconds
            if final.words != res.words or final.transition_ids != res.transition_ids:
                streamed_differ.append(cut.id)
    d = wer_details(refs, hyps, spk)
    out = {
        "model_dir": str(model_dir),
        "format": fmt,
        "threads": threads,
        "utterances": len(cuts),
        "audio_seconds": round(audio, 2),
        "busy_seconds": round(busy, 3),
        "rtf": busy / max(audio, 1e-9),
        "wer": d["wer"],
        "errors": d["ins"] + d["del"] + d["sub"],
        "words": d["ref_len"],
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_before_model_mb": round(rss_start, 1),
    }
    if stream_chunk_ms:
        ct = np.array(chunk_times) * 1000
        out["streaming"] = {
            "chunk_ms": stream_chunk_ms,
            "differ_from_offline": len(streamed_differ),
            "differing": streamed_differ[:20],
            "chunks": len(ct),
            "chunk_compute_ms_mean": round(float(ct.mean()), 3),
            "chunk_compute_ms_p95": round(float(np.percentile(ct, 95)), 3),
            "chunk_compute_ms_max": round(float(ct.max()), 3),
            # a frame's words can come out once its right context is in
            "lookahead_ms": round(1000 * (model.context * model.settings.frame_shift + model.settings.frame_length), 1),
        }
    return out


def evaluate_in_own_process(
    model_dir, cuts_path, fmt: str, *, out_json, threads: int = 1, stream_chunk_ms: float = 0.0
) -> Dict:
    """``evaluate`` in a process of its own (forked from this one, which has imported the libraries
    and loaded no model: the child's peak RSS is what a fresh serving process would reach); the
    result is also written to ``out_json``."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=mp.get_context("fork")) as ex:
        result = ex.submit(
            evaluate, str(model_dir), str(cuts_path), fmt, threads=threads, stream_chunk_ms=stream_chunk_ms
        ).result()
    write_json_atomic(out_json, result)
    return result


def parity(
    model_dir, cuts_path, *, formats: Sequence[str] = ("ts", "onnx", "int8.onnx"), max_cuts: int = 20
) -> Dict[str, float]:
    """Largest absolute logit difference of each exported format against PyTorch, over every frame of
    the first ``max_cuts`` cuts (their stored features, normalised as served)."""
    model = ModelDir.load(model_dir)
    cuts = CutSet.from_file(cuts_path).to_eager().subset(first=max_cuts)
    out = {}
    for i, pt in enumerate(model.network_files("pt")):
        c = model.card["members"][i]["context"]
        wins = []
        for cut in cuts:
            w = FrameWindows(c)
            wins.append(w.push(model.normalizer(cut.load_features()), last=True))
        x = np.concatenate(wins)
        ref = runtime(pt)(x)
        for fmt in formats:
            if fmt in model.card["members"][i]["files"]:
                other = runtime(model.network_files(fmt)[i])(x)
                out[fmt] = max(out.get(fmt, 0.0), float(np.abs(other - ref).max()))
    out["frames"] = int(len(x))
    return out


def deployment_table(
    systems: Sequence[Tuple[str, str, str]],
    cuts_path,
    out_stem,
    *,
    title: str,
    results_md=None,
    streaming: Optional[str] = None,
    stream_chunk_ms: float = 160.0,
    feature_check: Optional[Dict] = None,
    parity_of: Optional[str] = None,
    labels: Optional[Dict[str, str]] = None,
) -> Dict:
    """``systems``: (id, model dir, format), shown by their ``labels``. ``streaming``: the id of the
    system also streamed; ``parity_of``: the system whose exported formats are compared with PyTorch; ``feature_check``:
    ``asr_kd.deploy.audio.feature_difference`` figures, reported under the table."""
    out_stem = Path(out_stem)
    rows = []
    for name, mdir, fmt in systems:
        card = json.loads((Path(mdir) / "card.json").read_text())
        ev = evaluate_in_own_process(
            mdir,
            cuts_path,
            fmt,
            out_json=out_stem.parent / f"eval_{Path(mdir).name}_{fmt}.json",
            stream_chunk_ms=stream_chunk_ms if name == streaming else 0.0,
        )
        rows.append(
            {
                "name": name,
                "label": (labels or {}).get(name, name),
                "format": fmt,
                "members": len(card["members"]),
                "parameters": card["parameters"],
                "mflops_per_audio_second": card["flops_per_frame"] * card["frames_per_second"] / 1e6,
                "size_mb": card["sizes_mb"][fmt],
                "decode_stage_test_wer": (card.get("wer") or {}).get("test_wer"),
                **{k: ev[k] for k in ("peak_rss_mb", "rtf", "wer", "errors", "words", "utterances", "audio_seconds")},
                **({"streaming": ev["streaming"]} if "streaming" in ev else {}),
            }
        )
    res = {
        "title": title,
        "rows": rows,
        "feature_check": feature_check,
        "parity": {
            "system": (labels or {}).get(parity_of, parity_of),
            **parity(dict((n, d) for n, d, _ in systems)[parity_of], cuts_path),
        }
        if parity_of
        else None,
    }
    write_table(out_stem, res, table_lines(res), results_md=results_md, title=title)
    return res


def table_lines(res: Dict) -> List[str]:
    lines = [
        f"### {res['title']}",
        "",
        "| system | format | params | MFLOPs / s of audio | size on disk (MB) | peak RSS (MB) | RTF (1 thread) | test WER (deployed) | test WER (decode stage) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        stage = f"{100 * r['decode_stage_test_wer']:.2f}%" if r["decode_stage_test_wer"] is not None else "-"
        lines.append(
            f"| {r['label']} | {r['format']} | {r['parameters']:,} | {r['mflops_per_audio_second']:.1f} | {r['size_mb']:.2f} "
            f"| {r['peak_rss_mb']:.0f} | {r['rtf']:.4f} | {100 * r['wer']:.2f}% ({r['errors']}/{r['words']}) | {stage} |"
        )
    r0 = res["rows"][0]
    lines += [
        "",
        f"Test set: {r0['utterances']} utterances, {r0['audio_seconds'] / 60:.1f} min of audio. Deployed = "
        "kaldi-native-fbank, the network in the named format on one thread, Kaldi's FasterDecoder at the card's "
        "dev-tuned LM weight and penalty; decode stage = LatticeFasterDecoder on the stored lhotse features (PyTorch). "
        "Peak RSS: each system's transcribing process, forked from the table's after its imports (library pages the "
        "process never touches are not counted; a fresh `asr-kd transcribe` process reads about 250 MB more).",
    ]
    for r in res["rows"]:
        s = r.get("streaming")
        if s:
            lines.append(
                f"Streaming ({r['label']}, {s['chunk_ms']:g} ms chunks): {s['differ_from_offline']} of {r['utterances']} "
                f"utterances differ from the offline result; compute per chunk mean {s['chunk_compute_ms_mean']:.2f} ms, "
                f"p95 {s['chunk_compute_ms_p95']:.2f} ms, max {s['chunk_compute_ms_max']:.2f} ms; look-ahead "
                f"{s['lookahead_ms']:g} ms (right context + frame) on top of the chunk."
            )
    p = res.get("parity")
    if p:
        lines.append(
            f"Export parity ({p['system']}, {p['frames']} test frames), max |logit - PyTorch logit|: "
            + ", ".join(f"{k} {v:.2e}" for k, v in p.items() if k not in ("system", "frames"))
            + "."
        )
    f = res.get("feature_check")
    if f:
        lines.append(
            f"Features: kaldi-native-fbank vs. lhotse on the {f['cuts']} test cuts, max |difference| (mean) in log-mel: "
            f"{f['fresh_max_abs']:.1e} ({f['fresh_mean_abs']:.1e}) against lhotse's Fbank computed afresh, "
            f"{f['stored_max_abs']:.1e} ({f['stored_mean_abs']:.1e}) against the stored training features "
            f"(lilcom-compressed); {f['cuts_with_other_frame_count']} frame-count mismatches."
        )
    return lines

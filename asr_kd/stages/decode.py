"""Stage 13, decoding: every system (the GMM, each baseline seed, the ensemble, each student seed) on one
HCLG, searched with either backend (``asr_kd.decode.kaldi_decoder`` into lattices, or k2; same graph,
same likelihoods), its LM weight and insertion penalty chosen on dev and applied unchanged to test
(``decode_models``), and the WER table (``decode_table``).

A *system* is a name; each of its decoded members (``decode_models`` rows of the same group) is one
training seed, or one ensemble. A row gives dev and test WER as mean ± sample std over its seeds
with the 95% bootstrap interval of the seed-mean test WER over test utterances, and the table ends
with paired-bootstrap comparisons of the named pairs (asr_kd.scoring.significance).
"""

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from asr_kd.decode.k2_decoder import decode_k2, load_k2_graph
from asr_kd.decode.kaldi_decoder import decode
from asr_kd.decode.lattice_search import ArchiveWriter
from asr_kd.decode.search import LatticeStore, build_graph, load_decode_data, on_grid_edge, tune_on_dev
from asr_kd.decode.wer import utterance_counts, wer_details, write_scoring
from asr_kd.hybrid.likelihoods import model_loglikes
from asr_kd.lang.prepare_lang import Lang
from asr_kd.utils.device import torch_device
from asr_kd.utils.io import confined, write_json_atomic
from asr_kd.utils.made_from import write_made_from
from asr_kd.nnet.data import accent_subsets, load_split
from asr_kd.nnet.evaluate import evaluate, utterance_frames
from asr_kd.scoring.significance import (
    ErrorCounts,
    compare,
    fmt_accuracy,
    fmt_rate,
    mean_std,
    significance_lines,
    summarise,
)
from asr_kd.utils.results import write_table

log = logging.getLogger(__name__)


def _rescored(d: Path, lattices: LatticeStore, best: Dict, *, id2word, lms, n: int, score) -> Dict:
    """Dev and test rescored at the tuned point (``asr_kd.decode.rescore``): their scoring in
    ``d/rescored`` and the row's fields (WERs, seconds, per-utterance test errors for the WER
    table's paired bootstrap)."""
    from asr_kd.decode.rescore import rescore

    res, stats = {}, {}
    for split in ("dev", "test"):
        words, stats[split] = rescore(
            lattices.lattices[split], best["lmwt"], best["wip"], id2word=id2word, old=lms[0], new=lms[1], n=n
        )
        res[split] = score(split, {u: {"words": w} for u, w in words.items()})
        write_scoring(d / "rescored", split, res[split])
    info = {
        "dev_wer_rescored": res["dev"]["wer"],
        "test_wer_rescored": res["test"]["wer"],
        "rescore": {**stats["test"], "dev_seconds": stats["dev"]["seconds"]},
    }
    write_json_atomic(d / "rescored" / "rescore.json", info)
    info["rescored_counts"] = utterance_counts(res["test"])
    return info


def decode_models(
    rows: Sequence[Tuple[str, List[str]]],
    ali_dir,
    lang_dir,
    *,
    fbank_dir,
    corpus: str,
    graph_dir,
    out_dir,
    lmwts: Sequence[float] = (5, 7, 10, 14, 20),
    penalties: Sequence[float] = (0.0, 0.5, 1.0),
    beam: float = 13.0,
    max_active: int = 7000,
    nj: int = 1,
    cmd="local",
    score_map: Optional[Dict[str, str]] = None,
    decoder: str = "lattice",
    splits: Optional[Dict] = None,
    rescore_arpa=None,
    rescore_nbest: int = 100,
    lm_tuning: str = "each",
) -> List[Dict]:
    """For each (name, checkpoints): posteriors on dev and test (a single ``.mdl`` checkpoint is the
    GMM, decoded through the same path with its own likelihoods); the (LM weight, insertion penalty)
    with the lowest dev WER; test decoded with it. Writes per-model scoring under ``out_dir/name``.
    ``lm_tuning``: ``each`` (every model its own dev optimum, Kaldi's convention) or ``shared`` (one
    point for every network model: the lowest mean dev WER over them, among the points each one's
    dev grid scored; a GMM keeps its own), so that the networks' WERs differ by their acoustic
    models alone and not by a choice a small dev set makes on a flat surface.
    ``score_map`` maps reference and hypothesis tokens before scoring (an empty target deletes the
    token), e.g. TIMIT's 48 -> 39 phone folding for PER. ``decoder``: ``lattice`` (the default: each
    split decoded once into lattices, ``LatticeStore``; the grid is swept on them), ``k2-lattice`` (the
    same, the lattices searched by k2: in a Python that imports k2, the k2 environment), ``kaldi``
    (LatticeFasterDecoder, every grid point decoded again) or ``k2`` (asr_kd.decode.k2_decoder, same
    graph and likelihoods, re-decoding; one process, the GPU when present).
    ``nj`` / ``cmd``: Kaldi decoding in ``nj`` forked processes, or ``nj`` Slurm jobs per decode (``asr_kd.utils.jobs``). ``splits``: dev and test frames
    already read by ``load_decode_splits`` (callers decoding several alignments read them once).
    ``rescore_arpa`` (lattice decoder): dev and test rescored at the tuned point with this LM in
    place of the graph's (``asr_kd.decode.rescore``, ``rescore_nbest`` distinct word sequences per
    utterance); scoring in ``<name>/rescored``, the row gets the rescored WERs and the test gain's
    paired-bootstrap interval."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, not {decoder!r}")
    if lm_tuning not in LM_TUNINGS:
        raise ValueError(f"lm_tuning must be one of {LM_TUNINGS}, not {lm_tuning!r}")
    write_made_from(
        out_dir,
        {"ali_dir": ali_dir, "lang": lang_dir, "fbank_dir": fbank_dir, "graph_dir": graph_dir},
        {"corpus": corpus},
    )
    lang, tm, priors, splits = load_decode_data(ali_dir, lang_dir, fbank_dir, corpus=corpus, splits=splits)
    graph = Path(graph_dir) / "HCLG.fst"

    if rescore_arpa and not DECODERS[decoder]:
        raise ValueError("--rescore-arpa rescores lattices: use --decoder lattice or k2-lattice")
    if decoder in ("k2", "k2-lattice"):
        _require_k2(decoder)
    lms = None
    if rescore_arpa:
        import json

        from asr_kd.decode.rescore import ArpaCost

        lms = (
            ArpaCost(json.loads((Path(graph_dir) / "graph_summary.json").read_text())["arpa"]),
            ArpaCost(rescore_arpa),
        )
    search = _Search(
        lang,
        tm,
        graph,
        splits,
        Path(out_dir),
        lmwts=lmwts,
        penalties=penalties,
        beam=beam,
        max_active=max_active,
        nj=nj,
        cmd=cmd,
        decoder=decoder,
        score_map=score_map,
    )
    for name, _ in rows:
        confined(out_dir, name, "system name")  # names become folders under out_dir

    def tuned_systems():
        for name, ckpts in rows:
            system = _SystemDecode(search, name, model_loglikes(ckpts, splits, priors), checkpoints=ckpts)
            system.tune()
            yield system

    shared = None
    if lm_tuning == "shared":
        systems = list(tuned_systems())  # every model tuned on dev before any test decode: the point needs them all
        shared = shared_point([sys.grid for sys in systems if not sys.is_gmm])
        if shared:
            log.info(
                "one LM weight and penalty for every network: %g / %g (mean dev WER %.2f%%)",
                shared["lmwt"],
                shared["wip"],
                100 * shared["wer"],
            )
    else:
        systems = tuned_systems()  # one model's likelihoods in memory at a time
    try:
        return [
            sys.test_row(sys.own_best if shared is None or sys.is_gmm else shared, lms=lms, rescore_nbest=rescore_nbest)
            for sys in systems
        ]
    finally:
        search.writer.wait()  # every lattice archive complete before the stage can be marked done


LM_TUNINGS = ("each", "shared")
# each decoder and, for those that decode into lattices, what searches them (asr_kd.decode.lattice_search.LATTICE_DECODERS)
DECODERS = {"lattice": "kaldi", "k2-lattice": "k2", "kaldi": None, "k2": None}


def _require_k2(decoder: str) -> None:
    try:
        import k2  # noqa: F401
    except ImportError:
        raise SystemExit(
            f"decode --decoder {decoder} needs k2, which this Python ({sys.executable}) cannot import: run the "
            "command with the k2 environment's Python (.venv-k2/bin/python -m asr_kd decode ..., built by ./setup.sh)"
        ) from None


def shared_point(grids: Sequence[Sequence[Dict]]) -> Optional[Dict]:
    """The (LM weight, penalty) with the lowest mean dev WER over several models' dev grids, among the
    points every grid scored; ties prefer a point inside the common grid (a flat dev surface would
    otherwise pick its corner, as ``tune_on_dev``), then the lower LM weight and penalty; None without grids."""
    if not grids:
        return None
    scored = [{(g["lmwt"], g["wip"]): g["wer"] for g in grid} for grid in grids]
    common = set.intersection(*(set(s) for s in scored))
    mean = {k: float(np.mean([s[k] for s in scored])) for k in common}
    lms, wps = sorted({k[0] for k in common}), sorted({k[1] for k in common})
    lmwt, wip = min(mean, key=lambda k: (mean[k], on_grid_edge(k, lms, wps), k[0], k[1]))
    return {"lmwt": lmwt, "wip": wip, "wer": mean[(lmwt, wip)]}


@dataclass
class _Search:
    """What every system of one decode shares: the lang, transition model and graph, the dev and test
    frames, and the search settings (``decode_models``' options)."""

    lang: Lang
    tm: object
    graph: Path
    splits: Dict
    out_dir: Path
    lmwts: Sequence[float]
    penalties: Sequence[float]
    beam: float
    max_active: int
    nj: int
    cmd: object
    decoder: str
    score_map: Optional[Dict[str, str]]
    k2_graphs: Dict = field(default_factory=dict)  # k2 graphs by insertion penalty, built on first use
    writer: ArchiveWriter = field(default_factory=ArchiveWriter)  # k2 lattice archives still being written

    @property
    def on_lattices(self) -> bool:
        return DECODERS[self.decoder] is not None

    def fold(self, tokens):
        if not self.score_map:
            return tokens
        return [m for m in (self.score_map.get(t, t) for t in tokens) if m]

    def score(self, split: str, res) -> Dict:
        cuts, _ = self.splits[split]
        lang = self.lang
        refs = {c.id: self.fold(c.supervisions[0].text.split()) for c in cuts}
        hyps = {u: self.fold([lang.id2word[w] for w in r["words"]]) for u, r in res.items()}
        spk = {c.id: c.supervisions[0].speaker for c in cuts}
        details = wer_details(refs, hyps, spk)
        # OOV words (outside words.txt) stay in the references: no hypothesis can hold them, so they count as errors
        details["oov_tokens"] = sum(1 for c in cuts for w in c.supervisions[0].text.split() if w not in lang.word2id)
        return details

    def lattice_store(self, name: str, lmwts: Sequence[float]) -> LatticeStore:
        return LatticeStore(
            self.out_dir / name,
            self.graph,
            np.asarray(self.tm.id2pdf_id),
            lmwts=lmwts,
            beam=self.beam,
            nj=self.nj,
            cmd=self.cmd,
            max_active=self.max_active,
            search=DECODERS[self.decoder],
            writer=self.writer,
        )


class _SystemDecode:
    """One system of a decode: its log-likelihoods on dev and test, searched at (LM weight, penalty)
    points: on lattices decoded once per split (``lattice``), or decoded again at each point."""

    def __init__(self, search: _Search, name: str, loglikes: Dict, *, checkpoints: Sequence[str] = ()):
        self.search, self.name, self.lp, self.checkpoints = search, name, loglikes, list(checkpoints)
        self.is_gmm = len(self.checkpoints) == 1 and str(self.checkpoints[0]).endswith(".mdl")
        self.lattices = search.lattice_store(name, search.lmwts)
        self.dev_runs: Dict = {}  # the grid's dev decodes, kept so the chosen one is not decoded twice
        self.grid, self.own_best, self.widened, self.recentred, self.tune_seconds = [], None, [], None, 0.0

    def split_lattices(self, split: str, point=None):  # decoded once per split; every grid point is a best path on them
        cuts, data = self.search.splits[split]
        return self.lattices.decode(
            split, lambda: {c.id: self.lp[split][data.utterance(i)] for i, c in enumerate(cuts)}, point
        )

    def run(self, split: str, lmwt: float, wip: float):
        """(scoring details, RTF) of the split searched at (lmwt, wip)."""
        s = self.search
        cuts, data = s.splits[split]
        t0 = time.time()
        if s.on_lattices:
            self.split_lattices(split, None if split == "dev" else (lmwt, wip))  # test: at the tuned point
            secs = self.lattices.seconds[split]
            res = {u: {"words": w} for u, w in self.lattices.words(split, lmwt, wip).items()}
        else:
            ll = {c.id: self.lp[split][data.utterance(i)] / lmwt for i, c in enumerate(cuts)}
            if s.decoder == "k2":
                if wip not in s.k2_graphs:
                    s.k2_graphs[wip] = load_k2_graph(s.graph, wip, device=torch_device())
                res = decode_k2(
                    s.k2_graphs[wip], np.asarray(s.tm.id2pdf_id), ll, search_beam=s.beam, max_active=s.max_active
                )
            else:
                res = decode(
                    s.graph,
                    s.tm,
                    ll,
                    beam=s.beam,
                    max_active=s.max_active,
                    word_penalty=wip,
                    nj=s.nj,
                    cmd=s.cmd,
                    job_dir=s.out_dir / self.name / "jobs",
                )
            secs = time.time() - t0
        return s.score(split, res), secs / max(len(data) * 0.01, 1e-9)

    def dev_wer(self, lmwt: float, wip: float) -> float:
        self.dev_runs[(lmwt, wip)] = self.run("dev", lmwt, wip)[0]
        return self.dev_runs[(lmwt, wip)]["wer"]

    def batch(self, points) -> None:  # lattices: the round's points in one pass
        if self.search.on_lattices:
            self.split_lattices("dev")
            self.lattices.best("dev", points)

    def tune(self) -> None:
        """The dev optimum over the grid (``tune_on_dev``): ``grid``, ``own_best``, ``widened``, ``recentred``."""
        s, t0 = self.search, time.time()
        grid, best, widened = tune_on_dev(self.dev_wer, s.lmwts, s.penalties, batch=self.batch)
        recentred = None
        if s.on_lattices and not (1 / 1.5 <= best["lmwt"] * self.lattices.acoustic_scale <= 1.5):
            # the lattices hold the paths near the best one at their own scale: an optimum far from it
            # is searched again on lattices decoded at its scale (Kaldi users re-pick --acwt likewise)
            recentred = (1.0 / self.lattices.acoustic_scale, best["lmwt"])
            log.info(
                "%s: dev optimum LM weight %g is far from the lattices' %g: decoding them again at %g",
                self.name,
                best["lmwt"],
                recentred[0],
                best["lmwt"],
            )
            self.lattices = s.lattice_store(self.name, [best["lmwt"]])
            self.dev_runs.clear()
            grid, best, widened = tune_on_dev(self.dev_wer, s.lmwts, s.penalties, batch=self.batch)
        if widened:
            log.info("%s: the dev optimum sat on the grid's edge; grid widened by %s", self.name, widened)
        self.grid, self.own_best, self.widened, self.recentred = grid, best, widened, recentred
        self.tune_seconds = time.time() - t0

    def test_row(self, best: Dict, *, lms, rescore_nbest: int) -> Dict:
        """Test decoded at ``best`` (its own dev optimum, or the point shared by the networks); scoring
        under ``out_dir/name``; the decode table's row of this model."""
        s, t0 = self.search, time.time()
        dev = self.dev_runs[(best["lmwt"], best["wip"])]
        test, rtf = self.run("test", best["lmwt"], best["wip"])
        d = s.out_dir / self.name
        write_scoring(d, "dev", dev)
        write_scoring(d, "test", test)
        own = self.own_best
        write_json_atomic(
            d / "grid_dev.json", {"grid": self.grid, "best": best, "own_best": own, "widened": self.widened}
        )
        row = {
            "name": self.name,
            "checkpoints": self.checkpoints,
            "best_lmwt": best["lmwt"],
            "best_wip": best["wip"],
            "lm_tuning": "each" if best is own else "shared",
            "own_best": {"lmwt": own["lmwt"], "wip": own["wip"], "dev_wer": own["wer"]},
            "grid_widened": self.widened,
            "dev_wer": dev["wer"],
            "test_wer": test["wer"],
            "test_ins": test["ins"],
            "test_del": test["del"],
            "test_sub": test["sub"],
            "test_words": test["ref_len"],
            "test_oov_tokens": test["oov_tokens"],
            "rtf_test": rtf,
            "nj": s.nj if s.decoder == "kaldi" else 1,
            "decoder": s.decoder,
            "counts": {"dev": utterance_counts(dev), "test": utterance_counts(test)},
        }
        row["decode_seconds"] = round(self.tune_seconds + time.time() - t0, 2)
        if s.on_lattices:
            row["lattices_recentred"] = self.recentred
            row.update(self.lattice_fields(best, dev, test, lms=lms, rescore_nbest=rescore_nbest))
        log.info(
            "%s: dev WER %.2f%% (LM weight %g, penalty %g) -> test WER %.2f%% [ins %d del %d sub %d / %d], RTF %.4f",
            self.name,
            100 * dev["wer"],
            best["lmwt"],
            best["wip"],
            100 * test["wer"],
            test["ins"],
            test["del"],
            test["sub"],
            test["ref_len"],
            rtf,
        )
        return row

    def lattice_fields(self, best: Dict, dev: Dict, test: Dict, *, lms, rescore_nbest: int) -> Dict:
        """What the lattices add to a row: decode times, oracle WER, word confidences (raw and calibrated
        on dev) and, with ``lms``, the rescored WERs."""
        s, lattices = self.search, self.lattices
        row = {"lattice_decode_seconds": {k: round(v, 2) for k, v in lattices.seconds.items()}}
        cuts, _ = s.splits["test"]
        refs = {c.id: [s.lang.word2id.get(w, -1) for w in c.supervisions[0].text.split()] for c in cuts}
        row["test_oracle_wer"] = lattices.oracle_wer("test", refs)
        conf = {}
        for split, res in (("dev", dev), ("test", test)):
            split_cuts, _ = s.splits[split]
            conf[split] = lattices.confidences(
                split,
                best["lmwt"],
                best["wip"],
                hyps={u: r["hyp"] for u, r in res["per_utt"].items()},
                refs={c.id: s.fold(c.supervisions[0].text.split()) for c in split_cuts},
                id2word=s.lang.id2word,
            )
        nce = lattices.calibrated_confidences(conf["dev"], conf["test"])
        if lms:
            d = s.out_dir / self.name
            row.update(_rescored(d, lattices, best, id2word=s.lang.id2word, lms=lms, n=rescore_nbest, score=s.score))
        row["test_confidence_nce"] = nce["test_raw"]
        row["test_confidence_nce_calibrated"] = nce["test_calibrated"]
        return row


def group_counts(members: Sequence[Dict], split: str) -> ErrorCounts:
    """Stack the per-utterance word errors of a system's members (seeds) for one split."""
    first = members[0]["counts"][split]
    for m in members[1:]:
        if m["counts"][split]["utts"] != first["utts"]:
            raise ValueError(f"{m['name']}: decoded other {split} utterances than {members[0]['name']}")
    return ErrorCounts(np.array([m["counts"][split]["errors"] for m in members]), np.array(first["words"]))


def _mean(members, key) -> float:
    return mean_std([m[key] for m in members])["mean"]


def _std(members, key) -> float:
    return mean_std([m[key] for m in members])["std"]


def wer_table(
    groups: List[Tuple[str, List[Dict]]],
    graph: Dict,
    title: str,
    *,
    compare_pairs: Sequence[Tuple[str, str]] = (),
    gain_kept: Optional[Tuple[str, str, str]] = None,
    frame_acc: Optional[Dict[str, Dict]] = None,
    subsets: Optional[Dict[str, set]] = None,
    labels: Optional[Dict[str, str]] = None,
) -> Tuple[Dict, List[str]]:
    """(JSON result, markdown lines). ``groups``: [(system id, decoded members)], shown by their
    ``labels`` (id -> text; default the id); ``frame_acc``: {system id: a ``summarise`` of its test
    frame errors} (networks only); ``subsets``: {name: test utterance ids} (e.g. held-out accents),
    each scored and compared apart."""
    frame_acc, labels = frame_acc or {}, {name: (labels or {}).get(name, name) for name, _ in groups}
    test_counts = {name: group_counts(members, "test") for name, members in groups}
    rows = []
    for name, members in groups:
        summary = summarise(test_counts[name])
        rows.append(
            {
                "name": name,
                "label": labels[name],
                "members": [{k: v for k, v in m.items() if k != "counts"} for m in members],
                "seeds": len(members),
                "dev_wer_mean": _mean(members, "dev_wer"),
                "dev_wer_std": _std(members, "dev_wer"),
                "test_wer": summary,
                "test_frame_acc": frame_acc.get(name),
            }
        )
    missing = [n for pair in compare_pairs for n in pair if n not in test_counts]
    if gain_kept:
        missing += [n for n in gain_kept if n not in test_counts]
    if missing:
        raise ValueError(f"--compare / --gain-kept name systems that were not decoded: {sorted(set(missing))}")
    sig = compare(test_counts, list(compare_pairs), gain_kept=gain_kept) if compare_pairs or gain_kept else None
    first = groups[0][1][0]
    n_utts, n_words = len(first["counts"]["test"]["utts"]), sum(first["counts"]["test"]["words"])
    oov = first.get("test_oov_tokens", 0)
    h = graph["hclg"]
    lines = [
        f"### {title}",
        "",
        f"LM: {graph['lm_order']}-gram "
        + (
            f"(given: {Path(graph['arpa']).name}, {graph.get('words', '?')} words in words.txt)"
            if graph["estimator"] == "given"
            else f"({graph['estimator']}) on the training transcripts"
        )
        + ", perplexity dev "
        f"{graph['perplexity']['dev']:.2f} / test {graph['perplexity']['test']:.2f}; HCLG {h['states']} states, "
        f"{h['arcs']} arcs, built in {h['seconds']:.2f} s. Test set: {n_utts} utterances, {n_words} words, "
        f"OOV rate {100 * oov / max(n_words, 1):.2f}% (OOV words count as errors). {tuning_sentence(groups)} "
        "WER: mean ± sample std over seeds, [95% bootstrap interval of the seed mean over test utterances].",
        "",
        "| system | seeds | test frame accuracy | LM weight / ins. penalty | dev WER | test WER | "
        "test ins / del / sub (per seed) | test RTF |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, members), row in zip(groups, rows):
        acc = fmt_accuracy(row["test_frame_acc"]) if row["test_frame_acc"] else "-"
        settings = ", ".join(f"{m['best_lmwt']:g} / {m['best_wip']:g}" for m in members)
        dev = f"{100 * row['dev_wer_mean']:.2f}%" + (f" ± {100 * row['dev_wer_std']:.2f}" if len(members) > 1 else "")
        ids = " / ".join(
            f"{_mean(members, k):.1f}" if len(members) > 1 else str(members[0][k])
            for k in ("test_ins", "test_del", "test_sub")
        )
        lines.append(
            f"| {labels[name]} | {len(members)} | {acc} | {settings} | {dev} | {fmt_rate(row['test_wer'])} | {ids} | "
            f"{_mean(members, 'rtf_test'):.4f} ({members[0]['decoder']}, nj={members[0]['nj']}) |"
        )
    lines.append("")
    lines += lattice_lines(groups, labels)
    if sig:
        lines += significance_lines(sig, "test WER", labels=labels)
    parts = {}
    for part, ids in (subsets or {}).items():
        idx = np.array([i for i, u in enumerate(first["counts"]["test"]["utts"]) if u in ids], dtype=np.int64)
        if not len(idx):
            continue
        counts = {name: c.subset(idx) for name, c in test_counts.items()}
        psig = compare(counts, list(compare_pairs), gain_kept=gain_kept) if compare_pairs or gain_kept else None
        parts[part] = {
            "utterances": int(len(idx)),
            "test_wer": {n: summarise(c) for n, c in counts.items()},
            "significance": psig,
        }
        lines += [f"#### {part} ({len(idx)} of the {n_utts} test utterances)", "", "| system | test WER |", "|---|---|"]
        lines += [f"| {labels[name]} | {fmt_rate(parts[part]['test_wer'][name])} |" for name, _ in groups] + [""]
        if psig:
            lines += significance_lines(psig, "test WER", brief=True, labels=labels)
    return {"graph": graph, "rows": rows, "significance": sig, "subsets": parts}, lines


def tuning_sentence(groups) -> str:
    """How the table's LM weights and penalties were chosen (``decode_models``' ``lm_tuning``)."""
    members = [m for _, ms in groups for m in ms]
    if not any(m.get("lm_tuning") == "shared" for m in members):
        return (
            "LM weight and insertion penalty chosen on dev per seed (the grid widens when the optimum is on its "
            "edge), applied to test."
        )
    own = sorted({(m["own_best"]["lmwt"], m["own_best"]["wip"]) for m in members if m.get("lm_tuning") == "shared"})
    return (
        "LM weight and insertion penalty chosen on dev once for every network, the point with the lowest mean dev "
        "WER over them (each seed's grid widens when its optimum is on its edge; the GMM is tuned on its own), "
        "applied to test; the networks' own dev optima were " + ", ".join(f"{a:g} / {b:g}" for a, b in own) + "."
    )


def lattice_lines(groups, labels: Dict[str, str]) -> List[str]:
    """The lattice figures of systems decoded with ``--decoder lattice``: oracle WER, word
    confidence NCE (raw, and calibrated on dev), rescored WER with the gain's interval (means over
    seeds; the interval and p of the first seed); systems shown by their ``labels``."""
    rows = [(name, members) for name, members in groups if all("test_oracle_wer" in m for m in members)]
    if not rows:
        return []
    rescored = any("test_wer_rescored" in m for _, members in rows for m in members)

    def mean(members, key):
        vals = [m[key] for m in members if m.get(key) is not None]
        return float(np.mean(vals)) if vals else None

    out = [
        "From the lattices (each split decoded once; the grid swept on the stored lattices): test oracle WER "
        "(the fewest errors of any lattice path), normalised cross entropy of the word confidences of test "
        "(> 0: informative; raw lattice posteriors, then calibrated on dev words)"
        + (
            ", test WER after rescoring with the larger LM (first seed's paired-bootstrap 95% interval of the "
            "gain, p)"
            if rescored
            else ""
        )
        + ".",
        "",
        "| system | test WER | test oracle WER | confidence NCE raw -> calibrated |"
        + (" rescored test WER (gain [95% CI], p) |" if rescored else ""),
        "|---|---|---|---|" + ("---|" if rescored else ""),
    ]
    for name, members in rows:
        nce = [mean(members, "test_confidence_nce"), mean(members, "test_confidence_nce_calibrated")]
        line = (
            f"| {labels[name]} | {100 * mean(members, 'test_wer'):.2f}% | {100 * mean(members, 'test_oracle_wer'):.2f}% | "
            + " -> ".join("-" if v is None else f"{v:.3f}" for v in nce)
            + " |"
        )
        if rescored:
            first = members[0]
            if "rescored_counts" in first:
                pair = compare(
                    {
                        "first pass": group_counts([first], "test"),
                        "rescored": group_counts([{**first, "counts": {"test": first["rescored_counts"]}}], "test"),
                    },
                    [("first pass", "rescored")],
                )["pairs"][0]
                first["rescore"].update(test_gain_ci95=pair["diff_ci95"], p_value=pair["p_value"])
                lo, hi = pair["diff_ci95"]
                line += (
                    f" {100 * mean(members, 'test_wer_rescored'):.2f}% ({100 * (mean(members, 'test_wer') - mean(members, 'test_wer_rescored')):+.2f} "
                    f"[{100 * lo:+.2f}, {100 * hi:+.2f}], p {pair['p_value']:.3f}) |"
                )
            else:
                line += " - |"
        out.append(line)
    return out + [""]


def group_systems(rows: Sequence[Tuple[str, List[str]]]) -> List[Tuple[str, List[Tuple[str, List[str]]]]]:
    """(id, checkpoints) rows (``asr_kd.cli.common.id_paths``) -> [(id, [(member name, checkpoints)])].
    Several checkpoints in one row are an ensemble (averaged posteriors); several rows with the same
    id are seeds of one system, each decoded and tuned on its own. A member's name (its decode
    folder) is ID, or for seeds ID/<folder of its first checkpoint> (e.g. ``baseline/seed2``)."""
    groups: Dict[str, List[List[str]]] = {}
    for name, paths in rows:
        groups.setdefault(name, []).append(list(paths))
    out = []
    for name, members in groups.items():
        if len(members) == 1:
            out.append((name, [(name, members[0])]))
            continue
        tags = [Path(m[0]).parent.name or str(i + 1) for i, m in enumerate(members)]
        if len(set(tags)) < len(tags):
            tags = [str(i + 1) for i in range(len(members))]
        out.append((name, [(f"{name}/{t}", m) for t, m in zip(tags, members)]))
    return out


def decode_table(
    models: Sequence[Tuple[str, List[str]]],
    ali_dir,
    lang_dir,
    *,
    manifest_dir,
    fbank_dir,
    corpus: str,
    graph_dir,
    out_dir,
    title: str,
    compare_pairs: Sequence[Tuple[str, str]] = (),
    gain_kept: Optional[Tuple[str, str, str]] = None,
    lm_order: int = 2,
    arpa=None,
    decoder: str = "lattice",
    results_md=None,
    held_out_accents: Sequence[str] = (),
    labels: Optional[Dict[str, str]] = None,
    **search,
) -> Tuple[Dict, List[str]]:
    """The decode stage: graph, every member of every system of ``models`` ((id, checkpoints) rows,
    ``group_systems``; shown by their ``labels``) decoded (tuned on dev), test frame accuracy of the
    networks, and the WER table with intervals and comparisons (``compare_pairs``, ``gain_kept``:
    system ids), written as ``out_dir/wer_table.{json,md}`` (and into ``results_md``)."""
    labels = {name: (labels or {}).get(name, name) for name, _ in models}
    graph = build_graph(
        lang_dir, ali_dir, manifest_dir, corpus=corpus, graph_dir=graph_dir, lm_order=lm_order, arpa=arpa
    )
    systems = group_systems(models)
    flat = [m for _, members in systems for m in members]
    decoded = decode_models(
        flat,
        ali_dir,
        lang_dir,
        fbank_dir=fbank_dir,
        corpus=corpus,
        graph_dir=graph_dir,
        out_dir=out_dir,
        decoder=decoder,
        **search,
    )
    by_member = {r["name"]: r for r in decoded}
    for name, members in systems:  # a member's label: its system's, and its seed folder (".../seed2")
        for member, _ in members:
            by_member[member]["label"] = labels[name] + member[len(name) :]
    groups = [(name, [by_member[member] for member, _ in members]) for name, members in systems]
    test = load_split(ali_dir, fbank_dir, corpus, split="test")
    frames = utterance_frames(test)
    frame_acc = {}
    for name, members in systems:  # networks only: a GMM has no posteriors here
        if all(p.endswith(".pt") for _, ckpts in members for p in ckpts):
            rows = []
            for _, ckpts in members:
                rows.append(evaluate(ckpts, test)["errors"]["ensemble" if len(ckpts) > 1 else "single"][0])
            frame_acc[name] = summarise(ErrorCounts(np.array(rows), frames))
    subsets = {
        name: {test.cut_ids[i] for i in idx}
        for name, idx in accent_subsets(
            ali_dir, corpus, "test", cut_ids=test.cut_ids, held_out=held_out_accents
        ).items()
    }
    res, lines = wer_table(
        groups,
        graph,
        title,
        compare_pairs=compare_pairs,
        gain_kept=gain_kept,
        frame_acc=frame_acc,
        subsets=subsets,
        labels=labels,
    )
    write_table(Path(out_dir) / "wer_table", res, lines, results_md=results_md, title=title)
    return res, lines

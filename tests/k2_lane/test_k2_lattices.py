"""Lattices searched by k2 (``decode --decoder k2-lattice``): the same LatticeSet and archive as
Kaldi's lattice search, graph and acoustic costs kept apart (the k2 lane: tools/k2_lane.sh)."""

import gzip
import json

import numpy as np
import pytest

from asr_kd.decode.k2_decoder import decode_k2, decode_lattices_k2, load_k2_graph
from asr_kd.decode.lattice import LatticeSet
from asr_kd.decode.lattice_search import ArchiveWriter, decode_lattices_parallel
from asr_kd.decode.search import load_decode_data
from asr_kd.hybrid.likelihoods import model_loglikes
from asr_kd.stages.decode import decode_models


@pytest.fixture(scope="module")
def gmm_test_loglikes(tiny_graph, tiny_features):
    """(root, tm, lang, {utt: per-transition-id log-likelihoods of the GMM}, refs) on the tiny test split."""
    root, _ = tiny_graph
    lang, tm, priors, splits = load_decode_data(root / "exp", root / "lang", tiny_features / "fbank", corpus="digits")
    lp = model_loglikes([str(root / "exp" / "final.mdl")], splits, priors)
    cuts, data = splits["test"]
    id2pdf = np.asarray(tm.id2pdf_id)
    loglikes = {c.id: lp["test"][data.utterance(i)][:, id2pdf[1:]] for i, c in enumerate(cuts)}
    refs = {c.id: [lang.word2id[w] for w in c.supervisions[0].text.split()] for c in cuts}
    return root, tm, lang, loglikes, refs


def test_k2_lattice_best_path_is_the_one_best_search_and_sweeps_like_redecoding(gmm_test_loglikes):
    """At the search's own point the lattice's best path has k2's 1-best words; at other LM weights
    and penalties (a wide beam, where pruning cannot differ) its best paths are what decoding again
    at that point gives; the oracle is never worse than the 1-best."""
    root, tm, _, loglikes, refs = gmm_test_loglikes
    hclg = root / "graph" / "HCLG.fst"
    id2pdf = np.asarray(tm.id2pdf_id)
    per_pdf = {u: np.zeros((m.shape[0], int(id2pdf.max()) + 1), np.float32) for u, m in loglikes.items()}
    for u, m in loglikes.items():
        per_pdf[u][:, id2pdf[1:]] = m  # every transition-id of a pdf has its pdf's column
    lats = decode_lattices_k2(load_k2_graph(hclg), loglikes, 1 / 7.0, beam=30.0, lattice_beam=12.0)
    assert lats.utts == sorted(loglikes, key=lambda u: -loglikes[u].shape[0])
    for lmwt, wip in [(7.0, 0.0), (4.0, 0.0), (12.0, 1.0)]:
        again = decode_k2(load_k2_graph(hclg, wip), id2pdf, {u: m / lmwt for u, m in per_pdf.items()}, search_beam=30.0)
        best = lats.best_paths([(lmwt, wip)])[0]
        same = sum(best[u][0] == again[u]["words"] for u in loglikes)
        assert same == len(loglikes), (lmwt, wip, same)
    oracle = lats.oracle_errors(refs)
    from kaldialign import edit_distance

    best = lats.best_paths([(7.0, 0.0)])[0]
    assert all(oracle[u] <= edit_distance(refs[u], best[u][0])["total"] for u in refs)


def test_k2_side_pruning_keeps_what_pruning_the_whole_lattice_keeps(gmm_test_loglikes):
    """Pruned by k2's tropical arc posteriors while converting, the set has the arcs, states and best
    paths that pruning the whole converted lattice (``LatticeSet.pruned``) leaves; the beam bites."""
    import k2
    import torch

    from asr_kd.decode.k2_decoder import _dense_batches, lattice_set

    root, _, _, loglikes, _ = gmm_test_loglikes
    graph = load_k2_graph(root / "graph" / "HCLG.fst", 0.5)
    graph.graph_scores = graph.scores.clone()
    scale = 1 / 6.0
    scaled = {u: np.asarray(m, np.float32) * np.float32(scale) for u, m in loglikes.items()}
    batch, dense, segs = next(_dense_batches(scaled, None, 10**9))
    lattice = k2.intersect_dense_pruned(graph, k2.DenseFsaVec(dense, segs), 30.0, 12.0, 200, 10000)
    whole = lattice_set(lattice, batch, acoustic_scale=scale, word_penalty=0.5)
    for beam in (3.0, 12.0):
        by_k2 = lattice_set(lattice, batch, acoustic_scale=scale, word_penalty=0.5, beam=beam)
        by_us = whole.pruned(6.0, 0.5, beam)
        assert len(by_k2.src) == len(by_us.src) and by_k2.num_states == by_us.num_states, beam
        assert np.allclose(np.sort(by_k2.acoustic), np.sort(by_us.acoustic))
        points = [(6.0, 0.5), (9.0, 0.0)]
        assert by_k2.best_paths(points) == by_us.best_paths(points)
    assert len(lattice_set(lattice, batch, acoustic_scale=scale, beam=3.0).src) < torch.numel(lattice.scores)


def test_k2_lattice_archive_reads_back_with_the_penalty_taken_off(gmm_test_loglikes, tmp_path):
    """The parallel decode writes a Kaldi text archive whose graph costs hold the split's penalty;
    read back with it, the lattices give the in-memory set's best paths and costs; two processes
    give what one gives."""
    root, _, _, loglikes, _ = gmm_test_loglikes
    hclg = root / "graph" / "HCLG.fst"
    one, stats = decode_lattices_parallel(
        hclg, loglikes, 1 / 5.0, archive=tmp_path / "lat.test.gz", word_penalty=1.0, search="k2"
    )
    assert stats == {"utterances": len(loglikes), "widened": 0, "still_worse": 0}
    back = LatticeSet.read(tmp_path / "lat.test.gz", word_penalty=1.0)
    two, _ = decode_lattices_parallel(
        hclg, loglikes, 1 / 5.0, archive=tmp_path / "two.gz", word_penalty=1.0, search="k2", nj=2
    )
    points = [(5.0, 1.0), (9.0, 0.0)]
    mine = one.best_paths(points)
    for other in (back, two):
        theirs = other.best_paths(points)
        for p in range(len(points)):
            for u in loglikes:
                assert theirs[p][u][0] == mine[p][u][0], (points[p], u)
    assert len(back.src) == len(one.src) and np.allclose(np.sort(back.graph), np.sort(one.graph), atol=1e-4)
    assert np.allclose(np.sort(back.acoustic), np.sort(one.acoustic), rtol=1e-6, atol=1e-3)
    assert (one.word[one.tid == 0] >= 0).all() and (one.acoustic[one.tid == 0] == 0).all()  # epsilon arcs: no frame


def test_k2_archive_written_after_the_search_is_the_same_archive(gmm_test_loglikes, tmp_path):
    """With an ArchiveWriter the pool writes the archive after the search: nothing is there until
    wait(), then the same bytes as the parts writing it themselves; decoding the same archive again
    first finishes the pending write (the parts' files are reused)."""
    root, _, _, loglikes, _ = gmm_test_loglikes
    hclg = root / "graph" / "HCLG.fst"
    kw = dict(word_penalty=0.5, search="k2", nj=2)
    decode_lattices_parallel(hclg, loglikes, 1 / 5.0, archive=tmp_path / "now.gz", **kw)
    writer = ArchiveWriter()
    decode_lattices_parallel(hclg, loglikes, 1 / 5.0, archive=tmp_path / "later.gz", writer=writer, **kw)
    assert len(writer.pending) == 1
    decode_lattices_parallel(hclg, loglikes, 1 / 5.0, archive=tmp_path / "later.gz", writer=writer, **kw)
    assert len(writer.pending) == 1  # the first write was finished before the second decode
    writer.wait()
    assert not writer.pending and not list(tmp_path.glob("*.part*"))
    assert gzip.decompress((tmp_path / "later.gz").read_bytes()) == gzip.decompress((tmp_path / "now.gz").read_bytes())


def test_decode_stage_on_k2_lattices_agrees_with_kaldi_lattices(tiny_graph, tiny_features, tmp_path):
    """The decode stage with ``k2-lattice``: the same chosen LM weight and penalty as Kaldi's lattice
    search, test WER within 0.5 points (the searches prune differently), lattices and their options
    written as the Kaldi lattice search writes them."""
    root, _ = tiny_graph
    rows = [("gmm", [str(root / "exp" / "final.mdl")])]
    out = {}
    for decoder in ("lattice", "k2-lattice"):
        out[decoder] = decode_models(
            rows,
            root / "exp",
            root / "lang",
            fbank_dir=tiny_features / "fbank",
            corpus="digits",
            graph_dir=root / "graph",
            out_dir=tmp_path / decoder,
            lmwts=(3, 5, 8),
            penalties=(0.0, 1.0),
            beam=20.0,
            decoder=decoder,
        )[0]
    kaldi, k2 = out["lattice"], out["k2-lattice"]
    assert k2["decoder"] == "k2-lattice" and (tmp_path / "k2-lattice" / "gmm" / "lat.test.gz").is_file()
    assert (k2["best_lmwt"], k2["best_wip"]) == (kaldi["best_lmwt"], kaldi["best_wip"])
    assert k2["test_wer"] == pytest.approx(kaldi["test_wer"], abs=0.005)
    assert 0 <= k2["test_oracle_wer"] <= k2["test_wer"]
    options = json.loads((tmp_path / "k2-lattice" / "gmm" / "lattice_options.json").read_text())
    assert "intersect_dense_pruned" in options["decoder"]

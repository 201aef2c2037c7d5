"""The k2 backend against the Kaldi decoder (the k2 lane: tools/k2_lane.sh)."""

import numpy as np
import pytest

from asr_kd.gmm.mono import GmmAligner
from asr_kd.stages.k2_decode import compare_decoders
from asr_kd.decode.search import load_decode_data
from asr_kd.stages.decode import decode_models
from asr_kd.hybrid.likelihoods import model_loglikes
from asr_kd.decode.k2_decoder import decode_k2, k2_version, load_k2_graph
from asr_kd.lang.prepare_lang import Lang
from conftest import oracle_loglikes


def test_k2_version_is_known():
    assert k2_version()[:4] in ("1.23", "1.24")


def test_graph_is_epsilon_free_sorted_and_cached(tiny_graph):
    root, _ = tiny_graph
    hclg = root / "graph" / "HCLG.fst"
    g = load_k2_graph(hclg)
    labels = g.labels
    assert int((labels == 0).sum()) == 0 and int((labels == -1).sum()) >= 1  # only final arcs are special
    cache = root / "graph" / "HCLG.k2.wip0.pt"
    assert cache.is_file()
    mtime = cache.stat().st_mtime
    again = load_k2_graph(hclg)
    assert cache.stat().st_mtime == mtime and again.num_arcs == g.num_arcs
    penalised = load_k2_graph(hclg, word_penalty=1.0)
    assert float(penalised.scores.sum()) < float(g.scores.sum())  # every word arc costs 1 more


def test_oracle_loglikes_give_the_reference_with_both_decoders(tiny_graph):
    root, _ = tiny_graph
    tm = GmmAligner.load(root / "exp" / "final.mdl", root / "lang").tm
    lang = Lang(root / "lang")
    cuts, loglikes = oracle_loglikes(root / "exp", tm)
    refs = {c.id: c.supervisions[0].text.split() for c in cuts}
    res = decode_k2(load_k2_graph(root / "graph" / "HCLG.fst"), np.asarray(tm.id2pdf_id), loglikes)
    for c in cuts:
        assert [lang.id2word[w] for w in res[c.id]["words"]] == refs[c.id], c.id
    agree = compare_decoders(root / "graph" / "HCLG.fst", tm, loglikes, refs=refs, id2word=lang.id2word)
    assert agree["wer_kaldi"] == agree["wer_k2"] == 0.0 and agree["same_share"] == 1.0


def test_k2_agrees_with_kaldi_on_a_real_decode(tiny_graph, tiny_features):
    root, _ = tiny_graph
    lang, tm, priors, splits = load_decode_data(root / "exp", root / "lang", tiny_features / "fbank", corpus="digits")
    lp = model_loglikes([str(root / "exp" / "final.mdl")], splits, priors)
    loglikes, refs = {}, {}
    for s, (cuts, data) in splits.items():
        for i, c in enumerate(cuts):
            loglikes[c.id] = lp[s][data.utterance(i)] / 7.0
            refs[c.id] = c.supervisions[0].text.split()
    agree = compare_decoders(
        root / "graph" / "HCLG.fst", tm, loglikes, refs=refs, id2word=lang.id2word, beam=20.0, word_penalty=0.5
    )
    assert agree["same_share"] >= 0.99, agree
    assert agree["same_paths"] > 0 and agree["max_score_diff"] < 1e-3 and agree["max_rel_score_diff"] < 1e-5, agree
    assert agree["wer_k2"] == pytest.approx(agree["wer_kaldi"], abs=0.02)


def test_decode_stage_gives_the_same_wer_with_either_backend(tiny_graph, tiny_features, tmp_path):
    root, _ = tiny_graph
    rows = [("GMM", [str(root / "exp" / "final.mdl")])]
    common = dict(lmwts=(5, 10), penalties=(0.0, 1.0), beam=20.0)
    kaldi = decode_models(
        rows,
        root / "exp",
        root / "lang",
        fbank_dir=tiny_features / "fbank",
        corpus="digits",
        graph_dir=root / "graph",
        out_dir=tmp_path / "kaldi",
        decoder="kaldi",
        **common,
    )
    k2 = decode_models(
        rows,
        root / "exp",
        root / "lang",
        fbank_dir=tiny_features / "fbank",
        corpus="digits",
        graph_dir=root / "graph",
        out_dir=tmp_path / "k2",
        decoder="k2",
        **common,
    )
    assert k2[0]["decoder"] == "k2" and (tmp_path / "k2" / "GMM" / "test.hyp.txt").is_file()
    assert (k2[0]["best_lmwt"], k2[0]["best_wip"]) == (kaldi[0]["best_lmwt"], kaldi[0]["best_wip"])
    assert k2[0]["test_wer"] == pytest.approx(kaldi[0]["test_wer"], abs=1e-9)
    # the run.sh stage 14 command, on this decode
    import json
    import subprocess
    import sys

    (tmp_path / "kaldi" / "wer_table.json").write_text(json.dumps({"rows": [{"name": "GMM", "members": kaldi}]}))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr_kd",
            "decoder-agreement",
            "--decode-dir",
            str(tmp_path / "kaldi"),
            "--ali-dir",
            str(root / "exp"),
            "--lang",
            str(root / "lang"),
            "--fbank-dir",
            str(tiny_features / "fbank"),
            "--graph-dir",
            str(root / "graph"),
            "--out",
            str(tmp_path / "agreement"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads((tmp_path / "agreement.json").read_text())["rows"][0]
    assert row["same_share"] >= 0.99 and row["wer_k2"] == pytest.approx(row["wer_kaldi"], abs=0.02)
    system = next(
        line for line in (tmp_path / "agreement.md").read_text().splitlines() if line.startswith("| GMM | 1 |")
    )
    assert f"{100 * row['wer_k2']:.2f}%" in system  # the k2 WER beside the Kaldi WER in the per-system table


def test_nan_loglikes_are_a_clear_error(tiny_graph):
    root, _ = tiny_graph
    tm = GmmAligner.load(root / "exp" / "final.mdl", root / "lang").tm
    m = np.zeros((20, tm.num_pdfs), np.float32)
    m[4, 2] = np.nan
    with pytest.raises(FloatingPointError, match="utterance bad: log-likelihoods contain NaN"):
        decode_k2(load_k2_graph(root / "graph" / "HCLG.fst"), np.asarray(tm.id2pdf_id), {"bad": m})


def test_k2_decodes_the_context_dependent_hclg(tiny_tri_graph, tiny_features):
    """The triphone tree's HCLG (compose_context, H from the tree): oracle likelihoods give the
    reference with both decoders, and a real GMM decode agrees on the 1-best."""
    root, tri, _ = tiny_tri_graph
    hclg = root / "graph_tri1" / "HCLG.fst"
    tm = GmmAligner.load(tri / "final.mdl", root / "lang").tm
    lang = Lang(root / "lang")
    cuts, loglikes = oracle_loglikes(tri, tm)
    refs = {c.id: c.supervisions[0].text.split() for c in cuts}
    res = decode_k2(load_k2_graph(hclg), np.asarray(tm.id2pdf_id), loglikes)
    for c in cuts:
        assert [lang.id2word[w] for w in res[c.id]["words"]] == refs[c.id], c.id
    _, tm, priors, splits = load_decode_data(tri, root / "lang", tiny_features / "fbank", corpus="digits")
    lp = model_loglikes([str(tri / "final.mdl")], splits, priors)
    loglikes, refs = {}, {}
    for s, (cuts, data) in splits.items():
        for i, c in enumerate(cuts):
            loglikes[c.id] = lp[s][data.utterance(i)] / 7.0
            refs[c.id] = c.supervisions[0].text.split()
    agree = compare_decoders(hclg, tm, loglikes, refs=refs, id2word=lang.id2word, beam=20.0, word_penalty=0.5)
    assert agree["same_share"] >= 0.99, agree
    assert agree["wer_k2"] == pytest.approx(agree["wer_kaldi"], abs=0.02)


def test_k2_lattice_oracle_is_never_worse_than_its_one_best(tiny_graph, tiny_features):
    """k2's lattices, read into asr_kd's LatticeSet: the oracle finds the 1-best words (0 errors
    against them) and is never worse than the 1-best against the reference; the agreement row
    carries the k2 oracle WER beside the WERs."""
    from kaldialign import edit_distance

    root, _ = tiny_graph
    lang, tm, priors, splits = load_decode_data(root / "exp", root / "lang", tiny_features / "fbank", corpus="digits")
    lp = model_loglikes([str(root / "exp" / "final.mdl")], splits, priors)
    cuts, data = splits["test"]
    loglikes = {c.id: lp["test"][data.utterance(i)] / 15.0 for i, c in enumerate(cuts)}  # flat: wide lattices
    refs = {c.id: [lang.word2id[w] for w in c.supervisions[0].text.split()] for c in cuts}
    graph = load_k2_graph(root / "graph" / "HCLG.fst")
    one_best = decode_k2(graph, np.asarray(tm.id2pdf_id), loglikes, output_beam=6.0)
    hyps = {u: r["words"] for u, r in one_best.items()}
    against_hyp = decode_k2(graph, np.asarray(tm.id2pdf_id), loglikes, output_beam=6.0, oracle_refs=hyps)
    assert all(r["oracle_errors"] == 0 for r in against_hyp.values())
    stats = {}
    res = decode_k2(graph, np.asarray(tm.id2pdf_id), loglikes, output_beam=6.0, oracle_refs=refs, stats=stats)
    assert stats["oracle_seconds"] > 0
    errors = {u: edit_distance(refs[u], hyps[u])["total"] for u in refs}
    assert all(0 <= res[u]["oracle_errors"] <= errors[u] for u in refs)
    assert sum(r["oracle_errors"] for r in res.values()) < sum(errors.values())  # the lattices hold better paths
    words = {c.id: c.supervisions[0].text.split() for c in cuts}
    agree = compare_decoders(root / "graph" / "HCLG.fst", tm, loglikes, refs=words, id2word=lang.id2word, beam=20.0)
    assert 0 <= agree["oracle_wer_k2"] <= agree["wer_k2"]

"""LM, HCLG, hybrid decoding and WER scoring."""

import os

import numpy as np
import pytest

from asr_kd.decode.wer import wer_details
from asr_kd.lang.lm import perplexity, train_arpa


def test_wer_scorer_matches_hand_counts():
    refs = {"a": "ONE TWO THREE".split(), "b": "FOUR FIVE".split(), "c": "SIX".split()}
    hyps = {"a": "ONE TOO THREE".split(), "b": "FOUR FIVE FIVE".split(), "c": []}
    d = wer_details(refs, hyps, {"a": "s1", "b": "s1", "c": "s2"})
    assert (d["sub"], d["ins"], d["del"], d["ref_len"]) == (1, 1, 1, 6)
    assert d["wer"] == pytest.approx(3 / 6)
    assert d["per_speaker"]["s2"]["wer"] == 1.0 and d["per_speaker"]["s1"]["wer"] == pytest.approx(2 / 5)
    assert d["sentence_errors"] == 3


def _need_lmplz():
    # ./setup.sh builds lmplz; only an explicit opt-out (ASR_KD_NO_LMPLZ=1) may skip its tests.
    if os.environ.get("ASR_KD_NO_LMPLZ") == "1":
        pytest.skip("lmplz opted out with ASR_KD_NO_LMPLZ=1")


@pytest.mark.parametrize("estimator", ["python", "lmplz"])
def test_arpa_is_normalised(tmp_path, estimator):
    if estimator == "lmplz":
        _need_lmplz()
    texts = ["ONE TWO THREE", "ONE TWO", "TWO THREE ONE", "THREE"] * 3
    path = tmp_path / "lm.arpa"
    assert (
        train_arpa(texts, 3, path, estimator=estimator) == {"python": "python-kneser-ney", "lmplz": "lmplz"}[estimator]
    )
    import kenlm

    model = kenlm.Model(str(path))
    vocab = ["ONE", "TWO", "THREE", "</s>", "<unk>"]  # lmplz gives <unk> some mass
    for ctx in (["ONE"], ["ONE", "TWO"], ["THREE", "ONE"]):
        total = 0.0
        for w in vocab:
            state, out = kenlm.State(), kenlm.State()
            model.BeginSentenceWrite(state)
            for c in ctx:
                nxt = kenlm.State()
                model.BaseScore(state, c, nxt)
                state = nxt
            total += 10 ** model.BaseScore(state, w, out)
        assert total == pytest.approx(1.0, abs=1e-3), ctx
    assert 1.0 < perplexity(path, ["ONE TWO THREE"]) < 4.0
    with pytest.raises(ValueError, match="at least 2"):
        train_arpa(texts, 1, path, estimator=estimator)


def test_lmplz_and_python_estimators_agree(tmp_path):
    """Both are Kneser-Ney estimates of the same counts: held-out perplexities must be close."""
    _need_lmplz()
    rng = np.random.default_rng(0)
    words = "OH ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE ZERO".split()
    texts = [" ".join(rng.choice(words, size=rng.integers(2, 8))) for _ in range(400)]
    held = [" ".join(rng.choice(words, size=rng.integers(2, 8))) for _ in range(100)]
    ppl = {}
    for est in ("python", "lmplz"):
        train_arpa(texts, 3, tmp_path / f"{est}.arpa", estimator=est)
        ppl[est] = perplexity(tmp_path / f"{est}.arpa", held)
    assert ppl["lmplz"] == pytest.approx(ppl["python"], rel=0.1), ppl
    assert 8 < ppl["lmplz"] < 16, ppl  # 11 equiprobable words and </s>


@pytest.fixture(scope="module")
def graph(tiny_graph):
    return tiny_graph


def test_one_hot_loglikes_from_an_alignment_decode_to_the_reference(graph):
    from conftest import oracle_loglikes

    from asr_kd.gmm.mono import GmmAligner
    from asr_kd.decode.kaldi_decoder import decode
    from asr_kd.lang.prepare_lang import Lang

    root, info = graph
    assert info["hclg"]["states"] > 0 and info["perplexity"]["dev"] > 1
    tm = GmmAligner.load(root / "exp" / "final.mdl", root / "lang").tm
    lang = Lang(root / "lang")
    cuts, loglikes = oracle_loglikes(root / "exp", tm)
    res = decode(root / "graph" / "HCLG.fst", tm, loglikes, nj=2)
    for cut in cuts:
        assert [lang.id2word[w] for w in res[cut.id]["words"]] == cut.supervisions[0].text.split(), cut.id
        assert res[cut.id]["reached_final"]


def test_nan_loglikes_are_a_clear_error(graph):
    from asr_kd.gmm.mono import GmmAligner
    from asr_kd.decode.kaldi_decoder import decode

    root, _ = graph
    tm = GmmAligner.load(root / "exp" / "final.mdl", root / "lang").tm
    m = np.zeros((20, tm.num_pdfs), np.float32)
    m[5, 3] = np.nan
    with pytest.raises(FloatingPointError, match="utterance bad-utt: log-likelihoods contain NaN"):
        decode(root / "graph" / "HCLG.fst", tm, {"bad-utt": m})


def test_gmm_loglikes_match_the_library(graph, tiny_features):
    from lhotse import CutSet

    from asr_kd.gmm.features import gmm_features
    from asr_kd.data.features import FeatureNormalizer
    from asr_kd.hybrid.likelihoods import gmm_loglikes
    from asr_kd.nnet.data import load_frames

    root, _ = graph
    cuts = CutSet.from_file(tiny_features / "fbank" / "digits_cuts_dev.jsonl.gz").to_eager()
    data = load_frames(cuts, FeatureNormalizer.load(tiny_features / "fbank" / "cmvn.npz"), with_labels=False)
    ll = gmm_loglikes(root / "exp" / "final.mdl", data, cuts)
    from asr_kd.gmm.mono import load_gmm

    am = load_gmm(root / "exp" / "final.mdl")["am"]
    x = gmm_features(data.feats[data.utterance(0)].numpy())
    for t in (0, 7, len(x) - 1):
        for pdf in (0, 3, am.num_pdfs - 1):
            assert ll[t, pdf] == pytest.approx(am.log_likelihood(pdf, x[t]), rel=1e-4, abs=1e-3)


def test_gmm_decoding_sees_the_features_the_gmm_was_trained_on(graph, tiny_features, tmp_path):
    """A GMM trained on static cepstra with per-utterance CMVN is decoded on the same features
    (the decoder reads the feature settings from the model)."""
    from lhotse import CutSet

    from asr_kd.gmm.mono import MonoConfig
    from asr_kd.stages.align import load_gmm_inputs, train_and_align
    from asr_kd.data.features import FeatureNormalizer
    from asr_kd.hybrid.likelihoods import gmm_loglikes
    from asr_kd.nnet.data import load_frames

    root, _ = graph
    cfg = MonoConfig(
        num_iters=3, max_iter_inc=2, realign_iters=(1, 2), total_gauss=100, use_deltas=False, utterance_cmvn=True
    )
    train_and_align(
        tiny_features / "fbank",
        "digits",
        ["train", "dev"],
        lang_dir=root / "lang",
        exp_dir=tmp_path / "exp",
        cfg=cfg,
        nj=1,
    )
    normalizer = FeatureNormalizer.load(tiny_features / "fbank" / "cmvn.npz")
    cuts = CutSet.from_file(tiny_features / "fbank" / "digits_cuts_dev.jsonl.gz").to_eager()
    data = load_frames(cuts, normalizer, with_labels=False)
    ll = gmm_loglikes(tmp_path / "exp" / "final.mdl", data, cuts)
    from asr_kd.gmm.mono import load_gmm

    am = load_gmm(tmp_path / "exp" / "final.mdl")["am"]
    feats, _, _ = load_gmm_inputs(cuts, normalizer, cfg)
    x = feats[cuts[0].id]
    assert x.shape[1] == 13
    for t in (0, 7, len(x) - 1):
        for pdf in (0, 3, am.num_pdfs - 1):
            assert ll[t, pdf] == pytest.approx(am.log_likelihood(pdf, x[t]), rel=1e-4, abs=1e-3)


def test_graph_is_reused_only_when_built_from_the_same_inputs(graph, tiny_features, tmp_path):
    import shutil

    from asr_kd.decode.search import build_graph

    root, info = graph
    shutil.copytree(root / "graph", tmp_path / "graph")
    hclg = tmp_path / "graph" / "HCLG.fst"
    built = hclg.stat().st_mtime_ns
    same = build_graph(
        root / "lang",
        root / "exp",
        tiny_features / "manifests",
        corpus="digits",
        graph_dir=tmp_path / "graph",
        lm_order=2,
    )
    assert same == info and hclg.stat().st_mtime_ns == built
    trigram = build_graph(
        root / "lang",
        root / "exp",
        tiny_features / "manifests",
        corpus="digits",
        graph_dir=tmp_path / "graph",
        lm_order=3,
    )
    assert trigram["lm_order"] == 3 and trigram["key"] != info["key"] and hclg.stat().st_mtime_ns != built


def test_shared_point_is_the_lowest_mean_dev_wer_among_points_every_grid_scored():
    from asr_kd.stages.decode import shared_point

    a = [{"lmwt": 1, "wip": 0, "wer": 0.10}, {"lmwt": 2, "wip": 0, "wer": 0.30}, {"lmwt": 3, "wip": 0, "wer": 0.05}]
    b = [{"lmwt": 1, "wip": 0, "wer": 0.30}, {"lmwt": 2, "wip": 0, "wer": 0.12}]  # (3, 0): not in b's grid
    assert shared_point([a, b]) == {"lmwt": 1, "wip": 0, "wer": pytest.approx(0.20)}  # mean 0.20; (2, 0): 0.21
    assert shared_point([a]) == {"lmwt": 3, "wip": 0, "wer": 0.05} and shared_point([]) is None
    tie = [{"lmwt": 2, "wip": 1, "wer": 0.1}, {"lmwt": 2, "wip": 0, "wer": 0.1}]
    assert shared_point([tie]) == {"lmwt": 2, "wip": 0, "wer": 0.1}  # ties: the lower penalty
    flat = [{"lmwt": a, "wip": b, "wer": 0.1} for a in (1, 2, 3) for b in (0, 1, 2)]
    assert shared_point([flat, flat]) == {"lmwt": 2, "wip": 1, "wer": 0.1}  # a flat surface: inside, not the corner


def test_shared_lm_tuning_decodes_every_network_at_one_point_and_the_gmm_at_its_own(
    dnn_on_gmm_labels, tiny_graph, tiny_features, tmp_path
):
    """``lm_tuning="shared"``: each network's dev grid is scored as with ``each``; test is decoded for
    all of them at the point of lowest mean dev WER (ties: inside the grid), recomputed here from their grids; the GMM keeps
    its own optimum, and every model's own optimum is the one ``each`` chooses."""
    import json

    from asr_kd.stages.decode import decode_models

    root, ckpts = dnn_on_gmm_labels
    rows = [("gmm", [str(root / "exp" / "final.mdl")])] + [(f"net{i}", [c]) for i, c in enumerate(ckpts)]
    common = dict(lmwts=(1, 2, 4, 8), penalties=(0.0, 1.0), beam=15.0, decoder="lattice")
    common.update(fbank_dir=tiny_features / "fbank", corpus="digits", graph_dir=root / "graph")
    each = decode_models(rows, root / "exp", root / "lang", out_dir=tmp_path / "each", **common)
    shared = decode_models(rows, root / "exp", root / "lang", out_dir=tmp_path / "shared", lm_tuning="shared", **common)
    grids = [json.loads((tmp_path / "shared" / f"net{i}" / "grid_dev.json").read_text())["grid"] for i in (0, 1)]
    points = [{(g["lmwt"], g["wip"]): g["wer"] for g in grid} for grid in grids]
    common_points = set(points[0]) & set(points[1])
    mean = {k: (points[0][k] + points[1][k]) / 2 for k in common_points}
    lms, wps = sorted({k[0] for k in common_points}), sorted({k[1] for k in common_points})
    edge = {
        k: (len(lms) > 1 and k[0] in (lms[0], lms[-1])) or (len(wps) > 1 and k[1] in (wps[0], wps[-1]))
        for k in common_points
    }
    want = min(mean, key=lambda k: (mean[k], edge[k], k))  # ties: inside the grid, then the lower point
    for e, s in zip(each, shared):
        assert s["own_best"] == {"lmwt": e["best_lmwt"], "wip": e["best_wip"], "dev_wer": e["dev_wer"]}
    assert shared[0]["lm_tuning"] == "each" and (shared[0]["best_lmwt"], shared[0]["best_wip"]) == (
        each[0]["best_lmwt"],
        each[0]["best_wip"],
    )
    assert shared[0]["test_wer"] == each[0]["test_wer"]
    for i, row in enumerate(shared[1:]):
        assert row["lm_tuning"] == "shared" and (row["best_lmwt"], row["best_wip"]) == want
        assert row["dev_wer"] == pytest.approx(points[i][want])
    # one point for all cannot beat each network's own dev optimum on dev
    assert sum(r["dev_wer"] for r in shared[1:]) >= sum(r["dev_wer"] for r in each[1:]) - 1e-9
    with pytest.raises(ValueError, match="lm_tuning"):
        decode_models(rows, root / "exp", root / "lang", out_dir=tmp_path / "x", lm_tuning="best", **common)

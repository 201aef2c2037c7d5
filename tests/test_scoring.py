"""Error rates with their uncertainty (asr_kd.scoring), dev tuning, WER edge cases, and the
guards that turn silent wrong results into errors."""

import json

import numpy as np
import pytest
import torch

from asr_kd.scoring.significance import ErrorCounts, compare, confidence_interval, summarise


def _binomial_system(rng, p, utts, words=4, seeds=1):
    tokens = np.full(utts, words)
    return ErrorCounts(rng.binomial(words, p, size=(seeds, utts)), tokens)


def test_interval_covers_the_true_rate_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = 0
    for k in range(200):
        lo, hi = confidence_interval(_binomial_system(rng, 0.09, 300), num_boot=400, seed=k)
        hits += lo <= 0.09 <= hi
    assert 0.88 <= hits / 200 <= 0.99, hits


def test_interval_narrows_with_the_square_root_of_the_test_set():
    rng = np.random.default_rng(1)
    small = summarise(_binomial_system(rng, 0.09, 400))
    large = summarise(_binomial_system(rng, 0.09, 1600))
    ratio = (large["ci95"][1] - large["ci95"][0]) / (small["ci95"][1] - small["ci95"][0])
    assert 0.35 < ratio < 0.65, ratio  # sqrt(400 / 1600) = 0.5
    assert small["ci95"][0] < small["rate"] < small["ci95"][1]


def test_seed_mean_and_sample_std():
    s = ErrorCounts(np.array([[1, 0, 1], [3, 0, 1]]), np.array([2, 2, 2]))
    assert s.per_seed().tolist() == pytest.approx([2 / 6, 4 / 6])
    assert s.rate() == pytest.approx(0.5)
    assert s.std() == pytest.approx(np.std([2 / 6, 4 / 6], ddof=1))


def test_identical_systems_are_not_significantly_different():
    rng = np.random.default_rng(2)
    a = _binomial_system(rng, 0.1, 300)
    res = compare({"a": a, "b": ErrorCounts(a.errors.copy(), a.tokens)}, [("a", "b")], num_boot=500)
    p = res["pairs"][0]
    assert p["p_value"] == 1.0 and not p["significant"]


def test_a_clearly_better_system_is_significant_and_a_reshuffle_is_not():
    rng = np.random.default_rng(3)
    a = _binomial_system(rng, 0.2, 400)
    better = ErrorCounts(np.maximum(a.errors - (rng.random(a.errors.shape) < 0.5), 0), a.tokens)
    shuffled = ErrorCounts(a.errors[:, rng.permutation(400)], a.tokens)  # same total, errors moved around
    res = compare({"a": a, "better": better, "shuffled": shuffled}, [("a", "better"), ("a", "shuffled")], num_boot=1000)
    clear, moved = res["pairs"]
    assert clear["prob_better"] == 1.0 and clear["significant"]
    assert not moved["significant"] and moved["rate_a"] == moved["rate_b"]


def test_seed_spread_enters_the_comparison():
    """Two systems whose seeds straddle each other: an utterance-only bootstrap of the seed means
    would call a gap significant that the seeds do not support."""
    rng = np.random.default_rng(4)
    base = _binomial_system(rng, 0.1, 600)
    lo = ErrorCounts(np.maximum(base.errors - (rng.random(base.errors.shape) < 0.3), 0), base.tokens)
    hi = ErrorCounts(base.errors + (rng.random(base.errors.shape) < 0.3), base.tokens)
    seeds_a = ErrorCounts(np.vstack([lo.errors, hi.errors]), base.tokens)  # one very good, one very bad seed
    seeds_b = ErrorCounts(np.vstack([base.errors, base.errors]), base.tokens)
    p = compare({"a": seeds_a, "b": seeds_b}, [("a", "b")], num_boot=1000)["pairs"][0]
    assert not p["significant"], p


def test_gain_kept_and_its_interval():
    rng = np.random.default_rng(5)
    base = _binomial_system(rng, 0.1, 2000, seeds=2)
    ens = ErrorCounts(np.maximum(base.errors[:1] - (rng.random((1, 2000)) < 0.4), 0), base.tokens)
    stud = ErrorCounts(np.maximum(base.errors - (rng.random(base.errors.shape) < 0.3), 0), base.tokens)
    g = compare({"b": base, "e": ens, "s": stud}, [], num_boot=500, gain_kept=("b", "e", "s"))["gain_kept"]
    want = (base.rate() - stud.rate()) / (base.rate() - ens.rate())
    assert g["share"] == pytest.approx(want) and g["ci95"][0] < want < g["ci95"][1]


def test_dev_grid_widens_past_its_edge_until_the_optimum_is_inside():
    from asr_kd.decode.search import tune_on_dev

    calls = []

    def wer(lmwt, wip):
        calls.append((lmwt, wip))
        return (lmwt - 0.5) ** 2 + (wip - 0.5) ** 2

    grid, best, widened = tune_on_dev(wer, [1, 2, 3], [0, 1])
    assert best["lmwt"] == pytest.approx(0.445) and ("lmwt", 0.667) in widened and ("lmwt", 0.445) in widened
    lm = sorted({g["lmwt"] for g in grid})
    assert lm[0] < best["lmwt"] < lm[-1]  # inside, not on the edge
    assert len(calls) == len(set(calls)) == len(grid)  # nothing decoded twice
    _, inner, none = tune_on_dev(lambda a, b: (a - 2) ** 2 + (b - 0.5) ** 2, [1, 2, 3], [0, 0.5, 1])
    assert none == [] and inner["lmwt"] == 2 and inner["wip"] == 0.5


def test_wer_with_an_empty_reference_and_a_missing_hypothesis():
    from asr_kd.decode.wer import wer_details

    d = wer_details(
        {"u1": [], "u2": ["A", "B"], "u3": ["C"]}, {"u1": ["X"], "u3": ["C"]}, {"u1": "s", "u2": "s", "u3": "t"}
    )
    assert (d["ins"], d["del"], d["sub"], d["ref_len"]) == (1, 2, 0, 3)
    assert d["wer"] == pytest.approx(1.0) and d["sentence_errors"] == 2
    assert d["per_speaker"]["t"]["wer"] == 0.0
    empty = wer_details({"u": []}, {"u": []})
    assert empty["wer"] == 0.0 and empty["ref_len"] == 0


def test_logit_match_loss_and_its_weights():
    from asr_kd.nnet.losses import LossConfig, build_criterion, logit_match_loss

    z = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])
    v = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 1.0]])
    y = torch.tensor([2, 0])
    z0, v0 = z - z.mean(1, keepdim=True), v - v.mean(1, keepdim=True)
    want = 0.5 * ((z0 - v0) ** 2).sum(1).mean()
    assert logit_match_loss(z, y, v, hard_weight=0.0) == pytest.approx(float(want))
    assert logit_match_loss(z, y, v, hard_weight=0.0, soft_weight=0.25) == pytest.approx(0.25 * float(want))
    ce = torch.nn.functional.cross_entropy(z, y)
    loss = build_criterion(LossConfig(loss="logit_match", soft_weight=2.0, hard_weight=0.5))(z, y, v)
    assert loss == pytest.approx(float(2.0 * want + 0.5 * ce))
    # a constant shift of the teacher's logits changes nothing (both are centred)
    assert logit_match_loss(z, y, v + 7.0, hard_weight=0.0) == pytest.approx(float(want))


def test_stored_soft_targets_are_refused_where_they_would_be_misread(tmp_path):
    from asr_kd.nnet.losses import LossConfig
    from asr_kd.distill.soft_targets import check_soft_targets

    (tmp_path / "soft_targets.json").write_text(json.dumps({"temperature": 2.0, "topk": 0}))
    assert check_soft_targets(tmp_path, LossConfig(loss="kd", temperature=2.0))["temperature"] == 2.0
    with pytest.raises(ValueError, match="logit_match needs teacher logits"):
        check_soft_targets(tmp_path, LossConfig(loss="logit_match"))
    with pytest.raises(ValueError, match="T=2 but training asks for T=5"):
        check_soft_targets(tmp_path, LossConfig(loss="kd", temperature=5.0))
    with pytest.raises(FileNotFoundError, match="soft_targets.json is missing"):
        check_soft_targets(tmp_path / "nothing", LossConfig())


def test_dense_from_topk_stays_on_the_device_of_its_inputs():
    from asr_kd.nnet.targets import dense_from_topk

    idx, logp = torch.tensor([[2, 0]]), torch.log(torch.tensor([[0.75, 0.25]], dtype=torch.float64))
    out = dense_from_topk(idx, logp, 3)
    assert out.dtype == torch.float64 and out[0].tolist() == pytest.approx([0.25, 0.0, 0.75])
    meta = dense_from_topk(idx.to("meta"), logp.to("meta"), 3)  # any non-CPU device must be kept, not reset to CPU
    assert meta.device.type == "meta"


def test_online_teacher_follows_the_batch_to_its_device():
    """MNIST's online teacher is loaded on the CPU; a batch on another device (a GPU) must not crash."""
    from asr_kd.images.data import ImageData

    data = ImageData.from_numpy(np.zeros((2, 4), np.float32), np.zeros(2, np.int64), height=2, width=2)
    data.teacher_model, data.teacher_temperature = torch.nn.Linear(4, 3), 2.0
    cpu = data.teacher_targets(torch.ones(2, 4))
    assert cpu.device.type == "cpu" and torch.allclose(cpu.sum(1), torch.ones(2))
    out = data.teacher_targets(torch.zeros(2, 4, device="meta"))
    assert out.device.type == "meta" and out.shape == (2, 3)


def test_sentences_for_ties_and_no_gain():
    from asr_kd.scoring.significance import pair_sentence

    rng = np.random.default_rng(6)
    a = _binomial_system(rng, 0.1, 200)
    worse = ErrorCounts(a.errors + 1, a.tokens)
    res = compare(
        {"a": a, "same": ErrorCounts(a.errors.copy(), a.tokens), "worse": worse},
        [("a", "same"), ("worse", "same")],
        num_boot=300,
        gain_kept=("a", "worse", "same"),
    )
    tie, other = res["pairs"]
    assert pair_sentence(tie).startswith("a and same have the same error rate") and "not significant" in pair_sentence(
        tie
    )
    assert pair_sentence(other).startswith("same has a lower error rate than worse in 100.0%")
    assert res["gain_kept"]["share"] is None and res["gain_kept"]["ci95"] == [
        None,
        None,
    ]  # the "ensemble" gained nothing

"""The paper's loss: gradients, T^2 scaling, the high-temperature limit, per-frame reduction."""

import pytest
import torch
import torch.nn.functional as F

from asr_kd.nnet.losses import LossConfig, build_criterion, kd_loss, soft_cross_entropy
from asr_kd.nnet.targets import dense_from_topk, ensemble_soft_targets, topk_targets

torch.manual_seed(0)


def _grad(loss_fn, z):
    z = z.clone().requires_grad_(True)
    loss_fn(z).backward()
    return z.grad


@pytest.mark.parametrize("T", [1.0, 2.0, 5.0, 10.0])
def test_soft_gradient_is_T_times_q_minus_p(T):
    n, c = 7, 11
    z, v = torch.randn(n, c), torch.randn(n, c) * 3
    p = F.softmax(v / T, -1)
    y = torch.randint(0, c, (n,))
    w = 0.7
    g = _grad(lambda zz: kd_loss(zz, y, p, temperature=T, soft_weight=w, hard_weight=0.0), z)
    q = F.softmax(z / T, -1)
    # d/dz [w T^2 CE(p, q_T)] averaged over n frames = w * T^2 * (q - p) / T / n
    assert torch.allclose(g, w * T**2 * (q - p) / T / n, atol=1e-6)


def test_T_squared_keeps_the_soft_gradient_magnitude_steady():
    z, v = torch.randn(64, 50), torch.randn(64, 50)
    y = torch.zeros(64, dtype=torch.long)
    norms = {}
    for T in (2.0, 5.0, 10.0, 20.0):
        p = F.softmax(v / T, -1)
        with_sq = _grad(lambda zz: kd_loss(zz, y, p, temperature=T, soft_weight=1.0, hard_weight=0.0), z).norm().item()
        without = _grad(lambda zz: soft_cross_entropy(zz, p, T).mean(), z).norm().item()
        norms[T] = (with_sq, without)
    with_sq = [a for a, _ in norms.values()]
    without = [b for _, b in norms.values()]
    assert max(with_sq) / min(with_sq) < 3.0  # steady with T^2 (it tends to a constant)
    assert max(without) / min(without) > 50.0  # falls like 1/T^2 without it


def test_high_temperature_gradient_approaches_logit_matching():
    n, c, T = 5, 9, 200.0
    z, v = torch.randn(n, c), torch.randn(n, c)
    z, v = z - z.mean(-1, keepdim=True), v - v.mean(-1, keepdim=True)
    p = F.softmax(v / T, -1)
    g = _grad(lambda zz: soft_cross_entropy(zz, p, T).sum(), z)  # unscaled soft CE, summed over frames
    expected = (z - v) / (c * T**2)  # the paper's eq. 3 limit: (z - v) / (N T^2)
    assert torch.allclose(g, expected, rtol=2e-2, atol=1e-7)


def test_reduction_is_per_frame_not_per_class():
    z, v = torch.randn(4, 30), torch.randn(4, 30)
    p = F.softmax(v, -1)
    y = torch.zeros(4, dtype=torch.long)
    expected = (-(p * F.log_softmax(z, -1)).sum(-1)).mean()
    assert torch.allclose(kd_loss(z, y, p, temperature=1.0, soft_weight=1.0, hard_weight=0.0), expected)
    # doubling the class count with zero-probability classes must not halve the loss
    z2 = torch.cat([z, torch.full((4, 30), -1e4)], 1)
    p2 = torch.cat([p, torch.zeros(4, 30)], 1)
    assert torch.allclose(kd_loss(z2, y, p2, temperature=1.0, soft_weight=1.0, hard_weight=0.0), expected, atol=1e-5)


def test_hard_term_only_on_labelled_frames():
    """Frames labelled -100 (untranscribed transfer audio) keep the soft term, lose the hard one."""
    z = torch.randn(6, 5)
    y = torch.tensor([0, 1, 2, -100, 3, -100])
    p = F.softmax(torch.randn(6, 5), -1)
    loss = build_criterion(LossConfig(loss="kd", temperature=3.0, soft_weight=1.0, hard_weight=0.5))(z, y, p)
    keep = y != -100
    ref = 9.0 * soft_cross_entropy(z, p, 3.0).mean() + 0.5 * F.cross_entropy(z[keep], y[keep])
    assert torch.allclose(loss, ref)
    with pytest.raises(ValueError, match="unknown loss"):
        build_criterion(LossConfig(loss="nope"))


def test_ensemble_combination_and_topk_round_trip():
    logits = torch.randn(3, 10, 20)
    a = ensemble_soft_targets(logits, 2.0, "arithmetic")
    g = ensemble_soft_targets(logits, 2.0, "geometric")
    assert torch.allclose(a.sum(-1), torch.ones(10)) and torch.allclose(g.sum(-1), torch.ones(10))
    assert torch.allclose(a, F.softmax(logits / 2.0, -1).mean(0))
    idx, logp = topk_targets(a, 20)
    assert torch.allclose(dense_from_topk(idx, logp, 20), a, atol=1e-6)
    idx, logp = topk_targets(a, 3)
    d = dense_from_topk(idx, logp, 20)
    assert torch.allclose(d.sum(-1), torch.ones(10)) and ((d > 0).sum(-1) == 3).all()

"""Acoustic models by name, the training loop (resume, NaN), soft-target storage."""
import numpy as np
import pytest
import torch

from asr_kd.distill.losses import DistillConfig
from asr_kd.nnet.data import FrameData
from asr_kd.nnet.models import ModelConfig, build_model
from asr_kd.nnet.train import TrainConfig, load_model, predict_logits, train_model


def toy_frames(n_utts=12, frames=40, dim=8, classes=5, seed=0) -> FrameData:
    """Frames whose class is readable from the features (so a model can learn them)."""
    centres = np.random.default_rng(123).standard_normal((classes, dim)) * 2  # same classes in every set
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n_utts * frames)
    feats = (centres[labels] + rng.standard_normal((len(labels), dim))).astype(np.float32)
    starts = np.repeat(np.arange(n_utts) * frames, frames)
    return FrameData(torch.from_numpy(feats), torch.from_numpy(labels), torch.from_numpy(starts),
                     torch.from_numpy(starts + frames), [f"u{i}" for i in range(n_utts)], np.arange(n_utts + 1) * frames)


@pytest.mark.parametrize("name", ["dnn", "tdnn"])
def test_models_by_name_map_windows_to_logits(name):
    cfg = ModelConfig(name=name, context=4, hidden=16, num_layers=2, tdnn_layers=((3, 1), (3, 1), (3, 2)))
    model = build_model(cfg, feat_dim=8, num_pdfs=5)
    assert model(torch.randn(7, 9, 8)).shape == (7, 5)
    with pytest.raises(ValueError, match="unknown model"):
        build_model(ModelConfig(name="lstm"), 8, 5)


def test_windows_stay_inside_the_utterance():
    data = toy_frames(n_utts=2, frames=5, dim=1)
    data.feats = torch.arange(10, dtype=torch.float32)[:, None]
    w = data.windows(torch.tensor([0, 4, 5]), context=2)[..., 0]
    assert w[0].tolist() == [0, 0, 0, 1, 2]
    assert w[1].tolist() == [2, 3, 4, 4, 4]
    assert w[2].tolist() == [5, 5, 5, 6, 7]


def test_training_learns_and_resumes_to_the_same_model(tmp_path):
    train, dev = toy_frames(seed=0), toy_frames(seed=1, n_utts=4)
    mcfg = ModelConfig(context=1, hidden=32, num_layers=1)
    full = train_model(train, dev, 5, tmp_path / "full", mcfg, TrainConfig(epochs=2, batch_size=32, lr=0.01), seed=3)
    assert full["best_dev_frame_acc"] > 0.6
    train_model(train, dev, 5, tmp_path / "killed", mcfg, TrainConfig(epochs=1, batch_size=32, lr=0.01), seed=3)
    resumed = train_model(train, dev, 5, tmp_path / "killed", mcfg, TrainConfig(epochs=2, batch_size=32, lr=0.01), seed=3)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    a = torch.load(tmp_path / "full" / "epoch-2.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "killed" / "epoch-2.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    model = load_model(tmp_path / "full" / "best.pt")
    assert predict_logits(model, dev).shape == (len(dev), 5)


def test_nan_loss_is_a_clear_error(tmp_path):
    train = toy_frames()
    train.feats[3, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 1"):
        train_model(train, toy_frames(n_utts=2), 5, tmp_path, ModelConfig(context=1, hidden=8, num_layers=1),
                    TrainConfig(epochs=1, batch_size=len(train)))


def test_distillation_needs_soft_targets(tmp_path):
    with pytest.raises(ValueError, match="needs soft targets"):
        train_model(toy_frames(), toy_frames(n_utts=2), 5, tmp_path, ModelConfig(context=1, hidden=8, num_layers=1),
                    TrainConfig(epochs=1), DistillConfig(loss="kd"))


@pytest.mark.parametrize("topk", [0, 2])
def test_soft_targets_round_trip_dense_and_topk(tmp_path, topk):
    from asr_kd.distill.speech import read_soft_targets, write_soft_targets

    data = toy_frames(n_utts=3, frames=6)
    probs = torch.softmax(torch.randn(len(data), 5), -1)
    meta = write_soft_targets(data, probs, tmp_path / "soft", temperature=2.0, topk=topk)
    back = read_soft_targets(tmp_path / "soft", data, 5)
    if topk == 0:
        assert torch.allclose(back, probs)
    else:
        assert ((back > 0).sum(-1) == 2).all() and torch.allclose(back.sum(-1), torch.ones(len(data)))
        top = probs.topk(2, -1).indices
        assert torch.equal(back.topk(2, -1).indices.sort(-1).values, top.sort(-1).values)
    assert meta["mb_per_hour"] > 0

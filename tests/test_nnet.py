"""Acoustic models by name, the training loop (resume, NaN), soft-target storage."""

from pathlib import Path

import numpy as np
import pytest
import torch

from asr_kd.nnet.losses import LossConfig, build_criterion
from asr_kd.nnet.data import FrameData
from asr_kd.nnet.models import ModelConfig, build_model
from asr_kd.nnet.train import TrainConfig, train_model
from asr_kd.nnet.checkpoint import load_model
from asr_kd.nnet.evaluate import predict_logits

REPO = Path(__file__).resolve().parents[1]


def toy_frames(n_utts=12, frames=40, dim=8, classes=5, seed=0) -> FrameData:
    """Frames whose class is readable from the features (so a model can learn them)."""
    centres = np.random.default_rng(123).standard_normal((classes, dim)) * 2  # same classes in every set
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n_utts * frames)
    feats = (centres[labels] + rng.standard_normal((len(labels), dim))).astype(np.float32)
    starts = np.repeat(np.arange(n_utts) * frames, frames)
    return FrameData(
        torch.from_numpy(feats),
        torch.from_numpy(labels),
        torch.from_numpy(starts),
        torch.from_numpy(starts + frames),
        [f"u{i}" for i in range(n_utts)],
        np.arange(n_utts + 1) * frames,
    )


@pytest.mark.parametrize("name", ["dnn", "tdnn"])
def test_models_by_name_map_windows_to_logits(name):
    cfg = ModelConfig(name=name, context=4, hidden=16, num_layers=2, tdnn_layers=((3, 1), (3, 1), (3, 2)))
    model = build_model(cfg, feat_dim=8, num_pdfs=5)
    assert model(torch.randn(7, 9, 8)).shape == (7, 5)
    with pytest.raises(ValueError, match="unknown model"):
        build_model(ModelConfig(name="lstm"), 8, 5)


def _speech_configs():
    """Every config whose model section has a frame context (the speech recipes'; not MNIST's)."""
    from asr_kd.utils.config import load_yaml

    found = sorted(p for d in [REPO / "conf", *REPO.glob("recipes/*/conf")] for p in d.glob("*.yaml"))
    return [str(p.relative_to(REPO)) for p in found if "context" in (load_yaml(p).get("model") or {})]


@pytest.mark.parametrize("config", _speech_configs())
def test_every_speech_config_builds_its_model_and_the_other_architecture(config):
    """A config's model section builds as given, and as a tdnn (stage 19's other members; a tdnn recipe's
    are dnn): its tdnn_layers' receptive field fits the config's window."""
    from dataclasses import replace

    from asr_kd.utils.config import section

    cfg = section(REPO / config, "model", ModelConfig)
    for name in ("dnn", "tdnn"):
        net = build_model(replace(cfg, name=name), 40, 10)
        assert net(torch.zeros(2, 2 * cfg.context + 1, 40)).shape == (2, 10)


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
    full = train_model(
        train,
        dev,
        5,
        out_dir=tmp_path / "full",
        model_cfg=mcfg,
        cfg=TrainConfig(epochs=2, batch_size=32, lr=0.01),
        seed=3,
    )
    assert full["best_dev_frame_acc"] > 0.6
    train_model(
        train,
        dev,
        5,
        out_dir=tmp_path / "killed",
        model_cfg=mcfg,
        cfg=TrainConfig(epochs=1, batch_size=32, lr=0.01),
        seed=3,
    )
    resumed = train_model(
        train,
        dev,
        5,
        out_dir=tmp_path / "killed",
        model_cfg=mcfg,
        cfg=TrainConfig(epochs=2, batch_size=32, lr=0.01),
        seed=3,
    )
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    a = torch.load(tmp_path / "full" / "epoch-2.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "killed" / "epoch-2.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    model = load_model(tmp_path / "full" / "best.pt")
    assert predict_logits(model, dev).shape == (len(dev), 5)


def test_dev_accuracy_batch_by_batch_equals_the_one_over_all_logits():
    """Training scores dev without holding its (frames x pdfs) logits; the figure is the same,
    padding frames (label -100) left out."""
    from asr_kd.nnet.evaluate import frame_accuracy, model_frame_accuracy

    dev = toy_frames(seed=1, n_utts=9)
    dev.labels[::7] = -100
    torch.manual_seed(0)
    model = build_model(ModelConfig(context=1, hidden=8, num_layers=1), 8, 5)
    expected = frame_accuracy(predict_logits(model, dev), dev.labels)
    assert 0 < expected < 1
    assert model_frame_accuracy(model, dev, batch_size=50) == expected


def test_mixed_precision_training_learns(tmp_path):
    """train.amp: bfloat16 autocast on the CPU (float16 with gradient scaling on a GPU)."""
    train, dev = toy_frames(seed=0), toy_frames(seed=1, n_utts=4)
    res = train_model(
        train,
        dev,
        5,
        out_dir=tmp_path / "amp",
        model_cfg=ModelConfig(context=1, hidden=32, num_layers=1),
        cfg=TrainConfig(epochs=2, batch_size=32, lr=0.01, amp=True),
        seed=3,
    )
    assert res["best_dev_frame_acc"] > 0.6 and all(np.isfinite(h["loss"]) for h in res["history"])


def test_fused_optimizer_step_learns_like_the_multi_tensor_one(tmp_path):
    """train.fused_optimizer: torch's one-kernel Adam; the same training to rounding (and resumable)."""
    train, dev = toy_frames(seed=0), toy_frames(seed=1, n_utts=4)
    mcfg = ModelConfig(context=1, hidden=32, num_layers=1)
    runs = {
        f: train_model(
            train,
            dev,
            5,
            out_dir=tmp_path / str(f),
            model_cfg=mcfg,
            cfg=TrainConfig(epochs=2, batch_size=32, lr=0.01, fused_optimizer=f),
            seed=3,
        )
        for f in (False, True)
    }
    assert runs[True]["best_dev_frame_acc"] > 0.6
    for a, b in zip(runs[False]["history"], runs[True]["history"]):
        assert abs(a["loss"] - b["loss"]) < 1e-3 * a["loss"]
    ckpt = torch.load(tmp_path / "True" / "epoch-2.pt", weights_only=True)
    assert all(g["fused"] for g in ckpt["optimizer"]["param_groups"])


def test_checkpoints_of_other_labels_are_not_resumed(tmp_path, caplog):
    """A rerun after the alignment changed trains from scratch; resuming would keep a stale model."""
    train, dev = toy_frames(seed=0), toy_frames(seed=1, n_utts=4)
    mcfg, tcfg = ModelConfig(context=1, hidden=32, num_layers=1), TrainConfig(epochs=2, batch_size=32, lr=0.01)
    train_model(train, dev, 5, out_dir=tmp_path / "run", model_cfg=mcfg, cfg=tcfg, seed=3)
    relabelled = toy_frames(seed=0)
    relabelled.labels = (relabelled.labels + 1) % 5
    fresh = train_model(relabelled, dev, 5, out_dir=tmp_path / "fresh", model_cfg=mcfg, cfg=tcfg, seed=3)
    rerun = train_model(relabelled, dev, 5, out_dir=tmp_path / "run", model_cfg=mcfg, cfg=tcfg, seed=3)
    assert "training from scratch" in caplog.text

    def curve(run):
        return [(h["epoch"], h["loss"], h["dev_frame_acc"]) for h in run["history"]]

    assert curve(rerun) == curve(fresh) and len(curve(fresh)) == 2
    a = torch.load(tmp_path / "fresh" / "epoch-2.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "run" / "epoch-2.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    caplog.clear()
    again = train_model(
        relabelled, dev, 5, out_dir=tmp_path / "run", model_cfg=mcfg, cfg=tcfg, seed=3
    )  # same inputs: nothing to redo
    assert curve(again) == curve(rerun) and "training from scratch" not in caplog.text


def test_nan_loss_is_a_clear_error(tmp_path):
    train = toy_frames()
    train.feats[3, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 1"):
        train_model(
            train,
            toy_frames(n_utts=2),
            5,
            out_dir=tmp_path,
            model_cfg=ModelConfig(context=1, hidden=8, num_layers=1),
            cfg=TrainConfig(epochs=1, batch_size=len(train)),
        )


def test_distillation_needs_soft_targets(tmp_path):
    with pytest.raises(ValueError, match="needs soft targets"):
        train_model(
            toy_frames(),
            toy_frames(n_utts=2),
            5,
            out_dir=tmp_path,
            model_cfg=ModelConfig(context=1, hidden=8, num_layers=1),
            cfg=TrainConfig(epochs=1),
            criterion=build_criterion(LossConfig(loss="kd")),
        )


@pytest.mark.parametrize("topk", [0, 3])
def test_soft_targets_round_trip_dense_and_topk(tmp_path, topk, tiny_features):
    """Streamed soft targets of two teachers on the tiny corpus equal the in-memory computation."""
    from lhotse import CutSet

    from asr_kd.data.features import FeatureNormalizer
    from asr_kd.nnet.targets import ensemble_soft_targets
    from asr_kd.distill.soft_targets import read_soft_targets, write_soft_targets
    from asr_kd.nnet.evaluate import teacher_logits
    from asr_kd.nnet.data import load_frames
    from asr_kd.nnet.checkpoint import save_checkpoint

    cuts = CutSet.from_file(tiny_features / "fbank" / "digits_cuts_train.jsonl.gz").to_eager()
    # fake pdf labels: these tests only need frame-aligned arrays
    norm = FeatureNormalizer.load(tiny_features / "fbank" / "cmvn.npz")
    teachers = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        cfg = ModelConfig(context=2, hidden=16, num_layers=1)
        path = tmp_path / f"t{seed}.pt"
        save_checkpoint(path, build_model(cfg, 40, 6), cfg, feat_dim=40, num_pdfs=6, extra={})
        teachers.append(path)
    data = load_frames(cuts, norm, with_labels=False)
    expected = ensemble_soft_targets(teacher_logits(teachers, data), 2.0)
    meta = write_soft_targets(cuts, norm, teachers, out_dir=tmp_path / "soft", temperature=2.0, topk=topk, chunk_cuts=3)
    stored = read_soft_targets(tmp_path / "soft", data, 6)
    back = stored[torch.arange(len(data))]  # top-k: densified rows
    if topk == 0:
        assert torch.allclose(back, expected, atol=1e-6)
    else:  # kept compact in memory: int16 indices, float16 log-probabilities
        assert (
            stored.idx.dtype == torch.int16
            and stored.logp.dtype == torch.float16
            and stored.idx.shape == (len(data), 3)
        )
        assert ((back > 0).sum(-1) == 3).all() and torch.allclose(back.sum(-1), torch.ones(len(data)))
        renormalised = expected.gather(1, stored.idx.long())
        renormalised = renormalised / renormalised.sum(-1, keepdim=True)
        assert torch.allclose(back.gather(1, stored.idx.long()), renormalised, atol=2e-3)  # float16 log-probs
        assert torch.equal(back.topk(3, -1).indices.sort(-1).values, expected.topk(3, -1).indices.sort(-1).values)
    assert meta["num_frames"] == len(data) and meta["mb_per_hour"] > 0
    # a rerun keeps targets of the same teachers and settings, and redoes them when a teacher changed
    h5 = tmp_path / "soft" / "soft_targets.h5"
    written = h5.stat().st_mtime_ns
    assert (
        write_soft_targets(cuts, norm, teachers, out_dir=tmp_path / "soft", temperature=2.0, topk=topk, chunk_cuts=3)
        == meta
    )
    assert h5.stat().st_mtime_ns == written
    torch.manual_seed(3)
    save_checkpoint(teachers[1], build_model(cfg, 40, 6), cfg, feat_dim=40, num_pdfs=6, extra={})
    again = write_soft_targets(
        cuts, norm, teachers, out_dir=tmp_path / "soft", temperature=2.0, topk=topk, chunk_cuts=3
    )
    assert again["key"] != meta["key"] and h5.stat().st_mtime_ns != written
    assert not torch.equal(read_soft_targets(tmp_path / "soft", data, 6)[torch.arange(len(data))], back)
    # written in 3 parallel shards: the same targets, read back through one manifest
    sharded = write_soft_targets(
        cuts, norm, teachers, out_dir=tmp_path / "sharded", temperature=2.0, topk=topk, chunk_cuts=3, num_jobs=3
    )
    assert sharded["shards"] == 3 and len(list((tmp_path / "sharded").glob("soft_targets.*.h5"))) == 3
    assert torch.equal(
        read_soft_targets(tmp_path / "sharded", data, 6)[torch.arange(len(data))],
        read_soft_targets(tmp_path / "soft", data, 6)[torch.arange(len(data))],
    )


def test_results_md_blocks_are_replaced_not_duplicated(tmp_path):
    from asr_kd.utils.results import update_results_md

    path = tmp_path / "RESULTS.md"
    update_results_md(path, "(5a) table", ["| a | 1 |"])
    update_results_md(path, "(5b) table", ["| b | 2 |"])
    update_results_md(path, "(5a) table", ["| a | 3 |"])
    text = path.read_text()
    assert text.count("(5a) table -->") == 2 and "| a | 3 |" in text and "| a | 1 |" not in text
    assert text.index("| a | 3 |") < text.index("| b | 2 |")

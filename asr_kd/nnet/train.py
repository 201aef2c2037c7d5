"""Training of one model: hard labels (baseline, ensemble members) or soft targets (distilled
student), the loss chosen by name (asr_kd.distill.losses). Speech frames (asr_kd.nnet.data.FrameData)
and images (asr_kd.images.data.ImageData) share this loop: the data object gives ``windows``,
``labels``, ``soft`` and, optionally, a training-time ``augment`` and a ``teacher_model`` whose
``teacher_targets`` give soft targets for the (augmented) batch itself.

Per epoch: a seeded shuffle of all training examples, Adam (or SGD), dev accuracy, and a
checkpoint ``epoch-N.pt`` written atomically (model, optimiser, learning rate, history); the
learning rate halves when dev accuracy stops improving (Kaldi's "newbob"; or a cosine
schedule for fixed-length runs). ``best.pt`` is the epoch with the best dev accuracy. A killed
run resumes from its last checkpoint; checkpoints of other inputs (data, labels, config, seed) are
discarded instead (``run_fingerprint``). TensorBoard scalars go to ``<out>/tensorboard``. A NaN/inf loss stops training with the epoch and batch named.
"""
import hashlib
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from tqdm import tqdm

from asr_kd.distill.losses import DistillConfig, DistillationLoss
from asr_kd.nnet.data import FrameData
from asr_kd.nnet.models import ModelConfig, build_model
from asr_kd.utils.io import atomic_path, fingerprint, write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 6
    batch_size: int = 256
    lr: float = 1e-3
    lr_decay: float = 0.5
    weight_decay: float = 0.0
    threads: int = 1  # torch intra-op threads (ensemble members run one process per core)
    optimizer: str = "adam"  # adam | sgd (momentum 0.9)
    schedule: str = "newbob"  # newbob: halve lr when dev accuracy stalls | cosine: anneal to 0 over the epochs


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run_fingerprint(train, dev, num_pdfs: int, model_cfg: ModelConfig, cfg: TrainConfig, loss_cfg: DistillConfig,
                    seed: int, init_state: Optional[Dict] = None) -> str:
    """What a run trains on and how: the configs (thread count aside, and the epoch count unless the
    schedule depends on it: a longer newbob run continues a shorter one), seed, and digests of the
    training and dev tensors (features, labels, soft targets, a teacher's or initial weights) and the
    data's scalar settings (e.g. image jitter).
    Checkpoints carry it, so a rerun after the labels or the config changed starts over instead of
    resuming a stale model."""
    h = hashlib.sha256()
    tensors = _data_tensors(train) + _data_tensors(dev)
    teacher = getattr(train, "teacher_model", None)
    for state in (teacher.state_dict() if teacher is not None else {}, init_state or {}):
        tensors += [state[k] for k in sorted(state)]
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    settings = {"model": asdict(model_cfg), "loss": asdict(loss_cfg), "seed": seed, "num_pdfs": num_pdfs,
                "train": {**asdict(cfg), "threads": None, "epochs": cfg.epochs if cfg.schedule == "cosine" else None},
                "data": {k: v for k, v in vars(train).items() if isinstance(v, (bool, int, float, str))}}
    h.update(fingerprint(settings).encode())
    return h.hexdigest()[:16]


def _data_tensors(data) -> List[torch.Tensor]:
    """The tensors that define a data set: its own and, for a subset view, its base's."""
    base = getattr(data, "base", None)
    out = _data_tensors(base) if base is not None else []
    return out + [t for t in (getattr(data, n, None) for n in ("feats", "start", "end", "idx", "labels", "soft")) if isinstance(t, torch.Tensor)]


def save_checkpoint(path, model, model_cfg: ModelConfig, feat_dim: int, num_pdfs: int, extra: Dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "model_cfg": asdict(model_cfg), "feat_dim": feat_dim,
                    "num_pdfs": num_pdfs, **extra}, tmp)


def load_model(path, device=None) -> torch.nn.Module:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = ModelConfig(**{k: tuple(tuple(x) for x in v) if k == "tdnn_layers" else v for k, v in ck["model_cfg"].items()})
    model = build_model(cfg, ck["feat_dim"], ck["num_pdfs"])
    model.load_state_dict(ck["model"])
    model.context = cfg.context
    return model.to(device or "cpu").eval()


@torch.no_grad()
def predict_logits(model, data: FrameData, batch_size: int = 4096) -> torch.Tensor:
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for s in range(0, len(data), batch_size):
        idx = torch.arange(s, min(s + batch_size, len(data)))
        out.append(model(data.windows(idx, model.context).to(dev)).float().cpu())
    return torch.cat(out)


def frame_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    keep = labels >= 0
    return float((logits[keep].argmax(-1) == labels[keep]).float().mean())


def train_model(train: FrameData, dev: FrameData, num_pdfs: int, out_dir, model_cfg: ModelConfig, cfg: TrainConfig,
                loss_cfg: DistillConfig = DistillConfig(loss="ce"), seed: int = 0, init_state: Optional[Dict] = None) -> Dict:
    """Train (or resume) and return the history; best model in ``out_dir/best.pt``. ``init_state``
    (a state dict) initialises the model instead of random weights (e.g. a specialist from its
    generalist)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    device = _device()
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = build_model(model_cfg, train.feat_dim, num_pdfs)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device)
    model.context = model_cfg.context
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose adam or sgd")
    if cfg.schedule not in ("newbob", "cosine"):
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose newbob or cosine")
    criterion = DistillationLoss(loss_cfg)
    online = getattr(train, "teacher_model", None) is not None  # soft targets computed per batch
    if loss_cfg.loss != "ce" and train.soft is None and not online:
        raise ValueError(f"loss {loss_cfg.loss!r} needs soft targets (run the soft-targets stage)")
    history: List[Dict] = []
    lr, best_acc, start_epoch = cfg.lr, -1.0, 1
    key = run_fingerprint(train, dev, num_pdfs, model_cfg, cfg, loss_cfg, seed, init_state)
    done = sorted(out_dir.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    if done and torch.load(done[-1], map_location="cpu", weights_only=False).get("fingerprint") != key:
        log.warning("%s: its checkpoints were not made from these inputs (data, labels, config or seed differ, or they "
                    "carry no fingerprint): training from scratch", out_dir)
        for p in done + [out_dir / "best.pt", out_dir / "history.json"]:
            p.unlink(missing_ok=True)
        done = []
    if done:  # resume after a kill
        ck = torch.load(done[-1], map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        history, lr, best_acc = ck["history"], ck["lr"], ck["best_acc"]
        start_epoch = ck["epoch"] + 1
        torch.set_rng_state(ck["rng"])
        log.info("resuming %s after epoch %d", out_dir, ck["epoch"])
    tb = _tensorboard(out_dir)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(start_epoch - 1):  # the shuffles a resumed run would have drawn
        torch.randperm(len(train), generator=gen)
    for epoch in range(start_epoch, cfg.epochs + 1):
        if cfg.schedule == "cosine":
            lr = 0.5 * cfg.lr * (1 + math.cos(math.pi * (epoch - 1) / cfg.epochs))
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        perm = torch.randperm(len(train), generator=gen)
        t0, tot, nb = time.time(), 0.0, 0
        for b, s in enumerate(tqdm(range(0, len(perm), cfg.batch_size), desc=f"epoch {epoch}", mininterval=10,
                                   leave=False, disable=None)):
            idx = perm[s : s + cfg.batch_size]
            x = train.windows(idx, model_cfg.context)
            if hasattr(train, "augment"):  # e.g. image jitter; draws from the checkpointed torch RNG
                x = train.augment(x)
            x = x.to(device)
            y = train.labels[idx].to(device)
            if online:
                teacher = train.teacher_targets(x).to(device)
            else:
                teacher = train.soft[idx].to(device) if train.soft is not None else None
            loss = criterion(model(x), y, teacher)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{out_dir}: loss is {loss.item()} at epoch {epoch}, batch {b}; "
                                         f"lower the learning rate (now {lr}) or check the inputs")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += loss.item()
            nb += 1
        secs = time.time() - t0
        dev_acc = frame_accuracy(predict_logits(model, dev), dev.labels)
        rec = {"epoch": epoch, "loss": tot / max(nb, 1), "dev_frame_acc": dev_acc, "lr": lr,
               "seconds": round(secs, 2), "frames_per_second": round(len(train) / secs, 1)}
        history.append(rec)
        log.info("%s epoch %d: loss %.4f, dev frame accuracy %.4f, lr %.2g, %.0f frames/s", out_dir.name, epoch,
                 rec["loss"], dev_acc, lr, rec["frames_per_second"])
        if tb is not None:
            for k in ("loss", "dev_frame_acc", "lr", "frames_per_second"):
                tb.add_scalar(k, rec[k], epoch)
            tb.flush()
        improved = dev_acc > best_acc
        if improved:
            best_acc = dev_acc
            save_checkpoint(out_dir / "best.pt", model, model_cfg, train.feat_dim, num_pdfs, {"epoch": epoch, "dev_frame_acc": dev_acc})
        elif cfg.schedule == "newbob":
            lr *= cfg.lr_decay
        save_checkpoint(out_dir / f"epoch-{epoch}.pt", model, model_cfg, train.feat_dim, num_pdfs,
                        {"optimizer": opt.state_dict(), "history": history, "lr": lr, "best_acc": best_acc,
                         "epoch": epoch, "rng": torch.get_rng_state(), "fingerprint": key})
    write_json_atomic(out_dir / "history.json", history)
    if tb is not None:
        tb.close()
    return {"history": history, "best_dev_frame_acc": best_acc}


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a declared dependency; tolerate its absence anyway
        log.warning("tensorboard is not installed: no TensorBoard scalars")
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))

"""Training of one model: hard labels (baseline, ensemble members) or soft targets (distilled
student), through a criterion object (asr_kd.nnet.losses.build_criterion). Speech frames (asr_kd.nnet.data.FrameData)
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
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from tqdm import tqdm

from asr_kd.nnet import distributed
from asr_kd.nnet.checkpoint import safe_torch_load, save_checkpoint
from asr_kd.nnet.data import FrameSource
from asr_kd.nnet.evaluate import model_frame_accuracy, model_teacher_measures
from asr_kd.nnet.losses import Criterion, HardLabels, LossConfig
from asr_kd.nnet.models import ModelConfig, build_model
from asr_kd.utils.io import write_json_atomic
from asr_kd.utils.numerics import require_finite
from asr_kd.utils.validity import fingerprint, still_valid

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
    streaming: bool = False  # speech: read training frames from disk block by block (asr_kd.nnet.streaming)
    loader_workers: int = 1  # streaming: DataLoader processes that read and batch (0: the training process)
    block_frames: int = 100_000  # streaming: frames shuffled together (memory ~ block x feature dim x 4 bytes)
    amp: bool = False  # mixed precision: float16 + gradient scaling on a GPU, bfloat16 autocast on the CPU
    select_on: str = "dev_acc"  # dev_acc | dev_kl: which dev figure picks best.pt and drives newbob (dev_kl: a
    # distilled student's KL to its teacher on dev frames, which needs the teacher's dev probabilities)
    halve_below: float = 0.0  # newbob: halve the lr when an epoch improves the dev figure by at most this share of it
    max_halvings: int = 0  # newbob: stop after this many halvings (0: run every epoch)
    ddp: str = "average"  # several processes (torchrun, srun): how the ranks stay in step (asr_kd.nnet.distributed:
    # average = Kaldi's model averaging, the one that scales at batch 256; allreduce = one process's run, split)
    sync_every: int = 16  # ddp accumulate / average: batches between synchronisations
    scale_lr: bool = True  # ddp average on N ranks: each rank steps at N x lr (nnet3's rule: lr is the effective rate)
    fused_optimizer: bool = False  # torch's one-kernel Adam/SGD step (CPU and CUDA): about 7 ms less per step for the
    # default 0.8M-parameter model on one CPU thread (benchmarks/ddp_scaling.py); off by default because it rounds
    # differently (~2e-7 per step) from the multi-tensor step every recorded result was trained with

    def validate(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be adam or sgd, not {self.optimizer!r}")
        if self.schedule not in ("newbob", "cosine"):
            raise ValueError(f"schedule must be newbob or cosine, not {self.schedule!r}")
        if self.select_on not in ("dev_acc", "dev_kl"):
            raise ValueError(f"select_on must be dev_acc or dev_kl, not {self.select_on!r}")
        distributed.Synchroniser(self.ddp, self.sync_every, distributed.Ranks())  # checks ddp and sync_every
        if self.lr_decay > 1:
            raise ValueError(f"lr_decay must be at most 1, not {self.lr_decay!r}")


def run_fingerprint(
    train,
    dev,
    num_pdfs: int,
    *,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    loss_cfg: LossConfig,
    seed: int,
    init_state: Optional[Dict] = None,
    world: int = 1,
) -> str:
    """What a run trains on and how: the configs (thread count aside, and the epoch count unless the
    schedule depends on it: a longer newbob run continues a shorter one; the data-parallel method when
    it makes the run differ from one process's: ``world`` ranks under a ``train.ddp`` other than
    allreduce), seed, and digests of the
    training and dev tensors (features, labels, soft targets, a teacher's or initial weights) and the
    data's scalar settings (e.g. image jitter).
    Checkpoints carry it, so a rerun after the labels or the config changed starts over instead of
    resuming a stale model."""
    h = hashlib.sha256()
    streamed = train.streamed  # a StreamedFrames: its manifest's digest, not tensors
    if streamed:
        h.update(train.fingerprint_inputs().encode())
    tensors = ([] if streamed else _data_tensors(train)) + _data_tensors(dev)
    if cfg.select_on == "dev_kl":  # the teacher's dev probabilities then choose the model
        tensors.append(dev.teacher_probs)
    teacher = train.teacher_model
    for state in (teacher.state_dict() if teacher is not None else {}, init_state or {}):
        tensors += [state[k] for k in sorted(state)]
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    settings = {
        "model": asdict(model_cfg),
        "loss": asdict(loss_cfg),
        "seed": seed,
        "num_pdfs": num_pdfs,
        "train": {
            **_settings(cfg),
            "threads": None,
            "loader_workers": None,
            "epochs": cfg.epochs if cfg.schedule == "cosine" else None,
        },
        "data": {}
        if streamed
        else {k: v for k, v in vars(train).items() if isinstance(v, (bool, int, float, str)) and v != ""},
    }
    if world > 1 and cfg.ddp != "allreduce":
        settings["parallel"] = {"ddp": cfg.ddp, "sync_every": cfg.sync_every, "world": world}
        if cfg.ddp == "average" and cfg.scale_lr:
            settings["parallel"]["lr_scale"] = world
    h.update(fingerprint(settings).encode())
    return h.hexdigest()[:16]


# settings added after results were recorded: in a fingerprint only when off their defaults, so
# the checkpoints of runs that do not use them stay valid
_LATER_SETTINGS = {"select_on": "dev_acc", "halve_below": 0.0, "max_halvings": 0}


def _settings(cfg: TrainConfig) -> Dict:
    return {
        k: v
        for k, v in asdict(cfg).items()
        if _LATER_SETTINGS.get(k, object()) != v and k not in ("ddp", "sync_every", "scale_lr")
    }  # those: run_fingerprint's world


def _data_tensors(data) -> List[torch.Tensor]:
    """The tensors that define a data set: its own and, for a subset view, its base's."""
    base = getattr(data, "base", None)
    out = _data_tensors(base) if base is not None else []
    soft = getattr(data, "soft", None)
    sparse = soft.tensors() if hasattr(soft, "tensors") else []  # top-k targets kept sparse
    return (
        out
        + [
            t
            for t in (getattr(data, n, None) for n in ("feats", "start", "end", "idx", "labels", "soft"))
            if isinstance(t, torch.Tensor)
        ]
        + sparse
    )


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.schedule not in ("newbob", "cosine"):
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose newbob or cosine")
    fused = {"fused": True} if cfg.fused_optimizer else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, **fused)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose adam or sgd")


def resume(out_dir: Path, key: str, model, *, opt, cfg: TrainConfig) -> Tuple[List[Dict], float, float, int]:
    """(history, lr, best dev accuracy, first epoch to run): from the last ``epoch-N.pt`` when it was
    made from these inputs (``key``), else a fresh start after deleting the stale checkpoints."""
    done = sorted(out_dir.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    if not done:
        return [], cfg.lr, -1.0, 1
    ck = safe_torch_load(done[-1])
    if not still_valid(ck, key):
        log.warning(
            "%s: its checkpoints were not made from these inputs (data, labels, config or seed differ, or they "
            "carry no key): training from scratch",
            out_dir,
        )
        for p in done + [out_dir / "best.pt", out_dir / "history.json"]:
            p.unlink(missing_ok=True)
        return [], cfg.lr, -1.0, 1
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    torch.set_rng_state(ck["rng"])
    log.info("resuming %s after epoch %d", out_dir, ck["epoch"])
    return ck["history"], ck["lr"], ck["best_acc"], ck["epoch"] + 1


class Precision:
    """Full precision, or mixed (``TrainConfig.amp``): autocast around the forward pass (the loss is
    computed in float32), float16 with a gradient scaler on CUDA, bfloat16 (no scaler needed) elsewhere."""

    def __init__(self, enabled: bool, device: torch.device):
        self.enabled, self.device_type = enabled, device.type
        self.dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda") if enabled and device.type == "cuda" else None

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)


def _step(
    model,
    criterion: Criterion,
    opt,
    *,
    x,
    y,
    teacher,
    where: str,
    epoch: int,
    b: int,
    precision: Optional[Precision] = None,
    sync: Optional[distributed.Synchroniser] = None,
    nb: int = 0,
) -> float:
    """Forward, backward and (unless ``sync`` accumulates this batch's gradient with the next) an
    optimiser step on batch ``b`` of ``nb``."""
    sync = sync or distributed.Synchroniser.single()
    group = sync.accumulating(b, nb)
    with sync.no_sync(model, b, nb):
        if precision is not None and precision.enabled:
            with precision.autocast():
                logits = model(x)
            loss = criterion(logits.float(), y, teacher)  # the loss in float32
        else:
            loss = criterion(model(x), y, teacher)
        require_finite(
            loss,
            lambda: f"{where}: loss is {loss.item()} at epoch {epoch}, batch {b}; lower the learning rate "
            f"(now {opt.param_groups[0]['lr']}) or check the inputs",
        )
        if sync.starts_group(b, nb):
            opt.zero_grad(set_to_none=True)
        scaled = loss / group if group > 1 else loss
        if precision is not None and precision.scaler is not None:
            precision.scaler.scale(scaled).backward()
        else:
            scaled.backward()
    if sync.steps_after(b, nb):
        if precision is not None and precision.scaler is not None:
            precision.scaler.step(opt)
            precision.scaler.update()
        else:
            opt.step()
        sync.after_step(model, b)
    return loss.item()


def train_one_epoch(
    model,
    train,
    criterion: Criterion,
    *,
    opt,
    perm: torch.Tensor,
    batch_size: int,
    device,
    where: str,
    epoch: int,
    sync: Optional[distributed.Synchroniser] = None,
    precision: Optional[Precision] = None,
) -> Tuple[float, int]:
    """One pass over ``perm`` of in-memory data; returns (summed loss, batches). ``where`` names the
    run in errors. ``sync``: under torchrun, which batches this rank takes and how its steps are
    kept in step with the other ranks' (asr_kd.nnet.distributed.Synchroniser)."""
    model.train()
    context = getattr(model, "module", model).context  # DDP wraps the model
    online = train.teacher_model is not None  # soft targets computed per batch
    sync = sync or distributed.Synchroniser.single()
    batches = sync.rank_batches(perm, batch_size)
    tot, nb = 0.0, 0
    for b, idx in enumerate(
        tqdm(batches, desc=f"epoch {epoch}", mininterval=10, leave=False, disable=None if sync.r.main else True)
    ):
        x = train.augment(train.windows(idx, context))  # e.g. image jitter: the checkpointed torch RNG
        x = x.to(device)
        y = train.labels[idx].to(device)
        if online:
            teacher = train.teacher_targets(x).to(device)
        else:
            teacher = train.soft[idx].to(device) if train.soft is not None else None
        tot += _step(
            model,
            criterion,
            opt,
            x=x,
            y=y,
            teacher=teacher,
            where=where,
            epoch=epoch,
            b=b,
            precision=precision,
            sync=sync,
            nb=len(batches),
        )
        nb += 1
    sync.end_epoch(getattr(model, "module", model), opt)
    return tot, nb


def stream_one_epoch(
    model,
    loaders,
    criterion: Criterion,
    *,
    opt,
    device,
    where: str,
    epoch: int,
    precision: Optional[Precision] = None,
    sync: Optional[distributed.Synchroniser] = None,
) -> Tuple[float, int]:
    """One epoch of a ``StreamedFrames`` through its ``EpochLoaders`` (loader worker processes); the
    stream already holds this rank's batches (a share of each, or whole ones for ``average``)."""
    model.train()
    sync = sync or distributed.Synchroniser.single()
    tot, nb = 0.0, 0
    batches = loaders.batches(epoch)
    steps = loaders.dataset.steps_per_epoch
    for b in tqdm(
        range(steps),
        desc=f"epoch {epoch}",
        mininterval=10,
        leave=False,
        disable=None if loaders.dataset.rank == 0 else True,
    ):
        x, y, soft = next(batches)
        tot += _step(
            model,
            criterion,
            opt,
            x=x.to(device),
            y=y.to(device),
            teacher=soft.to(device) if soft is not None else None,
            where=where,
            epoch=epoch,
            b=b,
            precision=precision,
            sync=sync,
            nb=steps,
        )
        nb += 1
    batches.close()
    sync.end_epoch(getattr(model, "module", model), opt)
    return tot, nb


def train_model(
    train: FrameSource,
    dev: FrameSource,
    num_pdfs: int,
    *,
    out_dir,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    criterion: Optional[Criterion] = None,
    seed: int = 0,
    init_state: Optional[Dict] = None,
) -> Dict:
    """Train (or resume) and return the history; best model in ``out_dir/best.pt``. ``criterion``:
    a ``build_criterion`` result (default: hard labels). ``init_state`` (a state dict) initialises
    the model instead of random weights (e.g. a specialist from its generalist)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    criterion = criterion if criterion is not None else HardLabels(LossConfig(loss="ce"))
    torch.set_num_threads(cfg.threads)
    ranks = distributed.ranks()  # torchrun: data-parallel over ranks (asr_kd.nnet.distributed)
    device = distributed.device_for(ranks)
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = build_model(model_cfg, train.feat_dim, num_pdfs)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device)
    opt = build_optimizer(model, cfg)
    online = train.teacher_model is not None
    streamed = train.streamed
    has_soft = (
        train.soft if isinstance(train.soft, bool) else train.soft is not None
    )  # a stream says whether it has them
    if criterion.needs_teacher and not has_soft and not online:
        raise ValueError(f"loss {criterion.cfg.loss!r} needs soft targets (run the soft-targets stage)")
    if cfg.select_on == "dev_kl" and dev.teacher_probs is None:
        raise ValueError(
            f"{out_dir}: select_on dev_kl needs the teacher's probabilities on dev (a distilled student "
            "given its teachers)"
        )
    key = run_fingerprint(
        train,
        dev,
        num_pdfs,
        model_cfg=model_cfg,
        cfg=cfg,
        loss_cfg=criterion.cfg,
        seed=seed,
        init_state=init_state,
        world=ranks.world,
    )
    if ranks.main:  # rank 0 first: it deletes stale checkpoints before any other rank reads them
        state = resume(out_dir, key, model, opt=opt, cfg=cfg)
    distributed.barrier(ranks)
    if not ranks.main:
        state = resume(out_dir, key, model, opt=opt, cfg=cfg)
    history, lr, best_acc, start_epoch = state
    sync = distributed.Synchroniser(cfg.ddp, cfg.sync_every, ranks, scale_lr=cfg.scale_lr)
    parallel = sync.wrap(model)
    precision = Precision(cfg.amp, device)
    tb = _tensorboard(out_dir) if ranks.main else None
    gen = torch.Generator().manual_seed(seed)
    num_train = train.num_frames if streamed else len(train)
    for _ in range(0 if streamed else start_epoch - 1):  # the shuffles a resumed run would have drawn
        torch.randperm(num_train, generator=gen)
    if streamed:
        from asr_kd.nnet.streaming import EpochLoaders

        loaders = EpochLoaders(train, cfg.loader_workers, cfg.epochs)
    if cfg.max_halvings and sum(1 for r in history if r.get("halved")) >= cfg.max_halvings:
        start_epoch = cfg.epochs + 1  # a resumed run that had already stopped after its last halving
    for epoch in range(start_epoch, cfg.epochs + 1):
        if cfg.schedule == "cosine":
            lr = 0.5 * cfg.lr * (1 + math.cos(math.pi * (epoch - 1) / cfg.epochs))
        for g in opt.param_groups:
            g["lr"] = lr * sync.lr_scale
        t0 = time.time()
        if streamed:  # the stream shuffles itself, seeded by (seed, epoch)
            tot, nb = stream_one_epoch(
                parallel,
                loaders,
                criterion,
                opt=opt,
                device=device,
                where=str(out_dir),
                epoch=epoch,
                precision=precision,
                sync=sync,
            )
        else:
            perm = torch.randperm(num_train, generator=gen)
            tot, nb = train_one_epoch(
                parallel,
                train,
                criterion,
                opt=opt,
                perm=perm,
                batch_size=cfg.batch_size,
                device=device,
                where=str(out_dir),
                epoch=epoch,
                sync=sync,
                precision=precision,
            )
        tot = distributed.mean_over_ranks(tot, ranks)
        secs = time.time() - t0
        # a student's one pass over dev gives its accuracy and its KL to the teacher
        measures = (
            model_teacher_measures(model, dev, dev.teacher_probs, temperature=criterion.cfg.temperature)
            if dev.teacher_probs is not None
            else None
        )
        dev_acc = measures["frame_acc"] if measures else model_frame_accuracy(model, dev)
        rec = {
            "epoch": epoch,
            "loss": tot / max(nb, 1),
            "dev_frame_acc": dev_acc,
            "lr": lr,
            "seconds": round(secs, 2),
            "frames_per_second": round(
                nb * train.local_batch * ranks.world / secs if streamed else num_train / secs, 1
            ),
        }
        if measures:  # a student: how close it is to its teacher off the training frames
            rec.update({"dev_kl": measures["kl"], "dev_agreement": measures["agreement"]})
        history.append(rec)
        log.info(
            "%s epoch %d: loss %.4f, dev frame accuracy %.4f%s, lr %.2g, %.0f frames/s",
            out_dir.name,
            epoch,
            rec["loss"],
            dev_acc,
            f", dev KL to teacher {rec['dev_kl']:.4f}" if "dev_kl" in rec else "",
            lr,
            rec["frames_per_second"],
        )
        if tb is not None:
            for k in ("loss", "dev_frame_acc", "lr", "frames_per_second"):
                tb.add_scalar(k, rec[k], epoch)
            tb.flush()
        # every rank computed the same figure on the same weights; KL is negated so that higher is better
        score = dev_acc if cfg.select_on == "dev_acc" else -rec["dev_kl"]
        gain = score - best_acc
        improved = gain > 0 or len(history) == 1
        if improved:
            best_acc = score
        halvings = sum(1 for r in history if r.get("halved"))
        # halve when dev got no better; with halve_below, also when it improved by less than that share,
        # and once halving has started, every epoch (Kaldi's newbob)
        small = cfg.halve_below > 0 and (halvings > 0 or gain <= cfg.halve_below * abs(best_acc))
        if cfg.schedule == "newbob" and (not improved or small):
            lr *= cfg.lr_decay
            rec["halved"] = True
            halvings += 1
        if ranks.main:
            if improved:
                save_checkpoint(
                    out_dir / "best.pt",
                    model,
                    model_cfg,
                    feat_dim=train.feat_dim,
                    num_pdfs=num_pdfs,
                    extra={"epoch": epoch, "dev_frame_acc": dev_acc},
                )
            save_checkpoint(
                out_dir / f"epoch-{epoch}.pt",
                model,
                model_cfg,
                feat_dim=train.feat_dim,
                num_pdfs=num_pdfs,
                extra={
                    "optimizer": opt.state_dict(),
                    "history": history,
                    "lr": lr,
                    "best_acc": best_acc,
                    "epoch": epoch,
                    "rng": torch.get_rng_state(),
                    "key": key,
                },
            )
        distributed.barrier(ranks)
        if cfg.max_halvings and halvings >= cfg.max_halvings:
            log.info("%s: stopping after epoch %d (%d learning-rate halvings)", out_dir.name, epoch, halvings)
            break
    if streamed:
        loaders.close()
    chosen = max(
        history or [{"epoch": 0, "dev_frame_acc": float("nan"), "dev_kl": float("nan")}],
        key=lambda r: r["dev_frame_acc"] if cfg.select_on == "dev_acc" else -r["dev_kl"],
    )
    result = {"history": history, "best_dev_frame_acc": chosen["dev_frame_acc"], "best_epoch": chosen["epoch"]}
    if ranks.world > 1:
        digests = distributed.digests_of_all_ranks(model, ranks)
        if len(set(digests)) != 1:
            raise RuntimeError(f"{out_dir}: the ranks ended with different weights ({digests})")
        result["ranks"] = {"world": ranks.world, "weights_digests": digests}
    if ranks.main:
        write_json_atomic(out_dir / "history.json", history)
        if ranks.world > 1:
            write_json_atomic(out_dir / "ranks.json", result["ranks"])
    if tb is not None:
        tb.close()
    return result


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a declared dependency; tolerate its absence anyway
        log.warning("tensorboard is not installed: no TensorBoard scalars")
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))

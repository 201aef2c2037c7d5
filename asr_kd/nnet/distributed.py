"""Data-parallel training across processes (torch.distributed), for ``torchrun``:

    torchrun --nproc_per_node 2 -m asr_kd train-dnn ...                        # one machine
    torchrun --nnodes 2 --node_rank R --master_addr HOST --master_port 29500 \\
             --nproc_per_node 8 -m asr_kd train-dnn ...                        # several (shared --out folder)

``init_from_env`` joins the process group torchrun describes in the environment (gloo on CPU,
NCCL on GPUs, one GPU per local rank). Every rank draws the same seeded permutation each epoch
and takes its strided share of every global batch (``train.batch_size`` stays the global batch
size, so N processes follow the single-process run at the same batch size); DDP averages the
gradients. Rank 0 alone writes checkpoints; all ranks resume from them (the output folder must be
shared between machines). Without torchrun (``WORLD_SIZE`` unset or 1) nothing changes.

Under Slurm, ``srun`` can start the ranks itself (one task per rank, any number of nodes):
``init_from_env`` then reads ``SLURM_PROCID`` / ``SLURM_STEP_NUM_TASKS`` / ``SLURM_LOCALID`` and
meets at the step's first node (``MASTER_PORT`` or a port derived from the job id).

How the ranks stay in step is ``train.ddp`` (``SYNC_METHODS``; benchmarks/ddp_scaling.py measures
them side by side):

- ``allreduce``: each rank takes its 1/N share of every global batch of ``batch_size`` frames and
  DDP all-reduces the gradients every step (the single-process run at the same batch, up to float
  summation order).
- ``allreduce_fp16``: the same with the gradients sent as float16 (DDP's compression hook).
- ``accumulate``: shares of each global batch, gradients summed locally (``no_sync``) and all-reduced
  every ``sync_every`` batches, one optimiser step per ``sync_every`` global batches.
- ``average`` (Kaldi nnet3's parallel jobs with model averaging; "local SGD"): each rank steps its
  own optimiser on whole batches of ``batch_size`` frames, its 1/N of the epoch's shuffle, and the
  ranks average their parameters every ``sync_every`` steps, and parameters and optimiser state at
  the end of every epoch (so that every rank checkpoints and resumes the same state). An epoch
  costs each rank 1/N of the steps: the per-step costs that do not shrink with a smaller share
  (the optimiser step, Python and kernel overheads) shrink with N too. As in nnet3, where ``lr``
  is the *effective* learning rate and each of N jobs trains at N x it (``train.scale_lr``): an
  average of N rank updates moves the model about as far as one of them, so unscaled, an epoch on
  N ranks would make the progress of 1/N of an epoch, and models stopped by the schedule end
  less fitted (flatter posteriors) than one process's.
"""

import contextlib
import hashlib
import os
import subprocess
from dataclasses import dataclass
from typing import List

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_from_env() -> Ranks:
    """Join the process group torchrun (or a multi-task ``srun`` step) describes, once;
    ``Ranks()`` when launched as a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and _slurm_tasks() > 1:
        _env_from_slurm()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return ranks()


def _slurm_tasks() -> int:
    """Tasks of the current ``srun`` step (the batch script itself is one process: 0 there)."""
    if "SLURM_PROCID" not in os.environ or os.environ.get("SLURM_STEP_ID", "batch") in ("batch", "extern"):
        return 0
    return int(os.environ.get("SLURM_STEP_NUM_TASKS", "0"))  # srun sets it; a batch script's SLURM_NTASKS is not ours


def _env_from_slurm() -> None:
    """torch.distributed's environment from an ``srun`` step's: rank, world, local rank, and the
    step's first node as the meeting point."""
    nodes = os.environ.get("SLURM_STEP_NODELIST") or os.environ["SLURM_JOB_NODELIST"]
    first = subprocess.run(
        ["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    os.environ.update(
        {
            "RANK": os.environ["SLURM_PROCID"],
            "WORLD_SIZE": str(_slurm_tasks()),
            "LOCAL_RANK": os.environ.get("SLURM_LOCALID", "0"),
            "MASTER_ADDR": first,
        }
    )
    os.environ.setdefault("MASTER_PORT", str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000))


def ranks() -> Ranks:
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def device_for(r: Ranks) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", r.local_rank if r.world > 1 else torch.cuda.current_device())
    return torch.device("cpu")


SYNC_METHODS = ("allreduce", "allreduce_fp16", "accumulate", "average")


class Synchroniser:
    """One training run's data parallelism (``train.ddp``, see the module docstring): which batches
    this rank takes, and how its optimiser steps are kept in step with the other ranks'. With one
    process every method is plain training."""

    def __init__(self, method: str, every: int, r: Ranks, *, scale_lr: bool = True):
        if method not in SYNC_METHODS:
            raise ValueError(f"train.ddp must be one of {', '.join(SYNC_METHODS)}, not {method!r}")
        if every < 1:
            raise ValueError(f"train.sync_every must be at least 1, not {every}")
        self.method, self.every, self.r = method, every, r
        self.plain = r.world <= 1
        # ``average``: each rank's optimiser runs at N x the schedule's (effective) learning rate
        self.lr_scale = r.world if scale_lr and not self.plain and method == "average" else 1

    @classmethod
    def single(cls) -> "Synchroniser":
        """One process: plain training."""
        return cls("allreduce", 1, Ranks())

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the training loop calls: DDP for the gradient methods, the model itself otherwise."""
        if self.plain or self.method == "average":
            return model
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[self.r.local_rank] if torch.cuda.is_available() else None)
        if self.method == "allreduce_fp16":
            from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

            ddp.register_comm_hook(None, default_hooks.fp16_compress_hook)
        return ddp

    def rank_batches(self, perm: torch.Tensor, batch_size: int) -> List[torch.Tensor]:
        """This rank's batches of one epoch's shuffle ``perm``: its share of every global batch, or
        (``average``) whole batches from its 1/N of the shuffle, the same count on every rank (the
        at most N-1 frames an uneven split leaves over wait for the next epoch's shuffle)."""
        rank, world = self.r.rank, self.r.world
        if self.plain or self.method != "average":
            return [perm[s : s + batch_size][rank::world] for s in range(0, len(perm), batch_size)]
        mine = perm[rank::world][: len(perm) // world]
        return [mine[s : s + batch_size] for s in range(0, len(mine), batch_size)]

    def accumulating(self, b: int, nb: int) -> int:
        """``accumulate``: how many batches the gradient of batch ``b`` (of ``nb``) is summed over; 1 otherwise."""
        if self.plain or self.method != "accumulate":
            return 1
        return min(self.every, nb - (b // self.every) * self.every)

    def starts_group(self, b: int, nb: int) -> bool:
        """Whether batch ``b`` starts with fresh gradients: every batch, or the first of each accumulated group."""
        return self.accumulating(b, nb) == 1 or b % self.every == 0

    def steps_after(self, b: int, nb: int) -> bool:
        """Whether the optimiser steps after batch ``b``: every batch, or the last of each accumulated group."""
        return self.accumulating(b, nb) == 1 or (b + 1) % self.every == 0 or b + 1 == nb

    def no_sync(self, model: torch.nn.Module, b: int, nb: int):
        """DDP's ``no_sync`` for the batches of an accumulated group before its last."""
        if self.plain or self.method != "accumulate" or self.steps_after(b, nb):
            return contextlib.nullcontext()
        return model.no_sync()

    def after_step(self, model: torch.nn.Module, b: int) -> None:
        """``average``: the parameters averaged every ``sync_every`` steps."""
        if not self.plain and self.method == "average" and (b + 1) % self.every == 0:
            average_tensors(list(model.parameters()), self.r)

    def end_epoch(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        """``average``: parameters and optimiser state averaged, so every rank holds (and rank 0
        checkpoints) the same state."""
        if self.plain or self.method != "average":
            return
        state = [
            t
            for p in model.parameters()
            for k, t in sorted(opt.state.get(p, {}).items())
            if k != "step" and isinstance(t, torch.Tensor) and t.is_floating_point()
        ]
        average_tensors(list(model.parameters()) + state, self.r)


def average_tensors(tensors: List[torch.Tensor], r: Ranks) -> None:
    """Average same-shaped tensors over the ranks in place, with one all-reduce per dtype."""
    with torch.no_grad():
        for dtype in sorted({t.dtype for t in tensors}, key=str):
            group = [t for t in tensors if t.dtype == dtype]
            flat = torch.cat([t.detach().reshape(-1) for t in group])
            dist.all_reduce(flat)
            flat /= r.world
            offset = 0
            for t in group:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()


def mean_over_ranks(value: float, r: Ranks) -> float:
    if r.world <= 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device_for(r) if torch.cuda.is_available() else "cpu")
    dist.all_reduce(t)
    return float(t.item()) / r.world


def barrier(r: Ranks) -> None:
    if r.world > 1:
        dist.barrier()


def weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def digests_of_all_ranks(model: torch.nn.Module, r: Ranks) -> list:
    """Every rank's weights digest (rank order): after DDP training they must all be equal."""
    mine = weights_digest(model)
    if r.world <= 1:
        return [mine]
    out = [None] * r.world
    dist.all_gather_object(out, mine)
    return out

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
"""
import hashlib
import os
from dataclasses import dataclass

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
    """Join torchrun's process group (once); ``Ranks()`` when not launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return ranks()


def ranks() -> Ranks:
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def device_for(r: Ranks) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", r.local_rank if r.world > 1 else torch.cuda.current_device())
    return torch.device("cpu")


def wrap(model: torch.nn.Module, r: Ranks) -> torch.nn.Module:
    if r.world <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[r.local_rank] if torch.cuda.is_available() else None)


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

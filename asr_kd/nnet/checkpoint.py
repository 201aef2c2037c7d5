"""Model checkpoints: the weights with the model's config and sizes, so a checkpoint alone rebuilds
its network (``load_model``).

Every checkpoint is read by ``read_checkpoint``: ``torch.load(weights_only=True)``, which builds
tensors, numbers, strings and containers only and never runs code from the file (a ``.pt`` from
someone else cannot execute anything). A file that is not a checkpoint is a ``CheckpointError``
naming it."""

import pickle
import types
from dataclasses import asdict
from typing import Dict

import torch

from asr_kd.nnet.models import ModelConfig, build_model, model_config
from asr_kd.utils.io import atomic_path


def save_checkpoint(path, model, model_cfg: ModelConfig, *, feat_dim: int, num_pdfs: int, extra: Dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(
            {
                "model": model.state_dict(),
                "model_cfg": asdict(model_cfg),
                "feat_dim": feat_dim,
                "num_pdfs": num_pdfs,
                **extra,
            },
            tmp,
        )


class CheckpointError(ValueError):
    """A file that is not a readable asr_kd checkpoint; the message names it."""


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


REQUIRED_KEYS = ("model", "model_cfg", "feat_dim", "num_pdfs")


class _TensorsOnly(pickle.Unpickler):
    """torch 1.x's ``weights_only`` loader rejects plain floats (the k2 environment's torch 1.13):
    there, checkpoints are read with this unpickler, which builds tensors, their storages and
    ordered dicts and refuses any other class (no code from the file runs)."""

    def find_class(self, module, name):
        if (module, name) in {
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch._utils", "_rebuild_parameter"),
            ("collections", "OrderedDict"),
            ("torch", "device"),
        } or (module == "torch" and name.endswith("Storage")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a checkpoint (only tensors and containers)")


_SAFE_PICKLE = types.SimpleNamespace(Unpickler=_TensorsOnly, load=None, __name__="asr_kd_tensors_only")


def safe_torch_load(path):
    """``torch.load`` that never runs code from the file: ``weights_only=True`` on torch 2,
    ``_TensorsOnly`` on torch 1."""
    if int(torch.__version__.split(".")[0]) >= 2:
        return torch.load(path, map_location="cpu", weights_only=True)
    # torch 1.13's torch.load replaces a given pickle_module by pickle unless weights_only: call
    # its zip reader with ours directly (torch 1.13.1 is pinned in the k2 environment)
    from torch import serialization

    with open(path, "rb") as f, serialization._open_zipfile_reader(f) as archive:
        return serialization._load(archive, "cpu", _SAFE_PICKLE, encoding="utf-8")


def read_checkpoint(path) -> Dict:
    """The checkpoint's dict, read without unpickling code (``safe_torch_load``)."""
    try:
        ck = safe_torch_load(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint file not found") from None
    except Exception as e:  # truncated zip, a pickle that asks for code, or not a torch file at all
        raise CheckpointError(f"{path}: not a loadable asr_kd checkpoint ({_first_line(e)})") from None
    if not isinstance(ck, dict) or any(k not in ck for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not an asr_kd checkpoint (needs the keys {list(REQUIRED_KEYS)})")
    return ck


def load_model(path, device=None) -> torch.nn.Module:
    """The network of a checkpoint, in eval mode, on ``device`` (default CPU)."""
    ck = read_checkpoint(path)
    try:
        model = build_model(model_config(ck["model_cfg"]), int(ck["feat_dim"]), int(ck["num_pdfs"]))
        model.load_state_dict(ck["model"])
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"{path}: its network cannot be rebuilt ({_first_line(e)})") from None
    return model.to(device or "cpu").eval()

"""Model checkpoints: the weights with the model's config and sizes, so a checkpoint alone rebuilds
its network (``load_model``)."""
from dataclasses import asdict
from typing import Dict

import torch

from asr_kd.nnet.models import ModelConfig, build_model, model_config
from asr_kd.utils.io import atomic_path


def save_checkpoint(path, model, model_cfg: ModelConfig, feat_dim: int, num_pdfs: int, extra: Dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "model_cfg": asdict(model_cfg), "feat_dim": feat_dim,
                    "num_pdfs": num_pdfs, **extra}, tmp)


def load_model(path, device=None) -> torch.nn.Module:
    """The network of a checkpoint, in eval mode, on ``device`` (default CPU)."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(model_config(ck["model_cfg"]), ck["feat_dim"], ck["num_pdfs"])
    model.load_state_dict(ck["model"])
    return model.to(device or "cpu").eval()

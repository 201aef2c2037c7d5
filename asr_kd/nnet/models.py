"""Frame-level acoustic models, registered by name (``MODELS``, ``@register_model``) and built from
a ``ModelConfig`` (``build_model``). Every model carries its ``context`` (frames each side).

Every model maps a window of ``2 * context + 1`` normalised feature frames, shape
(batch, window, feat_dim), to pdf logits (batch, num_pdfs) for the centre frame.

``dnn``: the paper's kind: spliced frames -> fully connected ReLU layers.
``tdnn``: 1-D convolutions over time (dilated, no padding) that shrink the window to one frame.
"""

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple, Type

import torch
from torch import nn


@dataclass
class ModelConfig:
    name: str = "dnn"
    context: int = 5  # frames each side
    hidden: int = 512
    num_layers: int = 4
    dropout: float = 0.0  # after each hidden layer
    input_dropout: float = 0.0  # on the input (the paper's MNIST teacher: about 0.2)
    # tdnn only: (kernel, dilation) per conv layer; the receptive field must equal 2 * context + 1
    tdnn_layers: Tuple[Tuple[int, int], ...] = ((3, 1), (3, 1), (3, 2), (3, 2))

    def validate(self) -> None:
        for key in ("dropout", "input_dropout"):
            if not 0 <= getattr(self, key) < 1:
                raise ValueError(f"{key} must be in [0, 1), not {getattr(self, key)!r}")
        if any(len(layer) != 2 or min(layer) < 1 for layer in self.tdnn_layers):
            raise ValueError(
                f"tdnn_layers must be [kernel, dilation] pairs of positive integers, not {self.tdnn_layers!r}"
            )


MODELS: Dict[str, Type[nn.Module]] = {}


def register_model(name: str) -> Callable[[Type[nn.Module]], Type[nn.Module]]:
    """Class decorator: ``name`` in a config's ``model.name`` builds this class with
    ``(feat_dim, num_pdfs, cfg)``; the class must set ``self.context``."""

    def add(cls: Type[nn.Module]) -> Type[nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = cls
        return cls

    return add


@register_model("dnn")
class SplicedDNN(nn.Module):
    def __init__(self, feat_dim: int, num_pdfs: int, cfg: ModelConfig):
        super().__init__()
        self.context = cfg.context
        window = 2 * cfg.context + 1
        layers: List[nn.Module] = [nn.Dropout(cfg.input_dropout)] if cfg.input_dropout else []
        dim = window * feat_dim
        for _ in range(cfg.num_layers):
            layers += [nn.Linear(dim, cfg.hidden), nn.ReLU()]
            if cfg.dropout:
                layers.append(nn.Dropout(cfg.dropout))
            dim = cfg.hidden
        layers.append(nn.Linear(dim, num_pdfs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


@register_model("tdnn")
class TDNN(nn.Module):
    def __init__(self, feat_dim: int, num_pdfs: int, cfg: ModelConfig):
        super().__init__()
        self.context = cfg.context
        field_ = 1 + sum((k - 1) * d for k, d in cfg.tdnn_layers)
        if field_ != 2 * cfg.context + 1:
            raise ValueError(
                f"tdnn receptive field {field_} != window {2 * cfg.context + 1}: adjust tdnn_layers or context"
            )
        layers: List[nn.Module] = []
        dim = feat_dim
        for k, d in cfg.tdnn_layers:
            layers += [nn.Conv1d(dim, cfg.hidden, k, dilation=d), nn.ReLU(), nn.BatchNorm1d(cfg.hidden)]
            dim = cfg.hidden
        self.convs = nn.Sequential(*layers)
        self.out = nn.Linear(cfg.hidden, num_pdfs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x.transpose(1, 2))  # (B, hidden, 1)
        return self.out(h[:, :, -1])


def build_model(cfg: ModelConfig, feat_dim: int, num_pdfs: int) -> nn.Module:
    if cfg.name not in MODELS:
        raise ValueError(f"unknown model {cfg.name!r}; choose one of {sorted(MODELS)}")
    return MODELS[cfg.name](feat_dim, num_pdfs, cfg)


def model_config(saved: Dict) -> ModelConfig:
    """A ModelConfig from its saved ``asdict`` (lists back to tuples)."""
    return ModelConfig(**{k: tuple(tuple(x) for x in v) if k == "tdnn_layers" else v for k, v in saved.items()})

"""Where tensors go: the GPU when one is present, else the CPU (everything runs on both)."""

import torch


def torch_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")

"""Images in memory for the shared training loop (asr_kd.nnet.train): the same interface as
speech frames (``windows``, ``labels``, ``soft``), a window of one flattened image, and an
optional training-time jitter (random shifts of up to ``jitter`` pixels, as the paper's teacher).
With a ``teacher_model`` the soft targets are computed online, on the jittered batch itself."""

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class ImageData:
    streamed: ClassVar[bool] = False  # asr_kd.nnet.data.FrameSource
    teacher_probs: ClassVar[None] = None  # no teacher to measure dev KL against
    feats: torch.Tensor  # (N, H*W) float32
    labels: torch.Tensor  # (N,) int64
    soft: Optional[torch.Tensor] = None  # (N, C) soft targets
    height: int = 28
    width: int = 28
    jitter: int = 0  # pixels; applied by ``augment`` during training only
    teacher_model: Optional[torch.nn.Module] = None  # online soft targets on the jittered batch
    teacher_temperature: float = 1.0

    @classmethod
    def from_numpy(cls, x: np.ndarray, y: np.ndarray, soft=None, *, jitter: int = 0, height: int = 28, width: int = 28):
        return cls(
            torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            torch.from_numpy(np.asarray(y, dtype=np.int64)),
            None if soft is None else torch.as_tensor(soft, dtype=torch.float32),
            height,
            width,
            jitter,
        )

    def __len__(self) -> int:
        return self.feats.shape[0]

    @property
    def feat_dim(self) -> int:
        return self.feats.shape[1]

    def windows(self, idx: torch.Tensor, context: int = 0) -> torch.Tensor:
        if context:
            raise ValueError("image models take one image per example: set the model's context to 0")
        return self.feats[idx][:, None, :]

    @torch.no_grad()
    def teacher_targets(self, x: torch.Tensor) -> torch.Tensor:
        """softmax(teacher logits / T) for the batch as the student sees it (jittered)."""
        teacher = self.teacher_model.eval()
        if next(teacher.parameters()).device != x.device:  # the batch is on the student's device (a GPU, say)
            teacher.to(x.device)
        return torch.softmax(teacher(x) / self.teacher_temperature, dim=-1)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Shift each image by an independent random (dy, dx) in [-jitter, jitter], zero fill."""
        if not self.jitter:
            return x
        j, b = self.jitter, x.shape[0]
        img = F.pad(x.view(b, self.height, self.width), (j, j, j, j))
        dy = torch.randint(0, 2 * j + 1, (b,))
        dx = torch.randint(0, 2 * j + 1, (b,))
        rows = (dy[:, None] + torch.arange(self.height)[None, :])[:, :, None]
        cols = (dx[:, None] + torch.arange(self.width)[None, :])[:, None, :]
        out = img[torch.arange(b)[:, None, None], rows, cols]
        return out.reshape(b, 1, -1)

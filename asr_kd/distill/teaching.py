"""How a speech student is taught, beside the loss (the config's ``teaching`` section):

- ``augment``: augmentations of the student's input windows, by name (asr_kd.nnet.augment);
- ``online``: the ensemble scores each (augmented) batch as the student sees it, instead of the
  stored soft targets of the clean training frames ("consistent teaching": the student learns the
  teacher's function where it is shown it, not one fixed target per frame). The ensemble runs in the
  training process: its cost per epoch is about members x one forward pass of a member;
- ``unlabelled_ratio``: untranscribed transfer audio (the paper's transfer set) beside the labelled
  frames, R x their number, from the ``unlabelled`` split (``synth-digits --unlabelled-hours``,
  ``import-audio-folder --split unlabelled``); its targets come from the ensemble (stored targets of
  the labelled frames are kept), and it has no hard-label term.

With the ensemble's checkpoints at hand (``train-dnn --teacher-models``), the student's dev KL to
the teacher and top-1 agreement are recorded every epoch (``history.json``), and
``train.select_on: dev_kl`` picks the epoch closest to the teacher on dev ("patient teaching":
long schedules, stopping where the student stops approaching its teacher)."""

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from asr_kd.nnet.augment import AugmentConfig, FeatureStats, augment_names, build_augment
from asr_kd.nnet.checkpoint import load_model
from asr_kd.nnet.data import FrameData
from asr_kd.nnet.evaluate import teacher_logits
from asr_kd.nnet.targets import ensemble_soft_targets
from asr_kd.utils.device import torch_device


@dataclass
class TeachingConfig:
    online: bool = False  # the ensemble scores every training batch (after augmentation)
    augment: str = "none"  # asr_kd.nnet.augment.AUGMENTATIONS, chained with +: mixup, tempo, noise, ...
    augment_options: AugmentConfig = field(default_factory=AugmentConfig)
    # untranscribed transfer audio: R x the training frames of the fbank folder's ``unlabelled`` split,
    # where the ensemble alone teaches (no hard-label term); 0: none
    unlabelled_ratio: float = 0.0

    def validate(self) -> None:
        augment_names(self.augment)
        if self.unlabelled_ratio < 0:
            raise ValueError(f"teaching.unlabelled_ratio must be >= 0, got {self.unlabelled_ratio}")


class EnsembleTeacher(torch.nn.Module):
    """Members' mean softmax at ``temperature`` (or, for ``logit_match``, their mean logits)."""

    def __init__(self, members: Sequence[torch.nn.Module], temperature: float, logits: bool = False):
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        self.temperature, self.logits = temperature, logits
        self.context = members[0].context
        if any(m.context != self.context for m in members):
            raise ValueError("the ensemble's members see different context windows")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.stack([m(x).float() for m in self.members])
        return z.mean(0) if self.logits else ensemble_soft_targets(z, self.temperature)


def attach_teaching(
    train: Optional[FrameData],
    dev: FrameData,
    teacher_models: Sequence,
    *,
    cfg: TeachingConfig,
    temperature: float,
    logits: bool = False,
    feature_stats: Optional[FeatureStats] = None,
) -> None:
    """Sets ``train``'s augmentation and online teacher and ``dev``'s teacher probabilities (for the
    per-epoch dev KL) from the ensemble's checkpoints ``teacher_models``; ``train`` None: the latter only.
    ``feature_stats``: the features' CMVN statistics (the noise and reverb augmentations need them)."""
    if train is not None and cfg.augment != "none":
        augmenter = build_augment(cfg.augment, cfg.augment_options, feature_stats)
        train.augmenter, train.augment_spec = augmenter, cfg.augment
        if cfg.augment_options != AugmentConfig():
            train.augment_spec += f" {cfg.augment_options}"
    if not teacher_models:
        if cfg.online:
            raise ValueError("teaching.online needs the ensemble's checkpoints (train-dnn --teacher-models)")
        return
    dev.teacher_probs = ensemble_soft_targets(teacher_logits(teacher_models, dev), temperature)
    if cfg.online:
        members = [load_model(t, torch_device()) for t in teacher_models]
        train.teacher_model = EnsembleTeacher(members, temperature, logits)

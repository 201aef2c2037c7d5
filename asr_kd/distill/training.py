"""Training one speech acoustic model on an alignment's labels: a baseline or ensemble member (hard
labels), or a distilled student (stored soft targets, or soft targets computed on the fly from
teacher checkpoints), with the criterion chosen by name from the config."""
import logging
from typing import Dict, Optional, Sequence

import torch

from asr_kd.data.features import FeatureNormalizer
from asr_kd.distill.soft_targets import check_soft_targets, read_soft_targets
from asr_kd.gmm.labels import num_pdfs
from asr_kd.nnet.data import load_split
from asr_kd.nnet.evaluate import teacher_logits
from asr_kd.nnet.losses import LossConfig, build_criterion
from asr_kd.nnet import distributed
from asr_kd.nnet.models import ModelConfig
from asr_kd.nnet.streaming import StreamedFrames, labelled_cuts_path
from asr_kd.nnet.targets import ensemble_soft_targets
from asr_kd.nnet.train import TrainConfig, train_model

log = logging.getLogger(__name__)


def train_speech_model(ali_dir, fbank_dir, corpus: str, out_dir, model_cfg: ModelConfig, train_cfg: TrainConfig,
                       loss_cfg: LossConfig, seed: int = 0, fraction: float = 1.0, subset_seed: int = 0,
                       soft_targets=None, teachers: Optional[Sequence] = None) -> Dict:
    """Train on ``fraction`` of the training cuts (``subset_seed`` picks which), choose by dev frame
    accuracy; ``soft_targets`` (a soft-targets folder) or ``teachers`` (checkpoints) make it a
    distilled student. Returns ``train_model``'s history."""
    torch.set_num_threads(train_cfg.threads)
    if soft_targets:
        check_soft_targets(soft_targets, loss_cfg)  # before any data is read
    n = num_pdfs(ali_dir)
    dev = load_split(ali_dir, fbank_dir, corpus, "dev")
    if train_cfg.streaming:
        if fraction < 1.0 or teachers:
            raise ValueError("streamed training reads every training cut from stored targets: no --fraction, no --teachers "
                             "(make soft targets with the soft-targets stage)")
        r = distributed.ranks()
        train = StreamedFrames(labelled_cuts_path(ali_dir, corpus, "train", soft_targets), FeatureNormalizer.of_features(fbank_dir),
                               model_cfg.context, train_cfg.batch_size, n, seed=seed, soft=bool(soft_targets),
                               block_frames=train_cfg.block_frames, rank=r.rank, world=r.world)
        log.info("training %s (%s, loss %s) on %d frames streamed from %s, %d pdfs", out_dir, model_cfg.name, loss_cfg.loss,
                 train.num_frames, train.cuts_path, n)
        return train_model(train, dev, n, out_dir, model_cfg, train_cfg, build_criterion(loss_cfg), seed=seed)
    train = load_split(ali_dir, fbank_dir, corpus, "train", fraction, seed=subset_seed)
    if soft_targets:
        train.soft = read_soft_targets(soft_targets, train, n)
    elif teachers:  # soft targets on the fly from the teachers
        logits = teacher_logits(teachers, train)
        train.soft = logits.mean(0) if loss_cfg.loss == "logit_match" else ensemble_soft_targets(logits, loss_cfg.temperature)
    log.info("training %s (%s, loss %s) on %d frames, %d pdfs", out_dir, model_cfg.name, loss_cfg.loss, len(train), n)
    return train_model(train, dev, n, out_dir, model_cfg, train_cfg, build_criterion(loss_cfg), seed=seed)

"""Training one speech acoustic model on an alignment's labels: a baseline or ensemble member (hard
labels), or a distilled student (stored soft targets, or soft targets computed on the fly from
teacher checkpoints), with the criterion chosen by name from the config."""

import logging
from typing import Dict, Optional, Sequence

import torch

from asr_kd.data.features import FeatureNormalizer
from asr_kd.distill.soft_targets import check_soft_targets, read_soft_targets
from asr_kd.distill.teaching import TeachingConfig, attach_teaching
from asr_kd.gmm.labels import num_pdfs
from asr_kd.nnet.augment import FeatureStats
from asr_kd.nnet.data import FrameData, concat_frames, load_split, load_unlabelled
from asr_kd.nnet.evaluate import teacher_logits
from asr_kd.nnet.losses import LossConfig, build_criterion
from asr_kd.nnet import distributed
from asr_kd.nnet.models import ModelConfig
from asr_kd.nnet.streaming import StreamedFrames, labelled_cuts_path
from asr_kd.nnet.targets import ensemble_soft_targets
from asr_kd.nnet.train import TrainConfig, train_model

log = logging.getLogger(__name__)


def is_student(soft_targets, teachers, teacher_models, *, teaching: TeachingConfig) -> bool:
    """A student learns from stored targets, from teachers run on the fly, or from the online ensemble."""
    return bool(soft_targets or teachers or (teacher_models and teaching.online))


def train_speech_model(
    ali_dir,
    fbank_dir,
    corpus: str,
    *,
    out_dir,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    loss_cfg: LossConfig,
    seed: int = 0,
    fraction: float = 1.0,
    subset_seed: int = 0,
    soft_targets=None,
    teachers: Optional[Sequence] = None,
    teacher_models: Sequence = (),
    teaching: TeachingConfig = TeachingConfig(),
) -> Dict:
    """Train on ``fraction`` of the training cuts (``subset_seed`` picks which), choose by dev frame
    accuracy (or ``train_cfg.select_on``); ``soft_targets`` (a soft-targets folder) or ``teachers``
    (checkpoints) make it a distilled student. ``teacher_models``: the ensemble behind the soft
    targets, for the dev KL and ``teaching`` (asr_kd.distill.teaching; its ``unlabelled_ratio`` adds
    untranscribed transfer audio). Returns ``train_model``'s history."""
    torch.set_num_threads(train_cfg.threads)
    if soft_targets and not teaching.online:  # an online teacher reads no stored targets (any temperature)
        check_soft_targets(soft_targets, loss_cfg)  # before any data is read
    n = num_pdfs(ali_dir)
    dev = load_split(ali_dir, fbank_dir, corpus, split="dev")
    teacher_models = list(teacher_models or teachers or [])
    distilling = is_student(soft_targets, teachers, teacher_models, teaching=teaching)
    if teacher_models and not distilling:
        raise ValueError(
            "--teacher-models without --soft-targets teaches nothing: pass --soft-targets, or --online-teacher "
            "(teaching.online) for the ensemble to score every batch"
        )
    unlabelled_ratio = teaching.unlabelled_ratio
    if unlabelled_ratio and not (distilling and teacher_models):
        raise ValueError(
            "untranscribed transfer audio teaches a student only: pass the ensemble (--teacher-models, with "
            "--soft-targets or --teachers)"
        )
    if unlabelled_ratio and train_cfg.streaming:
        raise ValueError("untranscribed transfer audio is read into memory: set train.streaming false")
    if train_cfg.streaming:
        if distilling and teaching != TeachingConfig():
            raise ValueError(
                "streamed training reads stored targets of clean frames: no teaching.online or teaching.augment"
            )
        if fraction < 1.0 or teachers:
            raise ValueError(
                "streamed training reads every training cut from stored targets: no --fraction, no --teachers "
                "(make soft targets with the soft-targets stage)"
            )
        if distilling and teacher_models:  # dev KL per epoch
            attach_teaching(None, dev, teacher_models, cfg=TeachingConfig(), temperature=loss_cfg.temperature)
        r = distributed.ranks()
        train = StreamedFrames(
            labelled_cuts_path(ali_dir, corpus, "train", soft_dir=soft_targets),
            FeatureNormalizer.of_features(fbank_dir),
            model_cfg.context,
            batch_size=train_cfg.batch_size,
            num_classes=n,
            seed=seed,
            soft=bool(soft_targets),
            block_frames=train_cfg.block_frames,
            rank=r.rank,
            world=r.world,
            whole_batches=train_cfg.ddp == "average",
        )
        log.info(
            "training %s (%s, loss %s) on %d frames streamed from %s, %d pdfs",
            out_dir,
            model_cfg.name,
            loss_cfg.loss,
            train.num_frames,
            train.cuts_path,
            n,
        )
    else:  # in memory
        train = load_split(ali_dir, fbank_dir, corpus, split="train", fraction=fraction, seed=subset_seed)
        transfer = (
            load_unlabelled(fbank_dir, corpus, round(unlabelled_ratio * len(train))) if unlabelled_ratio else None
        )
        if transfer is not None and (teaching.online or teachers):  # targets on the fly for every frame
            train = concat_frames(train, transfer)
        if distilling:  # the teaching section applies to students only
            attach_teaching(
                train,
                dev,
                teacher_models,
                cfg=teaching,
                temperature=loss_cfg.temperature,
                logits=loss_cfg.loss == "logit_match",
                feature_stats=FeatureStats.of_normalizer(FeatureNormalizer.of_features(fbank_dir)),
            )
        if train.teacher_model is not None:  # the online ensemble scores each batch: no stored targets read
            train.soft = None
        elif soft_targets:
            train.soft = read_soft_targets(soft_targets, train, n)
            if transfer is not None:
                train = _with_transfer(train, transfer, teacher_models, temperature=loss_cfg.temperature)
        elif teachers:  # soft targets on the fly from the teachers
            logits = teacher_logits(teachers, train)
            train.soft = (
                logits.mean(0)
                if loss_cfg.loss == "logit_match"
                else ensemble_soft_targets(logits, loss_cfg.temperature)
            )
        log.info(
            "training %s (%s, loss %s%s%s) on %d frames%s, %d pdfs",
            out_dir,
            model_cfg.name,
            loss_cfg.loss,
            ", online teacher" if train.teacher_model is not None else "",
            f", augment {train.augment_spec}" if train.augment_spec else "",
            len(train),
            f" ({len(transfer)} of them untranscribed)" if transfer is not None else "",
            n,
        )
    return train_model(
        train,
        dev,
        n,
        out_dir=out_dir,
        model_cfg=model_cfg,
        cfg=train_cfg,
        criterion=build_criterion(loss_cfg),
        seed=seed,
    )


def _with_transfer(train: FrameData, transfer: FrameData, teacher_models: Sequence, *, temperature: float) -> FrameData:
    """The labelled frames (stored soft targets), then the transfer frames with the ensemble's targets."""
    if hasattr(train.soft, "tensors"):
        raise ValueError("untranscribed transfer audio needs dense stored soft targets (no --topk), or teaching.online")
    transfer.soft = ensemble_soft_targets(teacher_logits(teacher_models, transfer), temperature)
    return concat_frames(train, transfer)

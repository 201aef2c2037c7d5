"""Frames in memory for frame-level training: normalised features, pdf labels, utterance
bounds (context windows never cross an utterance edge: edge frames are repeated, as Kaldi's
splicing does), and optional per-frame soft targets. lhotse is imported only by the functions that
read manifests, so that the training loop runs where only torch is installed (e.g. a GPU benchmark
on synthetic frames)."""

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, List, Optional, Protocol

import numpy as np
import torch

if TYPE_CHECKING:
    from lhotse import CutSet

    from asr_kd.data.features import FeatureNormalizer

log = logging.getLogger(__name__)


class FrameSource(Protocol):
    """What the training loop (``asr_kd.nnet.train``) asks of its training data. In memory
    (``FrameData``, ``ImageData``, a specialist's ``FrameSubset``): ``len``, ``labels``, ``soft``
    (tensor or None), ``windows(idx, context)``, ``augment(x)``; streamed (``StreamedFrames``):
    batches from its loaders, ``soft`` a flag, ``steps_per_epoch``, ``local_batch`` and
    ``fingerprint_inputs()``. ``streamed`` says which; ``teacher_model`` is the online teacher
    (None: stored or no soft targets). Class attributes, so that the data's own settings, which
    run fingerprints read, stay as they were."""

    streamed: ClassVar[bool]
    teacher_model: Optional[torch.nn.Module]
    teacher_probs: Optional[torch.Tensor]  # of a dev set: the teacher's probabilities that dev KL is measured by

    @property
    def feat_dim(self) -> int: ...


@dataclass
class FrameData:
    streamed: ClassVar[bool] = False
    feats: torch.Tensor  # (N, D) float32
    labels: torch.Tensor  # (N,) int64 pdf-ids
    start: torch.Tensor  # (N,) first frame of the frame's utterance
    end: torch.Tensor  # (N,) one past its last frame
    cut_ids: List[str]
    offsets: np.ndarray  # (num_cuts + 1,) frame offset of each cut
    soft: Optional[torch.Tensor] = None  # (N, C) soft targets, if any
    # distillation extras (asr_kd.distill.teaching): a training-time augmentation of the windows (its
    # spec string goes into run fingerprints), a teacher that scores each augmented batch online, and
    # a teacher's probabilities on these frames that training only measures against (dev KL)
    augment_spec: str = ""
    augmenter: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    teacher_model: Optional[torch.nn.Module] = None
    teacher_probs: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return self.feats.shape[0]

    @property
    def feat_dim(self) -> int:
        return self.feats.shape[1]

    def windows(self, idx: torch.Tensor, context: int) -> torch.Tensor:
        """(B, 2C+1, D) feature windows centred on frames ``idx``."""
        off = torch.arange(-context, context + 1)
        pos = idx[:, None] + off[None, :]
        pos = torch.maximum(torch.minimum(pos, (self.end[idx] - 1)[:, None]), self.start[idx][:, None])
        return self.feats[pos]

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.augmenter is None else self.augmenter(x)

    @torch.no_grad()
    def teacher_targets(self, x: torch.Tensor) -> torch.Tensor:
        """The online teacher's soft targets for the batch as the student sees it."""
        teacher = self.teacher_model.eval()
        if next(teacher.parameters()).device != x.device:
            teacher.to(x.device)
        return teacher(x)

    def utterance(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))


def load_frames(cuts: "CutSet", normalizer: "FeatureNormalizer", with_labels: bool = True) -> FrameData:
    feats, labels, starts, ends, ids, offsets = [], [], [], [], [], [0]
    n = 0
    for cut in cuts:
        x = normalizer.normalize_cut(cut)
        t = x.shape[0]
        y = cut.load_pdf_ali().astype(np.int64) if with_labels else np.full(t, -100, np.int64)
        if len(y) != t:
            raise ValueError(f"{cut.id}: {len(y)} labels for {t} frames")
        feats.append(x)
        labels.append(y)
        starts.append(np.full(t, n, np.int64))
        ends.append(np.full(t, n + t, np.int64))
        ids.append(cut.id)
        n += t
        offsets.append(n)
    if not ids:
        raise ValueError("no cuts to load")
    return FrameData(
        torch.from_numpy(np.concatenate(feats)),
        torch.from_numpy(np.concatenate(labels)),
        torch.from_numpy(np.concatenate(starts)),
        torch.from_numpy(np.concatenate(ends)),
        ids,
        np.array(offsets),
    )


def subset_cuts(cuts: "CutSet", fraction: float, seed: int) -> "CutSet":
    """A seeded random fraction of the cuts (the paper's 3% experiment)."""
    if fraction >= 1.0:
        return cuts
    ids = sorted(c.id for c in cuts)
    rng = np.random.default_rng(seed)
    keep = set(rng.choice(ids, size=max(1, int(round(fraction * len(ids)))), replace=False).tolist())
    return cuts.filter(lambda c: c.id in keep).to_eager()


def ali_cuts(ali_dir, corpus: str, split: str, *, lazy: bool = False) -> "CutSet":
    """The labelled cuts of an alignment folder (``<corpus>_<split>_cuts.jsonl.gz``); ``lazy``: read
    from the file on each pass instead of held in memory."""
    path = Path(ali_dir) / f"{corpus}_{split}_cuts.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the alignment stage first")
    from lhotse import CutSet

    cuts = CutSet.from_file(path)
    return cuts if lazy else cuts.to_eager()


def accent_subsets(ali_dir, corpus: str, split: str, *, cut_ids: List[str], held_out) -> dict:
    """{"held-out accents": indices, "seen accents": indices} of ``cut_ids`` by their supervision's
    ``accent`` (the synthetic corpora record it); {} when no cut has one of ``held_out``."""
    if not held_out:
        return {}
    accent = {
        c.id: (c.supervisions[0].custom or {}).get("accent") if c.supervisions else None
        for c in ali_cuts(ali_dir, corpus, split, lazy=True)
    }
    held = np.array([i for i, c in enumerate(cut_ids) if accent.get(c) in held_out], dtype=np.int64)
    if not len(held):
        return {}
    seen = np.setdiff1d(np.arange(len(cut_ids)), held)
    return {"held-out accents": held, "seen accents": seen}


def load_split(ali_dir, fbank_dir, corpus: str, *, split: str, fraction: float = 1.0, seed: int = 0) -> FrameData:
    """A split's labelled frames, normalised with the fbank folder's CMVN statistics; ``fraction``
    < 1 takes a seeded subset of its cuts."""
    from asr_kd.data.features import FeatureNormalizer

    normalizer = FeatureNormalizer.of_features(fbank_dir)
    return load_frames(subset_cuts(ali_cuts(ali_dir, corpus, split), fraction, seed), normalizer)


def concat_frames(a: FrameData, b: FrameData) -> FrameData:
    """``a``'s frames, then ``b``'s (soft targets too, when both have them), with ``a``'s
    distillation extras (augmentation, teachers)."""
    if (a.soft is None) != (b.soft is None):
        raise ValueError("both parts need soft targets, or neither")
    n = len(a)
    return replace(
        a,
        feats=torch.cat([a.feats, b.feats]),
        labels=torch.cat([a.labels, b.labels]),
        start=torch.cat([a.start, b.start + n]),
        end=torch.cat([a.end, b.end + n]),
        cut_ids=a.cut_ids + b.cut_ids,
        offsets=np.concatenate([a.offsets, b.offsets[1:] + n]),
        soft=torch.cat([a.soft, b.soft]) if a.soft is not None else None,
    )


def unlabelled_cuts_path(fbank_dir, corpus: str) -> Path:
    return Path(fbank_dir) / f"{corpus}_cuts_unlabelled.jsonl.gz"


def load_unlabelled(fbank_dir, corpus: str, frames: int) -> FrameData:
    """About ``frames`` frames of the untranscribed transfer split (its fbank cuts, in file order:
    a smaller set is a prefix of a larger one), labels ``-100`` (no hard-label term), normalised
    with the fbank folder's CMVN statistics (the training split's)."""
    from lhotse import CutSet

    from asr_kd.data.features import FeatureNormalizer

    path = unlabelled_cuts_path(fbank_dir, corpus)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: make an untranscribed split (run.sh --unlabelled-hours H, or recipes/custom "
            "--unlabelled-dir DIR) and compute its features"
        )
    chosen, total = [], 0
    for cut in CutSet.from_file(path):
        if total >= frames:
            break
        chosen.append(cut)
        total += cut.num_frames
    if total < frames:
        raise ValueError(
            f"{path} holds {total} frames, fewer than the {frames} asked for: make a larger split (stage 0's "
            "--unlabelled-hours, or recipes/custom --unlabelled-dir) or ask for a smaller --unlabelled-ratio"
        )
    return load_frames(CutSet.from_cuts(chosen), FeatureNormalizer.of_features(fbank_dir), with_labels=False)

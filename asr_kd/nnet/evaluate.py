"""Frame-level evaluation of networks: logits over a data set, frame accuracy, and the
per-utterance error counts that the significance tests resample (asr_kd.scoring)."""

from typing import Dict, Sequence

import numpy as np
import torch

from asr_kd.nnet.checkpoint import load_model
from asr_kd.nnet.data import FrameData
from asr_kd.nnet.targets import ensemble_soft_targets
from asr_kd.utils.device import torch_device


def _batch_logits(model, data: FrameData, batch_size: int):
    """(frame indices, float32 logits on the model's device) of ``data``, ``batch_size`` frames at a time."""
    model.eval()
    dev = next(model.parameters()).device
    context = getattr(model, "module", model).context
    for s in range(0, len(data), batch_size):
        idx = torch.arange(s, min(s + batch_size, len(data)))
        yield idx, model(data.windows(idx, context).to(dev)).float()


@torch.no_grad()
def predict_logits(model, data: FrameData, batch_size: int = 4096) -> torch.Tensor:
    return torch.cat([logits.cpu() for _, logits in _batch_logits(model, data, batch_size)])


@torch.no_grad()
def model_frame_accuracy(model, data: FrameData, batch_size: int = 4096) -> float:
    """``frame_accuracy(predict_logits(model, data), data.labels)`` batch by batch: no (frames x
    pdfs) logits held (a training run scores its dev split after every epoch)."""
    correct = counted = 0
    for idx, logits in _batch_logits(model, data, batch_size):
        labels = data.labels[idx].to(logits.device)
        keep = labels >= 0
        correct += int((logits.argmax(-1)[keep] == labels[keep]).sum())
        counted += int(keep.sum())
    return float(torch.tensor(float(correct)) / counted) if counted else float("nan")  # float32, as frame_accuracy


def _teacher_sums(z, p, labels, *, temperature: float) -> Dict[str, float]:
    """Summed KL(p_T || q_T), agreements with the teacher and correct frames over labelled frames."""
    keep = labels >= 0
    z, p, y = z[keep].float(), p[keep].float(), labels[keep]
    log_q = torch.log_softmax(z / temperature, dim=-1)
    kl = (p * (p.clamp_min(1e-30).log() - log_q)).sum(-1)
    return {
        "kl": float(kl.sum()),
        "agreement": float((z.argmax(-1) == p.argmax(-1)).sum()),
        "frame_acc": float((z.argmax(-1) == y).sum()),
        "frames": int(keep.sum()),
    }


@torch.no_grad()
def model_teacher_measures(
    model, data: FrameData, teacher_probs: torch.Tensor, *, temperature: float, batch_size: int = 4096
) -> Dict[str, float]:
    """Mean KL(p_T || q_T) per labelled frame (nats), top-1 agreement with the teacher and frame
    accuracy of ``model`` against the teacher's probabilities ``teacher_probs`` at T, batch by batch
    (no frames x pdfs logits held)."""
    tot = {"kl": 0.0, "agreement": 0.0, "frame_acc": 0.0, "frames": 0}
    for idx, logits in _batch_logits(model, data, batch_size):
        part = _teacher_sums(logits.cpu(), teacher_probs[idx], data.labels[idx], temperature=temperature)
        for k in tot:
            tot[k] += part[k]
    return {k: tot[k] / max(tot["frames"], 1) for k in ("kl", "agreement", "frame_acc")}


def teacher_logits(teachers: Sequence, data: FrameData) -> torch.Tensor:
    """(members, N, C) logits of the checkpoints ``teachers`` on ``data``."""
    return torch.stack([predict_logits(load_model(t, torch_device()), data) for t in teachers])  # a GPU when present


def frame_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    keep = labels >= 0
    return float((logits[keep].argmax(-1) == labels[keep]).float().mean())


def utterance_errors(logits: torch.Tensor, data: FrameData) -> np.ndarray:
    """Per utterance of ``data``: frames whose arg-max is not the label (padding frames excluded)."""
    wrong = ((logits.argmax(-1) != data.labels) & (data.labels >= 0)).numpy().astype(np.int64)
    return np.add.reduceat(wrong, data.offsets[:-1]) if len(wrong) else np.zeros(0, np.int64)


def utterance_frames(data: FrameData) -> np.ndarray:
    """Per utterance of ``data``: its labelled frames (the denominator of frame accuracy)."""
    return np.add.reduceat((data.labels >= 0).numpy().astype(np.int64), data.offsets[:-1])


def evaluate(models: Sequence, data: FrameData) -> Dict:
    """Frame accuracy of each checkpoint in ``models`` and of their ensemble (mean of softmaxes at
    T = 1). ``errors`` (not JSON) holds per-utterance frame errors, one row per model (``single``)
    and for the ensemble (``ensemble``); ``frames`` the labelled frames per utterance."""
    logits = teacher_logits(models, data)
    single = [frame_accuracy(z, data.labels) for z in logits]
    res = {
        "single": single,
        "single_mean": float(np.mean(single)),
        "single_std": float(np.std(single, ddof=1)) if len(single) > 1 else 0.0,
        "errors": {"single": np.stack([utterance_errors(z, data) for z in logits])},
        "frames": utterance_frames(data),
    }
    if len(models) > 1:
        avg = ensemble_soft_targets(logits, 1.0).log()
        res["ensemble"] = frame_accuracy(avg, data.labels)
        res["errors"]["ensemble"] = utterance_errors(avg, data)[None]
    return res


def without_arrays(res: Dict) -> Dict:
    """``evaluate``'s result without the per-utterance arrays (for JSON)."""
    return {k: v for k, v in res.items() if k not in ("errors", "frames")}

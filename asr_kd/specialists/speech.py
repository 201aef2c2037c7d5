"""The specialist method on HMM states: the generalist is a frame-level DNN acoustic model, its
classes are pdf-ids, and the clusters are groups of states it confuses. The same clustering,
training-set, initialisation and KL-combination code as the image recipe; frames come from the
alignment stage (asr_kd.nnet.data.load_split)."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Dict, List

import numpy as np
import torch

from asr_kd.nnet.checkpoint import load_model
from asr_kd.nnet.data import FrameData, load_split
from asr_kd.nnet.evaluate import predict_logits
from asr_kd.nnet.train import TrainConfig, train_model
from asr_kd.specialists.clusters import confusable_clusters
from asr_kd.specialists.training import combined_accuracy, specialist_init, specialist_training_set
from asr_kd.utils.io import write_json_atomic
from asr_kd.utils.results import write_table

log = logging.getLogger(__name__)


@dataclass
class FrameSubset:
    """Some frames of a FrameData with new labels (context windows still come from the full utterances)."""

    streamed: ClassVar[bool] = False  # asr_kd.nnet.data.FrameSource
    teacher_model: ClassVar[None] = None
    teacher_probs: ClassVar[None] = None
    base: FrameData
    idx: torch.Tensor
    labels: torch.Tensor
    soft: None = None

    def __len__(self) -> int:
        return len(self.idx)

    @property
    def feat_dim(self) -> int:
        return self.base.feat_dim

    def windows(self, i: torch.Tensor, context: int) -> torch.Tensor:
        return self.base.windows(self.idx[i], context)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return x


def speech_specialists(
    generalist_ckpt,
    ali_dir,
    fbank_dir,
    *,
    corpus: str,
    out_dir,
    num_clusters: int = 6,
    num_clusterings: int = 1,
    train_cfg: TrainConfig = TrainConfig(epochs=3, lr=3e-4),
    seed: int = 1,
    top_n: int = 1,
) -> Dict:
    out_dir = Path(out_dir)
    splits = {s: load_split(ali_dir, fbank_dir, corpus, split=s) for s in ("train", "dev", "test")}
    gen = load_model(generalist_ckpt)
    probs = {s: torch.softmax(predict_logits(gen, d), -1).numpy() for s, d in splits.items() if s != "train"}
    clusters: List[List[int]] = []
    for r in range(num_clusterings):
        for cl in confusable_clusters(probs["dev"], num_clusters, seed + r):
            if cl not in clusters:
                clusters.append(cl)
    pdf2phone = dict(
        line.split() for line in (Path(ali_dir) / "pdf_to_phone.txt").read_text().splitlines() if line.strip()
    )
    names = [[f"{c}:{pdf2phone.get(str(c), '?')}" for c in cl] for cl in clusters]
    for m, n in enumerate(names):
        log.info("cluster %d: %s", m, " ".join(n))
    y_train, y_dev = splits["train"].labels.numpy(), splits["dev"].labels.numpy()
    sp = []
    for m, cl in enumerate(clusters):
        idx, lab = specialist_training_set(y_train, cl, seed + m)
        vidx, vlab = specialist_training_set(y_dev, cl, seed + m)
        state, model_cfg = specialist_init(generalist_ckpt, cl)
        train_model(
            FrameSubset(splits["train"], torch.from_numpy(idx), torch.from_numpy(lab)),
            FrameSubset(splits["dev"], torch.from_numpy(vidx), torch.from_numpy(vlab)),
            len(cl) + 1,
            out_dir=out_dir / str(m),
            model_cfg=model_cfg,
            cfg=train_cfg,
            seed=seed + m,
            init_state=state,
        )
        share = float(np.isin(y_train, cl).mean())
        logits = predict_logits(load_model(out_dir / str(m) / "best.pt"), splits["test"])
        logits[:, -1] += float(np.log((1 - share) / share))
        sp.append(torch.softmax(logits, -1).numpy())
    res = combined_accuracy(probs["test"], sp, clusters, y=splits["test"].labels.numpy(), top_n=top_n)
    res.update({"clusters": clusters, "cluster_names": names, "generalist": str(generalist_ckpt)})
    write_json_atomic(out_dir / "speech_specialists.json", res)
    return res


def table_lines(res: Dict, title: str) -> List[str]:
    lines = [
        f"### {title}",
        "",
        "Clusters of confusable HMM states (pdf-id:phone), from the generalist's dev posteriors:",
        "",
    ]
    lines += [f"- cluster {m}: {' '.join(n)}" for m, n in enumerate(res["cluster_names"])]
    lines += [
        "",
        "| system | test frame accuracy |",
        "|---|---|",
        f"| generalist (baseline DNN) | {100 * res['generalist_accuracy']:.2f}% |",
        f"| generalist + {len(res['clusters'])} state specialists (KL-combined) | {100 * res['combined_accuracy']:.2f}% |",
        "",
        "| specialists covering | test frames | change in frames right | relative accuracy change |",
        "|---|---|---|---|",
    ]
    for row in res["by_coverage"]:
        rel = f"{100 * row['relative_change']:+.2f}%" if np.isfinite(row["relative_change"]) else "n/a"
        lines.append(f"| {row['specialists_covering']} | {row['examples']} | {row['delta_correct']:+d} | {rel} |")
    return lines + [""]


def speech_specialists_table(
    generalist_ckpt, ali_dir, fbank_dir, *, corpus: str, out_dir, out_stem, title: str, results_md=None, **kwargs
) -> Dict:
    """``speech_specialists`` written as OUT.json / OUT.md and the RESULTS.md block."""
    res = speech_specialists(generalist_ckpt, ali_dir, fbank_dir, corpus=corpus, out_dir=out_dir, **kwargs)
    write_table(out_stem, res, table_lines(res, title), results_md=results_md, title=title)
    return res

"""The specialist experiment on any labelled image set (asr_kd.specialists.data): a generalist,
confusable-class clusters from its predictions, one specialist per cluster, KL-combined inference,
and the paper's tables. Models, losses and the training loop are asr_kd's shared ones.

Specialist training set (decision, after the paper): all training examples of the cluster's
classes plus as many random others, labelled with the dustbin class (index |cluster|). The
dustbin is thereby oversampled (its true share is 1 - s, s the cluster's share of the training
set; here it is 1/2); at inference its logit is corrected by log((1 - s) / s), which restores the
true prior. With ``soft_weight`` > 0 the generalist's distribution, folded onto the cluster's
classes + dustbin, is a soft target beside the hard labels (the paper's remedy for overfitting).
"""

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from asr_kd.images.data import ImageData
from asr_kd.nnet.checkpoint import load_model
from asr_kd.nnet.evaluate import predict_logits
from asr_kd.nnet.losses import LossConfig, build_criterion
from asr_kd.nnet.models import ModelConfig
from asr_kd.nnet.train import TrainConfig, train_model
from asr_kd.specialists import data as sdata
from asr_kd.specialists.clusters import confusable_clusters, describe, plot_covariance
from asr_kd.specialists.combine import fold_matrix
from asr_kd.specialists.training import combined_accuracy, specialist_init, specialist_training_set
from asr_kd.utils.config import section
from asr_kd.utils.io import atomic_path, write_json_atomic
from asr_kd.utils.results import write_table

log = logging.getLogger(__name__)


@dataclass
class SpecialistConfig:
    generalist_model: ModelConfig = field(
        default_factory=lambda: ModelConfig(name="dnn", context=0, hidden=512, num_layers=2)
    )
    generalist_train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=10, batch_size=128, lr=1e-3, schedule="cosine")
    )
    specialist_train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=6, batch_size=128, lr=3e-4, schedule="cosine")
    )
    num_clusters: int = 5
    num_clusterings: int = (
        1  # k-means runs with different seeds; their clusters overlap, so up to this many specialists cover a class
    )
    top_n: int = 1  # the generalist's top-n classes choose the active specialists
    soft_weight: float = 1.0  # weight of the generalist's folded soft targets when they are used
    train_subset: int = 0  # quick mode: the first N training images
    seed: int = 1


def load_config(path: Optional[str]) -> SpecialistConfig:
    """The ``specialists`` section of a recipe config (defaults without one)."""
    return section(path, "specialists", SpecialistConfig)


def _images(d: Dict, split: str, cfg: SpecialistConfig):
    x, y = d[f"x_{split}"], d[f"y_{split}"]
    if split == "train" and cfg.train_subset:
        idx = np.random.default_rng(0).permutation(len(y))[: cfg.train_subset]
        x, y = x[np.sort(idx)], y[np.sort(idx)]
    return x.astype(np.float32) / 256.0, y


def _save_npy(path: Path, a: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, a)


def train_generalist(data_npz, out_dir, cfg: SpecialistConfig) -> Dict:
    d = sdata.load(data_npz)
    xt, yt = _images(d, "train", cfg)
    xv, yv = _images(d, "valid", cfg)
    n = len(d["names"])
    train_model(
        ImageData.from_numpy(xt, yt),
        ImageData.from_numpy(xv, yv),
        n,
        out_dir=out_dir,
        model_cfg=cfg.generalist_model,
        cfg=cfg.generalist_train,
        seed=cfg.seed,
    )
    model = load_model(Path(out_dir) / "best.pt")
    for split in ("train", "valid", "test"):
        x, y = _images(d, split, cfg)
        probs = torch.softmax(predict_logits(model, ImageData.from_numpy(x, y)), -1).numpy()
        _save_npy(Path(out_dir) / f"{split}_probs.npy", probs)
    test_acc = float((np.load(Path(out_dir) / "test_probs.npy").argmax(1) == d["y_test"]).mean())
    write_json_atomic(Path(out_dir) / "eval.json", {"test_accuracy": test_acc, "classes": n})
    return {"test_accuracy": test_acc}


def find_clusters(generalist_dir, data_npz, k: int, *, seed: int, out_dir, num_clusterings: int = 1) -> List[List[int]]:
    """Clusters from the generalist's predictions on the validation set (no labels used); with
    several clusterings (seeds ``seed``, ``seed + 1``, ...) the distinct clusters of all of them."""
    d = sdata.load(data_npz)
    probs = np.load(Path(generalist_dir) / "valid_probs.npy")
    clusters: List[List[int]] = []
    for r in range(num_clusterings):
        for cl in confusable_clusters(probs, k, seed + r):
            if cl not in clusters:
                clusters.append(cl)
    out_dir = Path(out_dir)
    write_json_atomic(
        out_dir / "clusters.json", {"clusters": clusters, "names": [[d["names"][c] for c in cl] for cl in clusters]}
    )
    plot_covariance(probs, clusters, d["names"], path=out_dir / "clusters.png")
    for line in describe(clusters, d["names"]):
        log.info("%s", line)
    return clusters


def train_specialist(
    data_npz, generalist_dir, clusters_json, *, index: int, out_dir, cfg: SpecialistConfig, soft_targets: bool = False
) -> Dict:
    d = sdata.load(data_npz)
    cluster = json.loads(Path(clusters_json).read_text())["clusters"][index]
    xt, yt = _images(d, "train", cfg)
    xv, yv = _images(d, "valid", cfg)
    idx, labels = specialist_training_set(yt, cluster, cfg.seed + index)
    vidx, vlabels = specialist_training_set(yv, cluster, cfg.seed + index)
    soft = None
    loss = LossConfig(loss="ce")
    if soft_targets:  # the generalist's distribution folded onto cluster + dustbin, at T = 1
        pg = np.load(Path(generalist_dir) / "train_probs.npy")[idx]
        soft = pg @ fold_matrix(pg.shape[1], cluster).numpy()
        loss = LossConfig(loss="kd", temperature=1.0, soft_weight=cfg.soft_weight, hard_weight=1.0)
    state, model_cfg = specialist_init(Path(generalist_dir) / "best.pt", cluster)
    res = train_model(
        ImageData.from_numpy(xt[idx], labels, soft),
        ImageData.from_numpy(xv[vidx], vlabels),
        len(cluster) + 1,
        out_dir=out_dir,
        model_cfg=model_cfg,
        cfg=cfg.specialist_train,
        criterion=build_criterion(loss),
        seed=cfg.seed + index,
        init_state=state,
    )
    share = float(np.isin(yt, cluster).mean())
    model = load_model(Path(out_dir) / "best.pt")
    correction = float(np.log((1 - share) / share))
    for split in ("valid", "test"):
        x, y = _images(d, split, cfg)
        logits = predict_logits(model, ImageData.from_numpy(x, y))
        logits[:, -1] += correction
        _save_npy(Path(out_dir) / f"{split}_probs.npy", torch.softmax(logits, -1).numpy())
    info = {
        "cluster": cluster,
        "train_examples": int(len(idx)),
        "cluster_share": share,
        "dustbin_correction": correction,
        "soft_targets": soft_targets,
        "best_dev_acc": res["best_dev_frame_acc"],
        "config": asdict(cfg.specialist_train),
    }
    write_json_atomic(Path(out_dir) / "eval.json", info)
    return info


def train_specialist_in(exp, data_npz, index: int, *, cfg: SpecialistConfig, soft_targets: bool = False) -> Dict:
    """``train_specialist`` with the experiment folder's layout: ``exp/generalist``, ``exp/clusters.json``,
    and ``exp/specialists[_soft]/<index>``."""
    exp = Path(exp)
    variant = "specialists_soft" if soft_targets else "specialists"
    return train_specialist(
        data_npz,
        exp / "generalist",
        exp / "clusters.json",
        index=index,
        out_dir=exp / variant / str(index),
        cfg=cfg,
        soft_targets=soft_targets,
    )


def evaluate(exp, data_npz, variant: str, *, top_n: int = 1, split: str = "test") -> Dict:
    """Generalist vs. generalist + specialists (``exp/<variant>/m``), and the per-coverage table."""
    exp = Path(exp)
    d = sdata.load(data_npz)
    y = d[f"y_{split}"]
    clusters = json.loads((exp / "clusters.json").read_text())["clusters"]
    pg = np.load(exp / "generalist" / f"{split}_probs.npy")
    if len(pg) != len(y):
        raise ValueError(f"{split} probabilities ({len(pg)}) do not match the data ({len(y)})")
    sp = [np.load(exp / variant / str(m) / f"{split}_probs.npy") for m in range(len(clusters))]
    return {"variant": variant, **combined_accuracy(pg, sp, clusters, y=y, top_n=top_n)}


def report(exp, data_npz, *, variants=("specialists", "specialists_soft"), top_n: int = 1, results_md=None) -> Dict:
    """The paper's two tables (accuracy; gains by the number of specialists covering an example)
    for each specialist variant that exists, plus the clusters."""
    exp = Path(exp)
    cl = json.loads((exp / "clusters.json").read_text())
    res = {"clusters": cl["names"], "generalist": json.loads((exp / "generalist" / "eval.json").read_text())}
    lines = ["### Specialists: clusters of confusable classes (from the generalist's prediction covariance)", ""]
    lines += [f"- cluster {m}: {', '.join(names)}" for m, names in enumerate(cl["names"])]
    lines += ["", "| system | test accuracy | examples with an active specialist |", "|---|---|---|"]
    tables = []
    for v in variants:
        if not (exp / v).is_dir():
            continue
        r = res[v] = evaluate(exp, data_npz, v, top_n=top_n)
        if len(tables) == 0:
            lines.append(f"| generalist | {100 * r['generalist_accuracy']:.2f}% | |")
        label = "generalist + specialists" + (
            " trained with the generalist's soft targets" if v.endswith("_soft") else " (hard labels)"
        )
        lines.append(f"| {label} | {100 * r['combined_accuracy']:.2f}% | {100 * r['active_rate']:.1f}% |")
        t = [
            f"By the number of active specialists covering the correct class ({label}):",
            "",
            "| specialists covering | test examples | change in top-1 correct | relative accuracy change |",
            "|---|---|---|---|",
        ]
        t += [
            f"| {row['specialists_covering']} | {row['examples']} | {row['delta_correct']:+d} | "
            + (
                f"{100 * row['relative_change']:+.2f}% |"
                if np.isfinite(row["relative_change"])
                else "n/a (none right before) |"
            )
            for row in r["by_coverage"]
        ]
        tables.append(t)
    if len(tables) == 0:
        raise FileNotFoundError(f"no specialists under {exp}")
    lines.append("")
    for t in tables:
        lines += t + [""]
    lines += [
        "Paper (JFT, 61 specialists): 25.0% -> 26.1% test accuracy; the gain grows with the number of "
        "specialists covering an example.",
        "",
    ]
    write_table(exp / "specialists_table", res, lines, results_md=results_md, title="specialists")
    return res

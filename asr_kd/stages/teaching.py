"""Stages 17-19, the (5e) tables and the diagnosis: why a distilled student keeps less than the ensemble gains: per epoch of its training,
KL(teacher || student) at the distillation temperature and top-1 agreement with the teacher, on
training frames and on dev frames, beside frame accuracy (``diagnose``).

The three answers it tells apart (``verdict``):

- **cannot fit**: the student falls short of the teacher on its own training frames about as much as
  on dev (the shortfall is capacity or the schedule: ``converging`` says whether the training KL was
  still falling in the last epoch, i.e. whether more epochs or a learning-rate decay would help);
- **generalisation**: it matches the teacher on training frames but not off them (the teacher's
  function is only shown on the training frames: more, or more varied, transfer data helps);
- **targets**: the student matches the teacher everywhere, but the teacher's soft targets add
  little over a single model (temperature, ensemble diversity).

The teacher is the ensemble of member checkpoints (mean of their softmaxes at T), scored on the
same frames as the student; training frames are a seeded share of the training cuts."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from asr_kd.nnet.checkpoint import load_model
from asr_kd.nnet.data import load_split
from asr_kd.nnet.evaluate import frame_accuracy, model_teacher_measures, teacher_logits
from asr_kd.nnet.targets import ensemble_soft_targets
from asr_kd.utils.io import write_json_atomic

log = logging.getLogger(__name__)

# "cannot fit" when the training-frame shortfall to the teacher is at least this share of the dev one
FIT_SHARE = 0.5
# the training KL still falls by more than this share in the last epoch: "converging" (not converged)
CONVERGING = 0.01


def epoch_checkpoints(run_dir) -> List[Path]:
    """A training run's ``epoch-N.pt`` files in epoch order."""
    found = sorted(Path(run_dir).glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    if not found:
        raise FileNotFoundError(f"{run_dir}: no epoch-N.pt checkpoints (a training run's folder)")
    return found


def verdict(rows: List[Dict], teacher: Dict[str, Dict[str, float]]) -> Dict:
    """Which of the three answers the last epoch of one student gives (see the module docstring)."""
    last = rows[-1]
    short_train = teacher["train"]["frame_acc"] - last["train"]["frame_acc"]
    short_dev = teacher["dev"]["frame_acc"] - last["dev"]["frame_acc"]
    falling = len(rows) > 1 and rows[-2]["train"]["kl"] - last["train"]["kl"] > CONVERGING * rows[-2]["train"]["kl"]
    if short_dev <= 0:
        kind = "targets"  # as good as the teacher on dev: nothing left to keep
    elif short_train >= FIT_SHARE * short_dev:
        kind = "cannot fit"
    else:
        kind = "generalisation"
    return {
        "kind": kind,
        "shortfall_train": short_train,
        "shortfall_dev": short_dev,
        "kl_gap_dev_minus_train": last["dev"]["kl"] - last["train"]["kl"],
        "converging": bool(falling),
    }


@torch.no_grad()
def diagnose(
    students: Sequence,
    teachers: Sequence,
    ali_dir,
    *,
    fbank_dir,
    corpus: str,
    temperature: float,
    train_fraction: float = 0.1,
    references: Sequence = (),
    seed: int = 0,
) -> Dict:
    """Per student run folder (``students``), per epoch: ``model_teacher_measures`` on a ``train_fraction``
    of the training cuts and on dev. ``references``: single-model checkpoints (e.g. baselines)
    measured the same way, once."""
    splits = {
        "train": load_split(ali_dir, fbank_dir, corpus, split="train", fraction=train_fraction, seed=seed),
        "dev": load_split(ali_dir, fbank_dir, corpus, split="dev"),
    }
    return {
        **diagnose_frames(students, teachers, splits, temperature=temperature, references=references),
        "train_fraction": train_fraction,
    }


@torch.no_grad()
def diagnose_frames(
    students: Sequence, teachers: Sequence, splits: Dict, *, temperature: float, references: Sequence = ()
) -> Dict:
    """``diagnose`` on given frames: ``splits`` = {"train": FrameData, "dev": FrameData}."""
    probs = {k: ensemble_soft_targets(teacher_logits(teachers, d), temperature) for k, d in splits.items()}
    teacher = {k: {"frame_acc": frame_accuracy(probs[k], d.labels)} for k, d in splits.items()}

    def measure(model) -> Dict[str, Dict[str, float]]:
        return {k: model_teacher_measures(model, d, probs[k], temperature=temperature) for k, d in splits.items()}

    out = {
        "temperature": temperature,
        "teachers": [str(t) for t in teachers],
        "frames": {k: int((d.labels >= 0).sum()) for k, d in splits.items()},
        "teacher": teacher,
        "references": {str(r): measure(load_model(r)) for r in references},
        "students": {},
    }
    for run in students:
        rows = []
        for ck in epoch_checkpoints(run):
            rows.append({"epoch": int(ck.stem.split("-")[1]), **measure(load_model(ck))})
            log.info(
                "%s epoch %d: train KL %.3f agree %.3f | dev KL %.3f agree %.3f acc %.4f",
                run,
                rows[-1]["epoch"],
                rows[-1]["train"]["kl"],
                rows[-1]["train"]["agreement"],
                rows[-1]["dev"]["kl"],
                rows[-1]["dev"]["agreement"],
                rows[-1]["dev"]["frame_acc"],
            )
        out["students"][str(run)] = {"epochs": rows, "verdict": verdict(rows, teacher)}
    kinds = sorted({s["verdict"]["kind"] for s in out["students"].values()})
    out["verdict"] = kinds[0] if len(kinds) == 1 else "mixed: " + ", ".join(kinds)
    return out


def plot_diagnosis(res: Dict, path, title: str = "") -> None:
    """KL to the teacher, agreement and frame accuracy per epoch; train dashed, dev solid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for (name, run), colour in zip(res["students"].items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        ep = [r["epoch"] for r in run["epochs"]]
        label = Path(name).name
        for ax, key in zip(axes, ("kl", "agreement", "frame_acc")):
            for split, style in (("train", "--"), ("dev", "-")):
                ax.plot(
                    ep,
                    [r[split][key] for r in run["epochs"]],
                    style,
                    color=colour,
                    marker=".",
                    label=f"{label} {split}",
                )
    for split, style in (("train", "--"), ("dev", "-")):
        axes[2].axhline(res["teacher"][split]["frame_acc"], color="k", ls=style, lw=0.8, label=f"teacher {split}")
    for ax, name in zip(
        axes, (f"KL(teacher || student) at T={res['temperature']:g}", "top-1 agreement with teacher", "frame accuracy")
    ):
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{title} verdict: {res['verdict']}".strip(), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_diagnosis(res: Dict, out_dir, title: str = "") -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "diagnosis.json", res)
    plot_diagnosis(res, out / "diagnosis.png", title)
    return out / "diagnosis.json"


def _run_figures(run_dir, model_measures) -> Dict:
    """One training run: its best model's measures against the teacher, epochs run and seconds spent."""
    import json

    run = Path(run_dir)
    history = json.loads((run / "history.json").read_text()) if (run / "history.json").is_file() else []
    return {
        **model_measures(load_model(run / "best.pt")),
        "epochs": len(history),
        "train_seconds": sum(r.get("seconds", 0.0) for r in history),
    }


@torch.no_grad()
def teaching_table_frames(
    rows: Sequence[str],
    teachers: Sequence,
    data,
    *,
    temperature: float,
    out_stem,
    results_md=None,
    title: str = "",
    split: str = "dev",
    labels: Optional[Dict[str, str]] = None,
) -> Dict:
    """(5e) what makes the student keep the gain: each row (id, training folders, one per seed; shown by
    its ``labels``) scored on ``data`` (the ``split`` the table names) against the ensemble ``teachers``:
    frame accuracy, KL(teacher || student) at T, top-1 agreement, and the share of the ensemble's
    frame-accuracy gain over its members kept; with epochs run and training time."""
    import numpy as np

    from asr_kd.utils.results import write_table

    logits = teacher_logits(teachers, data)
    probs = ensemble_soft_targets(logits, temperature)
    keep = data.labels >= 0
    members = [frame_accuracy(lg, data.labels) for lg in logits]
    ensemble = frame_accuracy(probs, data.labels)
    base = float(np.mean(members))

    def measures(model) -> Dict[str, float]:
        return model_teacher_measures(model, data, probs, temperature=temperature)

    res = {
        "title": title,
        "split": split,
        "temperature": temperature,
        "frames": int(keep.sum()),
        "baseline_frame_acc": members,
        "ensemble_frame_acc": ensemble,
        "rows": [],
    }
    lines = [
        f"### {title}",
        "",
        f"{split} frames ({int(keep.sum())}): frame accuracy, KL(ensemble || student) at T={temperature:g} (nats "
        "per frame), top-1 agreement with the ensemble, and the share of the ensemble's frame-accuracy gain over "
        f"its members kept, (student - baseline) / (ensemble - baseline); mean over seeds (n). Baseline "
        f"(mean of {len(members)} members) {100 * base:.2f}%, ensemble {100 * ensemble:.2f}%.",
        "",
        f"| recipe | {split} frame accuracy | KL to ensemble | agreement | gain kept | epochs | training minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, paths in rows:
        runs = [_run_figures(p, measures) for p in paths]
        if not runs:
            raise ValueError(f"teaching table: row {name!r} names no training folder")
        mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
        kept = (mean["frame_acc"] - base) / (ensemble - base) if ensemble != base else float("nan")
        label = (labels or {}).get(name, name)
        res["rows"].append(
            {"name": name, "label": label, "runs": [str(p) for p in paths], "seeds": runs, **mean, "gain_kept": kept}
        )
        lines.append(
            f"| {label} (n={len(runs)}) | {100 * mean['frame_acc']:.2f}% | {mean['kl']:.4f} | "
            f"{100 * mean['agreement']:.1f}% | {100 * kept:.0f}% | {mean['epochs']:.0f} | "
            f"{mean['train_seconds'] / 60:.1f} |"
        )
    lines.append("")
    write_table(out_stem, res, lines, results_md=results_md, title=title)
    return res


@dataclass(frozen=True)
class TeacherRow:
    """One row of the teacher table: an ensemble (member checkpoints) and its students' training folders."""

    name: str
    teachers: Tuple[str, ...]
    students: Tuple[str, ...]


@torch.no_grad()
def teacher_table_frames(
    rows: Sequence[TeacherRow],
    data,
    *,
    temperature: float,
    out_stem,
    results_md=None,
    title: str = "",
    split: str = "dev",
    labels: Optional[Dict[str, str]] = None,
) -> Dict:
    """(5e) teacher quality and diversity: each row's ensemble scored on ``data`` (the ``split`` the table
    names: its members' mean frame accuracy and its own), and its students against it (frame accuracy, KL
    at T, agreement, gain kept); the last column compares each student with the first row's members, the
    recipe's single models."""
    import numpy as np

    from asr_kd.utils.results import write_table

    res = {"title": title, "split": split, "temperature": temperature, "rows": []}
    lines = [
        f"### {title}",
        "",
        f"{split} frames ({int((data.labels >= 0).sum())}): each ensemble's members (mean frame accuracy) and the "
        "ensemble itself; its students' frame accuracy, KL(ensemble || student) at "
        f"T={temperature:g}, and the share of that ensemble's gain over its members kept; the last column is the "
        "student's frame accuracy minus the first row's members' (the recipe's single models), in points.",
        "",
        f"| teachers | members | members' {split} accuracy | ensemble | student (n) | KL to ensemble | gain kept "
        "| student vs. the recipe's members |",
        "|---|---|---|---|---|---|---|---|",
    ]
    reference = None
    for row in rows:
        if not row.students:
            raise ValueError(f"teacher table: row {row.name!r} names no student training folder")
        logits = teacher_logits(row.teachers, data)
        probs = ensemble_soft_targets(logits, temperature)
        base = float(np.mean([frame_accuracy(lg, data.labels) for lg in logits]))
        ensemble = frame_accuracy(probs, data.labels)
        del logits
        runs = [
            _run_figures(p, lambda m: model_teacher_measures(m, data, probs, temperature=temperature))
            for p in row.students
        ]
        mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
        kept = (mean["frame_acc"] - base) / (ensemble - base) if ensemble != base else float("nan")
        reference = base if reference is None else reference
        label = (labels or {}).get(row.name, row.name)
        res["rows"].append(
            {
                "name": row.name,
                "label": label,
                "teachers": list(row.teachers),
                "members_frame_acc": base,
                "ensemble_frame_acc": ensemble,
                "runs": list(row.students),
                "seeds": runs,
                **mean,
                "gain_kept": kept,
                "vs_reference_members": mean["frame_acc"] - reference,
            }
        )
        lines.append(
            f"| {label} | {len(row.teachers)} | {100 * base:.2f}% | {100 * ensemble:.2f}% | "
            f"{100 * mean['frame_acc']:.2f}% (n={len(runs)}) | {mean['kl']:.4f} | {100 * kept:.0f}% | "
            f"{100 * (mean['frame_acc'] - reference):+.2f} |"
        )
    lines.append("")
    write_table(out_stem, res, lines, results_md=results_md, title=title)
    return res

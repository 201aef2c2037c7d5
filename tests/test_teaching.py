"""How a student is taught (issue: the student must keep the ensemble's gain): augmentations, the
online ensemble teacher, dev KL and patient schedules, the diagnosis and the (5e) table."""

import json

import pytest
import torch

from asr_kd.stages.teaching import diagnose_frames, teaching_table_frames, verdict, write_diagnosis
from asr_kd.distill.teaching import EnsembleTeacher, TeachingConfig, attach_teaching
from asr_kd.nnet.augment import AugmentConfig, FeatureStats, build_augment
from asr_kd.nnet.evaluate import teacher_logits
from asr_kd.nnet.losses import LossConfig, build_criterion
from asr_kd.nnet.models import ModelConfig
from asr_kd.nnet.targets import ensemble_soft_targets
from asr_kd.nnet.train import TrainConfig, train_model
from asr_kd.utils.config import ConfigError, section

from test_nnet import toy_frames

MCFG = ModelConfig(context=1, hidden=32, num_layers=1)


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two hard-label members on the toy frames (the ensemble a student learns from)."""
    root = tmp_path_factory.mktemp("members")
    train, dev = toy_frames(seed=0), toy_frames(seed=1, n_utts=4)
    for seed in (1, 2):
        train_model(
            train,
            dev,
            5,
            out_dir=root / f"m{seed}",
            model_cfg=MCFG,
            cfg=TrainConfig(epochs=2, batch_size=32, lr=0.01),
            seed=seed,
        )
    return [root / f"m{s}" / "best.pt" for s in (1, 2)]


# log mel energies of about this mean and spread per bin, as a corpus's cmvn.npz holds them
STATS = FeatureStats(mean=torch.linspace(12.0, 8.0, 40), std=torch.full((40,), 2.0))


@pytest.mark.parametrize(
    "spec",
    ["specaugment", "mixup", "specaugment+mixup", "tempo", "tempo+mixup", "noise", "reverb", "reverb+noise+mixup"],
)
def test_augmentation_is_seeded_keeps_shapes_and_changes_the_input(spec):
    x = torch.randn(64, 11, 40)
    aug = build_augment(spec, stats=STATS)
    torch.manual_seed(5)
    a = aug(x)
    torch.manual_seed(5)
    b = aug(x)
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(a, x)
    if spec == "specaugment":  # masks only zero values: every value is either kept or 0
        assert torch.all((a == x) | (a == 0))
        assert (a == 0).float().mean() > 0.01


def test_mixup_keeps_the_original_frame_dominant():
    """The label stays the original frame's: its weight is at least 1 - mixup_max = 1/2."""
    x = torch.eye(32)[:, None, :].repeat(1, 3, 1)  # frame k is the unit vector e_k
    torch.manual_seed(0)
    y = build_augment("mixup", AugmentConfig(mixup_max=0.5))(x)
    own = y[torch.arange(32), 1, torch.arange(32)]
    assert torch.all(own >= 0.5) and (own < 1).sum() > 20  # blended, the original frame's weight dominant
    assert torch.allclose(y.sum(-1), torch.ones(32, 3))


def test_tempo_reads_the_perturbed_utterance_around_an_unmoved_centre():
    """Each window is the one its centre frame has in the utterance played at the drawn factor: the
    centre frame (and so its label) stays, the context is the utterance linearly interpolated
    ``factor`` frames apart; a factor of 1 is the window itself."""
    utt = torch.randn(200, 40)
    centres = torch.arange(20, 180)
    x = torch.stack([utt[c - 5 : c + 6] for c in centres])  # (160, 11, 40) windows of the utterance
    torch.manual_seed(3)
    y = build_augment("tempo")(x)
    assert torch.equal(y[:, 5], x[:, 5])  # the centre frame is untouched
    drawn = set()
    for i, c in enumerate(centres.tolist()):
        matches = []
        for f in (0.9, 1.0, 1.1):
            pos = c + (torch.arange(11) - 5) * f
            pos = pos.clamp(c - 5, c + 5)  # the window's edge frame beyond its edge
            lo = pos.floor().long()
            w = (pos - lo)[:, None]
            ref = (1 - w) * utt[lo] + w * utt[(lo + 1).clamp(max=c + 5)]
            if torch.allclose(y[i], ref, atol=1e-4):
                matches.append(f)
        assert len(matches) == 1, (c, matches)
        drawn.add(matches[0])
    assert drawn == {0.9, 1.0, 1.1}
    assert torch.equal(build_augment("tempo", AugmentConfig(tempo_factors=(1.0,)))(x), x)


def _power(x: torch.Tensor) -> torch.Tensor:
    return (x * STATS.std + STATS.mean).exp()


def test_noise_adds_power_at_the_drawn_snr_and_only_to_the_drawn_windows():
    x = torch.randn(400, 11, 40)
    torch.manual_seed(1)
    y = build_augment("noise", AugmentConfig(noise_prob=0.5, noise_snr_db=(5.0, 15.0)), STATS)(x)
    changed = ~torch.isclose(y, x, atol=1e-5).all(2).all(1)
    assert 150 < changed.sum() < 250  # about half the windows
    added = _power(y) - _power(x)
    assert torch.all(added[changed] > 0) and torch.allclose(y[~changed], x[~changed])
    snr = 10 * torch.log10(_power(x)[changed].mean((1, 2)) / added[changed].mean((1, 2)))
    assert snr.min() > 4.99 and snr.max() < 15.01 and snr.max() - snr.min() > 5


def test_reverb_adds_a_decaying_tail_of_earlier_frames_behind_the_direct_sound():
    """Power only: each frame keeps its own power (the direct sound, so its label holds) plus a tail of
    the frames before it; a quiet frame after a loud one is filled, one before it is not; the tail
    carries at most ``reverb_tail`` of the energy."""
    x = torch.full((32, 11, 40), -3.0)  # quiet windows
    x[:, 5] = 2.0  # one loud centre frame
    torch.manual_seed(2)
    y = build_augment("reverb", AugmentConfig(reverb_prob=1.0), STATS)(x)
    p, q = _power(x), _power(y)
    assert torch.all(q >= p * 0.9999)
    tail = AugmentConfig().reverb_tail
    assert torch.all(q[:, :5] <= p[:, :5] * (1 + tail) * 1.0001)  # before the loud frame: quiet frames' tails only
    assert torch.all(q[:, 6] > 2 * p[:, 6])  # the frame after it is filled by its tail
    assert torch.all(q[:, 6] > q[:, 10])  # decaying
    assert torch.all(q.sum(1) <= p.sum(1) * (1 + tail) * 1.0001)


def test_power_domain_augmentation_without_feature_statistics_is_an_error():
    with pytest.raises(ValueError, match="CMVN"):
        build_augment("specaugment+noise")


def test_unknown_augmentation_is_a_config_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("teaching:\n  augment: specaugment+warp\n")
    with pytest.raises((ConfigError, ValueError), match="warp"):
        section(cfg, "teaching", TeachingConfig)


def test_online_teacher_equals_the_stored_targets_on_clean_input(members):
    data = toy_frames(seed=3, n_utts=3)
    from asr_kd.nnet.checkpoint import load_model

    teacher = EnsembleTeacher([load_model(m) for m in members], temperature=2.0)
    online = teacher(data.windows(torch.arange(len(data)), MCFG.context))
    stored = ensemble_soft_targets(teacher_logits(members, data), 2.0)
    assert torch.allclose(online, stored, atol=1e-6)


def test_online_teacher_student_learns_and_records_dev_kl(members, tmp_path):
    from asr_kd.distill.teaching import attach_teaching

    train, dev = toy_frames(seed=0), toy_frames(seed=1, n_utts=4)
    attach_teaching(train, dev, members, cfg=TeachingConfig(online=True, augment="specaugment"), temperature=2.0)
    assert train.teacher_model is not None and dev.teacher_probs is not None
    crit = build_criterion(LossConfig(loss="kd", temperature=2.0))
    res = train_model(
        train,
        dev,
        5,
        out_dir=tmp_path / "s",
        model_cfg=MCFG,
        cfg=TrainConfig(epochs=3, batch_size=32, lr=0.01),
        criterion=crit,
        seed=7,
    )
    h = res["history"]
    assert res["best_dev_frame_acc"] > 0.6  # 5 classes: chance is 0.2
    assert h[-1]["dev_kl"] < h[0]["dev_kl"]  # the student approaches its teacher off the training frames
    assert all(0 <= r["dev_agreement"] <= 1 for r in h)
    # resuming an online, augmented run gives the same weights (the masks come from the checkpointed RNG)
    train_model(
        train,
        dev,
        5,
        out_dir=tmp_path / "k",
        model_cfg=MCFG,
        cfg=TrainConfig(epochs=2, batch_size=32, lr=0.01),
        criterion=crit,
        seed=7,
    )
    train_model(
        train,
        dev,
        5,
        out_dir=tmp_path / "k",
        model_cfg=MCFG,
        cfg=TrainConfig(epochs=3, batch_size=32, lr=0.01),
        criterion=crit,
        seed=7,
    )
    a = torch.load(tmp_path / "s" / "epoch-3.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "k" / "epoch-3.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_patient_newbob_halves_on_small_gains_and_stops(members, tmp_path):
    from asr_kd.distill.teaching import attach_teaching

    train, dev = toy_frames(seed=0), toy_frames(seed=1, n_utts=4)
    attach_teaching(train, dev, members, cfg=TeachingConfig(), temperature=2.0)
    train.soft = ensemble_soft_targets(teacher_logits(members, train), 2.0)
    crit = build_criterion(LossConfig(loss="kd", temperature=2.0))
    cfg = TrainConfig(epochs=30, batch_size=32, lr=0.01, select_on="dev_kl", halve_below=0.05, max_halvings=2)
    res = train_model(train, dev, 5, out_dir=tmp_path / "p", model_cfg=MCFG, cfg=cfg, criterion=crit, seed=7)
    h = res["history"]
    halved = [r["epoch"] for r in h if r.get("halved")]
    assert len(halved) == 2 and len(h) == halved[-1] < 30  # stopped after the second halving
    assert halved[1] == halved[0] + 1  # once halving starts it goes on every epoch
    assert h[-1]["lr"] == pytest.approx(0.01 * 0.5 ** (len(halved) - 1))
    best = min(h, key=lambda r: r["dev_kl"])
    assert res["best_epoch"] == best["epoch"]  # best.pt is the epoch closest to the teacher on dev
    assert json.loads((tmp_path / "p" / "history.json").read_text())[0]["dev_kl"] == h[0]["dev_kl"]
    again = train_model(
        train, dev, 5, out_dir=tmp_path / "p", model_cfg=MCFG, cfg=cfg, criterion=crit, seed=7
    )  # a rerun does not train on
    assert len(again["history"]) == len(h) and again["best_epoch"] == res["best_epoch"]


def test_select_on_dev_kl_needs_the_teacher(tmp_path):
    train, dev = toy_frames(seed=0), toy_frames(seed=1, n_utts=4)
    with pytest.raises(ValueError, match="dev_kl"):
        train_model(
            train, dev, 5, out_dir=tmp_path / "x", model_cfg=MCFG, cfg=TrainConfig(epochs=1, select_on="dev_kl"), seed=0
        )


def test_default_settings_leave_run_fingerprints_unchanged():
    """Runs that use none of the new settings keep the key their checkpoints were saved with."""
    from asr_kd.nnet.train import run_fingerprint

    train, dev = toy_frames(seed=0), toy_frames(seed=1, n_utts=4)
    key = run_fingerprint(train, dev, 5, model_cfg=MCFG, cfg=TrainConfig(), loss_cfg=LossConfig(loss="ce"), seed=0)
    assert key == run_fingerprint(
        train, dev, 5, model_cfg=MCFG, cfg=TrainConfig(select_on="dev_acc"), loss_cfg=LossConfig(loss="ce"), seed=0
    )
    assert key != run_fingerprint(
        train, dev, 5, model_cfg=MCFG, cfg=TrainConfig(halve_below=0.01), loss_cfg=LossConfig(loss="ce"), seed=0
    )
    train.augment_spec = "specaugment"
    assert key != run_fingerprint(
        train, dev, 5, model_cfg=MCFG, cfg=TrainConfig(), loss_cfg=LossConfig(loss="ce"), seed=0
    )


def test_verdict_tells_fit_from_generalisation():
    teacher = {"train": {"frame_acc": 0.80}, "dev": {"frame_acc": 0.70}}

    def rows(train_acc, dev_acc, kls=(0.05, 0.04)):
        return [
            {"epoch": i + 1, "train": {"frame_acc": train_acc, "kl": k}, "dev": {"frame_acc": dev_acc, "kl": k + 0.01}}
            for i, k in enumerate(kls)
        ]

    assert verdict(rows(0.78, 0.68), teacher)["kind"] == "cannot fit"
    assert verdict(rows(0.799, 0.68), teacher)["kind"] == "generalisation"
    assert verdict(rows(0.80, 0.71), teacher)["kind"] == "targets"
    assert verdict(rows(0.78, 0.68), teacher)["converging"]
    assert not verdict(rows(0.78, 0.68, (0.04, 0.04)), teacher)["converging"]


def test_diagnosis_and_teaching_table_on_a_student(members, tmp_path):
    train, dev = toy_frames(seed=0), toy_frames(seed=1, n_utts=4)
    train.soft = ensemble_soft_targets(teacher_logits(members, train), 2.0)
    crit = build_criterion(LossConfig(loss="kd", temperature=2.0))
    train_model(
        train,
        dev,
        5,
        out_dir=tmp_path / "s",
        model_cfg=MCFG,
        cfg=TrainConfig(epochs=3, batch_size=32, lr=0.01),
        criterion=crit,
        seed=7,
    )
    res = diagnose_frames(
        [tmp_path / "s"], members, {"train": train, "dev": dev}, temperature=2.0, references=members[:1]
    )
    run = res["students"][str(tmp_path / "s")]
    assert [r["epoch"] for r in run["epochs"]] == [1, 2, 3]
    assert run["epochs"][-1]["train"]["kl"] < run["epochs"][0]["train"]["kl"]
    assert run["verdict"]["kind"] in ("cannot fit", "generalisation", "targets") and res["verdict"]
    # the same KL the training loop recorded for the last epoch's dev frames
    path = write_diagnosis(res, tmp_path / "diag", "toy")
    assert path.is_file() and (tmp_path / "diag" / "diagnosis.png").stat().st_size > 1000
    table = teaching_table_frames(
        [("kd", [tmp_path / "s"]), ("member", [members[0].parent])],
        members,
        dev,
        temperature=2.0,
        out_stem=tmp_path / "t5e",
        title="(5e) toy",
        labels={"kd": "distilled (T=2)"},
    )
    rows = {r["name"]: r for r in table["rows"]}
    assert rows["kd"]["epochs"] == 3 and 0 <= rows["kd"]["agreement"] <= 1
    assert rows["kd"]["label"] == "distilled (T=2)" and rows["member"]["label"] == "member"  # an id shows itself
    md = (tmp_path / "t5e.md").read_text()
    assert "| distilled (T=2) (n=1) |" in md and "| member (n=1) |" in md


def test_speech_table_scores_the_held_out_half_apart(members, tmp_path):
    """(5a) with a subset of test utterances: its own rates, comparisons and gain kept, equal to
    the table computed on those utterances alone."""
    import numpy as np

    from asr_kd.stages.frame_tables import speech_table
    from asr_kd.scoring.significance import ErrorCounts

    test = toy_frames(seed=4, n_utts=10)
    held = np.array([1, 3, 5, 7])
    res = speech_table(members, members[:1], test, out_stem=tmp_path / "t5a", subsets={"held-out accents": held})
    part = res["subsets"]["held-out accents"]
    assert part["utterances"] == 4
    counts = ErrorCounts(np.arange(20).reshape(2, 10), np.full(10, 5.0)).subset(held)
    assert counts.errors.tolist() == [[1, 3, 5, 7], [11, 13, 15, 17]] and counts.tokens.sum() == 20
    alone = speech_table(members, members[:1], _utterances(test, held), out_stem=tmp_path / "alone")
    assert part["summary"]["student"]["rate"] == pytest.approx(alone["summary"]["student"]["rate"])
    assert "#### held-out accents (4 of the 10 test utterances)" in (tmp_path / "t5a.md").read_text()


def _utterances(data, idx):
    """The frames of some utterances of ``data`` as a data set of their own."""
    import numpy as np

    from asr_kd.nnet.data import FrameData

    spans = [np.arange(data.offsets[i], data.offsets[i + 1]) for i in idx]
    frames = torch.from_numpy(np.concatenate(spans))
    lengths = [len(s) for s in spans]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    start = torch.from_numpy(np.repeat(offsets[:-1], lengths))
    end = torch.from_numpy(np.repeat(offsets[1:], lengths))
    return FrameData(data.feats[frames], data.labels[frames], start, end, [data.cut_ids[i] for i in idx], offsets)


def test_teacher_table_scores_each_student_against_its_own_mixed_ensemble(members, tmp_path):
    """(5e) teacher diversity: a dnn + tdnn ensemble (members of different architectures, one window)
    teaches online; each row's ensemble is scored as ensemble_soft_targets of its members, and the last
    column compares every student with the first row's members."""
    import numpy as np

    from asr_kd.nnet.evaluate import frame_accuracy
    from asr_kd.cli.nnet import teacher_row
    from asr_kd.stages.teaching import TeacherRow, teacher_table_frames

    train, dev = toy_frames(seed=0), toy_frames(seed=1, n_utts=4)
    tdnn_cfg = ModelConfig(name="tdnn", context=1, hidden=32, tdnn_layers=((3, 1),))
    hard = TrainConfig(epochs=2, batch_size=32, lr=0.01)
    train_model(train, dev, 5, out_dir=tmp_path / "tdnn", model_cfg=tdnn_cfg, cfg=hard, seed=3)
    mixed = [members[0], tmp_path / "tdnn" / "best.pt"]
    from asr_kd.nnet.checkpoint import load_model

    teacher = EnsembleTeacher([load_model(m) for m in mixed], temperature=2.0)
    x = dev.windows(torch.arange(len(dev)), 1)
    assert torch.allclose(teacher(x), ensemble_soft_targets(teacher_logits(mixed, dev), 2.0), atol=1e-6)
    crit = build_criterion(LossConfig(loss="kd", temperature=2.0))
    students = {}
    for name, teachers in (("recipe", members), ("mixed", mixed)):
        train.teacher_model = None
        attach_teaching(train, dev, teachers, cfg=TeachingConfig(online=True), temperature=2.0)
        train_model(train, dev, 5, out_dir=tmp_path / name, model_cfg=MCFG, cfg=hard, criterion=crit, seed=7)
        students[name] = TeacherRow(name, tuple(str(t) for t in teachers), (str(tmp_path / name),))
    table = teacher_table_frames(
        [students["recipe"], students["mixed"]], dev, temperature=2.0, out_stem=tmp_path / "t", title="toy"
    )
    recipe, mix = table["rows"]
    for row, teachers in ((recipe, members), (mix, mixed)):
        logits = teacher_logits(teachers, dev)
        assert row["ensemble_frame_acc"] == pytest.approx(
            frame_accuracy(ensemble_soft_targets(logits, 2.0), dev.labels)
        )
        assert row["members_frame_acc"] == pytest.approx(np.mean([frame_accuracy(lg, dev.labels) for lg in logits]))
    assert recipe["vs_reference_members"] == pytest.approx(recipe["frame_acc"] - recipe["members_frame_acc"])
    assert mix["vs_reference_members"] == pytest.approx(mix["frame_acc"] - recipe["members_frame_acc"])
    assert "| mixed | 2 |" in (tmp_path / "t.md").read_text()
    spec = f"mixed={'+'.join(str(t) for t in mixed)}={tmp_path / 'mixed'}"
    assert teacher_row(spec) == students["mixed"]  # teacher-table --rows ID=ENSEMBLE=RUN_DIR
    with pytest.raises(ValueError, match="ID=ENSEMBLE=RUN_DIR"):
        teacher_row("mixed=" + str(tmp_path))

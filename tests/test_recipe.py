"""Integration: the default recipe's implemented stages on a tiny configuration."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet

REPO = Path(__file__).resolve().parents[1]


def run(args, **kw):
    return subprocess.run(["bash", str(REPO / "run.sh"), *args], cwd=REPO, capture_output=True, text=True, **kw)


def test_help_lists_the_stages():
    r = run(["--help"])
    assert r.returncode == 0
    for name in ("corpus", "manifests", "features", "lang", "align", "ensemble", "distill", "decode"):
        assert name in r.stdout


def test_unknown_option_fails():
    r = run(["--no-such-option", "1"])
    assert r.returncode != 0 and "unknown option --no-such-option" in r.stderr


def test_full_makes_enough_untranscribed_audio_for_the_largest_transfer_ratio():
    """--full's untranscribed hours (utils/recipe.sh expand_opt_ins): labelled hours x the largest
    --transfer-ratios x 1.07, rounded up to 0.1 h (an hour of digits' untranscribed audio held 345,545
    frames, 359,870 of labelled: 3.2 h cover 4 x 268,103 labelled frames); a given --unlabelled-hours stays."""

    def hours(labelled, ratios, given="0"):
        script = (
            f'full=true stop_stage=15 triphones=false gmm_systems=mono labels=mono transfer_ratios="{ratios}" '
            f'unlabelled_hours={given}; eval "$(sed -n "/^expand_opt_ins() {{/,/^}}/p" {REPO}/utils/recipe.sh)"; '
            f'expand_opt_ins {labelled}; echo "$unlabelled_hours $stop_stage"'
        )
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.split()

    assert hours(0.745, "1 2 4") == ["3.2", "19"]
    assert 3.2 * 345_545 >= 4 * 268_103
    assert hours(0.745, "1 2") == ["1.6", "19"] and hours(1, "4 1 2") == ["4.3", "19"]
    assert hours(0.745, "1 2 4", given="0.5") == ["0.5", "19"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    cfg = root / "tiny.yaml"
    cfg.write_text((REPO / "conf" / "tiny.yaml").read_text())
    args = [
        "--config",
        str(cfg),
        "--data",
        str(root / "data"),
        "--exp",
        str(root / "exp"),
        "--nj",
        "2",
        "--ensemble-size",
        "2",
        "--student-seeds",
        "2",
        "--sweep-temperatures",
        "1 2",
        "--topk-values",
        "3",
        "--small-fraction",
        "0.3",
        "--unlabelled-hours",
        "0.03",  # about 3x the tiny training frames: stage 18's 2x student
        "--analysis",  # the opt-in parts of --full that these tests read (--full would also run stages 15-18)
        "--triphones",
        "--k2-members",
        "all",
        "--stop-stage",
        "14",
    ]  # stage 15 (deploy): the yesno recipe's test
    first = run(args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return root, args, first


def test_stages_produce_features_logs_and_markers(tiny_run):
    root, _, first = tiny_run
    for n, name in (
        (0, "corpus"),
        (1, "manifests"),
        (2, "features"),
        (3, "lang"),
        (4, "align"),
        (5, "ensemble"),
        (6, "soft-targets"),
        (7, "distill"),
        (8, "results"),
        (9, "t-sweep"),
        (10, "small-data"),
        (11, "topk"),
        (12, "realign"),
        (13, "decode"),
    ):
        assert (root / "exp" / "done" / f"stage_{n}_{name}").is_file()
        assert (root / "exp" / "log" / f"stage_{n}_{name}.log").stat().st_size > 0
    cuts = CutSet.from_file(root / "data" / "fbank" / "digits_cuts_train.jsonl.gz")
    assert len(cuts) == 4 * 5  # conf/tiny.yaml: 4 train speakers x 5 utterances
    assert cuts[0].load_features().shape[1] == 40
    assert (root / "data" / "fbank" / "cmvn.npz").is_file()
    assert (root / "data" / "lang" / "L_disambig.fst").is_file()
    ali = CutSet.from_file(root / "exp" / "mono" / "digits_train_cuts.jsonl.gz")
    assert len(ali) + len((root / "exp" / "mono" / "digits_train_failed.txt").read_text().split()) == len(cuts)
    assert (root / "exp" / "mono" / "alignment_report.md").is_file()
    for member in ("seed1", "seed2"):
        assert (root / "exp" / "dnn" / member / "best.pt").is_file()
    assert len(list((root / "exp" / "soft_T1").glob("soft_targets.*.h5"))) == 2  # --nj 2 shards
    assert (root / "exp" / "student_T1" / "seed101" / "best.pt").is_file()
    assert (root / "exp" / "student_T1" / "seed102" / "best.pt").is_file()
    import json

    table = json.loads((root / "exp" / "kd" / "table_5a.json").read_text())
    assert len(table["baseline"]["single"]) == 2 and len(table["student"]["single"]) == 2
    # every network learnt: well above an untrained one's 1 / (number of pdfs). (One minute of training
    # audio leaves them near the majority-class rate, 12-22% against 19% on some machines, above it on others.)
    test = CutSet.from_file(root / "exp" / "mono" / "digits_test_cuts.jsonl.gz")
    labels = np.concatenate([c.load_pdf_ali() for c in test])
    chance = 1 / (labels.max() + 1)
    assert min(table["baseline"]["single"] + table["student"]["single"] + [table["baseline"]["ensemble"]]) > 3 * chance
    # the table's figures are the per-utterance counts they claim to summarise
    s = table["summary"]
    assert s["baseline"]["utterances"] == len(test) and s["baseline"]["tokens"] == len(labels)
    assert 1 - s["baseline"]["rate"] == pytest.approx(table["baseline"]["single_mean"])
    assert 1 - s["ensemble"]["rate"] == pytest.approx(table["baseline"]["ensemble"])
    for k in ("baseline", "ensemble", "student"):
        assert s[k]["ci95"][0] <= s[k]["rate"] <= s[k]["ci95"][1]
    assert [(p["a"], p["b"]) for p in table["significance"]["pairs"]] == [
        ("baseline", "ensemble"),
        ("baseline", "student"),
        ("ensemble", "student"),
    ]
    results = (root / "exp" / "kd" / "RESULTS.md").read_text()
    for heading in ("(5a)", "(5b)", "(5c)", "(5d)"):
        assert heading in results
    sweep = json.loads((root / "exp" / "kd" / "table_5b_temperature.json").read_text())
    assert [(r["name"], r["label"]) for r in sweep["rows"]] == [("T1", "T=1"), ("T2", "T=2")]
    assert [(p["a"], p["b"]) for p in sweep["significance"]["pairs"]] == [("T1", "T2")]
    small = json.loads((root / "exp" / "kd" / "table_5c_small_data.json").read_text())
    assert len(small["rows"]) == 3 and "train frame accuracy (30% subset)" in small["rows"][1]
    assert small["rows"][1]["label"].startswith("hard labels") and small["significance"]["pairs"][0]["a"] == "hard"
    topk = json.loads((root / "exp" / "kd" / "table_5d_topk.json").read_text())
    mb = [float(r["soft-target storage (MB per hour of audio)"]) for r in topk["rows"]]
    assert mb[1] < mb[0]  # top-3 stores less than dense
    assert [(p["a"], p["b"]) for p in topk["significance"]["pairs"]] == [("dense", "top-3")]
    rows = json.loads((root / "exp" / "kd" / "table_alignments.json").read_text())
    assert len(rows) == 3 and all(r["dnn_oracle_phone_accuracy"]["n"] == 2 for r in rows)
    assert all(len(r["decode"]) == 2 for r in rows)  # DNNs of seeds 1 and 2, decoded
    # the DNNs predict the oracle's phone far more often than chance over the phone set
    assert all(r["dnn_oracle_phone_accuracy"]["mean"] > 0.3 for r in rows), [
        r["dnn_oracle_phone_accuracy"] for r in rows
    ]
    assert all(r["test_wer"]["ci95"][0] <= r["test_wer"]["mean"] <= r["test_wer"]["ci95"][1] for r in rows)
    assert rows[2]["name"] == "oracle_gmm" and rows[2]["label"].startswith("reference: GMM trained on oracle phone")
    assert all("test_wer_vs_first" in r for r in rows[1:])
    assert (root / "exp" / "mono_oracle" / "alignment_report.md").is_file()
    assert (root / "exp" / "dnn_ali" / "digits_test_cuts.jsonl.gz").is_file()
    wer = json.loads((root / "exp" / "decode" / "wer_table.json").read_text())
    rows = {r["name"]: r for r in wer["rows"]}
    assert list(rows) == ["gmm", "baseline", "ensemble", "student"]
    assert [r["label"] for r in rows.values()] == [
        "GMM (monophone)",
        "baseline",
        "2-model ensemble",
        "distilled student (T=1)",
    ]
    assert [r["seeds"] for r in rows.values()] == [1, 2, 1, 2]  # every baseline and student seed decoded
    test_words = sum(len(c.supervisions[0].text.split()) for c in test)
    for name, r in rows.items():
        assert r["test_wer"]["tokens"] == test_words
        # an empty hypothesis scores 100%, a random one more; one minute of training audio gets the
        # GMM to about 65% and the tiny DNNs just below 100%
        assert r["test_wer"]["rate"] < (0.8 if name == "gmm" else 1.0), (name, r["test_wer"])
        assert r["test_wer"]["ci95"][0] <= r["test_wer"]["rate"] <= r["test_wer"]["ci95"][1]
    assert {(p["a"], p["b"]) for p in wer["significance"]["pairs"]} == {
        ("baseline", "ensemble"),
        ("baseline", "student"),
        ("ensemble", "student"),
    }
    assert "gain_kept" in wer["significance"]
    assert (root / "exp" / "graph" / "HCLG.fst").is_file()
    hyp = (root / "exp" / "decode" / "baseline" / "seed2" / "test.hyp.txt").read_text().splitlines()
    assert len(hyp) == 2 * 5  # conf/tiny.yaml: 2 test speakers x 5 utterances
    # the LM is estimated on the training transcripts only: its bigrams are exactly those seen in training
    train = [
        c.supervisions[0].text.split() for c in CutSet.from_file(root / "exp" / "mono" / "digits_train_cuts.jsonl.gz")
    ]
    seen = {(a, b) for t in train for a, b in zip(["<s>"] + t, t + ["</s>"])}
    arpa = (root / "exp" / "graph" / "lm_2gram.arpa").read_text().split("\\2-grams:")[1].split("\\end\\")[0]
    bigrams = {tuple(line.split()[1:3]) for line in arpa.splitlines() if line.strip()}
    assert bigrams == seen


def test_the_results_file_ends_with_the_command_commit_and_machine(tiny_run):
    root, args, _ = tiny_run
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    text = (root / "exp" / "kd" / "RESULTS.md").read_text()
    footer = text[text.rindex("<!-- begin: made by -->") :]
    assert text.rstrip().endswith("<!-- end: made by -->") and text.count("<!-- begin: made by -->") == 1
    assert "run.sh --config " in footer and "--stop-stage 14" in footer
    assert f"at commit {commit.stdout.strip()}" in footer and "CPU cores" in footer
    # every stage of the run, with its time, in stage order, and their sum
    times = footer.split("Stage times in seconds (the latest run of each stage): ")[1].split(";")[0].split(", ")
    assert [t.split()[0] for t in times] == [str(n) for n in range(15)]
    assert sum(int(t.split()[2]) for t in times) > 0


def test_rerun_skips_finished_stages(tiny_run):
    root, args, _ = tiny_run
    again = run(args)
    assert again.returncode == 0
    assert again.stdout.count("done before, skipping") == 15


def test_k2_decodes_every_system_by_default(tiny_run):
    """Stage 14 is in the default run: every system of the WER table has a k2 WER beside its Kaldi WER."""
    import json

    root, _, _ = tiny_run
    assert (root / "exp" / "done" / "stage_14_k2-decode").is_file()
    wer = json.loads((root / "exp" / "decode" / "wer_table.json").read_text())
    agreement = json.loads((root / "exp" / "decode_k2" / "agreement.json").read_text())
    members = {m["name"] for row in wer["rows"] for m in row["members"]}
    assert {r["name"] for r in agreement["rows"]} == members
    assert all(abs(r["wer_k2"] - r["wer_kaldi"]) <= 0.02 and r["same_share"] >= 0.5 for r in agreement["rows"])
    table = (root / "exp" / "decode_k2" / "agreement.md").read_text()
    for row in wer["rows"]:
        line = next(line for line in table.splitlines() if line.startswith(f"| {row['label']} | {row['seeds']} |"))
        assert "not run" not in line and line.count("%") == 4
    assert "k2 test WER" in (root / "exp" / "kd" / "RESULTS.md").read_text()


def test_k2_stage_without_the_k2_environment_says_so_and_fails(tiny_run):
    import os

    root, args, _ = tiny_run
    marker = root / "exp" / "done" / "stage_14_k2-decode"
    marker.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "ASR_KD_NO_K2"}
    r = run(args + ["--stage", "14", "--stop-stage", "14"], env={**env, "ASR_KD_K2_PYTHON": "/nonexistent/python"})
    assert r.returncode != 0 and "needs the k2 environment" in r.stdout + r.stderr
    assert not marker.exists()


def test_k2_opt_out_states_the_absence_in_the_table(tiny_run):
    import os

    root, args, _ = tiny_run
    marker = root / "exp" / "done" / "stage_14_k2-decode"
    marker.unlink(missing_ok=True)
    r = run(
        args + ["--stage", "14", "--stop-stage", "14"],
        env={**os.environ, "ASR_KD_K2_PYTHON": "/nonexistent/python", "ASR_KD_NO_K2": "1"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    table = (root / "exp" / "decode_k2" / "agreement.md").read_text()
    assert "k2 did not run: k2 was opted out" in table and "| baseline | 2 |" in table and "not run" in table
    assert "k2 did not run" in (root / "exp" / "kd" / "RESULTS.md").read_text()
    assert marker.exists()


def test_state_specialists_on_the_recipe_outputs(tiny_run):
    """The specialist code over HMM states: clusters of pdfs, specialists, KL-combined frame accuracy."""
    import json
    import sys

    root, _, _ = tiny_run
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr_kd",
            "specialists-speech",
            "--generalist",
            str(root / "exp" / "dnn" / "seed1" / "best.pt"),
            "--ali-dir",
            str(root / "exp" / "mono"),
            "--fbank-dir",
            str(root / "data" / "fbank"),
            "--num-clusters",
            "3",
            "--epochs",
            "1",
            "--out-dir",
            str(root / "exp" / "state_specialists"),
            "--out",
            str(root / "exp" / "kd" / "states"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((root / "exp" / "kd" / "states.json").read_text())
    assert res["clusters"] and all(len(c) >= 2 for c in res["clusters"])
    assert 0 < res["generalist_accuracy"] <= 1 and 0 < res["combined_accuracy"] <= 1
    assert sum(row["examples"] for row in res["by_coverage"]) == res["examples"]


def test_triphone_systems_and_senone_labels(tiny_run):
    """Stage 4 trained tri1 and tri2 (trees in Kaldi's formats); stage 16 decodes every GMM on its own
    graph, repeats the network stages on tri2's labels and tables them beside the monophone ones."""
    import json

    from asr_kd.gmm.mono import load_gmm
    from asr_kd.gmm.tree import ContextTree

    root, args, _ = tiny_run
    for system in ("tri1", "tri2"):
        tree = ContextTree.read(root / "exp" / system / "tree")
        assert tree.context_width == 3 and ContextTree.read(root / "exp" / system / "tree.txt") == tree
        assert load_gmm(root / "exp" / system / "final.mdl")["tree"].num_pdfs == tree.num_pdfs
    assert load_gmm(root / "exp" / "tri2" / "final.mdl")["transform"].shape[0] == 40
    r = run(args[:-2] + ["--stage", "16", "--stop-stage", "16"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    table = json.loads((root / "exp" / "kd" / "table_systems.json").read_text())
    systems = {s["system"]: s for s in table["systems"]}
    assert list(systems) == ["mono", "tri1", "tri2"]
    assert all(s["gmm"]["test_wer"] < 1.0 and s["oracle"]["boundary_accuracy"] > 0.2 for s in systems.values())
    # the context-dependent graphs are larger than the monophone one
    assert systems["tri1"]["hclg"]["arcs"] > systems["mono"]["hclg"]["arcs"]
    assert set(systems["mono"]["networks"]) == set(systems["tri2"]["networks"]) == {"baseline", "ensemble", "student"}
    assert systems["tri1"]["networks"] == {}
    # k2 decoded the context-dependent graphs too (the GMM's, and every tri2-label network's)
    assert systems["tri1"]["k2"]["rows"] == 1 and systems["tri2"]["k2"]["rows"] == 6
    assert systems["tri1"]["k2"]["min_same_share"] >= 0.5 and systems["tri2"]["k2"]["min_same_share"] >= 0.5
    # the tri2-label networks output the tree's pdfs
    from asr_kd.nnet.checkpoint import load_model

    net = load_model(root / "exp" / "labels_tri2" / "dnn" / "seed1" / "best.pt", "cpu")
    assert list(net.parameters())[-1].shape[0] == systems["tri2"]["num_pdfs"]
    assert "GMM systems" in (root / "exp" / "kd" / "RESULTS.md").read_text()


def test_teaching_levers_stage(tiny_run):
    """Stage 17: every lever trains a student from the same soft targets, table (5e) scores them
    against the ensemble on dev, and the stage-7 students are diagnosed epoch by epoch."""
    import json

    root, args, _ = tiny_run
    r = run(args[:-2] + ["--stage", "17", "--stop-stage", "17"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    table = json.loads((root / "exp" / "kd" / "table_5e_teaching.json").read_text())
    assert [row["name"] for row in table["rows"]] == ["default"] + [f"lever{i}" for i in range(1, 15)] + ["control"]
    names = [row["label"] for row in table["rows"]]
    assert names[0].startswith("default (stage 7") and names[-1].startswith("control") and len(names) == 16
    assert any("tempo views" in n for n in names) and any(n.startswith("T=4,") for n in names)
    assert any("reverb + noise views" in n for n in names)  # the corpus's degradations, in the power domain
    assert any("hard weight 0:" in n for n in names)
    for row in table["rows"]:
        assert 0 <= row["agreement"] <= 1 and row["kl"] >= 0 and row["epochs"] >= 1
    online = json.loads((root / "exp" / "teaching" / "lever4" / "seed101" / "history.json").read_text())
    assert all("dev_kl" in h for h in online)  # students record their dev KL to the ensemble
    diag = json.loads((root / "exp" / "kd" / "diagnosis" / "diagnosis.json").read_text())
    assert len(diag["students"]) == 2 and diag["verdict"]
    assert (root / "exp" / "kd" / "diagnosis" / "diagnosis.png").is_file()


def test_transfer_stage_teaches_students_on_untranscribed_audio(tiny_run):
    """Stage 18: students on labelled + R x untranscribed frames (stage 0's --unlabelled-hours); the
    untranscribed split has features but reaches no alignment, and the students' logs count its frames."""
    import json

    root, args, _ = tiny_run
    assert (root / "data" / "fbank" / "digits_cuts_unlabelled.jsonl.gz").is_file()
    assert not [p for p in (root / "exp").rglob("*unlabelled*")]  # no alignment, label or model file
    r = run(args[:-2] + ["--transfer-ratios", "1 2", "--stage", "18", "--stop-stage", "18"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    table = json.loads((root / "exp" / "kd" / "table_5e_transfer.json").read_text())
    assert [row["name"] for row in table["rows"]] == ["labelled", "ratio1", "ratio2"]
    names = [row["label"] for row in table["rows"]]
    assert names[0].startswith("labelled only") and names[1:] == [
        "+ 1x untranscribed audio",
        "+ 2x untranscribed audio",
    ]
    for ratio in (1, 2):
        log = (root / "exp" / "transfer" / f"ratio{ratio}.log").read_text()
        assert "of them untranscribed" in log
        history = json.loads((root / "exp" / "transfer" / f"ratio{ratio}" / "seed101" / "history.json").read_text())
        assert all("dev_kl" in h for h in history)


def test_teacher_diversity_stage_teaches_students_of_larger_and_mixed_ensembles(tiny_run):
    """Stage 19: as many more members of the recipe's architecture and of the other one (tdnn, with the
    config's tdnn_layers); one student per larger or mixed ensemble, each scored against its own."""
    import json

    import torch

    root, args, _ = tiny_run
    r = run(args[:-2] + ["--stage", "19", "--stop-stage", "19"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    table = json.loads((root / "exp" / "kd" / "table_5e_teachers.json").read_text())
    rows = {row["name"]: row for row in table["rows"]}
    assert list(rows) == ["recipe", "more", "mixed_half", "mixed"]
    assert [len(rows[k]["teachers"]) for k in rows] == [2, 4, 2, 4]  # --ensemble-size 2
    assert rows["mixed"]["label"] == "2 dnn + 2 tdnn" and rows["recipe"]["label"] == "2 dnn (the recipe's)"
    other = torch.load(root / "exp" / "teachers" / "other" / "seed1" / "best.pt", weights_only=True)
    assert other["model_cfg"]["name"] == "tdnn"
    for name in ("more", "mixed_half", "mixed"):
        assert 0 <= rows[name]["agreement"] <= 1 and rows[name]["kl"] >= 0
        history = json.loads((root / "exp" / "teachers" / name / "student" / "history.json").read_text())
        assert all("dev_kl" in h for h in history)
    assert "(5e) Teacher quality and diversity" in (root / "exp" / "kd" / "RESULTS.md").read_text()


def test_the_core_run_ships_the_student_and_transcribes_a_test_file(tiny_run):
    """Stage 15 without --deploy-table (the default run): the student exported as a model directory
    and one test recording transcribed with it, the command and reference written beside."""
    root, args, _ = tiny_run
    r = run(args[:-2] + ["--stage", "15", "--stop-stage", "15"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert not (root / "exp" / "deploy" / "deployment_table.json").exists()  # the table is opt-in
    command, reference, result = (root / "exp" / "kd" / "transcribe_example.txt").read_text().splitlines()
    wav, hyp = result.split("\t")
    assert command == f"# python -m asr_kd transcribe --model-dir {root / 'exp' / 'deploy' / 'student'} {wav}"
    assert Path(wav).is_file() and wav.startswith(str(root / "data" / "corpus"))
    test = {c.supervisions[0].text for c in CutSet.from_file(root / "data" / "manifests" / "digits_cuts_test.jsonl.gz")}
    assert reference.removeprefix("# reference: ") in test
    words = set((root / "data" / "lang" / "words.txt").read_text().split()[::2])
    assert set(hyp.split()) <= words

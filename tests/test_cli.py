"""The command line and the documents that name it: every command and recipe answers ``--help``,
every option says what it is, the corpus is never silently the embedded one, and every command
and repository path the README and RESULTS files name exists."""

import argparse
import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asr_kd import __version__
from asr_kd.cli import RECIPE_STEPS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]
RECIPES = [ROOT / "run.sh", *sorted(ROOT.glob("recipes/*/run.sh"))]
DOCS = [ROOT / "README.md", ROOT / "RESULTS.md", *sorted(ROOT.glob("recipes/*/RESULTS.md")), *ROOT.glob("docs/*.md")]


def commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub.choices


def test_every_command_answers_help_and_every_option_says_what_it_is(capsys):
    _, choices = commands()
    unexplained = []
    for name, command in choices.items():
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0, name
        assert capsys.readouterr().out.startswith(f"usage: asr_kd {name}")
        unexplained += [
            f"{name} {a.option_strings or a.dest}"
            for a in command._actions
            if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()
        ]
    assert not unexplained


def test_help_lists_user_commands_apart_from_recipe_steps_and_shows_defaults(capsys):
    parser, choices = commands()
    text = parser.format_help()
    users, steps = text.split("recipe steps (result tables):")
    assert all(re.search(rf"^  {s}\s", steps, re.M) for s in RECIPE_STEPS)
    assert not any(re.search(rf"^  {s}\s", users, re.M) for s in RECIPE_STEPS)
    for name in set(choices) - set(RECIPE_STEPS):
        assert re.search(rf"^  {name}\s", users, re.M), name
    assert "(default: 1)" in choices["compute-fbank"].format_help()  # --nj
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"asr_kd {__version__}"


def test_every_recipe_answers_help_with_its_default_stage_range():
    for recipe in RECIPES:
        r = subprocess.run(["bash", str(recipe), "--help"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "--stage" in r.stdout, (recipe, r.stderr[-500:])
        stop = re.search(r"^stop_stage=(\d+)", recipe.read_text(), re.M).group(1)
        assert re.search(rf"--stop-stage N.*\[(\d+\.\.)?{stop}\]", r.stdout), recipe


STEPS = sorted(ROOT.glob("steps/*.sh"))


def test_every_step_answers_help_and_names_its_folders_when_called_wrongly():
    """Each stage line of a run.sh is one command: a step takes options and its folders, nothing else."""
    assert len(STEPS) >= 10
    for step in STEPS:
        r = subprocess.run(["bash", str(step), "--help"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.startswith(f"Usage: {step}") and "--nj N" in r.stdout, step
        wanted = re.search(r"\[options\] ([A-Z_ .]+)$", r.stdout.splitlines()[0]).group(1)
        r = subprocess.run(["bash", str(step)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and f"expected {len(wanted.split())} arguments ({wanted}), got 0" in r.stderr, step


def test_a_model_folder_stands_for_the_checkpoints_it_lists(tmp_path):
    from asr_kd.cli.common import expand_model_folders, id_paths, model_paths

    ens = tmp_path / "dnn"
    ens.mkdir()
    (ens / "models.txt").write_text("seed1/best.pt\nseed2/best.pt\n")
    assert model_paths(str(ens)) == [f"{ens}/seed1/best.pt", f"{ens}/seed2/best.pt"]
    assert model_paths(str(tmp_path / "one.pt")) == str(tmp_path / "one.pt")  # a checkpoint is itself
    assert id_paths(f"ensemble={ens}", "--models") == ("ensemble", model_paths(str(ens)))
    (ens / "models.txt").write_text("../elsewhere/best.pt\n")  # paths from files stay inside the folder
    with pytest.raises(ValueError, match="must stay inside"):
        model_paths(str(ens))
    (ens / "models.txt").write_text("seed1/best.pt\n")
    args = build_parser().parse_args(["soft-targets", "--teachers", str(ens), "x.pt", "--ali-dir", "a", "--out", "o"])
    expand_model_folders(args)
    assert args.teachers == [f"{ens}/seed1/best.pt", "x.pt"]


def test_table_rows_are_short_ids_with_labels_apart(caplog):
    """A row's id is a key and a folder name; its display text (any characters) comes from --labels;
    --compare and --gain-kept name ids of the table, and a wrong id is one error listing the ids."""
    from asr_kd.cli.common import compare_pairs, id_paths, id_tuple, system_labels

    args = build_parser().parse_args(
        ["decode", "--models", "gmm=exp/mono/final.mdl", "student=s1.pt", "student=s2.pt", "ensemble=a.pt,b.pt"]
        + ["--labels", "student=distilled student (T=2)", "gmm=GMM (mono)", "--compare", "ensemble,student"]
        + ["--gain-kept", "gmm,ensemble,student", "--ali-dir", "a", "--graph-dir", "g", "--out", "o"]
        + ["--manifest-dir", "m"]
    )
    rows = [id_paths(m, "--models") for m in args.models]
    ids = [sid for sid, _ in rows]
    assert rows == [
        ("gmm", ["exp/mono/final.mdl"]),
        ("student", ["s1.pt"]),
        ("student", ["s2.pt"]),
        ("ensemble", ["a.pt", "b.pt"]),
    ]
    assert system_labels(args, ids) == {
        "gmm": "GMM (mono)",
        "student": "distilled student (T=2)",
        "ensemble": "ensemble",
    }
    assert compare_pairs(args, ids) == [("ensemble", "student")]
    assert id_tuple(args.gain_kept, 3, "--gain-kept", ids=ids) == ("gmm", "ensemble", "student")
    with pytest.raises(ValueError, match="'distilled student' is not a system id"):
        id_paths("distilled student=s.pt", "--models")  # display text is no id: it goes in --labels
    with pytest.raises(
        ValueError, match=r"\['teacher'\] name no row of this table \(its ids: gmm, student, ensemble\)"
    ):
        id_tuple("teacher,student", 2, "--compare", ids=ids)
    args.labels = ["teacher=the ensemble"]
    with pytest.raises(ValueError, match="--labels: \\['teacher'\\] name no row"):
        system_labels(args, ids)
    with pytest.raises(ValueError, match="should name 3 system ids"):
        id_tuple("gmm,student", 3, "--gain-kept", ids=ids)
    cmd = ["decode", "--models", "a b=x.pt", "--ali-dir", "a", "--graph-dir", "g", "--out", "o", "--manifest-dir", "m"]
    cmd += ["--lang", "l", "--fbank-dir", "f", "--corpus", "digits"]
    assert main(cmd) == 1 and "--models: 'a b' is not a system id" in caplog.text  # one line, before any work


def test_a_step_reads_a_model_folder_or_stops_naming_it(tmp_path):
    """steps/*.sh read models.txt in their own shell: a listed path that leaves the folder, or a
    folder without the list, stops the step with one line naming it."""
    ens = tmp_path / "dnn"
    ens.mkdir()

    def read(listing):
        (ens / "models.txt").write_text(listing)
        script = f'help_message=x; . {ROOT}/utils/step.sh; read_models m {ens}; printf "%s\\n" "${{m[@]}}"; echo done'
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)

    r = read("seed1/best.pt\nseed2/best.pt\n")
    assert r.returncode == 0 and r.stdout.split() == [f"{ens}/seed1/best.pt", f"{ens}/seed2/best.pt", "done"]
    r = read("seed1/best.pt\n../other/best.pt\n")
    assert r.returncode == 1 and "../other/best.pt leaves the folder" in r.stderr and "done" not in r.stdout
    (ens / "models.txt").unlink()
    r = subprocess.run(
        ["bash", "-c", f"help_message=x; . {ROOT}/utils/step.sh; read_models m {ens}; echo done"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "has no models.txt" in r.stderr and "done" not in r.stdout


def test_a_k2_lattice_decode_runs_in_the_k2_environment_or_says_why_not(tmp_path):
    """steps' decode_python: --decoder k2-lattice picks the k2 environment's Python; with k2 opted
    out or its build failed, the decode falls back to Kaldi's lattice search and says why; merely
    missing, or cut short (a .venv-k2 without tools/k2_lane.sh's stamp), the step stops saying what to
    run; other decoders keep the project's Python. Run in a copy of the scripts, apart from this
    checkout's own .venv-k2."""
    root = tmp_path / "root"
    shutil.copytree(ROOT / "utils", root / "utils")
    (root / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "k2_lane.sh", root / "tools" / "k2_lane.sh")
    shutil.copy(ROOT / "path.sh", root / "path.sh")
    (root / ".venv").symlink_to(ROOT / ".venv" if (ROOT / ".venv").exists() else Path(sys.executable).parents[1])

    def pick(opts, **env):
        script = (
            f'help_message=x; . {root}/utils/step.sh; decode_opts="{opts}"; decode_python; '
            'echo "$DECODE_PY|$decode_opts"'
        )
        environ = {k: v for k, v in os.environ.items() if k not in ("ASR_KD_NO_K2", "ASR_KD_K2_PYTHON")}
        environ["PYTHONPATH"] = str(ROOT)
        return subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, timeout=60, env={**environ, **env}
        )

    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    r = pick("--beam 12 --decoder k2-lattice", ASR_KD_K2_PYTHON=str(fake))
    assert r.returncode == 0 and r.stdout.strip() == f"{fake}|--beam 12 --decoder k2-lattice"
    r = pick("--decoder k2-lattice --beam 12", ASR_KD_K2_PYTHON=str(tmp_path / "none"), ASR_KD_NO_K2="1")
    assert r.returncode == 0 and r.stdout.strip() == "python|--decoder lattice --beam 12"
    assert "not k2: k2 was opted out" in r.stderr
    r = pick("--decoder k2-lattice")
    assert r.returncode == 1 and "needs the k2 environment" in r.stderr and "run ./setup.sh" in r.stderr
    r = pick("--decoder kaldi")
    assert r.returncode == 0 and r.stdout.strip() == "python|--decoder kaldi"
    venv_python = root / ".venv-k2" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    shutil.copy(fake, venv_python)
    r = pick("--decoder k2-lattice")  # a build cut short: no stamp
    assert r.returncode == 1 and "needs the k2 environment" in r.stderr
    (root / ".venv-k2.unavailable").write_text("ERROR: No space left on device\n")
    r = pick("--decoder k2-lattice")
    assert r.returncode == 0 and r.stdout.strip() == "python|--decoder lattice"
    assert "could not build the k2 environment: ERROR: No space left on device" in r.stderr
    (root / ".venv-k2.unavailable").unlink()
    (root / ".venv-k2" / ".asr_kd_k2_setup").write_text("stamp\n")
    r = pick("--decoder k2-lattice")
    assert r.returncode == 0 and r.stdout.strip() == f"{venv_python}|--decoder k2-lattice"


def _manifests(folder: Path, corpus: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / f"{corpus}_cuts_train.jsonl.gz", "wt") as f:
        f.write("")


def test_the_corpus_comes_from_the_manifests_or_the_user_is_told_what_to_pass(tmp_path, caplog):
    from asr_kd.cli.common import resolve_corpus

    _manifests(tmp_path / "one", "mine")
    args = argparse.Namespace(corpus=None, fbank_dir=str(tmp_path / "one"))
    resolve_corpus(args)
    assert args.corpus == "mine"

    _manifests(tmp_path / "two", "mine")
    _manifests(tmp_path / "two", "theirs")
    rc = main(["train-dnn", "--ali-dir", str(tmp_path), "--fbank-dir", str(tmp_path / "two"), "--out", "x"])
    assert rc == 1 and "holds manifests of mine, theirs: pass --corpus NAME" in caplog.text

    (tmp_path / "none").mkdir()
    caplog.clear()
    assert main(["compute-fbank", "--manifest-dir", str(tmp_path / "none"), "--out", str(tmp_path / "f")]) == 1
    assert "holds no manifests" in caplog.text and "pass --corpus NAME" in caplog.text


def test_every_command_and_repository_path_the_documents_name_exists():
    _, choices = commands()
    missing = []
    for doc in DOCS:
        text = doc.read_text()
        for m in re.finditer(r"(?:python -m asr_kd|asr-kd)\s+([a-z][a-z0-9-]+)", text):
            if m.group(1) not in choices:
                missing.append(f"{doc.name}: command {m.group(1)}")
        for m in re.finditer(r"`((?:asr_kd|recipes|benchmarks|tools|tests|local|utils|conf|docs)/[\w./-]+)", text):
            path = m.group(1).rstrip(".")
            if "/exp/" not in path and not (ROOT / path).exists():  # exp/: what a run writes
                missing.append(f"{doc.relative_to(ROOT)}: {path}")
    assert not missing


# every committed RESULTS.md: each is one recipe run's own output
ONE_RUN_RESULTS = [ROOT / "RESULTS.md", *sorted(ROOT.glob("recipes/*/RESULTS.md"))]


@pytest.mark.parametrize("path", ONE_RUN_RESULTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_committed_results_file_is_one_runs_output_unedited(path):
    """Nothing but the recipe's blocks (tables, example) and its footer: the command, commit, machine
    and stage times of the run that wrote it."""
    text = path.read_text()
    outside = re.sub(r"<!-- begin: (.*?) -->.*?<!-- end: \1 -->", "", text, flags=re.S)
    assert outside.split() == ["#", "RESULTS"], outside[:300]
    assert text.rstrip().endswith("<!-- end: made by -->") and text.count("<!-- begin: made by -->") == 1
    footer = text[text.index("<!-- begin: made by -->") :]
    assert re.search(r"Made by `[^`]*run\.sh[^`]*` at commit [0-9a-f]{7,} on \d+ CPU cores", footer), footer
    assert "Stage times in seconds" in footer


def test_the_readme_results_table_quotes_its_sources():
    """Every figure of README's "What it found" table appears in the RESULTS.md its row names."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## What it found")
    table = readme[start : readme.index("\n## ", start)]
    sources = {"RESULTS.md": ROOT / "RESULTS.md", "docs/experiments.md": ROOT / "docs" / "experiments.md"}
    sources.update({f"recipes/{p.parent.name}": p for p in ROOT.glob("recipes/*/RESULTS.md")})
    unquoted = []
    rows = [r for r in table.splitlines() if r.startswith("| ") and not r.startswith("| recipe")]
    assert len(rows) >= 5
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        source = next(sources[k] for k in sorted(sources, key=len, reverse=True) if cells[-1].startswith(k))
        text = source.read_text()
        for figure in re.findall(r"\d+\.\d+%?(?: ± \d+\.\d+)?", " ".join(cells[1:4])):
            if figure not in text:
                unquoted.append(f"{cells[0]}: {figure} not in {source.relative_to(ROOT)}")
    assert not unquoted


def test_an_alignment_folder_records_what_it_was_made_from_so_later_commands_take_it_alone(
    tiny_graph, tiny_features, tmp_path, caplog
):
    """The GMM stage records its features, corpus and lang (made_from.json); train-dnn then needs
    only --ali-dir, and a folder without the record gets one line saying what to pass."""
    from asr_kd.utils.made_from import read_made_from

    root, _ = tiny_graph
    made_from = read_made_from(root / "exp")
    assert Path(made_from["fbank_dir"]).resolve() == (tiny_features / "fbank").resolve()
    assert made_from["corpus"] == "digits" and Path(made_from["lang"]).resolve() == (root / "lang").resolve()

    conf = tmp_path / "c.yaml"
    conf.write_text("model:\n  context: 1\n  hidden: 16\n  num_layers: 1\ntrain:\n  epochs: 1\n")
    assert main(["train-dnn", "--config", str(conf), "--ali-dir", str(root / "exp"), "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "best.pt").is_file()

    bare = tmp_path / "bare_ali"
    bare.mkdir()
    assert main(["train-dnn", "--ali-dir", str(bare), "--out", str(tmp_path / "n")]) == 1
    assert f"--fbank-dir not given, and {bare} records no fbank_dir (made_from.json): pass --fbank-dir" in caplog.text


def test_an_online_teacher_makes_a_student_without_stored_targets(tiny_graph, tmp_path, caplog):
    """--teacher-models with --online-teacher is a student (the ensemble scores every batch; its dev KL is
    recorded); --teacher-models alone, with nothing to teach from, is one line saying what to pass."""
    import json

    root, _ = tiny_graph
    conf = tmp_path / "c.yaml"
    conf.write_text("model:\n  context: 1\n  hidden: 16\n  num_layers: 1\ntrain:\n  epochs: 1\n")
    common = ["train-dnn", "--config", str(conf), "--ali-dir", str(root / "exp"), "--epochs", "1"]
    assert main(common + ["--out", str(tmp_path / "member")]) == 0
    member = str(tmp_path / "member" / "best.pt")
    assert main(common + ["--teacher-models", member, "--online-teacher", "--out", str(tmp_path / "student")]) == 0
    history = json.loads((tmp_path / "student" / "history.json").read_text())
    assert "dev_kl" in history[0]  # taught by the ensemble, not trained on hard labels
    assert main(common + ["--teacher-models", member, "--out", str(tmp_path / "none")]) == 1
    assert (
        "--teacher-models without --soft-targets teaches nothing: pass --soft-targets, or --online-teacher"
        in caplog.text
    )
    assert not (tmp_path / "none" / "best.pt").exists()

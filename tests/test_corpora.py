"""Real and user corpora: OpenSLR yesno, Kaldi data directories, audio folders, and the recipes
that run the whole pipeline on them (yesno; the 'any corpus' recipe on a Kaldi-format copy)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kaldialign
import pytest
from lhotse import CutSet, RecordingSet, SupervisionSet

from asr_kd.data.importers import import_audio_folder, import_kaldi_dir, prepare_yesno
from asr_kd.data.manifests import CorpusError, manifest_paths

REPO = Path(__file__).resolve().parents[1]


def yesno_dir() -> Path:
    """A local copy of the yesno corpus: $ASR_KD_YESNO, else ../shared/corpora/waves_yesno."""
    for cand in (
        os.environ.get("ASR_KD_YESNO"),
        REPO.parent / "shared" / "corpora" / "waves_yesno",
        Path("/work/shared/corpora/waves_yesno"),
    ):
        if cand and Path(cand).is_dir() and len(list(Path(cand).glob("*.wav"))) == 60:
            return Path(cand)
    raise FileNotFoundError("the yesno corpus was not found: set ASR_KD_YESNO to its folder of 60 wav files")


def test_yesno_manifests(tmp_path):
    counts = prepare_yesno(yesno_dir(), tmp_path)
    assert counts == {"train": 24, "dev": 6, "test": 30}
    sups = SupervisionSet.from_file(manifest_paths(tmp_path, "yesno", "test")["supervisions"]).to_eager()
    s = sups["0_0_0_1_0_0_0_1"]
    assert s.text == "NO NO NO YES NO NO NO YES"
    recs = RecordingSet.from_file(manifest_paths(tmp_path, "yesno", "train")["recordings"]).to_eager()
    assert {r.sampling_rate for r in recs} == {8000}
    with pytest.raises(CorpusError, match="16000 Hz"):
        prepare_yesno(yesno_dir(), tmp_path / "x", sample_rate=16000)


def test_bad_yesno_copy_is_reported_not_fatal(tmp_path):
    src = tmp_path / "waves"
    shutil.copytree(yesno_dir(), src)
    wavs = sorted(src.glob("*.wav"))
    wavs[0].write_bytes(wavs[0].read_bytes()[:30])  # a corrupt header, in the train half
    (src / "0_1_x.wav").write_bytes(wavs[1].read_bytes())  # a name that is no transcript
    counts = prepare_yesno(src, tmp_path / "m")
    assert counts["train"] + counts["dev"] == 29 and counts["test"] == 30
    skipped = json.loads((tmp_path / "m" / "yesno_train.skipped.json").read_text())
    reasons = {i["id"]: i["reason"] for i in skipped["items"]}
    assert skipped["count"] == 2 and wavs[0].stem in reasons and "0_1_x" in reasons


def kaldi_copy(features_root: Path, split: str, out: Path, segments: bool = False) -> Path:
    """A Kaldi data directory holding the tiny corpus' split (optionally as two segments per file)."""
    recs = RecordingSet.from_file(manifest_paths(features_root / "manifests", "digits", split)["recordings"]).to_eager()
    sups = SupervisionSet.from_file(
        manifest_paths(features_root / "manifests", "digits", split)["supervisions"]
    ).to_eager()
    out.mkdir(parents=True)
    wav, text, u2s, seg = [], [], [], []
    for s in sups:
        wav.append(f"{s.recording_id} {recs[s.recording_id].sources[0].source}")
        if segments:
            half = round(s.duration / 2, 2)
            for k, (b, e) in enumerate(((0.0, half), (half, round(s.duration, 2)))):
                uid = f"{s.id}-seg{k}"
                seg.append(f"{uid} {s.recording_id} {b:.2f} {e:.2f}")
                text.append(f"{uid} {s.text}")
                u2s.append(f"{uid} {s.speaker}")
        else:
            text.append(f"{s.id} {s.text}")
            u2s.append(f"{s.id} {s.speaker}")
    (out / "wav.scp").write_text("\n".join(sorted(wav)) + "\n")
    (out / "text").write_text("\n".join(sorted(text)) + "\n")
    (out / "utt2spk").write_text("\n".join(sorted(u2s)) + "\n")
    if segments:
        (out / "segments").write_text("\n".join(sorted(seg)) + "\n")
    return out


def test_kaldi_data_dir_import(tiny_features, tmp_path):
    src = kaldi_copy(tiny_features, "dev", tmp_path / "dev")
    n = import_kaldi_dir(src, tmp_path / "m", "mine", split="dev", sample_rate=16000)
    orig = CutSet.from_file(manifest_paths(tiny_features / "manifests", "digits", "dev")["cuts"]).to_eager()
    cuts = CutSet.from_file(manifest_paths(tmp_path / "m", "mine", "dev")["cuts"]).to_eager()
    assert n == len(orig) == len(cuts)
    assert {c.id: c.supervisions[0].text for c in cuts} == {c.id: c.supervisions[0].text for c in orig}
    # segments: one cut per segment, with the segment's duration
    seg = kaldi_copy(tiny_features, "dev", tmp_path / "dev_seg", segments=True)
    assert import_kaldi_dir(seg, tmp_path / "s", "mine", split="dev", sample_rate=16000) == 2 * len(orig)
    cuts = CutSet.from_file(manifest_paths(tmp_path / "s", "mine", "dev")["cuts"]).to_eager()
    dur = {c.id: c.duration for c in orig}
    assert all(
        c.id.endswith(("-seg0", "-seg1")) and c.duration < 0.5 * dur[c.id.rsplit("-seg", 1)[0]] + 0.02 for c in cuts
    )
    # a missing recording is a counted skip; the rest stays usable
    lines = (src / "wav.scp").read_text().splitlines()
    lines[0] = lines[0].split()[0] + " /nonexistent/file.wav"
    (src / "wav.scp").write_text("\n".join(lines) + "\n")
    assert import_kaldi_dir(src, tmp_path / "b", "mine", split="dev", sample_rate=16000) == len(orig) - 1
    assert json.loads((tmp_path / "b" / "mine_dev.skipped.json").read_text())["count"] == 1
    with pytest.raises(CorpusError, match="missing wav.scp"):
        import_kaldi_dir(tmp_path, tmp_path / "c", "mine", split="dev", sample_rate=16000)


def test_audio_folder_import(tiny_features, tmp_path):
    sups = SupervisionSet.from_file(
        manifest_paths(tiny_features / "manifests", "digits", "test")["supervisions"]
    ).to_eager()
    recs = RecordingSet.from_file(
        manifest_paths(tiny_features / "manifests", "digits", "test")["recordings"]
    ).to_eager()
    folder = tmp_path / "audio"
    lines = []
    for i, s in enumerate(sups):
        d = folder / s.speaker
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(recs[s.recording_id].sources[0].source, d / f"{s.id}.wav")
        if i % 2:
            (d / f"{s.id}.txt").write_text(s.text + "\n")
        else:
            lines.append(f"{s.id} {s.text}")
    (folder / "text").write_text("\n".join(lines) + "\n")
    assert import_audio_folder(folder, tmp_path / "m", "mine", split="test", sample_rate=16000) == len(sups)
    got = SupervisionSet.from_file(manifest_paths(tmp_path / "m", "mine", "test")["supervisions"]).to_eager()
    assert {s.id: (s.text, s.speaker) for s in got} == {s.id: (s.text, s.speaker) for s in sups}
    with pytest.raises(CorpusError, match="8000 Hz"):
        import_audio_folder(folder, tmp_path / "x", "mine", split="test", sample_rate=8000)


def _wer_rows(exp: Path):
    return {r["name"]: r for r in json.loads((exp / "decode" / "wer_table.json").read_text())["rows"]}


def test_yesno_recipe_end_to_end(tmp_path):
    args = [
        "bash",
        str(REPO / "recipes" / "yesno" / "run.sh"),
        "--corpus-dir",
        str(yesno_dir()),
        "--data",
        str(tmp_path / "data"),
        "--exp",
        str(tmp_path / "exp"),
    ]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = _wer_rows(tmp_path / "exp")
    assert len(rows) == 4 and [r["seeds"] for r in rows.values()] == [1, 3, 1, 2]
    for name, row in rows.items():
        assert row["test_wer"]["tokens"] == 240 and row["test_wer"]["rate"] < 0.15, (name, row["test_wer"])
    again = subprocess.run(args, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count("done before, skipping") == 12  # stages 0-8, 13, 14 and 15
    k2 = json.loads((tmp_path / "exp" / "decode_k2" / "agreement.json").read_text())  # k2 decoded every model
    assert len(k2["rows"]) == sum(row["seeds"] for row in rows.values()) and all(
        r["same_share"] >= 0.9 for r in k2["rows"]
    )
    # stage 15: the deployment table, and the exported student transcribing real recordings of the test set
    table = json.loads((tmp_path / "exp" / "deploy" / "deployment_table.json").read_text())
    assert len(table["rows"]) == 8 and all(r["words"] == 240 and r["wer"] < 0.15 for r in table["rows"])
    streamed = [r["streaming"] for r in table["rows"] if "streaming" in r]
    assert len(streamed) == 1 and streamed[0]["differ_from_offline"] == 0
    assert table["parity"]["onnx"] < 1e-4 and table["parity"]["ts"] < 1e-4
    assert table["feature_check"]["fresh_max_abs"] < 1e-3
    test_ids = [c.id for c in CutSet.from_file(tmp_path / "data" / "manifests" / "yesno_cuts_test.jsonl.gz")]
    wavs = [yesno_dir() / f"{i}.wav" for i in test_ids[:6]]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr_kd",
            "transcribe",
            "--model-dir",
            str(tmp_path / "exp" / "deploy" / "student"),
            "--format",
            "onnx",
            *map(str, wavs),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    hyps = dict(line.split("\t") for line in r.stdout.splitlines())
    refs = {str(w): " ".join("YES" if b == "1" else "NO" for b in w.stem.split("_")) for w in wavs}
    wrong = sum(kaldialign.edit_distance(refs[w].split(), hyps[w].split())["total"] for w in refs)
    assert wrong <= 0.15 * 8 * len(wavs), (refs, hyps)  # the recipe's test WER bound, on these files


def test_any_corpus_recipe_on_a_kaldi_copy(tiny_features, tmp_path):
    """The README's swap: Kaldi data directories in, WER out, without touching the library; with
    untranscribed audio (--unlabelled-dir) whose text is never read, for stage 18's students."""
    dirs = {s: kaldi_copy(tiny_features, s, tmp_path / "kaldi" / s) for s in ("train", "dev", "test")}
    unl = tmp_path / "kaldi" / "unlabelled"  # the training audio again, under new ids, with a canary transcript
    unl.mkdir()
    scp = [line.split(maxsplit=1) for line in (dirs["train"] / "wav.scp").read_text().splitlines()]
    (unl / "wav.scp").write_text("".join(f"u-{utt} {rest}\n" for utt, rest in scp))
    (unl / "text").write_text("".join(f"u-{utt} ZEBRA\n" for utt, _ in scp))
    args = [
        "bash",
        str(REPO / "recipes" / "custom" / "run.sh"),
        "--train-dir",
        str(dirs["train"]),
        "--dev-dir",
        str(dirs["dev"]),
        "--test-dir",
        str(dirs["test"]),
        "--unlabelled-dir",
        str(unl),
        "--corpus",
        "mine",
        "--config",
        str(REPO / "conf" / "tiny.yaml"),
        "--ensemble-size",
        "2",
        "--student-seeds",
        "1",
        "--data",
        str(tmp_path / "data"),
        "--exp",
        str(tmp_path / "exp"),
        "--stop-stage",
        "14",
    ]
    _text = {"capture_output": True, "text": True}
    r = subprocess.run(args, **_text)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (tmp_path / "data" / "manifests" / "mine_cuts_train.jsonl.gz").is_file()
    rows = _wer_rows(tmp_path / "exp")
    test = SupervisionSet.from_file(manifest_paths(tmp_path / "data" / "manifests", "mine", "test")["supervisions"])
    words = sum(len(s.text.split()) for s in test)
    assert len(rows) == 4 and all(row["test_wer"]["tokens"] == words for row in rows.values())
    # one minute of training audio: the GMM gets about a third of the digits right (measured 65.8%
    # WER) and the tiny DNNs a few; an empty hypothesis scores 100%, a misaligned graph more
    wer = {n: r["test_wer"]["rate"] for n, r in rows.items()}
    assert wer["gmm"] < 0.8 and all(w < 1.0 for w in wer.values()), wer
    assert (tmp_path / "exp" / "kd" / "RESULTS.md").read_text().count("test WER") >= 1
    r = subprocess.run(args[:-2] + ["--transfer-ratios", "1", "--stage", "18", "--stop-stage", "18"], **_text)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "ZEBRA" not in (tmp_path / "data" / "lang" / "words.txt").read_text()
    assert "ZEBRA" not in (tmp_path / "data" / "local" / "dict" / "lexicon.txt").read_text()
    table = json.loads((tmp_path / "exp" / "kd" / "table_5e_transfer.json").read_text())
    assert [(row["name"], row["label"]) for row in table["rows"]][1:] == [("ratio1", "+ 1x untranscribed audio")]


def test_words_without_pronunciation_are_reported_and_map_to_unk(tmp_path):
    """A transcript token eSpeak cannot pronounce ("--") is listed with its utterances and becomes
    <UNK> (SPN), so the rest of the corpus stays usable."""
    from asr_kd.lang.prepare_lang import Lang

    m = tmp_path / "m"
    prepare_yesno(yesno_dir(), m)
    path = manifest_paths(m, "yesno", "train")["supervisions"]
    sups = SupervisionSet.from_file(path).to_eager()
    first = next(iter(sups)).id
    sups = SupervisionSet.from_segments(s.transform_text(lambda t: t + " --") if s.id == first else s for s in sups)
    sups.to_file(path)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr_kd",
            "prepare-lang",
            "--manifest-dir",
            str(m),
            "--corpus",
            "yesno",
            "--dictionary",
            str(REPO / "recipes" / "yesno" / "local" / "lexicon.txt"),
            "--dict-dir",
            str(tmp_path / "dict"),
            "--out",
            str(tmp_path / "lang"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "1 word(s) have no pronunciation" in r.stderr
    report = (tmp_path / "dict" / "uncovered_words.txt").read_text()
    assert report.startswith("--\t1 utterance(s)") and first in report
    lang = Lang(tmp_path / "lang")
    assert lang.oov_word == "<UNK>"
    assert lang.word_ids(["YES", "--"], first) == [lang.word2id["YES"], lang.word2id["<UNK>"]]

"""LibriSpeech and TIMIT preparation on small fixtures laid out exactly like the real corpora
(the corpora themselves cannot be downloaded here)."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, RecordingSet, SupervisionSet

from asr_kd.data.librispeech import prepare_librispeech
from asr_kd.data.manifests import CorpusError, manifest_paths

REPO = Path(__file__).resolve().parents[1]


def _tiny(features_root: Path, split: str):
    p = manifest_paths(features_root / "manifests", "digits", split)
    return (RecordingSet.from_file(p["recordings"]).to_eager(), SupervisionSet.from_file(p["supervisions"]).to_eager())


def librispeech_fixture(features_root: Path, root: Path) -> Path:
    """LibriSpeech/<part>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac + <spk>-<chapter>.trans.txt."""
    ls = root / "LibriSpeech"
    for part, splits in (("train-clean-5", ["train"]), ("dev-clean-2", ["dev", "test"])):
        spk_ids = {}
        for split in splits:
            recs, sups = _tiny(features_root, split)
            for s in sups:
                spk = spk_ids.setdefault(s.speaker, str(100 + len(spk_ids) + (0 if part.startswith("train") else 50)))
                chap = "1000"
                d = ls / part / spk / chap
                d.mkdir(parents=True, exist_ok=True)
                n = len(list(d.glob("*.flac")))
                uid = f"{spk}-{chap}-{n:04d}"
                audio = recs[s.recording_id].load_audio()[0]
                sf.write(d / f"{uid}.flac", audio, 16000, format="FLAC")
                with open(d / f"{spk}-{chap}.trans.txt", "a") as f:
                    f.write(f"{uid} {s.text}\n")
    return root


def musan_fixture(root: Path) -> Path:
    d = root / "musan" / "noise" / "free-sound"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        sf.write(d / f"noise-free-sound-{i:04d}.wav", (0.1 * rng.standard_normal(16000 * 3)).astype(np.float32), 16000)
    return root / "musan"


def test_mini_librispeech_prepare_with_augmentation(tiny_features, tmp_path):
    src = librispeech_fixture(tiny_features, tmp_path / "corpus")
    train_sups = _tiny(tiny_features, "train")[1]
    counts = prepare_librispeech(
        src, tmp_path / "m", mini=True, speed_factors=[0.9, 1.1], musan_dir=str(musan_fixture(tmp_path))
    )
    n = len(train_sups)
    assert counts["train"] == 4 * n  # original, two speeds, MUSAN
    assert counts["dev"] + counts["test"] == len(_tiny(tiny_features, "dev")[1]) + len(_tiny(tiny_features, "test")[1])
    dev = SupervisionSet.from_file(manifest_paths(tmp_path / "m", "librispeech", "dev")["supervisions"])
    test = SupervisionSet.from_file(manifest_paths(tmp_path / "m", "librispeech", "test")["supervisions"])
    assert not ({s.speaker for s in dev} & {s.speaker for s in test})  # split by speaker
    cuts = CutSet.from_file(manifest_paths(tmp_path / "m", "librispeech", "train")["cuts"]).to_eager()
    ids = [c.id for c in cuts]
    assert (
        len(set(ids)) == len(ids)
        and sum(i.endswith("_sp0.9") for i in ids) == n
        and sum(i.endswith("_musan") for i in ids) == n
    )
    orig = {c.id: c.duration for c in cuts if not c.id.endswith(("_sp0.9", "_sp1.1", "_musan"))}
    for c in cuts:
        if c.id.endswith("_sp0.9"):
            assert c.duration == pytest.approx(orig[c.id[:-6]] / 0.9, abs=0.01)
        if c.id.endswith("_musan"):
            assert c.duration == pytest.approx(orig[c.id[:-6]], abs=0.01)
            clean = cuts[c.id[:-6]].load_audio()
            assert not np.allclose(c.load_audio()[:, : clean.shape[1]], clean)  # noise was added
    # rerunning the augmentation does not stack copies
    counts = prepare_librispeech(src, tmp_path / "m", mini=True, speed_factors=[0.9, 1.1])
    assert counts["train"] == 3 * n
    with pytest.raises(CorpusError, match="missing LibriSpeech part"):
        prepare_librispeech(src, tmp_path / "x", mini=False)


def test_librispeech_recipe_prepares_and_computes_features(tiny_features, tmp_path):
    src = librispeech_fixture(tiny_features, tmp_path / "corpus")
    r = subprocess.run(
        [
            "bash",
            str(REPO / "recipes" / "librispeech" / "run.sh"),
            "--stage",
            "1",
            "--stop-stage",
            "2",
            "--corpus-dir",
            str(src),
            "--speed-perturb",
            "0.9 1.1",
            "--nj",
            "1",
            "--data",
            str(tmp_path / "data"),
            "--exp",
            str(tmp_path / "exp"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    cuts = CutSet.from_file(tmp_path / "data" / "fbank" / "librispeech_cuts_train.jsonl.gz").to_eager()
    n = len(_tiny(tiny_features, "train")[1])
    assert len(cuts) == 3 * n
    for c in cuts:
        feats = c.load_features()
        assert feats.shape[0] == c.num_frames and np.isfinite(feats).all()


TIMIT61 = (
    "aa ae ah ao aw ax ax-h axr ay b bcl ch d dcl dh dx eh el em en eng er ey f g gcl hh hv ih ix iy jh k "
    "kcl l m n ng nx ow oy p pcl r s sh t tcl th uh uw ux v w y z zh"
).split()


def timit_fixture(features_root: Path, root: Path) -> Path:
    """data/{TRAIN,TEST}/DR1/<SPEAKER>/<UTT>.{WAV,PHN,WRD,TXT}; dev and test speakers are taken from
    lhotse's lists (Kaldi's dev and core test sets); eSpeak phones are renamed to TIMIT symbols."""
    from lhotse.recipes.timit import get_speakers

    dev_spk, test_spk = get_speakers()
    names = {
        "train": ["MTRN0", "FTRN1", "MTRN2", "FTRN3"],
        "dev": [s.upper() for s in dev_spk[:4]],
        "test": [s.upper() for s in test_spk[:4]],
    }
    symbol = {}
    for split, part in (("train", "TRAIN"), ("dev", "TEST"), ("test", "TEST")):
        recs, sups = _tiny(features_root, split)
        spk_map = {}
        for s in sups:
            spk = spk_map.setdefault(s.speaker, names[split][len(spk_map)])
            d = root / "data" / part / "DR1" / spk
            d.mkdir(parents=True, exist_ok=True)
            utt = f"SX{len(list(d.glob('*.WAV'))) + 10}"
            audio = recs[s.recording_id].load_audio()[0]
            sf.write(d / f"{utt}.WAV", audio, 16000, subtype="PCM_16")
            n = len(audio)
            phones = [(a.symbol, int(a.start * 16000), int(a.end * 16000)) for a in s.alignment["phone"]]
            lines = [f"0 {phones[0][1]} h#"]
            for sym, b, e in phones:
                lines.append(f"{b} {e} {symbol.setdefault(sym, TIMIT61[len(symbol) % len(TIMIT61)])}")
            lines.append(f"{phones[-1][2]} {n} h#")
            (d / f"{utt}.PHN").write_text("\n".join(lines) + "\n")
            (d / f"{utt}.WRD").write_text(
                "".join(
                    f"{int(a.start * 16000)} {int(a.end * 16000)} {a.symbol.lower()}\n" for a in s.alignment["word"]
                )
            )
            (d / f"{utt}.TXT").write_text(f"0 {n} {s.text.lower()}.\n")
    return root


def test_timit_recipe_prepares_and_scores_per(tiny_features, tmp_path):
    src = timit_fixture(tiny_features, tmp_path / "TIMIT")
    args = [
        "bash",
        str(REPO / "recipes" / "timit" / "run.sh"),
        "--corpus-dir",
        str(src),
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
    ]
    for stages in (
        ["--stop-stage", "8"],
        ["--stage", "13", "--stop-stage", "13"],
    ):  # the analysis stages are not TIMIT's
        r = subprocess.run(args + stages, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = tmp_path / "data" / "manifests"
    sups = {
        s: SupervisionSet.from_file(manifest_paths(m, "timit", s)["supervisions"]).to_eager()
        for s in ("train", "dev", "test")
    }
    assert [len(sups[s]) for s in ("train", "dev", "test")] == [
        len(_tiny(tiny_features, s)[1]) for s in ("train", "dev", "test")
    ]
    lexicon = {line.split()[0] for line in (m / "timit_phone_lexicon.txt").read_text().splitlines()}
    fold = dict(
        line.split() if len(line.split()) == 2 else (line.strip(), "")
        for line in (m / "timit_48_to_39.txt").read_text().splitlines()
    )
    assert len(lexicon) == 47 and fold["ao"] == "aa" and fold["cl"] == "" and fold["zh"] == "sh"
    for s in sups["train"]:
        assert s.text and set(s.text.split()) <= lexicon and "sil" not in s.text.split()
        assert s.alignment["phone"][0].symbol == "SIL"  # h# -> sil -> the lang's silence phone
    import json

    table = json.loads((tmp_path / "exp" / "decode" / "wer_table.json").read_text())
    assert len(table["rows"]) == 4
    # the scorer saw folded tokens: no 48-only phone in any reference
    ref = (tmp_path / "exp" / "decode" / table["rows"][1]["members"][0]["name"] / "test.per_utt.txt").read_text()
    assert " ao " not in f" {ref} " and " cl " not in f" {ref} "
    assert "PER (39 phones)" in (tmp_path / "exp" / "kd" / "RESULTS.md").read_text()

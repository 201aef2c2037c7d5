"""Untranscribed transfer audio (the paper's transfer set): the generators' unlabelled split is new
voices saying no dev or test string, no transcript of it reaches a manifest, an alignment, a lexicon
or an LM, and a student learns from the ensemble there with no hard-label term."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr_kd.cli import main as cli_main
from asr_kd.cli.common import transcribed_splits
from asr_kd.data.importers import import_audio_folder, import_kaldi_dir
from asr_kd.data.manifests import manifest_paths, prepare_unlabelled
from asr_kd.data.synth.corpus import make_speakers, read_split
from asr_kd.data.synth.digits import DIGIT_WORDS, evaluation_strings, generate_unlabelled
from asr_kd.nnet.data import concat_frames
from asr_kd.nnet.losses import LossConfig, build_criterion, soft_cross_entropy
from asr_kd.utils.config import section
from asr_kd.data.synth.digits import DigitsCorpusConfig

from test_nnet import toy_frames

REPO = Path(__file__).resolve().parents[1]


def _manifest_text(out_dir: Path, corpus: str, split: str) -> str:
    return "".join(gzip.open(p, "rt").read() for p in manifest_paths(out_dir, corpus, split).values())


@pytest.fixture(scope="module")
def tiny_unlabelled(tmp_path_factory):
    cfg = section(REPO / "conf" / "tiny.yaml", "corpus", DigitsCorpusConfig)
    out = tmp_path_factory.mktemp("unlabelled")
    counts = generate_unlabelled(cfg, 0.006, out / "a", num_jobs=2)
    return cfg, out, counts


def test_unlabelled_split_is_new_voices_saying_no_evaluation_string(tiny_unlabelled):
    cfg, out, counts = tiny_unlabelled
    metas = read_split(out / "a", "unlabelled")
    assert counts == {"unlabelled": len(metas)} and len(metas) >= 10
    held_out = evaluation_strings(cfg)
    assert all(tuple(w.lower() for w in m["text"].split()) not in held_out for m in metas)
    assert all(m["accent"] in cfg.accents for m in metas)  # never a held-out accent
    voices = {s.id: s.voice for s in make_speakers(cfg)}
    table = json.loads((out / "a" / "speakers.json").read_text())
    assert len(table) >= 2 and not {s["id"] for s in table} & set(voices)
    assert not {(s["accent"], s["variant"], s["rate"], s["pitch"], s["pitch_range"]) for s in table} & {
        (v.accent, v.variant, v.rate, v.pitch, v.pitch_range) for v in voices.values()
    }
    again = generate_unlabelled(cfg, 0.006, out / "b", num_jobs=1)  # a pure function of the config
    assert again == counts
    for m in metas[:3]:
        assert (out / "a" / m["wav"]).read_bytes() == (out / "b" / m["wav"]).read_bytes()


def test_unlabelled_manifests_carry_no_transcript(tiny_unlabelled, tmp_path):
    _, out, counts = tiny_unlabelled
    (out / "corpus").mkdir(exist_ok=True)
    if not (out / "corpus" / "unlabelled").exists():
        (out / "corpus" / "unlabelled").symlink_to(out / "a")
    assert prepare_unlabelled(out / "corpus", tmp_path, "digits") == counts
    assert prepare_unlabelled(tmp_path, tmp_path, "digits") == {}  # no untranscribed split: nothing
    text = _manifest_text(tmp_path, "digits", "unlabelled")
    assert not any(w.upper() in text for w in DIGIT_WORDS)
    from lhotse import SupervisionSet

    sups = SupervisionSet.from_file(manifest_paths(tmp_path, "digits", "unlabelled")["supervisions"])
    assert all(s.text is None and s.alignment is None for s in sups)


def _wav(path: Path, seconds: float = 0.5) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(
        str(path), (0.1 * np.random.default_rng(0).standard_normal(int(16000 * seconds))).astype(np.float32), 16000
    )


def test_importers_read_no_transcript_of_the_unlabelled_split(tmp_path):
    folder, kaldi = tmp_path / "folder", tmp_path / "kaldi"
    for u in ("u1", "u2"):
        _wav(folder / "spk" / f"{u}.wav")
        _wav(kaldi / f"{u}.wav")
    (folder / "text").write_text("u1 ZEBRA CANARY\nu2 ZEBRA\n")  # present, and never read
    (kaldi / "wav.scp").write_text("".join(f"{u} {kaldi / u}.wav\n" for u in ("u1", "u2")))
    (kaldi / "text").write_text("u1 ZEBRA CANARY\nu2 ZEBRA\n")
    assert import_audio_folder(folder, tmp_path / "m1", "mine", split="unlabelled", sample_rate=16000) == 2
    assert import_kaldi_dir(kaldi, tmp_path / "m2", "mine", split="unlabelled", sample_rate=16000) == 2
    for m in ("m1", "m2"):
        assert "ZEBRA" not in _manifest_text(tmp_path / m, "mine", "unlabelled")
    (kaldi / "text").unlink()  # untranscribed: a Kaldi dir needs no text
    assert import_kaldi_dir(kaldi, tmp_path / "m3", "mine", split="unlabelled", sample_rate=16000) == 2


def test_commands_that_read_transcripts_refuse_the_unlabelled_split(tmp_path, caplog):
    assert transcribed_splits("train,dev,test") == ["train", "dev", "test"]
    with pytest.raises(ValueError, match="no transcripts"):
        transcribed_splits("unlabelled,dev")
    for cmd in (
        [
            "prepare-lang",
            "--manifest-dir",
            str(tmp_path),
            "--dict-dir",
            str(tmp_path / "d"),
            "--out",
            str(tmp_path / "l"),
        ],
        ["train-mono", "--fbank-dir", str(tmp_path), "--lang", str(tmp_path), "--exp", str(tmp_path / "e")],
    ):
        caplog.clear()
        assert cli_main(cmd + ["--corpus", "digits", "--splits", "unlabelled,dev,test"]) != 0
        assert "unlabelled split has no transcripts" in caplog.text


def test_no_hard_term_on_untranscribed_frames():
    torch.manual_seed(0)
    z, p = torch.randn(6, 5), torch.softmax(torch.randn(6, 5), -1)
    y = torch.tensor([1, 2, -100, -100, 0, -100])
    crit = build_criterion(LossConfig(loss="kd", temperature=2.0, soft_weight=1.0, hard_weight=0.5))
    soft = 4.0 * soft_cross_entropy(z, p, 2.0).mean()  # every frame: T^2 x CE
    hard = 0.5 * torch.nn.functional.cross_entropy(z[y >= 0], y[y >= 0])
    assert torch.allclose(crit(z, y, p), soft + hard)
    assert torch.allclose(crit(z, torch.full((6,), -100), p), soft)  # a batch of transfer frames only


def test_concatenated_frames_keep_their_utterances():
    a, b = toy_frames(seed=0, n_utts=3), toy_frames(seed=1, n_utts=2)
    b.labels[:] = -100
    c = concat_frames(a, b)
    assert len(c) == len(a) + len(b) and c.cut_ids == a.cut_ids + b.cut_ids
    for i in range(len(c.cut_ids)):  # context windows stay inside each utterance
        s = c.utterance(i)
        assert bool((c.start[s] == s.start).all() and (c.end[s] == s.stop).all())
    assert torch.equal(c.windows(torch.tensor([len(a)]), 2)[0, :3], c.feats[[len(a)] * 3])
    assert torch.equal(c.labels[len(a) :], b.labels)

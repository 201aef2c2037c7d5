"""Shipping a system (asr_kd.deploy): export parity in every format, streaming = offline, word
times, and bad audio reported by name while the other files are transcribed."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet

from asr_kd.deploy.audio import FbankSettings, StreamingFbank, chunks, fbank, read_audio
from asr_kd.deploy.networks import export_all, flops_per_frame, runtime
from asr_kd.nnet.checkpoint import save_checkpoint
from asr_kd.nnet.data import FrameData
from asr_kd.nnet.models import ModelConfig, build_model
from asr_kd.deploy.recognizer import FrameWindows


@pytest.mark.parametrize("name", ["dnn", "tdnn"])
def test_every_export_format_matches_pytorch(name, tmp_path):
    cfg = ModelConfig(name=name, context=4, hidden=32, num_layers=2, tdnn_layers=((3, 1), (3, 1), (3, 2)))
    torch.manual_seed(0)
    model = build_model(cfg, feat_dim=10, num_pdfs=7)
    if name == "tdnn":  # non-trivial batch-norm statistics, as after training
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    save_checkpoint(tmp_path / "m.pt", model, cfg, feat_dim=10, num_pdfs=7, extra={})
    files = export_all(tmp_path / "m.pt", tmp_path / "out" / "m")
    assert set(files) == {"pt", "ts", "onnx", "int8.onnx"}
    x = np.random.default_rng(1).standard_normal((300, 9, 10)).astype(np.float32)
    ref = runtime(files["pt"])(x)
    with torch.no_grad():
        assert np.abs(ref - model.eval()(torch.from_numpy(x)).numpy()).max() < 1e-6
    assert np.abs(runtime(files["ts"])(x) - ref).max() < 1e-4
    assert np.abs(runtime(files["onnx"])(x) - ref).max() < 1e-4
    q = runtime(files["int8.onnx"])(x)  # quantised: close, not equal
    assert 0 < np.abs(q - ref).max() < 0.5 * np.abs(ref).max()
    assert files["int8.onnx"].stat().st_size < files["onnx"].stat().st_size
    if name == "dnn":  # 90 -> 32 -> 32 -> 7, a multiply-add is 2 flops
        assert flops_per_frame(model, 10) == 2 * (90 * 32 + 32 * 32 + 32 * 7)


def test_streamed_windows_equal_training_splicing():
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((23, 3)).astype(np.float32)
    data = FrameData(
        torch.from_numpy(feats),
        torch.zeros(23, dtype=torch.long),
        torch.zeros(23, dtype=torch.long),
        torch.full((23,), 23),
        ["u"],
        np.array([0, 23]),
    )
    offline = data.windows(torch.arange(23), context=4).numpy()
    for sizes in ([23], [1] * 23, [5, 0, 2, 9, 7]):
        w, out, i = FrameWindows(4), [], 0
        for k, n in enumerate(sizes):
            out.append(w.push(feats[i : i + n], last=k == len(sizes) - 1))
            i += n
        assert np.array_equal(np.concatenate([o for o in out if len(o)]), offline), sizes


def test_streaming_fbank_equals_one_piece_and_lhotse(tiny_features):
    cut = next(iter(CutSet.from_file(tiny_features / "fbank" / "digits_cuts_test.jsonl.gz")))
    audio = cut.load_audio()[0]
    s = FbankSettings(sample_rate=cut.sampling_rate, num_mel_bins=40)
    whole = fbank(audio, s)
    f = StreamingFbank(s)
    parts = [f.accept(c) for c in chunks(audio, 777)] + [f.finish()]
    assert np.array_equal(np.concatenate(parts), whole)
    from lhotse import Fbank, FbankConfig

    theirs = Fbank(FbankConfig(sampling_rate=cut.sampling_rate, num_mel_bins=40, dither=0.0)).extract(
        audio, cut.sampling_rate
    )
    assert (
        whole.shape == theirs.shape and np.abs(whole - theirs).max() < 5e-3
    )  # float rounding: 1e-3 at most on 1440 cuts


@pytest.fixture(scope="module")
def model_dir(tiny_graph, tiny_features, tmp_path_factory):
    """A network trained on the tiny corpus's alignment, exported with its graph."""
    from asr_kd.deploy.model_dir import export_model_dir, fbank_settings
    from asr_kd.distill.training import train_speech_model
    from asr_kd.nnet.losses import LossConfig
    from asr_kd.nnet.train import TrainConfig

    root, _ = tiny_graph
    out = tmp_path_factory.mktemp("deploy")
    train_speech_model(
        root / "exp",
        tiny_features / "fbank",
        "digits",
        out_dir=out / "dnn",
        model_cfg=ModelConfig(context=3, hidden=64, num_layers=2),
        train_cfg=TrainConfig(epochs=3, batch_size=128, lr=0.003),
        loss_cfg=LossConfig(loss="ce"),
        seed=1,
    )
    return export_model_dir(
        out / "model",
        [out / "dnn" / "best.pt"],
        root / "exp",
        lang_dir=root / "lang",
        graph_dir=root / "graph",
        fbank_dir=tiny_features / "fbank",
        settings=fbank_settings(tiny_features / "fbank", "digits"),
        name="tiny dnn",
        corpus="digits",
        lmwt=5.0,
        wip=0.5,
        formats=("pt", "onnx"),
    )


def test_streaming_equals_offline_and_word_times_follow_the_words(model_dir, tiny_features):
    from asr_kd.deploy.model_dir import ModelDir
    from asr_kd.deploy.recognizer import Recognizer, ctm_lines

    model = ModelDir.load(model_dir)
    assert model.card["decode"]["wip_in_graph"] == 0.5 and model.card["parameters"] > 0
    rec = Recognizer(model, "onnx")
    rec_conf = Recognizer(model, "onnx", confidences=True)
    cuts = CutSet.from_file(tiny_features / "fbank" / "digits_cuts_test.jsonl.gz").to_eager()
    decoded_words, confidences = 0, []
    for cut in cuts:
        audio = cut.load_audio()[0]
        offline = rec.transcribe(audio)
        assert offline.frames == cut.num_frames
        for ms in (10, 160, 1000):
            s = rec.stream()
            for c in chunks(audio, int(ms * cut.sampling_rate / 1000)):
                s.accept(c)
            final = s.finish()
            assert final.words == offline.words and final.transition_ids == offline.transition_ids, (cut.id, ms)
        assert offline.word_times is not None and [w for w, _, _ in offline.word_times] == offline.words
        starts = [st for _, st, _ in offline.word_times]
        assert starts == sorted(starts) and all(0 <= st <= cut.duration for st in starts)
        assert len(ctm_lines(cut.id, offline)) == len(offline.words)
        decoded_words += len(offline.words)
        with_conf = rec_conf.transcribe(audio)  # a lattice pass beside the 1-best: same words, a posterior each
        assert with_conf.words == offline.words and len(with_conf.confidences) == len(offline.words)
        assert all(c is not None and 0.0 <= c <= 1.0 for c in with_conf.confidences)
        assert all(len(line.split()) == 6 for line in ctm_lines(cut.id, with_conf))
        confidences += with_conf.confidences
    assert decoded_words > 0
    assert np.mean(confidences) > 0.5  # a model that gets these digits right is confident in them


def test_transcribe_reports_bad_files_and_goes_on(model_dir, tiny_features, tmp_path):
    cut = next(iter(CutSet.from_file(tiny_features / "fbank" / "digits_cuts_test.jsonl.gz")))
    audio = cut.load_audio()[0]
    good = tmp_path / "good.wav"
    sf.write(good, audio, cut.sampling_rate)
    stereo = tmp_path / "stereo_44k.flac"  # another rate, two channels: resampled and mixed down
    import torchaudio.functional as AF

    up = AF.resample(torch.from_numpy(audio), cut.sampling_rate, 44100).numpy()
    sf.write(stereo, np.stack([up, up], 1), 44100)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), cut.sampling_rate)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really a wave file")
    assert len(read_audio(stereo, cut.sampling_rate)) == pytest.approx(len(audio), abs=2)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr_kd",
            "transcribe",
            "--model-dir",
            str(model_dir),
            str(good),
            str(empty),
            str(corrupt),
            str(tmp_path / "missing.wav"),
            str(stereo),
            "--ctm",
            str(tmp_path / "out.ctm"),
            "--streaming",
            "--chunk-ms",
            "200",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    lines = dict(line.split("\t") for line in r.stdout.splitlines())
    assert set(lines) == {str(good), str(stereo)}
    for bad in (empty, corrupt, tmp_path / "missing.wav"):
        assert sum(str(bad) in line for line in r.stderr.splitlines() if line.startswith("ERROR")) == 1, r.stderr
    assert "3 of 5 audio file(s) could not be transcribed" in r.stderr
    assert "(partial)" in r.stderr
    ctm = (tmp_path / "out.ctm").read_text().splitlines()
    assert len(ctm) == len(lines[str(good)].split()) + len(lines[str(stereo)].split())


def test_export_refuses_a_gmm_and_names_missing_files(tiny_graph, tiny_features, tmp_path):
    from asr_kd.deploy.model_dir import export_model_dir

    root, _ = tiny_graph
    with pytest.raises(ValueError, match="GMM"):
        export_model_dir(
            tmp_path / "m",
            [root / "exp" / "final.mdl"],
            root / "exp",
            lang_dir=root / "lang",
            graph_dir=root / "graph",
            fbank_dir=tiny_features / "fbank",
            settings=FbankSettings(),
            name="gmm",
            corpus="digits",
            lmwt=5.0,
            wip=0.0,
        )
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        export_model_dir(
            tmp_path / "m",
            [tmp_path / "nothing.pt"],
            root / "exp",
            lang_dir=root / "lang",
            graph_dir=root / "graph",
            fbank_dir=tiny_features / "fbank",
            settings=FbankSettings(),
            name="x",
            corpus="digits",
            lmwt=5.0,
            wip=0.0,
        )
    assert not (tmp_path / "m").exists()


def _transcribe(model_dir, *args):
    return subprocess.run(
        [sys.executable, "-m", "asr_kd", "transcribe", "--model-dir", str(model_dir), *map(str, args)],
        capture_output=True,
        text=True,
    )


def _one_error_line(r, *needles):
    """exit 1, no traceback, one ERROR line that names every needle."""
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and all(str(n) in errors[0] for n in needles), r.stderr


def test_transcribe_survives_nan_and_implausible_rates_and_keeps_ctm_ids_apart(model_dir, tiny_features, tmp_path):
    cut = next(iter(CutSet.from_file(tiny_features / "fbank" / "digits_cuts_test.jsonl.gz")))
    audio = cut.load_audio()[0]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for f in (tmp_path / "a" / "x.wav", tmp_path / "b" / "x.wav", tmp_path / "my file.wav"):
        sf.write(f, audio, cut.sampling_rate)
    nan = tmp_path / "nan.wav"
    bad = audio.copy()
    bad[100] = np.nan
    sf.write(nan, bad, cut.sampling_rate, subtype="FLOAT")
    one_hz = tmp_path / "one_hz.wav"  # an 8 KB file whose header claims 1 Hz: 2.2 h at 16 kHz if believed
    sf.write(one_hz, np.zeros(4000, np.int16), 1, subtype="PCM_16")
    r = _transcribe(
        model_dir,
        tmp_path / "a" / "x.wav",
        nan,
        one_hz,
        tmp_path / "b" / "x.wav",
        tmp_path / "my file.wav",
        "--ctm",
        tmp_path / "out.ctm",
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 2 and "nan.wav" in errors[0] and "not a finite number" in errors[0]
    assert "one_hz.wav" in errors[1] and "implausible sample rate 1 Hz" in errors[1]
    assert len(r.stdout.splitlines()) == 3  # the three good files were transcribed
    ctm = [line.split() for line in (tmp_path / "out.ctm").read_text().splitlines()]
    assert ctm and all(len(f) == 6 and 0.0 <= float(f[5]) <= 1.0 for f in ctm)  # the sixth column: confidence
    ids = {f[0] for f in ctm}
    assert "my_file" in ids and len({i for i in ids if i.endswith("x")}) == 2, ids


def test_transcribe_checks_the_model_directory(model_dir, tmp_path):
    import json
    import shutil

    def broken(name, change):
        d = tmp_path / name
        shutil.copytree(model_dir, d)
        change(d)
        return d

    def card(d, edit):
        c = json.loads((d / "card.json").read_text())
        edit(c)
        (d / "card.json").write_text(json.dumps(c))

    def features(d, **kw):
        (d / "features.json").write_text(json.dumps({**json.loads((d / "features.json").read_text()), **kw}))

    wav = tmp_path / "in.wav"
    sf.write(wav, np.zeros(8000, np.float32), 16000)
    cases = {
        "outside": (
            lambda d: card(d, lambda c: c["members"][0]["files"].update(pt="../../../etc/passwd")),
            "plain file name",
        ),
        "absolute": (lambda d: card(d, lambda c: c["members"][0]["files"].update(pt="/etc/passwd")), "plain file name"),
        "truncated_card": (
            lambda d: (d / "card.json").write_text((d / "card.json").read_text()[:50]),
            "not valid JSON",
        ),
        "truncated_graph": (lambda d: (d / "HCLG.fst").write_bytes((d / "HCLG.fst").read_bytes()[:200]), "HCLG.fst"),
        "truncated_net": (
            lambda d: (d / "nnet" / "member0.pt").write_bytes((d / "nnet" / "member0.pt").read_bytes()[:300]),
            "member0.pt",
        ),
        "zero_shift": (lambda d: features(d, frame_shift=0), "frame_shift"),
        "zero_lmwt": (lambda d: card(d, lambda c: c["decode"].update(lmwt=0)), "decode.lmwt"),
    }
    for name, (change, needle) in cases.items():
        d = broken(name, change)
        _one_error_line(_transcribe(d, wav), needle)
    r = _transcribe(model_dir, wav, "--chunk-ms", "0", "--streaming")
    assert r.returncode == 2 and "--chunk-ms: must be greater than 0" in r.stderr


def test_a_pickle_payload_in_a_model_directory_does_not_run(model_dir, tmp_path):
    import shutil

    d = tmp_path / "evil"
    shutil.copytree(model_dir, d)
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    genuine = torch.load(d / "nnet" / "member0.pt", weights_only=True)
    torch.save({**genuine, "extra": Payload()}, d / "nnet" / "member0.pt")
    wav = tmp_path / "in.wav"
    sf.write(wav, np.zeros(8000, np.float32), 16000)
    _one_error_line(_transcribe(d, wav), "member0.pt", "not a loadable asr_kd checkpoint")
    assert not marker.exists()


def test_export_never_deletes_what_it_did_not_write(model_dir, tiny_graph, tiny_features, tmp_path):
    from asr_kd.deploy.model_dir import export_model_dir, fbank_settings

    root, _ = tiny_graph
    ckpt = next(model_dir.parent.glob("dnn/best.pt"))
    settings = fbank_settings(tiny_features / "fbank", "digits")

    def export(out, checkpoints=(ckpt,)):
        return export_model_dir(
            out,
            list(checkpoints),
            root / "exp",
            lang_dir=root / "lang",
            graph_dir=root / "graph",
            fbank_dir=tiny_features / "fbank",
            settings=settings,
            name="t",
            corpus="digits",
            lmwt=5.0,
            wip=0.0,
            formats=("pt",),
        )

    with pytest.raises(ValueError, match="holds an input"):
        export(ckpt.parent.parent)  # --out is the folder the checkpoint is in
    assert ckpt.is_file()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a model directory"):
        export(other)
    assert (other / "keep.txt").read_text() == "mine"
    out = export(tmp_path / "m")
    first = (out / "card.json").read_text()
    export(tmp_path / "m")  # replacing a model directory is fine
    assert (out / "card.json").is_file() and first
    mode = (out / "card.json").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask(), oct(mode)  # readable by others as the umask allows, not mkstemp's 0600


def _umask():
    import os

    m = os.umask(0o022)
    os.umask(m)
    return m


def test_long_audio_is_read_in_blocks_equal_to_one_piece(tmp_path):
    from asr_kd.deploy.audio import audio_blocks, rechunk

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(44100 * 3 + 17)).astype(np.float32)
    sf.write(tmp_path / "x.wav", x, 44100, subtype="FLOAT")
    whole = torch.from_numpy(x)
    import torchaudio.functional as AF

    ref = AF.resample(whole, 44100, 16000).numpy()
    blocks = list(audio_blocks(tmp_path / "x.wav", 16000, block_seconds=0.5))
    assert len(blocks) > 4
    got = np.concatenate(blocks)
    assert len(got) == len(ref) and np.abs(got - ref).max() < 1e-5
    same_rate = np.concatenate(list(audio_blocks(tmp_path / "x.wav", 44100, block_seconds=0.3)))
    assert np.array_equal(same_rate, x)
    pieces = list(rechunk(iter(blocks), 1000))
    assert all(len(p) == 1000 for p in pieces[:-1]) and np.array_equal(np.concatenate(pieces), got)


def test_streaming_closes_segments_at_long_silence(model_dir, tiny_features):
    from asr_kd.deploy.model_dir import ModelDir
    from asr_kd.deploy.recognizer import Endpointing, Recognizer

    rec = Recognizer(ModelDir.load(model_dir), "pt")
    cut = next(iter(CutSet.from_file(tiny_features / "fbank" / "digits_cuts_test.jsonl.gz")))
    speech = cut.load_audio()[0]
    gap = np.zeros(int(3.0 * cut.sampling_rate), np.float32)
    audio = np.concatenate([speech, gap, speech, gap])
    offline = rec.transcribe(audio)
    s = rec.stream(Endpointing(silence_without_words=1.0, silence_after_words=1.0, max_segment=20.0))
    for c in chunks(audio, 1600):
        s.accept(c)
    final = s.finish()
    assert s.segment_start > 0  # a segment was closed
    assert final.words == offline.words, (final.words, offline.words)
    assert len(final.transition_ids) == final.frames == offline.frames


def test_fbank_extractor_restarts_give_the_same_frames(monkeypatch):
    """StreamingFbank hands over to a fresh extractor every RESTART_FRAMES frames (flat memory): the
    frames equal one extractor's exactly, at 16 and 8 kHz and a 5 ms shift, for any chunking."""
    import kaldi_native_fbank as knf

    from asr_kd.deploy.audio import fbank_options

    monkeypatch.setattr(StreamingFbank, "RESTART_FRAMES", 150)
    rng = np.random.default_rng(0)
    for settings in (FbankSettings(), FbankSettings(sample_rate=8000), FbankSettings(frame_shift=0.005)):
        x = (0.1 * rng.standard_normal(settings.sample_rate * 5)).astype(np.float32)
        one = knf.OnlineFbank(fbank_options(settings))
        one.accept_waveform(settings.sample_rate, x.tolist())
        one.input_finished()
        ref = np.array([one.get_frame(i) for i in range(one.num_frames_ready)], np.float32)
        f, parts, i = StreamingFbank(settings), [], 0
        while i < len(x):
            k = int(rng.integers(1, 3000))
            parts.append(f.accept(x[i : i + k]))
            i += k
        parts.append(f.finish())
        assert f._base > 0 and np.array_equal(np.concatenate(parts), ref), settings

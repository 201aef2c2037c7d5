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
    save_checkpoint(tmp_path / "m.pt", model, cfg, 10, 7, {})
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
    data = FrameData(torch.from_numpy(feats), torch.zeros(23, dtype=torch.long), torch.zeros(23, dtype=torch.long),
                     torch.full((23,), 23), ["u"], np.array([0, 23]))
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

    theirs = Fbank(FbankConfig(sampling_rate=cut.sampling_rate, num_mel_bins=40, dither=0.0)).extract(audio, cut.sampling_rate)
    assert whole.shape == theirs.shape and np.abs(whole - theirs).max() < 5e-3  # float rounding: 1e-3 at most on 1440 cuts


@pytest.fixture(scope="module")
def model_dir(tiny_graph, tiny_features, tmp_path_factory):
    """A network trained on the tiny corpus's alignment, exported with its graph."""
    from asr_kd.deploy.model_dir import export_model_dir, fbank_settings
    from asr_kd.distill.training import train_speech_model
    from asr_kd.nnet.losses import LossConfig
    from asr_kd.nnet.train import TrainConfig

    root, _ = tiny_graph
    out = tmp_path_factory.mktemp("deploy")
    train_speech_model(root / "exp", tiny_features / "fbank", "digits", out / "dnn", ModelConfig(context=3, hidden=64, num_layers=2),
                       TrainConfig(epochs=3, batch_size=128, lr=0.003), LossConfig(loss="ce"), seed=1)
    return export_model_dir(out / "model", [out / "dnn" / "best.pt"], root / "exp", root / "lang", root / "graph",
                            tiny_features / "fbank", fbank_settings(tiny_features / "fbank", "digits"), "tiny dnn", "digits",
                            lmwt=5.0, wip=0.5, formats=("pt", "onnx"))


def test_streaming_equals_offline_and_word_times_follow_the_words(model_dir, tiny_features):
    from asr_kd.deploy.model_dir import ModelDir
    from asr_kd.deploy.recognizer import Recognizer, ctm_lines

    model = ModelDir.load(model_dir)
    assert model.card["decode"]["wip_in_graph"] == 0.5 and model.card["parameters"] > 0
    rec = Recognizer(model, "onnx")
    cuts = CutSet.from_file(tiny_features / "fbank" / "digits_cuts_test.jsonl.gz").to_eager()
    decoded_words = 0
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
    assert decoded_words > 0


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
    r = subprocess.run([sys.executable, "-m", "asr_kd", "transcribe", "--model-dir", str(model_dir), str(good), str(empty),
                        str(corrupt), str(tmp_path / "missing.wav"), str(stereo), "--ctm", str(tmp_path / "out.ctm"),
                        "--streaming", "--chunk-ms", "200"], capture_output=True, text=True)
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
        export_model_dir(tmp_path / "m", [root / "exp" / "final.mdl"], root / "exp", root / "lang", root / "graph",
                         tiny_features / "fbank", FbankSettings(), "gmm", "digits", 5.0, 0.0)
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        export_model_dir(tmp_path / "m", [tmp_path / "nothing.pt"], root / "exp", root / "lang", root / "graph",
                         tiny_features / "fbank", FbankSettings(), "x", "digits", 5.0, 0.0)
    assert not (tmp_path / "m").exists()

"""lhotse manifests, fbank features, CMVN and the bad-input policy."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet
from lhotse.utils import compute_num_frames

from asr_kd.data.features import FeatureNormalizer, feature_cuts_path
from asr_kd.data.manifests import CorpusError, build_manifests, manifest_paths, write_manifests


def test_manifests_have_speakers_text_and_oracle_alignment(tiny_features):
    for split in ("train", "dev", "test"):
        cuts = CutSet.from_file(manifest_paths(tiny_features / "manifests", "digits", split)["cuts"])
        assert len(cuts) > 0
        for cut in cuts:
            sup = cut.supervisions[0]
            assert sup.speaker and sup.text
            assert [a.symbol for a in sup.alignment["word"]] == sup.text.split()
            assert len(sup.alignment["phone"]) >= len(sup.alignment["word"])


def test_feature_frame_counts_match_durations(tiny_features):
    for split in ("train", "dev", "test"):
        cuts = CutSet.from_file(feature_cuts_path(tiny_features / "fbank", "digits", split))
        for cut in cuts:
            feats = cut.load_features()
            assert feats.shape == (compute_num_frames(cut.duration, 0.01, 16000), 40)
            assert cut.num_frames == feats.shape[0]
            assert np.isfinite(feats).all()


def test_global_cmvn_normalises_training_features(tiny_features):
    norm = FeatureNormalizer.load(tiny_features / "fbank" / "cmvn.npz")
    cuts = CutSet.from_file(feature_cuts_path(tiny_features / "fbank", "digits", "train"))
    x = np.concatenate([norm.normalize_cut(c) for c in cuts])
    assert np.abs(x.mean(0)).max() < 1e-3
    assert np.abs(x.std(0) - 1).max() < 1e-2
    spk = FeatureNormalizer.load(tiny_features / "fbank" / "cmvn.npz", mode="speaker")
    cut = cuts[0]
    assert not np.allclose(spk.normalize_cut(cut), norm.normalize_cut(cut))
    with pytest.raises(KeyError, match="no CMVN statistics for speaker"):
        spk(cut.load_features(), "nobody")


def test_features_stage_is_resumable(tiny_features, caplog):
    from asr_kd.data.features import FeatureConfig, compute_fbank

    before = (tiny_features / "fbank" / "digits_train" / ".done").stat().st_mtime_ns
    with caplog.at_level("INFO"):
        compute_fbank(
            tiny_features / "manifests", tiny_features / "fbank", "digits", splits=["train"], cfg=FeatureConfig()
        )
    assert "complete; skipping" in caplog.text
    assert (tiny_features / "fbank" / "digits_train" / ".done").stat().st_mtime_ns == before


def test_features_rerun_takes_the_current_supervisions(tiny_features, tmp_path):
    """A changed manifest (here a corrected transcript) reaches the feature cuts on rerun without
    recomputing the features."""
    import shutil

    from asr_kd.data.features import FeatureConfig, compute_fbank
    from lhotse.utils import fastcopy

    root = tmp_path / "copy"
    shutil.copytree(tiny_features, root)
    path = manifest_paths(root / "manifests", "digits", "dev")["cuts"]
    cuts = CutSet.from_file(path).to_eager()
    first = cuts[0]
    changed = fastcopy(first, supervisions=[fastcopy(first.supervisions[0], text="OH OH")])
    CutSet.from_cuts([changed] + list(cuts)[1:]).to_file(path)
    before = (root / "fbank" / "digits_dev" / ".done").stat().st_mtime_ns
    out = compute_fbank(root / "manifests", root / "fbank", "digits", splits=["dev"], cfg=FeatureConfig())["dev"]
    assert (root / "fbank" / "digits_dev" / ".done").stat().st_mtime_ns == before
    for c in (out, CutSet.from_file(feature_cuts_path(root / "fbank", "digits", "dev")).to_eager()):
        assert c[first.id].supervisions[0].text == "OH OH"
        assert c[first.id].load_features().shape[0] == c[first.id].num_frames


def test_features_are_recomputed_when_the_audio_is_rewritten(tiny_features, tmp_path):
    """Same ids and lengths, new audio (e.g. the corpus regenerated at another SNR): not stale features."""
    import shutil

    from asr_kd.data.features import FeatureConfig, compute_fbank
    from lhotse.utils import fastcopy

    root = tmp_path / "copy"
    shutil.copytree(tiny_features, root)
    path = manifest_paths(root / "manifests", "digits", "dev")["cuts"]
    cuts = CutSet.from_file(path).to_eager()
    first = cuts[0]
    wav = tmp_path / "first.wav"
    shutil.copy(first.recording.sources[0].source, wav)
    rec = fastcopy(first.recording, sources=[fastcopy(first.recording.sources[0], source=str(wav))])
    CutSet.from_cuts([fastcopy(first, recording=rec)] + list(cuts)[1:]).to_file(path)
    before = compute_fbank(root / "manifests", root / "fbank", "digits", splits=["dev"], cfg=FeatureConfig())["dev"][
        first.id
    ].load_features()
    audio, sr = sf.read(str(wav))
    sf.write(str(wav), 0.5 * audio, sr, subtype="PCM_16")  # same length, 6 dB quieter
    after = compute_fbank(root / "manifests", root / "fbank", "digits", splits=["dev"], cfg=FeatureConfig())["dev"][
        first.id
    ].load_features()
    assert after.shape == before.shape and np.abs(after - before).mean() > 0.5


def test_audio_stamp_covers_every_track_of_a_mixed_cut(tmp_path):
    """MUSAN-mixed training cuts (LibriSpeech recipe) read two files: both stand for the features."""
    from lhotse import Recording

    from asr_kd.data.features import _audio_stamp

    _write_wav(tmp_path / "speech.wav", seconds=1.0)
    _write_wav(tmp_path / "noise.wav", seconds=0.3)
    speech, noise = (Recording.from_file(tmp_path / f"{n}.wav").to_cut() for n in ("speech", "noise"))
    mixed = speech.mix(noise, snr=10, allow_padding=True)
    stamps = _audio_stamp(mixed)
    assert [Path(s[0]).name for s in stamps] == ["speech.wav", "noise.wav"]
    assert all(s[1] == (tmp_path / Path(s[0]).name).stat().st_size for s in stamps)


def _write_wav(path, sr=16000, seconds=0.5):
    sf.write(str(path), (0.1 * np.random.default_rng(0).standard_normal(int(sr * seconds))).astype(np.float32), sr)


def test_bad_audio_and_empty_transcripts_are_counted_skips(tmp_path):
    good, corrupt, empty, missing = (tmp_path / f"{n}.wav" for n in ("good", "corrupt", "empty", "missing"))
    _write_wav(good)
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio")
    sf.write(str(empty), np.zeros(0, np.float32), 16000)
    items = [
        {"id": "u1", "audio": good, "text": "ONE TWO", "speaker": "s"},
        {"id": "u2", "audio": corrupt, "text": "ONE", "speaker": "s"},
        {"id": "u3", "audio": empty, "text": "ONE", "speaker": "s"},
        {"id": "u4", "audio": missing, "text": "ONE", "speaker": "s"},
        {"id": "u5", "audio": good, "text": "   ", "speaker": "s"},
    ]
    recs, sups, report = build_manifests(items, expected_sr=16000)
    assert [r.id for r in recs] == ["u1"]
    reasons = {s["id"]: (s["source"], s["reason"]) for s in report.skipped}
    assert set(reasons) == {"u2", "u3", "u4", "u5"}
    assert reasons["u2"][0].endswith("corrupt.wav") and "unreadable" in reasons["u2"][1]
    assert "no samples" in reasons["u3"][1] or "unreadable" in reasons["u3"][1]
    assert "missing" in reasons["u4"][1]
    assert reasons["u5"][1] == "empty transcript"
    write_manifests(tmp_path / "m", "c", "train", recordings=recs, supervisions=sups, report=report)
    import json

    assert json.loads((tmp_path / "m" / "c_train.skipped.json").read_text())["count"] == 4


def test_wrong_sample_rate_names_the_file(tmp_path):
    wav = tmp_path / "eight_khz.wav"
    _write_wav(wav, sr=8000)
    items = [{"id": "u1", "audio": wav, "text": "ONE", "speaker": "s"}]
    with pytest.raises(CorpusError, match="eight_khz.wav: sample rate 8000 Hz, expected 16000 Hz"):
        build_manifests(items, expected_sr=16000)
    recs, _, _ = build_manifests(items, expected_sr=16000, resample=True)
    assert recs[0].sampling_rate == 16000 and recs[0].load_audio().shape[1] == 8000


def test_out_of_vocabulary_word_names_the_utterance(tmp_path):
    wav = tmp_path / "a.wav"
    _write_wav(wav)
    items = [{"id": "utt-7", "audio": wav, "text": "ONE ELEVEN", "speaker": "s"}]
    with pytest.raises(CorpusError, match=r"utterance utt-7 .*\['ELEVEN'\] are not in the lexicon"):
        build_manifests(items, vocabulary={"ONE", "TWO"})

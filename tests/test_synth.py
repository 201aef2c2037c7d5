"""The embedded corpus generator: determinism, speaker-disjoint splits, oracle timestamps."""

import json

import numpy as np
import soundfile as sf

from asr_kd.data.synth.digits import (
    DIGIT_WORDS,
    SPLITS,
    DigitsCorpusConfig,
    make_speakers,
    read_split,
    synthesize_utterance,
)


def test_same_seed_same_audio_and_other_seed_differs(tiny_config):
    spk = make_speakers(tiny_config)[0]
    a, meta_a = synthesize_utterance(tiny_config, spk, spk_index=0, utt_index=3)
    b, meta_b = synthesize_utterance(tiny_config, spk, spk_index=0, utt_index=3)
    assert np.array_equal(a, b) and meta_a == meta_b
    other = DigitsCorpusConfig(**{**tiny_config.__dict__, "seed": tiny_config.seed + 1})
    c, _ = synthesize_utterance(other, make_speakers(other)[0], spk_index=0, utt_index=3)
    assert len(a) != len(c) or not np.array_equal(a, c)


def test_generated_wavs_are_identical_across_runs(tiny_corpus, tmp_path, tiny_config):
    from asr_kd.data.synth.digits import generate_corpus

    generate_corpus(tiny_config, tmp_path, num_jobs=1)  # serial run vs the fixture's 2 processes
    for split in SPLITS:
        for m in read_split(tiny_corpus, split):
            assert (tmp_path / m["wav"]).read_bytes() == (tiny_corpus / m["wav"]).read_bytes(), m["id"]


def test_a_changed_config_does_not_keep_the_old_utterances(tiny_corpus, tmp_path, tiny_config):
    """A rerun into the same folder after a config change re-synthesises; a kill only keeps its own."""
    import shutil

    from asr_kd.data.synth.digits import generate_corpus

    shutil.copytree(tiny_corpus, tmp_path / "c")
    quiet = DigitsCorpusConfig(**{**tiny_config.__dict__, "noise_prob": 0.0})
    generate_corpus(quiet, tmp_path / "c", num_jobs=2)
    generate_corpus(quiet, tmp_path / "fresh", num_jobs=2)
    for split in SPLITS:
        rows = read_split(tmp_path / "c", split)
        assert rows == read_split(tmp_path / "fresh", split) and all(m["degradation"]["noise"] is None for m in rows)
        for m in rows:
            assert (tmp_path / "c" / m["wav"]).read_bytes() == (tmp_path / "fresh" / m["wav"]).read_bytes(), m["id"]


def test_splits_are_speaker_disjoint_and_test_holds_out_an_accent(tiny_corpus, tiny_config):
    speakers = {s: {m["speaker"] for m in read_split(tiny_corpus, s)} for s in SPLITS}
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["dev"] & speakers["test"]
    accents = {s: {m["accent"] for m in read_split(tiny_corpus, s)} for s in SPLITS}
    held = set(tiny_config.held_out_accents)
    assert accents["test"] & held
    assert not (accents["train"] | accents["dev"]) & held
    voices = json.loads((tiny_corpus / "speakers.json").read_text())
    assert len({(v["accent"], v["variant"], v["rate"], v["pitch"]) for v in voices}) == len(voices)


def test_transcripts_and_audio_format(tiny_corpus, tiny_config):
    vocab = {w.upper() for w in DIGIT_WORDS}
    for split in SPLITS:
        for m in read_split(tiny_corpus, split):
            words = m["text"].split()
            assert tiny_config.min_words <= len(words) <= tiny_config.max_words
            assert set(words) <= vocab
            info = sf.info(str(tiny_corpus / m["wav"]))
            assert info.samplerate == 16000 and info.subtype == "PCM_16"
            assert abs(info.duration - m["duration"]) < 1e-3


def test_oracle_timestamps_inside_audio_and_in_order(tiny_corpus):
    quiet_checked = 0
    for split in SPLITS:
        for m in read_split(tiny_corpus, split):
            phones, words = m["phones"], m["words"]
            assert [w[0] for w in words] == m["text"].split()
            for seq in (phones, words):
                for sym, start, end in seq:
                    assert 0.0 < start < end <= m["duration"], (m["id"], sym, start, end)
                for (_, _, e1), (_, s2, _) in zip(seq, seq[1:]):
                    assert e1 <= s2 + 1e-6, m["id"]
            # every phone lies in exactly one word
            for sym, start, end in phones:
                assert sum(ws - 1e-6 <= start and end <= we + 1e-6 for _, ws, we in words) == 1, (m["id"], sym)
            # leading silence really is quieter than speech (the oracle points at the speech) where the
            # noise is well below the speech (at -5 dB, brown noise swamps a short word)
            assert words[0][1] >= 0.09
            noise = m["degradation"]["noise"]
            if noise is None or noise["snr_db"] >= 10.0:
                x, sr = sf.read(str(tiny_corpus / m["wav"]))
                lead = x[: int((words[0][1] - 0.02) * sr)]
                first = x[int(words[0][1] * sr) : int(words[0][2] * sr)]
                assert np.sqrt(np.mean(lead**2)) < 0.5 * np.sqrt(np.mean(first**2)), (m["id"], words[0])
                quiet_checked += 1
    assert quiet_checked >= 3, quiet_checked


def test_noise_snr_covers_low_values():
    from asr_kd.data.synth.digits import _utterance_plan

    cfg = DigitsCorpusConfig()
    snrs = [p["noise"]["snr_db"] for p in (_utterance_plan(cfg, 0, u) for u in range(300)) if p["noise"]]
    assert min(snrs) < 0.0 and max(snrs) > 15.0
    assert min(snrs) >= cfg.snr_db[0]


def test_oracle_keeps_the_schwa(tiny_corpus):
    """eSpeak names its schwa "@" (no letter): it is a phone, not a modifier of the phone before."""
    sevens = [m for s in SPLITS for m in read_split(tiny_corpus, s) if "SEVEN" in m["text"].split()]
    assert sevens
    for m in sevens:
        for w, ws, we in m["words"]:
            if w == "SEVEN":
                assert "@" in [p for p, s, e in m["phones"] if ws - 1e-6 <= s and e <= we + 1e-6], m["id"]

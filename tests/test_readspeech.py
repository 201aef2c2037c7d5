"""The read-speech corpus: text normalisation, sentence splits, determinism, CMUdict lexicon with
ARPAbet G2P, word-position phones, the pruned LM, and the recipe end to end on its tiny size."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet

from asr_kd.data.synth.corpus import SPLITS, read_split
from asr_kd.data.synth.phonemap import ARPABET_VOWELS, espeak_to_arpabet
from asr_kd.data.synth.readspeech import (
    ReadSpeechCorpusConfig,
    assign_sentences,
    generate_readspeech,
    generate_readspeech_unlabelled,
    read_sentences,
)
from asr_kd.data.text import normalize_sentence, number_to_words, ordinal_to_words

REPO = Path(__file__).resolve().parents[1]
ARPABET = set(ARPABET_VOWELS) | set("B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH".split())
WORDS = (
    "the lord said unto moses and aaron speak to the children of israel that they bring me an offering "
    "of every man whose heart maketh him willing ye shall take my offering gold silver and brass "
    "abraham begat isaac jacob wrestled with an angel in bethel by the river jordan at night"
).split()


def _text(path: Path, n: int = 400, seed: int = 0) -> Path:
    """Distinct sentences of 3-12 words from a small Bible-like vocabulary (names CMUdict lacks)."""
    rng = np.random.default_rng(seed)
    lines = {" ".join(rng.choice(WORDS, size=int(rng.integers(3, 13)))).capitalize() + "." for _ in range(n)}
    path.write_text("\n".join(sorted(lines)) + "\nChapter 12, verse 3: 1,000 men;\n")
    return path


TINY = dict(
    train_speakers=3,
    dev_speakers=2,
    test_speakers=2,
    train_hours=0.01,
    dev_hours=0.004,
    test_hours=0.004,
    min_words=3,
    max_words=12,
)


def test_normalisation_spells_numbers_and_drops_punctuation():
    assert number_to_words(1984) == "ONE THOUSAND NINE HUNDRED EIGHTY FOUR"
    assert number_to_words(0) == "ZERO" and number_to_words(40) == "FORTY"
    assert ordinal_to_words(22) == "TWENTY SECOND" and ordinal_to_words(30) == "THIRTIETH"
    assert (
        normalize_sentence("The LORD's 2nd son, aged 21; 3.5% -- well-known!")
        == "THE LORD'S SECOND SON AGED TWENTY ONE THREE POINT FIVE PERCENT WELL KNOWN"
    )
    assert normalize_sentence("  ... ") == ""


def test_dev_and_test_sentences_never_reach_the_lm_text(tmp_path):
    cfg = ReadSpeechCorpusConfig(**TINY)
    sentences = read_sentences(_text(tmp_path / "t.txt"))
    assert "CHAPTER TWELVE VERSE THREE ONE THOUSAND MEN" in sentences
    parts = assign_sentences(sentences, cfg)
    for a in ("dev", "test", "train"):
        for b in ("dev", "test", "train", "lm_only"):
            assert a == b or not set(parts[a]) & set(parts[b]), (a, b)
    assert all(cfg.min_words <= len(s.split()) <= cfg.max_words for k in ("dev", "test", "train") for s in parts[k])
    generate_readspeech(cfg, tmp_path / "t.txt", tmp_path / "c", num_jobs=2)
    lm = set((tmp_path / "c" / "lm" / "text.txt").read_text().splitlines())
    read = {s: {m["text"] for m in read_split(tmp_path / "c", s)} for s in SPLITS}
    assert read["dev"] and read["test"] and read["train"]
    assert not (read["dev"] | read["test"]) & lm
    assert read["train"] <= lm


def test_untranscribed_audio_reads_no_dev_or_test_sentence(tmp_path):
    """The transfer split (--unlabelled-hours): sentences outside dev and test, new speakers."""
    cfg = ReadSpeechCorpusConfig(**TINY)
    text = _text(tmp_path / "t.txt")
    generate_readspeech(cfg, text, tmp_path / "c", num_jobs=2)
    counts = generate_readspeech_unlabelled(cfg, text, 0.01, out_dir=tmp_path / "c" / "unlabelled", num_jobs=2)
    unlabelled = read_split(tmp_path / "c" / "unlabelled", "unlabelled")
    assert counts == {"unlabelled": len(unlabelled)} and len(unlabelled) >= 3
    assert 0.5 * 36 < sum(m["duration"] for m in unlabelled) < 2 * 36  # about the hours asked for
    held_out = {m["text"] for s in ("dev", "test") for m in read_split(tmp_path / "c", s)}
    assert not {m["text"] for m in unlabelled} & held_out
    speakers = {m["speaker"] for s in SPLITS for m in read_split(tmp_path / "c", s)}
    assert not {m["speaker"] for m in unlabelled} & speakers
    assert all(m["accent"] in cfg.accents for m in unlabelled)


def test_same_config_same_bytes_and_speaker_disjoint_splits(tmp_path):
    text = _text(tmp_path / "t.txt")
    cfg = ReadSpeechCorpusConfig(**TINY)
    generate_readspeech(cfg, text, tmp_path / "a", num_jobs=2)
    generate_readspeech(cfg, text, tmp_path / "b", num_jobs=1)
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file() and p.name != ".done"
    )
    assert any(str(f).endswith(".wav") for f in files)
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    speakers = {s: {m["speaker"] for m in read_split(tmp_path / "a", s)} for s in SPLITS}
    assert not speakers["train"] & speakers["dev"] and not speakers["train"] & speakers["test"]
    accents = {s: {m["accent"] for m in read_split(tmp_path / "a", s)} for s in SPLITS}
    assert accents["test"] & set(cfg.held_out_accents) and not accents["train"] & set(cfg.held_out_accents)
    for m in read_split(tmp_path / "a", "train"):  # oracle word times cover every word, in order
        assert [w[0] for w in m["words"]] == m["text"].split()
        assert all(a[1] <= b[1] for a, b in zip(m["words"], m["words"][1:]))
    # a killed run resumes: a lost utterance is synthesised again, identically
    victim = next((tmp_path / "b" / "wav").glob("*.wav"))
    victim.unlink()
    (tmp_path / "b" / ".done").unlink()
    generate_readspeech(cfg, text, tmp_path / "b", num_jobs=1)
    assert victim.read_bytes() == (tmp_path / "a" / "wav" / victim.name).read_bytes()


def test_espeak_phones_map_to_arpabet_with_stress():
    assert espeak_to_arpabet(["k", "A@"]) == ["K", "AA", "R"]
    assert espeak_to_arpabet(["D", "'a", "t"], keep_stress=True) == ["DH", "AE1", "T"]
    assert espeak_to_arpabet(["f", "'aI3"], keep_stress=True) == ["F", "AY1", "ER0"]
    assert espeak_to_arpabet(["k", ";", "a"]) == ["K", "AE"]
    assert espeak_to_arpabet(["no-such-phone"]) is None


def test_cmudict_lexicon_covers_the_words_and_counts_g2p(tmp_path):
    from asr_kd.lang.lexicon import build_lexicon

    words = sorted({w.upper() for w in WORDS} | {"BEGAT", "MAKETH", "HAZEZONTAMAR"})
    for stress in (False, True):
        lex, stats = build_lexicon(
            words, dictionary="cmudict", g2p_voices=["en-us"], g2p_arpabet=True, keep_stress=stress
        )
        assert set(lex.words) == set(words) and stats["uncovered"] == 0
        assert stats["dictionary"] + stats["g2p"] == len(words) and stats["g2p"] >= 2  # MAKETH, HAZEZONTAMAR
        phones = set(lex.phones)
        if stress:
            assert {p.rstrip("012") for p in phones} <= ARPABET and any(p.endswith("1") for p in phones)
        else:
            assert phones <= ARPABET
    assert ("DH", "AH") in [p for _, p in lex.entries["THE"]] or ("DH", "AH0") in [p for _, p in lex.entries["THE"]]


def test_word_position_dependent_phones(tmp_path):
    from asr_kd.align.report import base_phone
    from asr_kd.lang.lexicon import Lexicon
    from asr_kd.lang.prepare_lang import Lang, LangConfig, prepare_lang

    lex = Lexicon({"A": [(1.0, ("AH",))], "CAT": [(1.0, ("K", "AE", "T"))], "AT": [(1.0, ("AE", "T"))]})
    prepare_lang(lex, tmp_path / "lang", LangConfig(position_dependent_phones=True, oov_word="<UNK>"))
    lang = Lang(tmp_path / "lang")
    assert {"AH_S", "K_B", "AE_I", "T_E", "AE_B", "SIL", "SPN"} <= set(lang.phone2id)
    assert "AE" not in lang.phone2id
    bounds = dict(
        line.split() for line in (tmp_path / "lang" / "phones" / "word_boundary.txt").read_text().splitlines()
    )
    assert (
        bounds["K_B"] == "begin"
        and bounds["AE_I"] == "internal"
        and bounds["T_E"] == "end"
        and bounds["AH_S"] == "singleton"
    )
    assert bounds["SIL"] == "nonword"
    assert lang.first_pronunciations()["CAT"] == ["K_B", "AE_I", "T_E"]
    assert (
        base_phone("AE_I") == "AE" and base_phone("AH1_B") == "AH" and base_phone("@2") == "@2"
    )  # eSpeak names untouched


def test_pruned_lm_is_smaller_and_reports_oov_and_perplexity(tmp_path):
    from asr_kd.lang.lm import LmConfig, train_lm

    text = tmp_path / "lm.txt"
    text.write_text("\n".join(read_sentences(_text(tmp_path / "t.txt", n=800))) + "\n")
    evals = {"dev": ["THE LORD SAID UNTO MOSES", "THE ZEBRA SAID"]}
    full = train_lm(text, tmp_path / "full.arpa", LmConfig(order=3), eval_texts=evals)
    pruned = train_lm(text, tmp_path / "pruned.arpa", LmConfig(order=3, prune=(0, 1, 1)), eval_texts=evals)
    assert pruned["ngrams"]["3"] < full["ngrams"]["3"] and pruned["ngrams"]["1"] == full["ngrams"]["1"]
    assert pruned["splits"]["dev"]["oov_tokens"] == 1 and pruned["splits"]["dev"]["oov_rate"] == pytest.approx(1 / 8)
    assert 1 < pruned["splits"]["dev"]["perplexity"] < 1e4
    assert json.loads((tmp_path / "pruned.arpa.json").read_text())["prune"] == [0, 1, 1]


# -- the recipe, tiny size, on its default text (the King James Bible from Debian's bible-kjv) -----
def _recipe(args):
    return subprocess.run(
        ["bash", str(REPO / "recipes" / "readspeech" / "run.sh"), *args], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("readspeech")
    args = [
        "--size",
        "tiny",
        "--data",
        str(root / "data"),
        "--exp",
        str(root / "exp"),
        "--nj",
        "2",
        "--ensemble-size",
        "2",
        "--student-seeds",
        "1",
        "--stop-stage",
        "14",
    ]  # stage 15: the yesno test
    r = _recipe(args)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return root, args


def test_recipe_end_to_end_on_the_tiny_size(tiny_recipe):
    root, args = tiny_recipe
    data, exp = root / "data", root / "exp"
    stats = json.loads((data / "corpus" / "text_stats.json").read_text())
    assert stats["distinct_sentences"] == 2000 and stats["lm_vocabulary"] > 1000  # conf/tiny.yaml: max_sentences
    lm = json.loads((data / "lm" / "3gram.arpa.json").read_text())
    assert lm["order"] == 3 and lm["estimator"] == "lmplz" and set(lm["splits"]) == {"dev", "test"}
    words = (data / "lang" / "words.txt").read_text().split()[::2]
    assert len(words) > 1000  # the LM's vocabulary, not only the training transcripts'
    lexicon = (data / "local" / "dict" / "lexicon.txt").read_text().splitlines()
    assert {p for line in lexicon for p in line.split()[1:]} <= ARPABET | {"SPN"}
    cuts = CutSet.from_file(data / "manifests" / "readspeech_cuts_dev.jsonl.gz")
    symbols = {a.symbol for c in cuts for a in c.supervisions[0].alignment["phone"]}
    assert {s for sym in symbols for s in sym.split()} - {"<word>"} <= ARPABET
    report = json.loads((exp / "mono" / "alignment_report.json").read_text())
    assert report["splits"]["test"]["all"]["utterances"] > 0
    graph = json.loads((exp / "graph" / "graph_summary.json").read_text())
    assert graph["lm_order"] == 3 and graph["estimator"] == "given" and graph["hclg"]["arcs"] > 0
    table = json.loads((exp / "decode" / "wer_table.json").read_text())
    assert table
    assert "WER" in (exp / "kd" / "RESULTS.md").read_text()
    rerun = _recipe(args)  # every stage is complete: all skipped
    assert rerun.returncode == 0 and rerun.stdout.count("done before, skipping") == 11  # stages 0-8, 13 and 14
    k2 = json.loads((exp / "decode_k2" / "agreement.json").read_text())  # k2 decoded every model
    # near-random tiny models have many near-tied 1-best paths: the decoders must agree on the WER
    assert k2["rows"] and all(abs(r["wer_k2"] - r["wer_kaldi"]) <= 0.02 for r in k2["rows"])

"""Lang builder and lexicon sources on toy inputs."""

import pytest

from asr_kd.kaldi import kaldifst
from asr_kd.lang.lexicon import Lexicon, add_disambig, bpe_lexicon, build_lexicon, grapheme_lexicon, train_bpe
from asr_kd.lang.prepare_lang import Lang, LangConfig, prepare_lang, read_symbol_table


def toy_lexicon() -> Lexicon:
    lex = Lexicon()
    lex.add("RED", ["r", "E", "d"])
    lex.add("READ", ["r", "E", "d"])  # homophone of RED
    lex.add("READ", ["r", "i:", "d"])  # second pronunciation
    lex.add("A", ["@"])
    lex.add("AN", ["@", "n"])  # A is a prefix of AN
    lex.add("NO", ["n", "oU"])
    return lex


def test_disambiguation_symbols_for_homophones_and_prefixes():
    entries, max_d = add_disambig(toy_lexicon())
    prons = {(w, ph[:-1] if ph[-1].startswith("#") else ph): ph[-1] for w, _, ph in entries}
    assert prons[("RED", ("r", "E", "d"))] == "#1"
    assert prons[("READ", ("r", "E", "d"))] == "#2"
    assert prons[("A", ("@",))] == "#1"  # prefix of AN
    assert prons[("AN", ("@", "n"))] == "n"  # unique, no symbol
    assert prons[("NO", ("n", "oU"))] == "oU"
    assert max_d == 2


def test_prepare_lang_writes_kaldi_files(tmp_path):
    lang_dir = prepare_lang(toy_lexicon(), tmp_path / "lang", LangConfig(sil_prob=0.5))
    phones = read_symbol_table(lang_dir / "phones.txt")
    words = read_symbol_table(lang_dir / "words.txt")
    assert phones["<eps>"] == 0 and words["<eps>"] == 0
    assert {"#0", "#1", "#2"} <= set(phones) and {"#0", "<s>", "</s>"} <= set(words)
    assert (lang_dir / "phones" / "silence.txt").read_text().split() == ["SIL"]
    lang = Lang(lang_dir)
    topo = lang.topology()
    assert sorted(topo.phones) == sorted(lang.silence_ids + lang.nonsilence_ids)
    assert topo.num_pdf_classes(lang.phone2id["SIL"]) == 5
    assert topo.num_pdf_classes(lang.phone2id["E"]) == 3
    L = kaldifst.StdVectorFst.read(str(lang_dir / "L.fst"))
    assert L.num_states > 3


def test_L_disambig_is_determinizable_and_L_with_homophones_is_not(tmp_path):
    lang = Lang(prepare_lang(toy_lexicon(), tmp_path / "lang"))
    ld = lang.lexicon_fst(disambig=True)
    assert kaldifst.determinize_star(ld, max_states=100000) is False  # False means success
    plain = lang.lexicon_fst(disambig=False)
    # RED and READ share "r E d": without disambiguation symbols the phones->words transducer
    # is not functional, so it cannot be determinized
    with pytest.raises(RuntimeError, match="not functional"):
        kaldifst.determinize_star(plain, max_states=2000)


def test_oov_word_is_a_clear_error(tmp_path):
    lang = Lang(prepare_lang(toy_lexicon(), tmp_path / "lang"))
    with pytest.raises(ValueError, match=r"utterance utt-9: word\(s\) \['BLUE'\] are not in the lexicon"):
        lang.word_ids(["RED", "BLUE"], "utt-9")
    lang2 = Lang(prepare_lang(toy_lexicon(), tmp_path / "lang2", LangConfig(oov_word="<UNK>")))
    assert lang2.word_ids(["BLUE"], "u") == [lang2.word2id["<UNK>"]]
    assert "SPN" in (tmp_path / "lang2" / "phones" / "silence.txt").read_text().split()


def test_lexicon_round_trip_and_sources(tmp_path):
    lex = toy_lexicon()
    lex.write(tmp_path / "lexicon.txt")
    again = Lexicon.read(tmp_path / "lexicon.txt")
    assert list(again) == list(lex)
    (tmp_path / "dict.txt").write_text("ONE w V n\nTWO t u:\n")
    built, stats = build_lexicon(["ONE", "TWO", "SEVEN"], dictionary=tmp_path / "dict.txt", g2p_voices=["en-us"])
    assert stats == {"dictionary": 2, "g2p": 1, "graphemes": 0, "bpe": 0, "uncovered": 0, "uncovered_words": []}
    assert built.entries["SEVEN"][0][1] == ("s", "E", "v", "@", "n")  # eSpeak NG G2P
    with pytest.raises(ValueError, match="no pronunciation and G2P is off"):
        build_lexicon(["SEVEN"], dictionary=tmp_path / "dict.txt", g2p_voices=None)
    assert grapheme_lexicon(["CAT"]).entries["CAT"][0][1] == ("C", "A", "T")
    model = train_bpe(["ONE TWO THREE", "THREE TWO ONE", "ONE ONE TWO"] * 20, tmp_path / "bpe" / "bpe", vocab_size=20)
    bpe = bpe_lexicon(["ONE", "THREE"], model)
    assert "".join(bpe.entries["THREE"][0][1]).replace("_", "") == "THREE"

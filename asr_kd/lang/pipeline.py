"""The lang stage: vocabulary from the training transcripts (and an optional LM vocabulary),
lexicon, OOV report of the evaluation splits, and the lang directory (``prepare-lang``)."""

import logging
from pathlib import Path
from typing import Dict, Sequence

from lhotse import SupervisionSet

from asr_kd.data.manifests import manifest_paths
from asr_kd.lang.lexicon import LexiconConfig, build_lexicon, train_bpe
from asr_kd.lang.prepare_lang import LangConfig, prepare_lang
from asr_kd.lang.vocabulary import (
    oov_report,
    read_lm_vocabulary,
    training_vocabulary,
    uncovered_report,
    write_oov_report,
)

log = logging.getLogger(__name__)


def prepare_lang_from_manifests(
    manifest_dir,
    corpus: str,
    splits: Sequence[str],
    *,
    dict_dir,
    out_dir,
    lexicon_cfg: LexiconConfig,
    lang_cfg: LangConfig,
    lm_vocab=None,
) -> Dict:
    """``splits[0]`` is the training split: its transcripts (and ``lm_vocab``, an ARPA or text file)
    give the vocabulary; the other splits are only counted for OOVs (``dict_dir/oov_report.json``)."""
    texts, utts_of = {}, {}
    for split in splits:
        sups = SupervisionSet.from_file(manifest_paths(manifest_dir, corpus, split)["supervisions"])
        texts[split] = [s.text for s in sups]
        for s in sups:
            for w in set(s.text.split()):
                utts_of.setdefault(w, []).append(s.id)
    train = splits[0]
    extra = read_lm_vocabulary(lm_vocab) if lm_vocab else None
    words = training_vocabulary(texts[train], extra)
    bpe_model = (
        train_bpe(texts[train], Path(dict_dir) / "bpe", lexicon_cfg.bpe_vocab_size)
        if lexicon_cfg.units == "bpe"
        else None
    )
    lexicon, stats = build_lexicon(
        words,
        dictionary=lexicon_cfg.dictionary,
        g2p_voices=lexicon_cfg.g2p_voices,
        units=lexicon_cfg.units,
        bpe_model=bpe_model,
        g2p_arpabet=lexicon_cfg.g2p_arpabet,
        keep_stress=lexicon_cfg.keep_stress,
    )
    lexicon.write(Path(dict_dir) / "lexicon.txt")
    uncovered = stats.pop("uncovered_words")
    log.info(
        "lexicon: %d words (%d from %s transcripts%s), %d pronunciations, sources %s",
        len(lexicon),
        len(training_vocabulary(texts[train])),
        train,
        f", {len(extra)} from {lm_vocab}" if extra else "",
        sum(1 for _ in lexicon),
        stats,
    )
    vocab = {w for w in words if w not in set(uncovered)}
    report = oov_report(vocab, texts)
    write_oov_report(report, Path(dict_dir) / "oov_report.json")
    needs_oov = bool(uncovered) or any(r["oov_tokens"] for s, r in report.items() if s != train)
    uncovered_path = Path(dict_dir) / "uncovered_words.txt"
    if uncovered:
        uncovered_report(uncovered, utts_of, uncovered_path)
        log.warning(
            "%d word(s) have no pronunciation (listed with their utterances in %s); they map to the OOV word",
            len(uncovered),
            uncovered_path,
        )
    elif uncovered_path.exists():
        uncovered_path.unlink()
    if needs_oov:
        # Kaldi's way: unknown words become the OOV word (<UNK>, pronounced SPN), so their utterances stay usable
        lang_cfg.oov_word = lang_cfg.oov_word or "<UNK>"
    prepare_lang(lexicon, out_dir, lang_cfg)
    return {"vocabulary": len(vocab), "oov": report, "oov_word": lang_cfg.oov_word, "sources": stats}

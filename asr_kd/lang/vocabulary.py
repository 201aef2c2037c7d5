"""The vocabulary of a lang directory, and the OOV report of the evaluation splits.

Decision (no test-set information in training or tuning): the vocabulary is the words of the
training transcripts plus, optionally, the words of an LM's text or ARPA file (``lm_vocab``), as in
Kaldi recipes where words.txt comes from the lexicon and the LM, never from dev or test. Dev and
test words outside it are OOV: counted per split (``oov_report.json``), mapped to the OOV word
(``<UNK>``, pronounced SPN) so that their transcripts can still be force-aligned, and scored as
errors, since no hypothesis can contain them. The lang learns *that* an evaluation split has OOVs
(then it gets the OOV word), never which words they are.
"""

import gzip
import logging
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set

from asr_kd.utils.io import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


def read_lm_vocabulary(path) -> Set[str]:
    """Words of an ARPA file (its unigrams; ``.gz`` allowed) or of a text file (one sentence a line)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    words: Set[str] = set()
    with opener(path, "rt", encoding="utf-8") as f:
        first = f.readline()
        if first.strip() == "" or first.startswith("\\data\\"):  # ARPA
            section = None
            for line in f:
                s = line.strip()
                if s.startswith("\\"):
                    section = s
                    continue
                if section == "\\1-grams:" and s:
                    parts = s.split()
                    if len(parts) >= 2:
                        words.add(parts[1])
        else:
            words.update(first.split())
            for line in f:
                words.update(line.split())
    return {w for w in words if w not in ("<s>", "</s>", "<unk>", "<UNK>")}


def oov_report(vocab: Set[str], split_texts: Dict[str, Sequence[str]]) -> Dict[str, Dict]:
    """Per split: running words, OOV tokens, OOV rate, and the OOV types by count."""
    out = {}
    for split, texts in split_texts.items():
        tokens = [w for t in texts for w in t.split()]
        oov: Dict[str, int] = {}
        for w in tokens:
            if w not in vocab:
                oov[w] = oov.get(w, 0) + 1
        n_oov = sum(oov.values())
        out[split] = {
            "words": len(tokens),
            "oov_tokens": n_oov,
            "oov_rate": n_oov / len(tokens) if tokens else 0.0,
            "oov_types": len(oov),
            "oov_words": dict(sorted(oov.items(), key=lambda kv: (-kv[1], kv[0]))),
        }
    return out


def training_vocabulary(train_texts: Iterable[str], lm_vocab: Optional[Iterable[str]] = None) -> List[str]:
    words = {w for t in train_texts for w in t.split()}
    if lm_vocab:
        words.update(lm_vocab)
    return sorted(words)


def write_oov_report(report: Dict[str, Dict], path) -> None:
    write_json_atomic(path, report)
    for split, r in report.items():
        log.info(
            "%s: %d words, %d OOV tokens (%.2f%%) of %d types",
            split,
            r["words"],
            r["oov_tokens"],
            100 * r["oov_rate"],
            r["oov_types"],
        )


def uncovered_report(uncovered: Sequence[str], utts_of: Dict[str, List[str]], path) -> None:
    """Training words without a pronunciation, with (up to three of) their utterances."""
    lines = [f"{w}\t{len(utts_of.get(w, []))} utterance(s), e.g. {' '.join(utts_of.get(w, [])[:3])}" for w in uncovered]
    write_text_atomic(path, "\n".join(lines) + "\n")

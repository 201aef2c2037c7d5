"""Text normalisation for transcripts and LM text, LibriSpeech style: numbers spelled out,
punctuation out, upper case, one sentence per line.

Decisions: an apostrophe inside a word is kept (LORD'S, DON'T: CMUdict has them); a hyphen or
slash separates words; ordinals (1ST, 22ND) and plain integers are spelled out; decimals read
"POINT" and digits; other symbols are dropped. Text in other scripts passes through upper-cased.
"""

import re
from typing import Iterable, Iterator, List

_ONES = (
    "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE THIRTEEN FOURTEEN "
    "FIFTEEN SIXTEEN SEVENTEEN EIGHTEEN NINETEEN"
).split()
_TENS = "_ _ TWENTY THIRTY FORTY FIFTY SIXTY SEVENTY EIGHTY NINETY".split()
_SCALES = ((10**12, "TRILLION"), (10**9, "BILLION"), (10**6, "MILLION"), (1000, "THOUSAND"), (100, "HUNDRED"))
_ORDINAL = {
    "ONE": "FIRST",
    "TWO": "SECOND",
    "THREE": "THIRD",
    "FIVE": "FIFTH",
    "EIGHT": "EIGHTH",
    "NINE": "NINTH",
    "TWELVE": "TWELFTH",
}


def number_to_words(n: int) -> str:
    """0 <= n < 10**15 in words: 1984 -> ONE THOUSAND NINE HUNDRED EIGHTY FOUR."""
    if n < 0:
        return "MINUS " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            if head >= 1000 and value == 10**12:
                raise ValueError(f"{n} is too large to spell out")
            return f"{number_to_words(head)} {name}" + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError(n)


def ordinal_to_words(n: int) -> str:
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL:
        words[-1] = _ORDINAL[last]
    elif last.endswith("Y"):
        words[-1] = last[:-1] + "IETH"
    else:
        words[-1] = last + "TH"
    return " ".join(words)


_TOKEN = re.compile(r"(\d+(?:,\d{3})*(?:\.\d+)?)(ST|ND|RD|TH)?\b", re.IGNORECASE)


def _spell_numbers(text: str) -> str:
    def spell(m: "re.Match") -> str:
        number, suffix = m.group(1).replace(",", ""), m.group(2)
        if "." in number:
            whole, frac = number.split(".")
            return f" {number_to_words(int(whole))} POINT {' '.join(_ONES[int(d)] for d in frac)} "
        return f" {ordinal_to_words(int(number)) if suffix else number_to_words(int(number))} "

    return _TOKEN.sub(spell, text)


def normalize_sentence(text: str) -> str:
    """One sentence of raw text -> a transcript: NUMBERS SPELLED OUT, NO PUNCTUATION."""
    text = _spell_numbers(text.replace("%", " percent "))
    text = text.replace("&", " and ").replace("\u2019", "'").replace("-", " ").replace("/", " ")
    words = []
    for raw in text.split():
        w = re.sub(r"[^\w']", "", raw).strip("'_")
        w = re.sub(r"_", "", w)
        if w:
            words.append(w.upper())
    return " ".join(words)


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def split_sentences(text: str) -> List[str]:
    """Split running text at sentence (and clause: ``;`` ``:``) ends; the pieces are not normalised."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def normalized_sentences(lines: Iterable[str]) -> Iterator[str]:
    """Each line (one sentence a line, as users supply text) normalised; empty results dropped."""
    for line in lines:
        s = normalize_sentence(line)
        if s:
            yield s

"""eSpeak NG's English phoneme names -> ARPAbet (CMUdict's and LibriSpeech's phone set).

Used twice: eSpeak G2P pronunciations of words CMUdict lacks become ARPAbet (one phone set in the
lexicon), and the corpus's oracle phone times (eSpeak's phones) are compared with a CMUdict
lexicon's phones. The map is the rhotic General American reading of eSpeak's en-us inventory
(``A@`` = AA R, ``e@`` = EH R); other accents' extra phones (``IR``, ``VR``, ``a#``, ``t[``) map to
their nearest ARPAbet phones. A phone not in the map makes the whole pronunciation unmappable
(``None``), which callers count.
"""

from typing import Dict, List, Optional, Sequence, Tuple

ARPABET_VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")

ESPEAK_TO_ARPABET: Dict[str, Tuple[str, ...]] = {
    # vowels
    "a": ("AE",),
    "a#": ("AE",),
    "A:": ("AA",),
    "A@": ("AA", "R"),
    "0": ("AA",),
    "O:": ("AO",),
    "O": ("AO",),
    "O@": ("AO", "R"),
    "o@": ("AO", "R"),
    "o:": ("OW",),
    "O2": ("AO",),
    "aa": ("AE",),
    "A": ("AA",),
    "e": ("EH",),
    "E": ("EH",),
    "e@": ("EH", "R"),
    "eI": ("EY",),
    "I": ("IH",),
    "I#": ("IH",),
    "I2": ("IH",),
    "IR": ("IH", "R"),
    "i": ("IY",),
    "i:": ("IY",),
    "i@": ("IH", "R"),
    "i@3": ("IH", "R"),
    "U": ("UH",),
    "U@": ("UH", "R"),
    "u:": ("UW",),
    "u": ("UW",),
    "V": ("AH",),
    "VR": ("AH", "R"),
    "@": ("AH",),
    "@2": ("AH",),
    "@5": ("AH",),
    "@L": ("AH", "L"),
    "@-": ("AH",),
    "3": ("ER",),
    "3:": ("ER",),
    "@r": ("ER",),
    "aI": ("AY",),
    "aI@": ("AY", "AH"),
    "aI3": ("AY", "ER"),
    "aU": ("AW",),
    "aU@": ("AW", "ER"),
    "OI": ("OY",),
    "oU": ("OW",),
    # consonants
    "p": ("P",),
    "b": ("B",),
    "t": ("T",),
    "d": ("D",),
    "k": ("K",),
    "g": ("G",),
    "f": ("F",),
    "v": ("V",),
    "s": ("S",),
    "z": ("Z",),
    "h": ("HH",),
    "m": ("M",),
    "n": ("N",),
    "l": ("L",),
    "r": ("R",),
    "w": ("W",),
    "j": ("Y",),
    "T": ("TH",),
    "D": ("DH",),
    "S": ("SH",),
    "Z": ("ZH",),
    "tS": ("CH",),
    "dZ": ("JH",),
    "N": ("NG",),
    "n-": ("N",),
    "m-": ("M",),
    "l-": ("L",),
    "r-": ("R",),
    "t#": ("T",),
    "t2": ("T",),
    "t[": ("T",),
    "d#": ("D",),
    "?": ("T",),
    "x": ("K",),
    "W": ("W",),
}
MODIFIERS = (";",)  # palatalisation marks: no phone of their own


def espeak_to_arpabet(phones: Sequence[str], keep_stress: bool = False) -> Optional[List[str]]:
    """eSpeak phoneme names (with ' or , stress marks when ``keep_stress``) -> ARPAbet phones,
    vowels with a stress digit (1 primary, 2 secondary, 0 none) when ``keep_stress``.
    ``None`` when a phone has no mapping."""
    out: List[str] = []
    for token in phones:
        stress = "1" if token.startswith("'") else "2" if token.startswith(",") else "0"
        name = token.lstrip("',")
        if not name or name in MODIFIERS:
            continue
        mapped = ESPEAK_TO_ARPABET.get(name)
        if mapped is None:
            return None
        first_vowel = True
        for p in mapped:
            if keep_stress and p in ARPABET_VOWELS:
                out.append(p + (stress if first_vowel else "0"))
                first_vowel = False
            else:
                out.append(p)
    return out


def strip_stress(phone: str) -> str:
    return phone.rstrip("012")

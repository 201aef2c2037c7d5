"""TIMIT through lhotse's preparation, set up for phone recognition as in Kaldi's TIMIT recipe.

lhotse reads ``<corpus>/data/{TRAIN,TEST}/DR*/<speaker>/<utt>.{WAV,PHN,WRD,TXT}`` and gives the
train, dev (50 speakers) and core test (24 speakers) sets with phones folded 61 -> 48. Decisions:
- The transcript of an utterance is its 48-phone sequence without silence (``sil``; ``q`` is
  dropped by the folding): every "word" is a phone, the lexicon maps each phone to itself
  (``timit_phone_lexicon.txt``), and the LM is a phone n-gram over the training transcripts.
- The hand-labelled phone times stay in the supervisions (``sil`` renamed ``SIL``, the lang's
  silence phone), so the alignment report measures forced alignment against them.
- PER is scored after folding 48 -> 39 phones (``timit_48_to_39.txt``, from lhotse's 61 -> 48
  and 61 -> 39 tables); the closures and epenthetic silence fold into silence and are not scored.
"""

import logging
from pathlib import Path
from typing import Dict

from lhotse import SupervisionSet
from lhotse.supervision import AlignmentItem

from asr_kd.data.manifests import CorpusError, SkipReport, write_manifests
from asr_kd.utils.io import write_text_atomic

log = logging.getLogger(__name__)
SPLITS = {"TRAIN": "train", "DEV": "dev", "TEST": "test"}


def fold_48_to_39() -> Dict[str, str]:
    from lhotse.recipes.timit import get_phonemes

    p48, p39 = get_phonemes(48), get_phonemes(39)
    out = {}
    for p60, p in p48.items():
        if p:
            out[p] = p39[p60]
    return out


def prepare_timit(corpus_dir, out_dir, num_jobs: int = 1) -> Dict[str, int]:
    from lhotse.recipes.timit import prepare_timit as _prepare

    corpus_dir = Path(corpus_dir)
    if not (corpus_dir / "data" / "TRAIN").is_dir() or not (corpus_dir / "data" / "TEST").is_dir():
        raise CorpusError(f"{corpus_dir}: expected TIMIT's data/TRAIN and data/TEST folders")
    manifests = _prepare(corpus_dir, output_dir=None, num_phones=48, num_jobs=num_jobs)
    counts = {}
    for part, split in SPLITS.items():
        recs, sups = manifests[part]["recordings"], manifests[part]["supervisions"]
        if len(sups) == 0:
            raise CorpusError(f"{corpus_dir}: TIMIT {part} is empty (speakers of lhotse's {part} list missing)")
        fixed = []
        for s in sups:
            phones = [a for a in s.alignment["phone"] if a.symbol]
            text = " ".join(a.symbol for a in phones if a.symbol != "sil")
            oracle = [AlignmentItem("SIL" if a.symbol == "sil" else a.symbol, a.start, a.duration) for a in phones]
            fixed.append(s.with_alignment("phone", oracle).transform_text(lambda _t, text=text: text))
        counts[split] = len(
            write_manifests(
                out_dir,
                "timit",
                split,
                recordings=recs,
                supervisions=SupervisionSet.from_segments(fixed),
                report=SkipReport(),
            )
        )
    fold = fold_48_to_39()
    phones = sorted(p for p in fold if p != "sil")
    write_text_atomic(Path(out_dir) / "timit_phone_lexicon.txt", "".join(f"{p} {p}\n" for p in phones))
    write_text_atomic(
        Path(out_dir) / "timit_48_to_39.txt",
        "".join(f"{p} {q}\n" if q != "sil" else f"{p}\n" for p, q in sorted(fold.items())),
    )
    log.info("timit manifests in %s: %s", out_dir, counts)
    return counts

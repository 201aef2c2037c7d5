"""lhotse manifests (RecordingSet, SupervisionSet, CutSet) and the checks that keep bad input out.

Manifests live in one folder, named like lhotse's recipes::

    <corpus>_recordings_<split>.jsonl.gz
    <corpus>_supervisions_<split>.jsonl.gz
    <corpus>_cuts_<split>.jsonl.gz

Bad input policy: an unreadable/empty audio file or an empty transcript is a logged skip,
counted in ``<out>/<corpus>_<split>.skipped.json`` with the file it came from; a sample rate
other than the expected one is an error naming the file (pass ``resample=True`` to convert
on the fly instead); words outside a given vocabulary are an error naming the utterance.
"""

import contextlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.supervision import AlignmentItem

from asr_kd.data.cmudict import read_cmudict
from asr_kd.data.synth.corpus import UNLABELLED, read_split
from asr_kd.data.synth.digits import DIGIT_WORDS
from asr_kd.data.synth.phonemap import espeak_to_arpabet
from asr_kd.utils.io import atomic_path, check_name, write_json_atomic

log = logging.getLogger(__name__)


class CorpusError(ValueError):
    """Input that cannot be used; the message names the file or utterance."""


@dataclass
class SkipReport:
    """Counted, logged skips of one split."""

    skipped: List[Dict[str, str]] = field(default_factory=list)

    def add(self, item_id: str, source: str, reason: str) -> None:
        log.warning("skipping %s (%s): %s", item_id, source, reason)
        self.skipped.append({"id": item_id, "source": source, "reason": reason})

    def __len__(self) -> int:
        return len(self.skipped)


def manifest_paths(out_dir, corpus: str, split: str) -> Dict[str, Path]:
    check_name("corpus", corpus)
    check_name("split", split)
    out_dir = Path(out_dir)
    return {kind: out_dir / f"{corpus}_{kind}_{split}.jsonl.gz" for kind in ("recordings", "supervisions", "cuts")}


def corpora_in(folder) -> List[str]:
    """The corpus names of the manifests (``<corpus>_<kind>_<split>.jsonl.gz``) a folder holds: the
    inverse of ``manifest_paths``, for features folders too."""
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    kinds = re.compile(r"^(.+?)_(?:cuts|recordings|supervisions)_[^/]+\.jsonl\.gz$")
    return sorted({m.group(1) for f in path.iterdir() if (m := kinds.match(f.name))})


def example_recording(manifest_dir, corpus: str, split: str = "test") -> Tuple[Path, str]:
    """The first recording of a split that is a whole audio file with one supervision: its path
    and transcript (a recipe's transcription example)."""
    paths = manifest_paths(manifest_dir, corpus, split)
    texts: Dict[str, List[str]] = {}
    for s in SupervisionSet.from_file(paths["supervisions"]):
        texts.setdefault(s.recording_id, []).append(s.text or "")
    for rec in RecordingSet.from_file(paths["recordings"]):
        src = rec.sources[0]
        if len(rec.sources) == 1 and src.type == "file" and len(texts.get(rec.id, [])) == 1:
            return Path(src.source), texts[rec.id][0]
    raise ValueError(f"{paths['recordings']}: no recording is a whole audio file with one transcript")


def load_recording(
    audio_path, recording_id: str, expected_sr: Optional[int], *, resample: bool, report: SkipReport
) -> Optional[Recording]:
    """Open ``audio_path`` as a lhotse Recording; None (and a counted skip) when it is unreadable or empty."""
    audio_path = Path(audio_path)
    if not audio_path.is_file():
        report.add(recording_id, str(audio_path), "audio file is missing")
        return None
    try:
        rec = Recording.from_file(audio_path, recording_id=recording_id)
    except Exception as e:  # soundfile/lhotse raise various types for corrupt headers
        report.add(recording_id, str(audio_path), f"unreadable audio ({type(e).__name__}: {e})")
        return None
    if rec.num_samples == 0 or rec.duration <= 0:
        report.add(recording_id, str(audio_path), "audio file holds no samples")
        return None
    try:  # the header can be fine while the data is truncated
        rec.load_audio(offset=max(0.0, rec.duration - 0.05))
    except Exception as e:
        report.add(recording_id, str(audio_path), f"audio data cannot be decoded ({type(e).__name__}: {e})")
        return None
    if expected_sr is not None and rec.sampling_rate != expected_sr:
        if not resample:
            raise CorpusError(
                f"{audio_path}: sample rate {rec.sampling_rate} Hz, expected {expected_sr} Hz "
                f"(resample the corpus, or allow on-the-fly resampling with --resample)"
            )
        rec = rec.resample(expected_sr)
    return rec


def check_transcript(
    utt_id: str, text: Optional[str], vocabulary: Optional[set], *, source: str, report: SkipReport
) -> Optional[str]:
    """Normalised transcript, or None (a counted skip) when it is empty. OOV words raise."""
    words = (text or "").split()
    if not words:
        report.add(utt_id, source, "empty transcript")
        return None
    if vocabulary is not None:
        oov = sorted({w for w in words if w not in vocabulary})
        if oov:
            raise CorpusError(f"utterance {utt_id} ({source}): word(s) {oov} are not in the lexicon")
    return " ".join(words)


def build_manifests(
    items: Iterable[Dict],
    *,
    expected_sr: Optional[int] = None,
    resample: bool = False,
    vocabulary: Optional[set] = None,
) -> Tuple[RecordingSet, SupervisionSet, SkipReport]:
    """Manifests from items with keys id, audio, text, speaker and optional alignment / custom.

    ``alignment`` is a dict like ``{"word": [[sym, start, end], ...], "phone": [...]}`` (seconds).
    """
    report = SkipReport()
    recordings, supervisions = [], []
    for item in items:
        utt_id = item["id"]
        text = check_transcript(utt_id, item.get("text"), vocabulary, source=str(item["audio"]), report=report)
        if text is None:
            continue
        rec = load_recording(item["audio"], utt_id, expected_sr, resample=resample, report=report)
        if rec is None:
            continue
        alignment = None
        if item.get("alignment"):
            alignment = {
                kind: [AlignmentItem(symbol=s, start=round(b, 4), duration=round(e - b, 4)) for s, b, e in segs]
                for kind, segs in item["alignment"].items()
            }
        recordings.append(rec)
        supervisions.append(
            SupervisionSegment(
                id=utt_id,
                recording_id=utt_id,
                start=0.0,
                duration=rec.duration,
                channel=0,
                text=text,
                speaker=item.get("speaker"),
                language=item.get("language", "English"),
                alignment=alignment,
                custom=item.get("custom"),
            )
        )
    return RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(supervisions), report


def build_unlabelled_manifests(
    items: Iterable[Dict], *, expected_sr: Optional[int] = None, resample: bool = False
) -> Tuple[RecordingSet, SupervisionSet, SkipReport]:
    """Manifests of untranscribed audio (the ``unlabelled`` transfer split) from items with keys id,
    audio and optional speaker / custom. An item's text, if it has one, is not read: each supervision
    spans its recording with no text and no alignment, so nothing downstream can see a transcript."""
    report = SkipReport()
    recordings, supervisions = [], []
    for item in items:
        rec = load_recording(item["audio"], item["id"], expected_sr, resample=resample, report=report)
        if rec is None:
            continue
        recordings.append(rec)
        supervisions.append(
            SupervisionSegment(
                id=item["id"],
                recording_id=item["id"],
                start=0.0,
                duration=rec.duration,
                channel=0,
                speaker=item.get("speaker"),
                custom=item.get("custom"),
            )
        )
    return RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(supervisions), report


def write_manifests(
    out_dir,
    corpus: str,
    split: str,
    *,
    recordings: RecordingSet,
    supervisions: SupervisionSet,
    report: Optional[SkipReport] = None,
) -> CutSet:
    """Validate, build the CutSet and write all three manifests atomically."""
    from lhotse.qa import validate_recordings_and_supervisions

    validate_recordings_and_supervisions(recordings, supervisions)
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    if any(len(c.supervisions) != 1 or c.supervisions[0].start > 0 or c.supervisions[0].end < c.duration for c in cuts):
        cuts = cuts.trim_to_supervisions(keep_overlapping=False)  # Kaldi segments: one cut per segment
    # one supervision per cut: the cut id is the utterance id (Kaldi's utt-id)
    cuts = CutSet.from_cuts(c.with_id(c.supervisions[0].id) for c in cuts).sort_by_recording_id()
    paths = manifest_paths(out_dir, corpus, split)
    # one unit: all three are written to temporary files first (a failure renames none); the old
    # cuts go before the renames and the new cuts come last, so a crash between renames leaves no
    # cuts file (the split reads as not done) rather than manifests that disagree
    with contextlib.ExitStack() as stack:
        # entered cuts first: the stack renames in reverse, recordings first and cuts last
        temps = {kind: stack.enter_context(atomic_path(paths[kind])) for kind in ("cuts", "supervisions", "recordings")}
        for kind, manifest in (("recordings", recordings), ("supervisions", supervisions), ("cuts", cuts)):
            manifest.to_file(temps[kind])
        paths["cuts"].unlink(missing_ok=True)
    if report is not None:
        write_json_atomic(
            Path(out_dir) / f"{corpus}_{split}.skipped.json", {"count": len(report), "items": report.skipped}
        )
        if len(report):
            log.warning(
                "%s/%s: %d item(s) skipped, listed in %s_%s.skipped.json", corpus, split, len(report), corpus, split
            )
    return cuts


def synth_items(corpus_dir, split: str, phones=None) -> List[Dict]:
    """Items of a synthetic corpus (asr_kd.data.synth: digits, read speech); ``phones(meta)``
    gives the oracle phone segments (default: eSpeak's own)."""
    corpus_dir = Path(corpus_dir)
    return [
        {
            "id": m["id"],
            "audio": corpus_dir / m["wav"],
            "text": m["text"],
            "speaker": m["speaker"],
            "alignment": {"word": m["words"], "phone": phones(m) if phones else m["phones"]},
            "custom": {"accent": m["accent"], "degradation": m["degradation"]},
        }
        for m in read_split(corpus_dir, split)
    ]


WORD_ONLY = "<word>"  # an oracle segment spanning a word whose eSpeak phones differ from the lexicon's


def arpabet_oracle_phones(meta: Dict, cmudict: Dict[str, List[Tuple[str, ...]]]) -> List[List]:
    """eSpeak's oracle phones of one utterance in ARPAbet, word by word. A word keeps its phone
    segments where its mapped eSpeak phones equal one of its CMUdict pronunciations (stress aside;
    a word CMUdict lacks has eSpeak's G2P in the lexicon, so any mappable one); an eSpeak phone
    that maps to two (``A@`` -> AA R) stays one segment named "AA R". Any other word becomes one
    ``WORD_ONLY`` segment: its edges are word boundaries, its inside is not compared."""
    out = []
    for word, start, end in meta["words"]:
        own = [p for p in meta["phones"] if start - 1e-6 <= p[1] and p[2] <= end + 1e-6]
        mapped = [espeak_to_arpabet([p[0]]) for p in own]
        flat = tuple(q for m in mapped if m for q in m)
        ok = bool(own) and all(m is not None for m in mapped) and (flat in cmudict[word] if word in cmudict else True)
        if ok:
            out += [[" ".join(m), s, e] for m, (_, s, e) in zip(mapped, own) if m]
        else:
            out.append([WORD_ONLY, start, end])
    return out


def prepare_readspeech(
    corpus_dir, out_dir, splits: Sequence[str] = ("train", "dev", "test"), *, sample_rate: int = 16000
) -> Dict[str, int]:
    """Manifests for the read-speech corpus (asr_kd.data.synth.readspeech), oracle phones in
    ARPAbet (``arpabet_oracle_phones``); returns the number of cuts per split (and of the
    untranscribed split when the corpus has one)."""
    cmudict = read_cmudict(keep_stress=False)
    counts = {}
    for split in splits:
        items = synth_items(corpus_dir, split, phones=lambda m: arpabet_oracle_phones(m, cmudict))
        segments = [p for it in items for p in it["alignment"]["phone"]]
        recs, sups, report = build_manifests(items, expected_sr=sample_rate)
        cuts = write_manifests(out_dir, "readspeech", split, recordings=recs, supervisions=sups, report=report)
        counts[split] = len(cuts)
        log.info(
            "readspeech/%s: %d cuts, %.3f h; %.1f%% of oracle phone segments are whole words (eSpeak's phones differ from CMUdict's)",
            split,
            len(cuts),
            sum(c.duration for c in cuts) / 3600,
            100 * sum(p[0] == WORD_ONLY for p in segments) / max(1, len(segments)),
        )
    return {**counts, **prepare_unlabelled(corpus_dir, out_dir, "readspeech", sample_rate=sample_rate)}


def prepare_unlabelled(corpus_dir, out_dir, corpus: str, *, sample_rate: int = 16000) -> Dict[str, int]:
    """Manifests of a synthetic corpus's untranscribed split (``<corpus_dir>/unlabelled/``, written
    by the generators' ``--unlabelled-hours``) with no text (``build_unlabelled_manifests``);
    returns {"unlabelled": number of cuts}, or {} when the corpus has no such split."""
    corpus_dir = Path(corpus_dir) / UNLABELLED
    if not (corpus_dir / f"{UNLABELLED}.jsonl").is_file():
        return {}
    items = [
        {
            "id": m["id"],
            "audio": Path(corpus_dir) / m["wav"],
            "speaker": m["speaker"],
            "custom": {"accent": m["accent"]},
        }
        for m in read_split(corpus_dir, UNLABELLED)
    ]
    recs, sups, report = build_unlabelled_manifests(items, expected_sr=sample_rate)
    cuts = write_manifests(out_dir, corpus, UNLABELLED, recordings=recs, supervisions=sups, report=report)
    log.info(
        "%s/%s: %d cuts, %.3f h, untranscribed", corpus, UNLABELLED, len(cuts), sum(c.duration for c in cuts) / 3600
    )
    return {UNLABELLED: len(cuts)}


def prepare_digits(
    corpus_dir, out_dir, splits: Sequence[str] = ("train", "dev", "test"), *, sample_rate: int = 16000
) -> Dict[str, int]:
    """Manifests for the embedded corpus; returns the number of cuts per split, and of the
    untranscribed transfer split when the corpus has one (``corpus_dir/unlabelled``)."""
    vocab = {w.upper() for w in DIGIT_WORDS}
    counts = {}
    for split in splits:
        recs, sups, report = build_manifests(synth_items(corpus_dir, split), expected_sr=sample_rate, vocabulary=vocab)
        cuts = write_manifests(out_dir, "digits", split, recordings=recs, supervisions=sups, report=report)
        counts[split] = len(cuts)
        log.info("digits/%s: %d cuts, %.3f h", split, len(cuts), sum(c.duration for c in cuts) / 3600)
    return {**counts, **prepare_unlabelled(corpus_dir, out_dir, "digits", sample_rate=sample_rate)}

"""Manifests for corpora other than the embedded one: OpenSLR yesno, any Kaldi data directory,
and a plain folder of audio files with transcripts. All go through the same checks as the
embedded corpus (asr_kd.data.manifests): unreadable audio and empty transcripts are counted
skips, a wrong sample rate is an error naming the file, and lhotse validates the result.

Decisions:
- yesno: the split is lhotse's (files sorted by name, even positions train, odd test); the
  last ``num_dev`` training files become the dev split (model selection and LM-weight tuning).
  Words are YES and NO (1 and 0 in the file name); the one speaker is "yesno".
- Kaldi data directories are read by lhotse (``load_kaldi_data_dir``: wav.scp, text, utt2spk,
  optional segments); a recording with several segments becomes one cut per segment, and the
  cut id is the Kaldi utterance id.
- An audio folder: every *.wav / *.flac (recursively); its transcript is ``<stem>.txt`` or
  ``<stem>.lab`` beside it, or a line ``<stem> <words>`` in a ``text`` / ``transcripts.txt``
  file in the folder; the speaker is the name of the file's parent folder.
"""
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from lhotse import RecordingSet, SupervisionSet

from asr_kd.data.manifests import CorpusError, SkipReport, build_manifests, manifest_paths, write_manifests

log = logging.getLogger(__name__)

YESNO_WORDS = {"0": "NO", "1": "YES"}
SEGMENT_TOLERANCE = 0.05  # seconds a Kaldi segment may run past its recording (rounding) before it is skipped


def yesno_items(corpus_dir, report: Optional[SkipReport] = None) -> Dict[str, List[Dict]]:
    """{"train": [...], "test": [...]} items of the OpenSLR yesno corpus (file names like 0_1_1_0_0_1_1_0.wav)."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusError(f"{corpus_dir}: yesno corpus folder not found (give --corpus-dir, or --download when online)")
    wavs = sorted(corpus_dir.glob("*.wav"))
    if not wavs:
        raise CorpusError(f"{corpus_dir}: no .wav files")
    items = []
    for w in wavs:
        digits = w.stem.split("_")
        if not digits or any(d not in YESNO_WORDS for d in digits):
            if report is not None:
                report.add(w.stem, str(w), "file name is not a sequence of 0/1 words")
            continue
        items.append({"id": w.stem, "audio": w, "text": " ".join(YESNO_WORDS[d] for d in digits),
                      "speaker": "yesno", "language": "Hebrew"})
    return {"train": items[::2], "test": items[1::2]}


def prepare_yesno(corpus_dir, out_dir, num_dev: int = 6, sample_rate: int = 8000) -> Dict[str, int]:
    """Manifests yesno_{recordings,supervisions,cuts}_{train,dev,test}; returns cuts per split."""
    name_report = SkipReport()
    parts = yesno_items(corpus_dir, name_report)
    if num_dev >= len(parts["train"]):
        raise CorpusError(f"{corpus_dir}: {len(parts['train'])} training files, cannot hold out {num_dev} for dev")
    splits = {"train": parts["train"][: len(parts["train"]) - num_dev],
              "dev": parts["train"][len(parts["train"]) - num_dev:], "test": parts["test"]}
    counts = {}
    for split, items in splits.items():
        recs, sups, report = build_manifests(items, expected_sr=sample_rate, vocabulary=set(YESNO_WORDS.values()))
        if split == "train":
            report.skipped = name_report.skipped + report.skipped
        counts[split] = len(write_manifests(out_dir, "yesno", split, recs, sups, report))
    log.info("yesno manifests in %s: %s", out_dir, counts)
    return counts


def download_yesno(target_dir) -> Path:
    """lhotse's download (needs the internet); returns the folder of wav files."""
    from lhotse.recipes import download_yesno as _download

    return Path(_download(target_dir))


def import_kaldi_dir(data_dir, out_dir, corpus: str, split: str, sample_rate: int) -> int:
    """One Kaldi data directory -> lhotse manifests for one split; returns the number of cuts."""
    from lhotse.kaldi import load_kaldi_data_dir

    data_dir = Path(data_dir)
    for required in ("wav.scp", "text"):
        if not (data_dir / required).is_file():
            raise CorpusError(f"{data_dir}: not a Kaldi data directory (missing {required})")
    report = SkipReport()
    with tempfile.TemporaryDirectory() as tmp:
        # lhotse stops at the first missing file: read a copy whose wav.scp lists only openable audio
        for f in data_dir.iterdir():
            if f.is_file() and f.name not in ("wav.scp", "reco2dur"):
                shutil.copy(f, tmp)
        wav_lines = _openable_wav_scp(data_dir / "wav.scp", report)
        (Path(tmp) / "wav.scp").write_text("".join(line + "\n" for line in wav_lines))
        kept = {line.split(maxsplit=1)[0] for line in wav_lines}
        # utterances of dropped recordings go too (keyed by recording: column 2 of segments, else the utt id)
        has_segments = (Path(tmp) / "segments").is_file()
        if has_segments:
            segs = [ln for ln in (Path(tmp) / "segments").read_text().splitlines() if ln.strip()]
            utts = {ln.split()[0] for ln in segs if len(ln.split()) > 1 and ln.split()[1] in kept}
        else:
            utts = kept
        for name in ("segments", "utt2spk", "text", "utt2lang", "utt2gender"):
            f = Path(tmp) / name
            if f.is_file():
                f.write_text("".join(ln + "\n" for ln in f.read_text().splitlines() if ln.split() and ln.split()[0] in utts))
        recordings, supervisions, _ = load_kaldi_data_dir(tmp, sampling_rate=sample_rate)
    if supervisions is None:
        raise CorpusError(f"{data_dir}: no supervisions (text/segments) could be read")
    recordings = _readable(recordings, report, sample_rate)
    keep = []
    for s in supervisions:
        if s.recording_id not in recordings:
            report.add(s.id, str(data_dir / "wav.scp"), f"recording {s.recording_id} missing or unreadable")
        elif not (s.text or "").strip():
            report.add(s.id, str(data_dir / "text"), "empty transcript")
        elif s.end > recordings[s.recording_id].duration + SEGMENT_TOLERANCE:
            report.add(s.id, str(data_dir / "segments"), f"segment ends at {s.end:.3f} s, after its recording "
                       f"({recordings[s.recording_id].duration:.3f} s)")
        else:  # Kaldi rounds segment times: clip a small overrun to the recording's end
            keep.append(s.trim(recordings[s.recording_id].duration) if s.end > recordings[s.recording_id].duration else s)
    cuts = write_manifests(out_dir, corpus, split, recordings, SupervisionSet.from_segments(keep), report)
    log.info("%s/%s from %s: %d cuts (%d skipped)", corpus, split, data_dir, len(cuts), len(report))
    return len(cuts)


def _openable_wav_scp(wav_scp: Path, report: SkipReport) -> List[str]:
    """wav.scp lines whose audio exists (a command ending in '|' is kept: lhotse runs it)."""
    import soundfile

    keep = []
    for line in wav_scp.read_text().splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2:
            if parts:
                report.add(parts[0], str(wav_scp), "wav.scp line without a file")
            continue
        rec_id, spec = parts
        if not spec.rstrip().endswith("|"):
            try:
                soundfile.info(spec)
            except Exception as e:
                report.add(rec_id, spec, f"audio file missing or unreadable ({type(e).__name__})")
                continue
        keep.append(line.strip())
    return keep


def _readable(recordings: RecordingSet, report: SkipReport, sample_rate: int) -> RecordingSet:
    """Recordings whose audio loads and has the expected rate (others: counted skips / an error)."""
    ok = []
    for r in recordings:
        if r.sampling_rate != sample_rate:
            raise CorpusError(f"recording {r.id} ({r.sources[0].source}): {r.sampling_rate} Hz, expected {sample_rate} Hz")
        try:
            r.load_audio(duration=min(r.duration, 0.1))
        except Exception as e:  # lhotse raises several kinds for corrupt or missing audio
            report.add(r.id, r.sources[0].source, f"unreadable audio: {e}")
            continue
        ok.append(r)
    return RecordingSet.from_recordings(ok)


def audio_folder_items(folder) -> List[Dict]:
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"{folder}: audio folder not found")
    table: Dict[str, str] = {}
    for name in ("text", "transcripts.txt"):
        if (folder / name).is_file():
            for line in (folder / name).read_text().splitlines():
                parts = line.strip().split(maxsplit=1)
                if parts:
                    table[parts[0]] = parts[1] if len(parts) > 1 else ""
    items = []
    for audio in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac")):
        text = table.get(audio.stem)
        for ext in (".txt", ".lab"):
            side = audio.with_suffix(ext)
            if text is None and side.is_file():
                text = side.read_text()
        items.append({"id": audio.stem, "audio": audio, "text": re.sub(r"\s+", " ", text or "").strip(),
                      "speaker": audio.parent.name})
    if not items:
        raise CorpusError(f"{folder}: no .wav or .flac files")
    return items


def import_audio_folder(folder, out_dir, corpus: str, split: str, sample_rate: int, resample: bool = False) -> int:
    recs, sups, report = build_manifests(audio_folder_items(folder), expected_sr=sample_rate, resample=resample)
    cuts = write_manifests(out_dir, corpus, split, recs, sups, report)
    log.info("%s/%s from %s: %d cuts (%d skipped)", corpus, split, folder, len(cuts), len(report))
    return len(cuts)


def check_splits(out_dir, corpus: str, splits: Sequence[str] = ("train", "dev", "test")) -> None:
    missing = [s for s in splits if not manifest_paths(out_dir, corpus, s)["cuts"].is_file()]
    if missing:
        raise CorpusError(f"{out_dir}: no {corpus} manifests for split(s) {', '.join(missing)}")

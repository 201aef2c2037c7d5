"""Manifests for corpora other than the embedded one: OpenSLR yesno, any Kaldi data directory,
and a plain folder of audio files with transcripts. All go through the same checks as the
embedded corpus (asr_kd.data.manifests): unreadable audio and empty transcripts are counted
skips, a wrong sample rate is an error naming the file, and lhotse validates the result.

Decisions:
- yesno: the split is lhotse's (files sorted by name, even positions train, odd test); the
  last ``num_dev`` training files become the dev split (model selection and LM-weight tuning).
  Words are YES and NO (1 and 0 in the file name); the one speaker is "yesno".
- Kaldi data directories (wav.scp, text, utt2spk, optional segments) are read here, line by line
  with Kaldi's rules, so that every bad line is named (``import_kaldi_dir``); a recording with
  several segments becomes one cut per segment, and the cut id is the Kaldi utterance id. A
  wav.scp command (``cmd |``) runs only with ``allow_pipes`` (``--allow-pipes``).
- An audio folder: every *.wav / *.flac (recursively); its transcript is ``<stem>.txt`` or
  ``<stem>.lab`` beside it, or a line ``<stem> <words>`` in a ``text`` / ``transcripts.txt``
  file in the folder; the speaker is the name of the file's parent folder.
"""

import io
import logging
import math
import re
import subprocess
import unicodedata
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.audio import AudioSource

from asr_kd.data.manifests import (
    CorpusError,
    SkipReport,
    build_manifests,
    build_unlabelled_manifests,
    manifest_paths,
    write_manifests,
)
from asr_kd.data.synth.corpus import UNLABELLED

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
        items.append(
            {
                "id": w.stem,
                "audio": w,
                "text": " ".join(YESNO_WORDS[d] for d in digits),
                "speaker": "yesno",
                "language": "Hebrew",
            }
        )
    return {"train": items[::2], "test": items[1::2]}


def prepare_yesno(corpus_dir, out_dir, num_dev: int = 6, *, sample_rate: int = 8000) -> Dict[str, int]:
    """Manifests yesno_{recordings,supervisions,cuts}_{train,dev,test}; returns cuts per split."""
    name_report = SkipReport()
    parts = yesno_items(corpus_dir, name_report)
    if num_dev >= len(parts["train"]):
        raise CorpusError(f"{corpus_dir}: {len(parts['train'])} training files, cannot hold out {num_dev} for dev")
    splits = {
        "train": parts["train"][: len(parts["train"]) - num_dev],
        "dev": parts["train"][len(parts["train"]) - num_dev :],
        "test": parts["test"],
    }
    counts = {}
    for split, items in splits.items():
        recs, sups, report = build_manifests(items, expected_sr=sample_rate, vocabulary=set(YESNO_WORDS.values()))
        if split == "train":
            report.skipped = name_report.skipped + report.skipped
        counts[split] = len(write_manifests(out_dir, "yesno", split, recordings=recs, supervisions=sups, report=report))
    log.info("yesno manifests in %s: %s", out_dir, counts)
    return counts


def download_yesno(target_dir) -> Path:
    """lhotse's download (needs the internet); returns the folder of wav files. A failed download is
    one error that says what to pass instead."""
    from lhotse.recipes import download_yesno as _download

    try:
        return Path(_download(target_dir))
    except Exception as e:  # noqa: BLE001  urllib, ssl, tarfile: all mean the same to the user
        raise CorpusError(
            f"could not download yesno from openslr.org into {target_dir} ({type(e).__name__}: {e}); "
            "without the internet, pass --corpus-dir DIR: a folder holding the 60 yesno .wav files"
        ) from None


KALDI_SPACE = re.compile(r"[ \t\r\f\v]+")  # Kaldi splits fields on ASCII white space (C isspace), lines on \n only
RESERVED_WORDS = re.compile(r"<eps>|<s>|</s>|#\d+")


def _read_utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise CorpusError(
            f"{path}:{line}: not UTF-8 text (byte {raw[e.start]:#04x}); convert the file, "
            "e.g. iconv -f latin1 -t utf-8"
        ) from None


def kaldi_lines(path: Path, min_fields: int = 1) -> Iterator[Tuple[int, List[str]]]:
    """(line number, fields) of each non-blank line of a Kaldi table; a file that is not UTF-8 or a
    line with fewer than ``min_fields`` fields is a CorpusError naming the file and line."""
    for n, line in enumerate(_read_utf8(path).split("\n"), 1):
        fields = [f for f in KALDI_SPACE.split(line) if f]
        if not fields:
            continue
        if len(fields) < min_fields:
            raise CorpusError(f"{path}:{n}: expected at least {min_fields} fields, got {len(fields)}")
        yield n, fields


def kaldi_table(path: Path, min_fields: int = 1) -> Dict[str, Tuple[int, List[str]]]:
    """id -> (line number, the other fields); a repeated id is a CorpusError naming both lines."""
    table: Dict[str, Tuple[int, List[str]]] = {}
    for n, fields in kaldi_lines(path, min_fields):
        if fields[0] in table:
            raise CorpusError(f"{path}:{n}: id {fields[0]} repeated (first at line {table[fields[0]][0]})")
        table[fields[0]] = (n, fields[1:])
    return table


def _check_words(path: Path, n: int, words: List[str]) -> None:
    for w in words:
        if RESERVED_WORDS.fullmatch(w):
            raise CorpusError(
                f"{path}:{n}: {w} is a reserved symbol (epsilon, sentence boundary or " "disambiguation), not a word"
            )
        odd = [c for c in w if unicodedata.category(c)[0] in "CZ"]
        if odd:
            raise CorpusError(
                f"{path}:{n}: word {w!r} holds the character {unicodedata.name(odd[0], hex(ord(odd[0])))} "
                f"(U+{ord(odd[0]):04X}); Kaldi words are separated by spaces and tabs only"
            )


def _segments(path: Path) -> Dict[str, Tuple[str, float, float]]:
    """utt -> (recording, start, end) from a segments file; malformed lines are CorpusErrors."""
    out = {}
    for utt, (n, rest) in kaldi_table(path).items():
        if len(rest) != 3:
            raise CorpusError(f"{path}:{n}: expected 'utt recording start end', got {len(rest) + 1} fields")
        try:
            start, end = float(rest[1]), float(rest[2])
        except ValueError:
            raise CorpusError(
                f"{path}:{n}: start and end must be numbers (seconds), not {rest[1]!r} {rest[2]!r}"
            ) from None
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
            raise CorpusError(f"{path}:{n}: segment {utt} runs from {rest[1]} to {rest[2]} s: needs 0 <= start < end")
        out[utt] = (rest[0], start, end)
    return out


def _command_recording(rec_id: str, command: str) -> Recording:
    """A wav.scp pipe: the command runs once now (through the shell, as Kaldi and lhotse run it)
    to learn the rate and length, and again whenever the audio is read."""
    import soundfile

    run = subprocess.run(command, shell=True, capture_output=True, timeout=600)
    if run.returncode != 0:
        raise OSError(f"command exited with {run.returncode}: {run.stderr.decode(errors='replace').strip()[:200]}")
    info = soundfile.info(io.BytesIO(run.stdout))
    num_samples = info.frames
    return Recording(
        id=rec_id,
        sources=[AudioSource(type="command", channels=list(range(info.channels)), source=command)],
        sampling_rate=info.samplerate,
        num_samples=num_samples,
        duration=num_samples / info.samplerate,
    )


def _kaldi_recordings(wav_scp: Path, report: SkipReport, allow_pipes: bool) -> Dict[str, Recording]:
    """Recordings of a wav.scp whose audio opens; others are counted skips. A command (``... |``)
    runs only with ``allow_pipes``: otherwise it is an error naming the line."""
    recordings = {}
    for n, fields in kaldi_lines(wav_scp):
        if len(fields) < 2:
            raise CorpusError(f"{wav_scp}:{n}: expected 'recording-id path' (or a command ending in '|')")
        rec_id = fields[0]
        if rec_id in recordings:
            raise CorpusError(f"{wav_scp}:{n}: recording id {rec_id} repeated")
        spec = " ".join(fields[1:])
        try:
            if spec.endswith("|"):
                if not allow_pipes:
                    raise CorpusError(
                        f"{wav_scp}:{n}: {rec_id} is a command ({spec[:60]}...); commands run through the "
                        "shell, so they run only with --allow-pipes (when you trust this data directory)"
                    )
                rec = _command_recording(rec_id, spec[:-1].strip())
            else:
                if len(fields) != 2:
                    raise CorpusError(
                        f"{wav_scp}:{n}: expected 'recording-id path' (a path with spaces is not Kaldi's format)"
                    )
                rec = Recording.from_file(spec, recording_id=rec_id)
        except CorpusError:
            raise
        except Exception as e:  # missing, corrupt or unknown audio; a failing command
            report.add(rec_id, f"{wav_scp}:{n}", f"audio missing or unreadable ({type(e).__name__}: {str(e)[:160]})")
            continue
        recordings[rec_id] = rec
    return recordings


def import_kaldi_dir(
    data_dir, out_dir, corpus: str, *, split: str, sample_rate: int, allow_pipes: bool = False, resample: bool = False
) -> int:
    """One Kaldi data directory (wav.scp, text, optional utt2spk and segments) -> lhotse manifests
    for one split; returns the number of cuts. Read line by line with Kaldi's rules (lines end at
    \\n only, fields split at ASCII white space); a malformed line, a repeated id, a reserved
    symbol or a file that is not UTF-8 is an error naming the file and line; an utterance without
    audio, transcript or speaker is a counted skip. Without utt2spk each utterance is its own speaker.
    The split ``unlabelled`` (untranscribed transfer audio) reads no ``text``, even where there is one:
    its supervisions have no text."""
    data_dir = Path(data_dir)
    transcribed = split != UNLABELLED
    for required in ("wav.scp", "text") if transcribed else ("wav.scp",):
        if not (data_dir / required).is_file():
            raise CorpusError(f"{data_dir}: not a Kaldi data directory (missing {required})")
    report = SkipReport()
    texts = kaldi_table(data_dir / "text") if transcribed else {}
    for n, words in texts.values():
        _check_words(data_dir / "text", n, words)
    speakers = kaldi_table(data_dir / "utt2spk") if (data_dir / "utt2spk").is_file() else None
    if speakers is not None:
        for utt, (n, rest) in speakers.items():
            if len(rest) != 1:
                raise CorpusError(f"{data_dir / 'utt2spk'}:{n}: expected 'utterance-id speaker-id'")
    segments = _segments(data_dir / "segments") if (data_dir / "segments").is_file() else None
    listed = {fields[0] for _, fields in kaldi_lines(data_dir / "wav.scp")}
    recordings = _kaldi_recordings(data_dir / "wav.scp", report, allow_pipes)
    for rec_id, rec in list(recordings.items()):
        if rec.sampling_rate != sample_rate:
            if not resample:
                raise CorpusError(
                    f"recording {rec_id} ({rec.sources[0].source}): {rec.sampling_rate} Hz, expected "
                    f"{sample_rate} Hz (resample the corpus, or pass --resample)"
                )
            recordings[rec_id] = rec.resample(sample_rate)
    if segments is None:
        segments = {rec_id: (rec_id, 0.0, None) for rec_id in recordings}
        segments.update({utt: (utt, 0.0, None) for utt in texts if utt not in segments})
    used, keep = set(), []
    for utt, (rec_id, start, end) in segments.items():
        rec = recordings.get(rec_id)
        if rec is None:
            if rec_id not in listed:
                report.add(utt, str(data_dir / "wav.scp"), f"recording {rec_id} is not in wav.scp")
            elif utt != rec_id:  # the recording itself was counted when its audio failed
                report.add(utt, str(data_dir / "wav.scp"), f"recording {rec_id} is unreadable")
            continue
        if transcribed and utt not in texts:
            report.add(utt, str(data_dir / "text"), "no transcript in text")
            continue
        if transcribed and not texts[utt][1]:
            report.add(utt, f"{data_dir / 'text'}:{texts[utt][0]}", "empty transcript")
            continue
        if speakers is not None and utt not in speakers:
            report.add(utt, str(data_dir / "utt2spk"), "no speaker in utt2spk")
            continue
        end = rec.duration if end is None else end
        if end > rec.duration + SEGMENT_TOLERANCE:
            report.add(
                utt,
                str(data_dir / "segments"),
                f"segment ends at {end:.3f} s, after its recording ({rec.duration:.3f} s)",
            )
            continue
        end = min(end, rec.duration)  # Kaldi rounds segment times: clip a small overrun to the recording's end
        if end - start <= 0:
            report.add(utt, str(data_dir / "segments"), "segment starts after its recording ends")
            continue
        used.add(rec_id)
        keep.append(
            SupervisionSegment(
                id=utt,
                recording_id=rec_id,
                start=round(start, 6),
                duration=round(end - start, 6),
                channel=0,
                text=" ".join(texts[utt][1]) if transcribed else None,
                speaker=speakers[utt][1][0] if speakers is not None else utt,
            )
        )
    for utt in sorted(set(texts) - set(segments)):
        report.add(
            utt, f"{data_dir / 'text'}:{texts[utt][0]}", "no audio for this utterance (not in wav.scp or segments)"
        )
    if not keep:
        raise CorpusError(f"{data_dir}: no usable utterance ({len(report)} skipped; see the warnings above)")
    recs = RecordingSet.from_recordings(r for k, r in recordings.items() if k in used)
    cuts = write_manifests(
        out_dir,
        corpus,
        split,
        recordings=_readable(recs, report, sample_rate),
        supervisions=SupervisionSet.from_segments(keep),
        report=report,
    )
    log.info("%s/%s from %s: %d cuts (%d skipped)", corpus, split, data_dir, len(cuts), len(report))
    return len(cuts)


def _readable(recordings: RecordingSet, report: SkipReport, sample_rate: int) -> RecordingSet:
    """Recordings whose audio loads and has the expected rate (others: counted skips / an error)."""
    ok = []
    for r in recordings:
        if r.sampling_rate != sample_rate:
            raise CorpusError(
                f"recording {r.id} ({r.sources[0].source}): {r.sampling_rate} Hz, expected {sample_rate} Hz"
            )
        try:
            r.load_audio(duration=min(r.duration, 0.1))
        except Exception as e:  # lhotse raises several kinds for corrupt or missing audio
            report.add(r.id, r.sources[0].source, f"unreadable audio: {e}")
            continue
        ok.append(r)
    return RecordingSet.from_recordings(ok)


def audio_folder_items(folder, report: Optional[SkipReport] = None, transcribed: bool = True) -> List[Dict]:
    """Items of an audio folder. The id is the file's stem; where two files share a stem (the same
    name in two speaker folders) both get ``<speaker>-<stem>``, and a ``text`` line may use either
    form. A stem with white space cannot be a Kaldi id: a counted skip saying so. ``transcribed``
    False: no transcript is read (untranscribed transfer audio)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"{folder}: audio folder not found")
    report = report if report is not None else SkipReport()
    table: Dict[str, str] = {}
    for name in ("text", "transcripts.txt") if transcribed else ():
        if (folder / name).is_file():
            for n, fields in kaldi_lines(folder / name):
                if fields[0] in table:
                    raise CorpusError(f"{folder / name}:{n}: id {fields[0]} repeated")
                _check_words(folder / name, n, fields[1:])
                table[fields[0]] = " ".join(fields[1:])
    audio = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac") and p.is_file())
    if not audio:
        raise CorpusError(f"{folder}: no .wav or .flac files")
    stems = [a.stem for a in audio]
    items = []
    for path, stem in zip(audio, stems):
        if re.search(r"\s", stem):
            report.add(stem, str(path), "the file name holds white space, which a Kaldi id cannot; rename the file")
            continue
        utt_id = stem if stems.count(stem) == 1 else f"{path.parent.name}-{stem}"
        text = table.get(utt_id, table.get(stem) if utt_id == stem else None)
        for ext in (".txt", ".lab") if transcribed else ():
            side = path.with_suffix(ext)
            if text is None and side.is_file():
                words = [w for w in KALDI_SPACE.split(_read_utf8(side).replace("\n", " ")) if w]
                _check_words(side, 1, words)
                text = " ".join(words)
        items.append({"id": utt_id, "audio": path, "text": text or "", "speaker": path.parent.name})
    return items


def import_audio_folder(folder, out_dir, corpus: str, *, split: str, sample_rate: int, resample: bool = False) -> int:
    """An audio folder -> lhotse manifests for one split; the split ``unlabelled`` reads no transcripts."""
    name_report = SkipReport()
    if split == UNLABELLED:
        recs, sups, report = build_unlabelled_manifests(
            audio_folder_items(folder, name_report, transcribed=False), expected_sr=sample_rate, resample=resample
        )
    else:
        recs, sups, report = build_manifests(
            audio_folder_items(folder, name_report), expected_sr=sample_rate, resample=resample
        )
    report.skipped = name_report.skipped + report.skipped
    if not len(sups):
        raise CorpusError(f"{folder}: no usable utterance ({len(report)} skipped; see the warnings above)")
    cuts = write_manifests(out_dir, corpus, split, recordings=recs, supervisions=sups, report=report)
    log.info("%s/%s from %s: %d cuts (%d skipped)", corpus, split, folder, len(cuts), len(report))
    return len(cuts)


def check_splits(out_dir, corpus: str, splits: Sequence[str] = ("train", "dev", "test")) -> None:
    missing = [s for s in splits if not manifest_paths(out_dir, corpus, s)["cuts"].is_file()]
    if missing:
        raise CorpusError(f"{out_dir}: no {corpus} manifests for split(s) {', '.join(missing)}")

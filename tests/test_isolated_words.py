"""An isolated-word corpus (one word per utterance) through the 'any corpus' recipe: every stage
must cope with utterances of a single word (no 'pick an utterance of three words' anywhere).

The corpus: the real 8 kHz OpenSLR yesno recordings, cut into single words by Kaldi ``segments``
found with a frame-energy detector (files where it finds exactly the 8 words of the file name)."""

import json
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from test_corpora import REPO, yesno_dir


def word_segments(wav: Path, hop_s: float = 0.01, pad_s: float = 0.1):
    """(start, end) seconds of the speech regions of ``wav`` by frame log-energy: half-way between
    the 10th and 95th percentiles, gaps under 150 ms closed, regions under 100 ms dropped."""
    x, sr = sf.read(wav)
    hop = int(hop_s * sr)
    n = len(x) // hop
    e = np.log(np.square(x[: n * hop].reshape(n, hop)).sum(1) + 1e-10)
    lo, hi = np.percentile(e, 10), np.percentile(e, 95)
    speech = e > lo + 0.5 * (hi - lo)
    regions, i = [], 0
    while i < n:
        if speech[i]:
            j = i
            while j < n and speech[j]:
                j += 1
            if regions and i - regions[-1][1] < 15:
                regions[-1][1] = j
            else:
                regions.append([i, j])
            i = j
        else:
            i += 1
    dur = len(x) / sr
    return [(max(0.0, a * hop_s - pad_s), min(dur, b * hop_s + pad_s)) for a, b in regions if b - a >= 10]


def isolated_word_dirs(out: Path):
    """Kaldi data directories (wav.scp, segments, text, utt2spk) of single yesno words, by file."""
    files = []
    for wav in sorted(yesno_dir().glob("*.wav")):
        words = ["YES" if t == "1" else "NO" for t in wav.stem.split("_")]
        segs = word_segments(wav)
        if len(segs) == len(words):
            files.append((wav, words, segs))
    assert len(files) >= 30, f"the energy detector found the 8 words in only {len(files)} yesno files"
    splits = {"train": files[: len(files) - 14], "dev": files[-14:-8], "test": files[-8:]}
    dirs = {}
    for split, items in splits.items():
        d = out / split
        d.mkdir(parents=True)
        wav_scp, seg, text, u2s = [], [], [], []
        for wav, words, segs in items:
            wav_scp.append(f"{wav.stem} {wav}")
            for k, (w, (b, e)) in enumerate(zip(words, segs)):
                uid = f"yesno-{wav.stem}-w{k}"
                seg.append(f"{uid} {wav.stem} {b:.2f} {e:.2f}")
                text.append(f"{uid} {w}")
                u2s.append(f"{uid} yesno")
        for name, lines in (("wav.scp", wav_scp), ("segments", seg), ("text", text), ("utt2spk", u2s)):
            (d / name).write_text("\n".join(sorted(lines)) + "\n")
        dirs[split] = d
    return dirs


def test_isolated_word_corpus_runs_every_stage(tmp_path):
    dirs = isolated_word_dirs(tmp_path / "kaldi")
    cfg = yaml.safe_load((REPO / "recipes" / "yesno" / "conf" / "yesno.yaml").read_text())
    cfg["lexicon"].pop("dictionary")
    cfg["train"]["epochs"] = 4
    (tmp_path / "conf.yaml").write_text(yaml.safe_dump(cfg))
    args = [
        "bash",
        str(REPO / "recipes" / "custom" / "run.sh"),
        "--train-dir",
        str(dirs["train"]),
        "--dev-dir",
        str(dirs["dev"]),
        "--test-dir",
        str(dirs["test"]),
        "--corpus",
        "words",
        "--sample-rate",
        "8000",
        "--dictionary",
        str(REPO / "recipes" / "yesno" / "local" / "lexicon.txt"),
        "--config",
        str(tmp_path / "conf.yaml"),
        "--ensemble-size",
        "2",
        "--student-seeds",
        "2",
        "--analysis",
        "true",
        "--sweep-temperatures",
        "2",
        "--data",
        str(tmp_path / "data"),
        "--exp",
        str(tmp_path / "exp"),
        "--stop-stage",
        "14",
    ]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # every utterance is one word, and every stage ran: alignment (with its example picture), the
    # analysis stages, and decoding
    assert (tmp_path / "exp" / "mono" / "alignment_example.png").is_file()
    assert (tmp_path / "exp" / "dnn_ali" / "alignment_example.png").is_file()
    table = json.loads((tmp_path / "exp" / "decode" / "wer_table.json").read_text())
    rows = {r["name"]: r for r in table["rows"]}
    test_words = len((dirs["test"] / "text").read_text().splitlines())
    assert all(r["test_wer"]["tokens"] == test_words for r in rows.values())
    # two words, clean real speech: isolated-word recognition is easy; a broken segmentation,
    # alignment or graph would not be
    assert rows["gmm"]["test_wer"]["rate"] < 0.1, rows["gmm"]["test_wer"]
    assert rows["ensemble"]["test_wer"]["rate"] < 0.1, rows["ensemble"]["test_wer"]

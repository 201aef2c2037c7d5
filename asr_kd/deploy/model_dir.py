"""A self-contained model directory: everything ``transcribe`` needs, nothing from the recipe.

    card.json                 what it is: system name, corpus, members, sizes, WER, decode settings
    nnet/member<i>.{pt,ts,onnx,int8.onnx}   the network(s) (several: an ensemble, posteriors averaged)
    priors.npy                log pdf priors (the alignment's pdf counts), subtracted from log posteriors
    features.json cmvn.npz    fbank settings and the training split's global mean / std
    HCLG.fst words.txt        the decoding graph (transition-id inputs, word outputs; the tuned word
                              insertion penalty already on its word arcs) and its words
    transitions.npz           transition-id -> pdf, phone, final, self-loop, state (for word times)
    lexiconp.txt phones.txt silence.int    pronunciations and silence phones (word times)

Decisions: a model trained with per-speaker CMVN is served with the global statistics (a new
speaker has none; the card says so). The LM weight and insertion penalty are the ones tuned on dev
by the recipe's decode stage (read from its ``wer_table.json``) unless given. The directory is
written under a temporary name and renamed into place: an interrupted export leaves nothing.
"""

import json
import math
import shutil
import zipfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from asr_kd.data.features import FeatureNormalizer
from asr_kd.deploy.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, FbankSettings
from asr_kd.deploy.networks import FORMATS, export_all, flops_per_frame, load_network, num_parameters
from asr_kd.gmm.labels import label_maps, read_pdf_counts
from asr_kd.gmm.mono import load_gmm
from asr_kd.hybrid.likelihoods import log_priors
from asr_kd.kaldi.fst import read_fst, with_word_penalty
from asr_kd.utils.io import fsync_dir, write_json_atomic


def decoded_settings(decode_dir, checkpoints: Sequence[str]) -> Optional[Dict]:
    """The dev-tuned LM weight / penalty and the WERs of the decoded member with these checkpoints
    (``decode_dir/wer_table.json``), or None when it was not decoded there. Checkpoints match by
    their last three path parts (``student_T2/seed101/best.pt``): an experiment folder that was moved
    still matches."""
    table = json.loads((Path(decode_dir) / "wer_table.json").read_text())

    def tails(paths):
        return [Path(c).parts[-3:] for c in paths]

    for row in table["rows"]:
        for m in row["members"]:
            if tails(m["checkpoints"]) == tails(checkpoints):
                return {
                    "system": row.get("label", row["name"]),
                    "lmwt": m["best_lmwt"],
                    "wip": m["best_wip"],
                    "dev_wer": m["dev_wer"],
                    "test_wer": m["test_wer"],
                }
    return None


def fbank_settings(fbank_dir, corpus: str, frame_length: float = 0.025) -> FbankSettings:
    """The settings the stored features were computed with (their manifests hold all but the frame
    length, which comes from the feature config)."""
    from lhotse import CutSet

    from asr_kd.data.features import feature_cuts_path

    cut = next(iter(CutSet.from_file(feature_cuts_path(fbank_dir, corpus, "train"))))
    return FbankSettings(
        sample_rate=cut.sampling_rate,
        num_mel_bins=cut.features.num_features,
        frame_shift=cut.features.frame_shift,
        frame_length=frame_length,
    )


def export_model_dir(
    out_dir,
    checkpoints: Sequence[str],
    ali_dir,
    *,
    lang_dir,
    graph_dir,
    fbank_dir,
    settings: FbankSettings,
    name: str,
    corpus: str,
    lmwt: float,
    wip: float,
    formats: Sequence[str] = FORMATS,
    wer: Optional[Dict] = None,
    beam: float = 13.0,
    max_active: int = 7000,
) -> Path:
    """Write the model directory ``out_dir`` (replacing an older one only once the new one is complete)."""
    out_dir = Path(out_dir)
    if any(str(c).endswith(".mdl") for c in checkpoints):
        raise ValueError("export takes network checkpoints (.pt); a GMM (.mdl) is not exported")
    for f in [
        *checkpoints,
        Path(ali_dir) / "final.mdl",
        Path(ali_dir) / "pdf_counts.txt",
        Path(graph_dir) / "HCLG.fst",
        Path(fbank_dir) / "cmvn.npz",
        Path(lang_dir) / "words.txt",
        Path(lang_dir) / "lexiconp.txt",
    ]:
        if not Path(f).is_file():
            raise FileNotFoundError(f"{f} is missing: export needs a trained, decoded system")
    _check_export_target(out_dir, [*checkpoints, ali_dir, lang_dir, graph_dir, fbank_dir])
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "nnet").mkdir(parents=True)
    members = []
    for i, ckpt in enumerate(checkpoints):
        written = export_all(ckpt, tmp / "nnet" / f"member{i}", formats)
        model = load_network(ckpt)
        members.append(
            {
                "source": str(ckpt),
                "model": type(model).__name__,
                "context": model.context,
                "parameters": num_parameters(model),
                "flops_per_frame": flops_per_frame(model, model.feat_dim),
                "files": {k: p.name for k, p in written.items()},
            }
        )
    np.save(tmp / "priors.npy", log_priors(read_pdf_counts(Path(ali_dir) / "pdf_counts.txt")))
    norm = FeatureNormalizer.of_features(fbank_dir)
    FeatureNormalizer("global", norm.global_mean, norm.global_std).save(tmp / "cmvn.npz")
    write_json_atomic(tmp / "features.json", settings.to_dict())
    np.savez(tmp / "transitions.npz", **label_maps(load_gmm(Path(ali_dir) / "final.mdl")["tm"]))
    if wip:  # the penalty goes into the graph once, not into every process that loads it
        with_word_penalty(read_fst(Path(graph_dir) / "HCLG.fst"), wip).write(str(tmp / "HCLG.fst"))
    else:
        shutil.copyfile(Path(graph_dir) / "HCLG.fst", tmp / "HCLG.fst")
    for src in (
        *(Path(lang_dir) / f for f in ("words.txt", "lexiconp.txt", "phones.txt")),
        Path(lang_dir) / "phones" / "silence.int",
    ):
        shutil.copyfile(src, tmp / src.name)
    card = {
        "name": name,
        "corpus": corpus,
        "members": members,
        "num_pdfs": int(len(np.load(tmp / "priors.npy"))),
        "parameters": sum(m["parameters"] for m in members),
        "flops_per_frame": sum(m["flops_per_frame"] for m in members),
        "frames_per_second": round(1.0 / settings.frame_shift),
        "cmvn": {"trained_with": norm.mode, "served_with": "global"},
        "decode": {"lmwt": lmwt, "wip": wip, "wip_in_graph": wip, "beam": beam, "max_active": max_active},
        "wer": wer,
        "sizes_mb": _sizes(tmp),
        "exported": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    write_json_atomic(tmp / "card.json", card)
    _replace_model_dir(tmp, out_dir)
    return out_dir


def _check_export_target(out_dir: Path, inputs: Sequence) -> None:
    """Export replaces only a model directory: ``out_dir`` must not exist, be empty, or hold a
    card.json; and no input may live inside it."""
    out = out_dir.resolve()
    for f in inputs:
        if out == Path(f).resolve() or out in Path(f).resolve().parents:
            raise ValueError(f"--out {out_dir} holds an input of the export ({f}): choose another folder")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ValueError(f"--out {out_dir} is a file, not a model directory: choose another path")
        if any(out_dir.iterdir()) and not (out_dir / "card.json").is_file():
            raise ValueError(
                f"--out {out_dir} is a folder that is not a model directory (no card.json): "
                "export replaces only its own output; choose a new or empty folder"
            )


def _replace_model_dir(new: Path, out_dir: Path) -> None:
    """Rename ``new`` onto ``out_dir``; an older model directory there is moved aside first and
    deleted only once the new one is in place."""
    old = out_dir.with_name(f".{out_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    new.rename(out_dir)
    fsync_dir(out_dir.parent)
    shutil.rmtree(old, ignore_errors=True)


def _sizes(d: Path) -> Dict[str, float]:
    """MB on disk per network format (all members), and of the graph."""
    out = {f: sum(p.stat().st_size for p in (d / "nnet").glob(f"member*.{f}")) for f in FORMATS}
    out["onnx"] -= out["int8.onnx"]  # *.onnx also matched the int8 files
    out["HCLG"] = (d / "HCLG.fst").stat().st_size
    return {k: round(v / 2**20, 3) for k, v in out.items() if v}


class ModelDirError(ValueError):
    """A model directory that cannot be served; the message names the file and the problem."""


REQUIRED_FILES = (
    "card.json",
    "features.json",
    "cmvn.npz",
    "priors.npy",
    "HCLG.fst",
    "words.txt",
    "transitions.npz",
    "lexiconp.txt",
    "phones.txt",
    "silence.int",
)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelDirError(f"{path}: not valid JSON ({str(e)[:120]})") from None


def _numbered_fields(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ModelDirError(f"{path}: not UTF-8 text (byte {e.start})") from None
    for n, line in enumerate(text.split("\n"), 1):
        fields = line.split()
        if fields:
            yield n, fields


def _table(path: Path, width: int, int_column: int):
    for n, fields in _numbered_fields(path):
        if len(fields) != width or not fields[int_column].isdigit():
            raise ModelDirError(f"{path}:{n}: expected {width} fields, the last an integer id")
        yield fields


def _plain_name(name) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and not name.startswith(".")
        and "\x00" not in name
    )


def _positive(value, kind=(int, float)) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _check_card(path: Path, card) -> None:
    where = path / "card.json"
    if not isinstance(card, dict) or not isinstance(card.get("members"), list) or not card["members"]:
        raise ModelDirError(f"{where}: no members list")
    if not isinstance(card.get("num_pdfs"), int) or card["num_pdfs"] < 1:
        raise ModelDirError(f"{where}: num_pdfs must be a positive integer")
    for i, m in enumerate(card["members"]):
        files = m.get("files") if isinstance(m, dict) else None
        if not isinstance(files, dict) or not files or not isinstance(m.get("context"), int) or m["context"] < 0:
            raise ModelDirError(f"{where}: member {i} needs files and a context (a whole number >= 0)")
        for fmt, name in files.items():
            if fmt not in FORMATS or not _plain_name(name):
                raise ModelDirError(f"{where}: member {i}: {fmt}: {name!r} is not a plain file name inside nnet/")
            if not (path / "nnet" / name).is_file():
                raise ModelDirError(f"{where}: member {i}: nnet/{name} is missing")
    dec = card.get("decode")
    if not isinstance(dec, dict) or not all(_positive(dec.get(k)) for k in ("lmwt", "beam", "max_active")):
        raise ModelDirError(f"{where}: decode.lmwt, decode.beam and decode.max_active must be positive numbers")
    if not isinstance(dec.get("wip_in_graph", 0.0), (int, float)):
        raise ModelDirError(f"{where}: decode.wip_in_graph must be a number")


def _fbank_settings(where: Path, data) -> FbankSettings:
    keys = {"sample_rate", "num_mel_bins", "frame_shift", "frame_length"}
    if not isinstance(data, dict) or set(data) != keys:
        raise ModelDirError(f"{where}: expected exactly the keys {sorted(keys)}")
    s = FbankSettings(**data)
    if not (isinstance(s.sample_rate, int) and MIN_SAMPLE_RATE <= s.sample_rate <= MAX_SAMPLE_RATE):
        raise ModelDirError(
            f"{where}: sample_rate must be a whole number of Hz in [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]"
        )
    if not (isinstance(s.num_mel_bins, int) and 1 <= s.num_mel_bins <= 512):
        raise ModelDirError(f"{where}: num_mel_bins must be a whole number in [1, 512]")
    for key in ("frame_shift", "frame_length"):
        v = getattr(s, key)
        if not (_positive(v) and v <= 1.0 and v * s.sample_rate >= 1):
            raise ModelDirError(f"{where}: {key} must be in (0, 1] seconds and at least one sample, not {v!r}")
    return s


@dataclass
class ModelDir:
    """A model directory loaded for serving."""

    path: Path
    card: Dict
    settings: FbankSettings
    normalizer: FeatureNormalizer
    priors: np.ndarray
    words: Dict[int, str]
    maps: Dict[str, np.ndarray]
    pronunciations: Dict[str, List[List[int]]]
    silence_phones: set

    @classmethod
    def load(cls, path) -> "ModelDir":
        """Load and check a model directory; any problem is a ModelDirError naming the file. Only
        data is read: JSON, text, numpy arrays without pickle; file names on the card must be plain
        names inside the directory's ``nnet/``."""
        path = Path(path)
        if not (path / "card.json").is_file():
            raise ModelDirError(f"{path} is not a model directory (no card.json): make one with asr-kd export")
        missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
        if missing:
            raise ModelDirError(f"{path}: incomplete model directory, missing {', '.join(missing)}")
        card = _read_json(path / "card.json")
        _check_card(path, card)
        settings = _fbank_settings(path / "features.json", _read_json(path / "features.json"))
        phone2id = {p: int(i) for p, i in _table(path / "phones.txt", 2, int_column=1)}
        prons: Dict[str, List[List[int]]] = {}
        for n, fields in _numbered_fields(path / "lexiconp.txt"):
            unknown = [q for q in fields[2:] if q not in phone2id]
            if len(fields) < 3 or unknown:
                raise ModelDirError(
                    f"{path / 'lexiconp.txt'}:{n}: expected WORD PROB PHONE..., with phones from phones.txt"
                )
            prons.setdefault(fields[0], []).append([phone2id[q] for q in fields[2:]])
        words = {int(i): w for w, i in _table(path / "words.txt", 2, int_column=1)}
        try:
            with np.load(path / "transitions.npz", allow_pickle=False) as z:
                maps = {k: z[k] for k in z.files}
            priors = np.load(path / "priors.npy", allow_pickle=False)
            normalizer = FeatureNormalizer.load(path / "cmvn.npz")
            silence = {int(x) for x in (path / "silence.int").read_text(encoding="utf-8").split()}
        except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as e:
            raise ModelDirError(
                f"{path}: an array or list file is unreadable ({type(e).__name__}: {str(e)[:160]})"
            ) from None
        if priors.ndim != 1 or len(priors) != card["num_pdfs"] or not np.isfinite(priors).all():
            raise ModelDirError(f"{path / 'priors.npy'}: expected {card['num_pdfs']} finite log priors")
        if normalizer.global_mean.shape != (settings.num_mel_bins,):
            raise ModelDirError(
                f"{path / 'cmvn.npz'}: statistics of dimension {normalizer.global_mean.shape}, "
                f"features have {settings.num_mel_bins} bins"
            )
        lacking = sorted({"pdf", "phone", "final", "self_loop", "tstate"} - set(maps))
        if lacking:
            raise ModelDirError(f"{path / 'transitions.npz'}: missing the map(s) {lacking}")
        return cls(path, card, settings, normalizer, priors, words, maps, prons, silence)

    def network_files(self, fmt: str = "pt") -> List[Path]:
        """The members' files of format ``fmt``, confined to ``nnet/`` (checked when loaded)."""
        if fmt not in FORMATS:
            raise ValueError(f"network format must be one of {FORMATS}, not {fmt!r}")
        files = [self.path / "nnet" / m["files"][fmt] for m in self.card["members"] if fmt in m["files"]]
        if len(files) != len(self.card["members"]):
            raise FileNotFoundError(
                f"{self.path}: no {fmt} network (exported formats: {sorted(self.card['members'][0]['files'])})"
            )
        return files

    @property
    def context(self) -> int:
        return max(m["context"] for m in self.card["members"])

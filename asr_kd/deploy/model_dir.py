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
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from asr_kd.data.features import FeatureNormalizer
from asr_kd.deploy.audio import FbankSettings
from asr_kd.deploy.networks import FORMATS, export_all, flops_per_frame, load_network, num_parameters
from asr_kd.gmm.labels import label_maps, read_pdf_counts
from asr_kd.gmm.mono import load_gmm
from asr_kd.hybrid.likelihoods import log_priors
from asr_kd.kaldi.fst import read_fst, with_word_penalty
from asr_kd.utils.io import write_json_atomic


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
                return {"system": row["name"], "lmwt": m["best_lmwt"], "wip": m["best_wip"],
                        "dev_wer": m["dev_wer"], "test_wer": m["test_wer"]}
    return None


def fbank_settings(fbank_dir, corpus: str, frame_length: float = 0.025) -> FbankSettings:
    """The settings the stored features were computed with (their manifests hold all but the frame
    length, which comes from the feature config)."""
    from lhotse import CutSet

    from asr_kd.data.features import feature_cuts_path

    cut = next(iter(CutSet.from_file(feature_cuts_path(fbank_dir, corpus, "train"))))
    return FbankSettings(sample_rate=cut.sampling_rate, num_mel_bins=cut.features.num_features,
                         frame_shift=cut.features.frame_shift, frame_length=frame_length)


def export_model_dir(out_dir, checkpoints: Sequence[str], ali_dir, lang_dir, graph_dir, fbank_dir,
                     settings: FbankSettings, name: str, corpus: str, lmwt: float, wip: float,
                     formats: Sequence[str] = FORMATS, wer: Optional[Dict] = None, beam: float = 13.0,
                     max_active: int = 7000) -> Path:
    """Write the model directory ``out_dir`` (replacing an older one only once the new one is complete)."""
    out_dir = Path(out_dir)
    if any(str(c).endswith(".mdl") for c in checkpoints):
        raise ValueError("export takes network checkpoints (.pt); a GMM (.mdl) is not exported")
    for f in [*checkpoints, Path(ali_dir) / "final.mdl", Path(ali_dir) / "pdf_counts.txt", Path(graph_dir) / "HCLG.fst",
              Path(fbank_dir) / "cmvn.npz", Path(lang_dir) / "words.txt", Path(lang_dir) / "lexiconp.txt"]:
        if not Path(f).is_file():
            raise FileNotFoundError(f"{f} is missing: export needs a trained, decoded system")
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "nnet").mkdir(parents=True)
    members = []
    for i, ckpt in enumerate(checkpoints):
        written = export_all(ckpt, tmp / "nnet" / f"member{i}", formats)
        model = load_network(ckpt)
        members.append({"source": str(ckpt), "model": type(model).__name__, "context": model.context,
                        "parameters": num_parameters(model), "flops_per_frame": flops_per_frame(model, model.feat_dim),
                        "files": {k: p.name for k, p in written.items()}})
    np.save(tmp / "priors.npy", log_priors(read_pdf_counts(Path(ali_dir) / "pdf_counts.txt")))
    norm = FeatureNormalizer.of_features(fbank_dir)
    FeatureNormalizer("global", norm.global_mean, norm.global_std).save(tmp / "cmvn.npz")
    write_json_atomic(tmp / "features.json", settings.to_dict())
    np.savez(tmp / "transitions.npz", **label_maps(load_gmm(Path(ali_dir) / "final.mdl")["tm"]))
    if wip:  # the penalty goes into the graph once, not into every process that loads it
        with_word_penalty(read_fst(Path(graph_dir) / "HCLG.fst"), wip).write(str(tmp / "HCLG.fst"))
    else:
        shutil.copyfile(Path(graph_dir) / "HCLG.fst", tmp / "HCLG.fst")
    for src in (*(Path(lang_dir) / f for f in ("words.txt", "lexiconp.txt", "phones.txt")), Path(lang_dir) / "phones" / "silence.int"):
        shutil.copyfile(src, tmp / src.name)
    card = {"name": name, "corpus": corpus, "members": members, "num_pdfs": int(len(np.load(tmp / "priors.npy"))),
            "parameters": sum(m["parameters"] for m in members),
            "flops_per_frame": sum(m["flops_per_frame"] for m in members),
            "frames_per_second": round(1.0 / settings.frame_shift),
            "cmvn": {"trained_with": norm.mode, "served_with": "global"},
            "decode": {"lmwt": lmwt, "wip": wip, "wip_in_graph": wip, "beam": beam, "max_active": max_active},
            "wer": wer, "sizes_mb": _sizes(tmp), "exported": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    write_json_atomic(tmp / "card.json", card)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def _sizes(d: Path) -> Dict[str, float]:
    """MB on disk per network format (all members), and of the graph."""
    out = {f: sum(p.stat().st_size for p in (d / "nnet").glob(f"member*.{f}")) for f in FORMATS}
    out["onnx"] -= out["int8.onnx"]  # *.onnx also matched the int8 files
    out["HCLG"] = (d / "HCLG.fst").stat().st_size
    return {k: round(v / 2**20, 3) for k, v in out.items() if v}


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
        path = Path(path)
        if not (path / "card.json").is_file():
            raise FileNotFoundError(f"{path} is not a model directory (no card.json): make one with asr-kd export")
        phone2id = {p: int(i) for p, i in (l.split() for l in open(path / "phones.txt", encoding="utf-8") if l.strip())}
        prons: Dict[str, List[List[int]]] = {}
        for line in open(path / "lexiconp.txt", encoding="utf-8"):
            f = line.split()
            if f:
                prons.setdefault(f[0], []).append([phone2id[p] for p in f[2:]])
        words = {int(i): w for w, i in (l.split() for l in open(path / "words.txt", encoding="utf-8") if l.strip())}
        z = np.load(path / "transitions.npz")
        return cls(path, json.loads((path / "card.json").read_text()),
                   FbankSettings(**json.loads((path / "features.json").read_text())), FeatureNormalizer.load(path / "cmvn.npz"),
                   np.load(path / "priors.npy"), words, {k: z[k] for k in z.files}, prons,
                   {int(x) for x in (path / "silence.int").read_text().split()})

    def network_files(self, fmt: str = "pt") -> List[Path]:
        if fmt not in FORMATS:
            raise ValueError(f"network format must be one of {FORMATS}, not {fmt!r}")
        files = [self.path / "nnet" / m["files"][fmt] for m in self.card["members"] if fmt in m["files"]]
        if len(files) != len(self.card["members"]):
            raise FileNotFoundError(f"{self.path}: no {fmt} network (exported formats: {sorted(self.card['members'][0]['files'])})")
        return files

    @property
    def context(self) -> int:
        return max(m["context"] for m in self.card["members"])

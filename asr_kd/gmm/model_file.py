"""The GMM-HMM model file (``final.mdl``): arrays and JSON, nothing executable.

A numpy ``.npz`` archive (read with ``allow_pickle=False``) holding

    format          "asr_kd-gmm/1"
    meta            JSON: the config (and its class name) and the lang folder it was trained with
    tm.<i> tree.<i> am.<i>   the TransitionModel, tree (ContextDependency) and AmDiagGmm, each as
                    the parts of its kaldi-hmm-gmm state: Kaldi's own binary model formats
    transform       the LDA+MLLT matrix of the features (tri2 only)

Only classes of kaldi-hmm-gmm's native module are rebuilt (by their own ``__setstate__``); no
Python object is ever unpickled from the file.
A model written by older versions (a Python pickle) is refused with a message: retrain it.
"""

import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from asr_kd.kaldi import khg
from asr_kd.utils.io import atomic_path

FORMAT = "asr_kd-gmm/1"
_NATIVE = khg.TransitionModel.__module__  # "_kaldi_hmm_gmm"
_PARTS = {"tm": "TransitionModel", "tree": "ContextDependency", "am": "AmDiagGmm"}


class GmmFileError(ValueError):
    """A model file that cannot be read; the message names it."""


class _StateCodec:
    """kaldi-hmm-gmm objects <-> JSON + arrays. An object is its class name and its pybind state
    (``__getstate__``), recursively; bytes and numpy arrays go to the archive as arrays. Decoding
    builds only classes of the native module that define ``__setstate__``: parsing numbers into C++
    objects, never running Python code from the file."""

    def __init__(self, arrays: Optional[Dict[str, np.ndarray]] = None):
        self.arrays = arrays if arrays is not None else {}

    def _array(self, value: np.ndarray) -> Dict:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = value
        return {"array": key}

    def encode(self, obj):
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, (bytes, bytearray)):
            return {"bytes": self._array(np.frombuffer(bytes(obj), dtype=np.uint8))["array"]}
        if isinstance(obj, np.ndarray):
            return self._array(obj)
        if isinstance(obj, (list, tuple)):
            return {"list" if isinstance(obj, list) else "tuple": [self.encode(x) for x in obj]}
        if isinstance(obj, np.generic):
            return obj.item()
        cls = type(obj)
        if cls.__module__ != _NATIVE or not hasattr(obj, "__getstate__"):
            raise TypeError(f"cannot store a {cls.__module__}.{cls.__name__} in a GMM model file")
        return {"class": cls.__name__, "state": self.encode(obj.__getstate__())}

    def decode(self, value):
        if not isinstance(value, dict):
            return value
        if "bytes" in value:
            return self.arrays[value["bytes"]].tobytes()
        if "array" in value:
            return self.arrays[value["array"]]
        if "list" in value:
            return [self.decode(x) for x in value["list"]]
        if "tuple" in value:
            return tuple(self.decode(x) for x in value["tuple"])
        cls = getattr(sys.modules[_NATIVE], str(value.get("class")), None)
        if not isinstance(cls, type) or "__setstate__" not in cls.__dict__:
            raise ValueError(f"unknown model part {value.get('class')!r}")
        obj = cls.__new__(cls)
        obj.__setstate__(self.decode(value["state"]))
        return obj


def save_gmm_file(path, tm, tree, *, am, meta: Dict, transform: Optional[np.ndarray] = None) -> None:
    codec = _StateCodec()
    parts = {name: codec.encode(obj) for name, obj in (("tm", tm), ("tree", tree), ("am", am))}
    arrays = {
        "format": np.array(FORMAT),
        "meta": np.array(json.dumps(meta, sort_keys=True)),
        "parts": np.array(json.dumps(parts)),
        **codec.arrays,
    }
    if transform is not None:
        arrays["transform"] = np.asarray(transform, dtype=np.float64)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_gmm_file(path) -> Dict:
    """``{"tm", "tree", "am", "meta", "transform"}`` of a model file; GmmFileError names the file."""
    path = Path(path)
    try:
        head = path.read_bytes()[:2]
    except FileNotFoundError:
        raise GmmFileError(f"{path}: GMM model file not found") from None
    if head[:1] == b"\x80":
        raise GmmFileError(
            f"{path}: a GMM model in the old pickle format, which is not loaded (it could run "
            "code); retrain it with this version (the recipe's alignment stage)"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z.files or str(z["format"]) != FORMAT:
                raise GmmFileError(f"{path}: not an asr_kd GMM model file (format {FORMAT} expected)")
            meta = json.loads(str(z["meta"]))
            codec = _StateCodec({k: z[k] for k in z.files if k.startswith("a")})
            parts = {name: codec.decode(value) for name, value in json.loads(str(z["parts"])).items()}
            # the GMM is None before the first training pass (an aligner saved untrained)
            if sorted(parts) != sorted(_PARTS) or any(
                type(parts[k]).__name__ != c for k, c in _PARTS.items() if not (k == "am" and parts[k] is None)
            ):
                raise GmmFileError(f"{path}: the model file does not hold a transition model, tree and GMM")
            transform = z["transform"] if "transform" in z.files else None
    except GmmFileError:
        raise
    except (ValueError, OSError, KeyError, RuntimeError, TypeError, zipfile.BadZipFile, io.UnsupportedOperation) as e:
        raise GmmFileError(f"{path}: not a readable GMM model file ({type(e).__name__}: {str(e)[:160]})") from None
    return {**parts, "meta": meta, "transform": transform}

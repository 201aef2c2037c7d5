"""Is kept work still valid? The one rule for every resumable step (stage markers, summaries,
checkpoints, soft targets, graphs, cached k2 graphs): the step computes a *key* from its inputs
(``fingerprint`` of its settings and the ``file_digest``/``dir_digest`` of the files it reads) and
stores it in its record (a JSON summary, a ``.done`` marker, a checkpoint dict); on a rerun the
output is kept only when ``still_valid(record, key)``, else it is redone. Keys never use mtimes."""

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from asr_kd.utils.io import PathLike, write_json_atomic


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-serialisable object (a config, a list of inputs)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: PathLike) -> str:
    """sha256 of a file's bytes: an input of a key (a checkpoint, a model, an LM)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dir_digest(directory: PathLike) -> str:
    """A short hash of every file below ``directory`` (names and bytes), e.g. a lang directory."""
    root = Path(directory)
    return fingerprint({str(f.relative_to(root)): file_digest(f) for f in sorted(root.rglob("*")) if f.is_file()})


def still_valid(record: Optional[Mapping], key: str) -> bool:
    """True when a step's record was written for inputs of this ``key``."""
    return record is not None and record.get("key") == key


def read_record(path: PathLike) -> Optional[Dict]:
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def kept_summary(path: PathLike, key: str) -> Optional[Dict]:
    """The JSON summary at ``path`` if it is still valid for ``key``, else None."""
    record = read_record(path)
    return record if still_valid(record, key) else None


def is_done(directory: PathLike, key: str = "") -> bool:
    """True when the completion marker ``directory/.done`` is still valid for ``key``."""
    try:
        return kept_summary(Path(directory) / ".done", key) is not None
    except json.JSONDecodeError:  # a marker of an older layout (plain text): redo the step
        return False


def mark_done(directory: PathLike, key: str = "") -> None:
    """Write the completion marker; call it last, after every output is in place."""
    write_json_atomic(Path(directory) / ".done", {"key": key})

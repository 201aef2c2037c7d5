"""Atomic writes and completion markers: a killed stage never leaves a half-written file behind."""
import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Union

PathLike = Union[str, Path]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the suffixes of ``path`` so writers that infer the format
    from the extension (lhotse's ``to_file``) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def forget_open_arrays() -> None:
    """Close lhotse's cached HDF5 handles: after an array file is replaced, a handle opened before
    would go on reading the old file in this process."""
    from lhotse.features.io import close_cached_file_handles

    close_cached_file_handles()


def write_json_atomic(path: PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-serialisable object (a config, a list of inputs)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: PathLike) -> str:
    """sha256 of a file's bytes: an input of a fingerprint (a checkpoint, a model, an LM)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dir_digest(directory: PathLike) -> str:
    """A short hash of every file below ``directory`` (names and bytes), e.g. a lang directory."""
    root = Path(directory)
    return fingerprint({str(f.relative_to(root)): file_digest(f) for f in sorted(root.rglob("*")) if f.is_file()})


def kept_summary(path: PathLike, key: str) -> Optional[Dict]:
    """The JSON summary at ``path`` if it was written for inputs of this ``key`` (its "key"
    field), else None: how a step finds that its earlier output still stands."""
    path = Path(path)
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    return summary if summary.get("key") == key else None


def is_done(directory: PathLike, key: str = "") -> bool:
    """True when ``directory/.done`` exists and was written for the same ``key``."""
    marker = Path(directory) / ".done"
    return marker.is_file() and marker.read_text().strip() == key


def mark_done(directory: PathLike, key: str = "") -> None:
    """Write the completion marker; call it last, after every output is in place."""
    write_text_atomic(Path(directory) / ".done", key + "\n")

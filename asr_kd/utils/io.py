"""Atomic writes: a killed stage never leaves a half-written file behind, and what a stage
finished is on disk before anything that marks it finished: the temporary file is fsynced before
it is renamed into place, and its folder after. Written files get the permissions of the umask
(``mkstemp`` alone would leave them 0600: a model folder another user could not read).

Names that become parts of paths (corpus, split, system names) go through ``check_name``."""

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator, Union

PathLike = Union[str, Path]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]{0,99}")


def check_name(kind: str, value: str) -> str:
    """``value`` when it is safe inside a file name (letters, digits, ``_ . + = -``, not starting
    with a dot, no ``/``), else ValueError naming ``kind`` (a name never leads outside its folder)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise ValueError(
            f"{kind} {value!r} is not a valid name: use letters, digits and _ . + = - "
            "(no / or spaces, not starting with a dot)"
        )
    return value


def confined(root: PathLike, relative: str, kind: str = "name") -> Path:
    """``root / relative`` for a name that stays inside ``root`` (no absolute path, no ``..``
    part, no NUL), else ValueError naming ``kind``: display names may hold spaces and brackets."""
    parts = Path(relative).parts
    if not relative or Path(relative).is_absolute() or "\x00" in relative or any(p in ("..", ".") for p in parts):
        raise ValueError(f"{kind} {relative!r} cannot be used in a path: it must stay inside {root}")
    return Path(root) / relative


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()


def fsync_dir(path: PathLike) -> None:
    """Make a rename or a new file in ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: PathLike) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        os.chmod(tmp_path, FILE_MODE)
        fsync_file(tmp_path)
        os.replace(tmp_path, path)
        fsync_dir(path.parent)
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

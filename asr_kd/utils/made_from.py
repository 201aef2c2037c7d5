"""What an output folder was made from (``made_from.json``): an alignment folder records its
features, corpus and lang, a decode folder also its alignment and graph, so that a later command
can take the one folder instead of the group (``python -m asr_kd train-dnn --ali-dir exp/mono``).

Folders are stored relative to the folder that records them (symbolic links resolved), so a tree
moved or copied as a whole still resolves; names (the corpus) are stored as they are."""

import json
import os
from pathlib import Path
from typing import Dict, Optional, Union

from asr_kd.utils.io import write_json_atomic

MADE_FROM = "made_from.json"


def write_made_from(folder, folders: Dict[str, Optional[Union[str, Path]]], names: Dict[str, str]) -> None:
    """Record ``folders`` (option name -> folder; None left out) and ``names`` for ``folder``."""
    here = os.path.realpath(folder)
    record = {"folders": {k: os.path.relpath(os.path.realpath(v), here) for k, v in folders.items() if v is not None}}
    record["names"] = dict(names)
    Path(folder).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(folder) / MADE_FROM, record)


def read_made_from(folder) -> Dict[str, str]:
    """Option name -> value recorded for ``folder`` (folders as paths again); {} without a record."""
    path = Path(folder) / MADE_FROM
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
        here = os.path.realpath(folder)
        found = {k: os.path.normpath(os.path.join(here, str(v))) for k, v in record.get("folders", {}).items()}
        found.update({k: str(v) for k, v in record.get("names", {}).items()})
    except (ValueError, AttributeError, TypeError) as e:
        raise ValueError(f"{path}: not a record of what the folder was made from ({e})") from None
    return found

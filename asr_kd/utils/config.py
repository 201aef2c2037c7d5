"""The one config loader: a YAML section mapped onto a dataclass (nested dataclasses merge key by
key over their defaults). An unknown key is an error naming the file, section and known keys,
never a silent no-op. Every recipe's config goes through ``section``."""
import dataclasses
from pathlib import Path
from typing import Any, Dict, Type, TypeVar

import yaml

T = TypeVar("T")


def load_yaml(path) -> Dict[str, Any]:
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def merge(default: T, data: Dict[str, Any], where: str = "") -> T:
    """A copy of the dataclass instance ``default`` with the keys of ``data`` set: a nested
    dataclass merges recursively (its other keys keep their defaults), lists become tuples where
    the default is a tuple, and an unknown key raises ValueError."""
    where = where or type(default).__name__
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, not {data!r}")
    names = {f.name for f in dataclasses.fields(default)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {unknown}; known: {sorted(names)}")
    changes = {}
    for key, value in data.items():
        current = getattr(default, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            value = merge(current, value, f"{where}.{key}")
        elif isinstance(current, tuple) and isinstance(value, list):
            value = _tuples(value)
        changes[key] = value
    return dataclasses.replace(default, **changes)


def from_dict(cls: Type[T], data: Dict[str, Any], where: str = "") -> T:
    return merge(cls(), data, where or cls.__name__)


def section(path, name: str, cls: Type[T], base: str = None) -> T:
    """Read section ``name`` of the YAML file at ``path`` (no file or no section -> defaults). With
    ``base``, that section's keys come first and ``name``'s override them (a variant of a section)."""
    if path is None:
        return cls()
    config = load_yaml(path)
    data = {**(config.get(base, {}) or {}), **(config.get(name, {}) or {})} if base else config.get(name, {}) or {}
    return from_dict(cls, data, where=f"{Path(path).name}:{name}")

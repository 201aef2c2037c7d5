"""YAML configs mapped onto dataclasses; unknown keys are an error, not a silent no-op."""
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


def from_dict(cls: Type[T], data: Dict[str, Any], where: str = "") -> T:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{where or cls.__name__}: unknown option(s) {unknown}; known: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        default = getattr(cls, key, None) if not isinstance(names[key].default, dataclasses._MISSING_TYPE) else None
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def section(path, name: str, cls: Type[T], base: str = None) -> T:
    """Read section ``name`` of the YAML file at ``path`` (missing section -> defaults). With
    ``base``, that section's keys come first and ``name``'s override them (a variant of a section)."""
    if path is None:
        return cls()
    config = load_yaml(path)
    data = {**(config.get(base, {}) or {}), **(config.get(name, {}) or {})} if base else config.get(name, {}) or {}
    return from_dict(cls, data, where=f"{Path(path).name}:{name}")

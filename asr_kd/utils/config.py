"""The one config loader: a YAML section mapped onto a dataclass (nested dataclasses merge key by
key over their defaults). Every recipe's config goes through ``section``.

Checked when loaded, each failure a ``ConfigError`` naming the file, section and key:
- an unknown key (never a silent no-op) and malformed YAML (with its line and column);
- the type: a value must have its default's type (an int is accepted where a float is meant;
  a list where a tuple is), floats must be finite;
- the range, by rule: a number whose default is >= 0 must not be negative, and one whose
  default is > 0 must be > 0 unless its name is in ``MAY_BE_ZERO`` (weights, dropouts and
  counts where 0 means "off"); a class may add its own checks in a ``validate()`` method
  (choices, upper bounds), which raises ValueError.
"""

import dataclasses
import math
from pathlib import Path
from typing import Any, Dict, Type, TypeVar

import yaml

T = TypeVar("T")

# positive defaults where 0 is a meaningful setting (off / none / pure soft targets)
MAY_BE_ZERO = frozenset(
    {
        "soft_weight",
        "hard_weight",
        "lr_decay",
        "weight_decay",
        "loader_workers",
        "dropout",
        "input_dropout",
        "threads",
        "perturb_factor",
        "vad_min_range",
        "min_gaussian_occupancy",
        "power",
        "transition_scale",
        "self_loop_scale",
        "min_leaf_count",
        "splice",
        "seed",
        "num_dev",
        "max_iter_inc",
        "context",
    }
)


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file, section and key."""


def load_yaml(path) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}:{where}: malformed YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, not {type(data).__name__}")
    return data


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _checked(where: str, key: str, current, *, value):
    """``value`` converted to the type of the default ``current``, range-checked by the rules above."""
    name = f"{where}.{key}"
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, not {value!r}")
        return value
    if isinstance(current, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, not {value!r}")
        if isinstance(current, int) and not isinstance(value, int):
            if not float(value).is_integer():
                raise ConfigError(f"{name}: expected a whole number, not {value!r}")
            value = int(value)
        if isinstance(current, float):
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"{name}: expected a finite number, not {value!r}")
        if current >= 0 and value < 0:
            raise ConfigError(f"{name}: must not be negative, not {value!r}")
        if current > 0 and value == 0 and key not in MAY_BE_ZERO:
            raise ConfigError(f"{name}: must be greater than 0, not {value!r}")
        return value
    if isinstance(current, str):
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, not {value!r}")
        return value
    if isinstance(current, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, not {value!r}")
        return _tuples(list(value))
    return value  # None defaults and other types: taken as given


def merge(default: T, data: Dict[str, Any], where: str = "") -> T:
    """A copy of the dataclass instance ``default`` with the keys of ``data`` set: a nested
    dataclass merges recursively (its other keys keep their defaults), lists become tuples where
    the default is a tuple, and an unknown key, a wrong type or an out-of-range value raises
    ConfigError."""
    where = where or type(default).__name__
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, not {data!r}")
    names = {f.name for f in dataclasses.fields(default)}
    unknown = sorted(set(map(str, data)) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {unknown}; known: {sorted(names)}")
    changes = {}
    for key, value in data.items():
        current = getattr(default, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a mapping, not {value!r}")
            value = merge(current, value, f"{where}.{key}")
        else:
            value = _checked(where, key, current, value=value)
        changes[key] = value
    merged = dataclasses.replace(default, **changes)
    check = getattr(merged, "validate", None)
    if callable(check):
        try:
            check()
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
    return merged


def from_dict(cls: Type[T], data: Dict[str, Any], where: str = "") -> T:
    return merge(cls(), data, where or cls.__name__)


def section(path, name: str, cls: Type[T], *, base: str = None) -> T:
    """Read section ``name`` of the YAML file at ``path`` (no file or no section -> defaults). With
    ``base``, that section's keys come first and ``name``'s override them (a variant of a section)."""
    if path is None:
        return cls()
    config = load_yaml(path)
    parts = [base, name] if base else [name]
    data: Dict[str, Any] = {}
    for part in parts:
        value = config.get(part) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"{Path(path).name}:{part}: expected a mapping, not {value!r}")
        data.update(value)
    return from_dict(cls, data, where=f"{Path(path).name}:{name}")

"""Configuration in layers, the same for every training program.

A program's options are one typed dataclass. What a run uses is, from the bottom up:
the dataclass defaults, then a YAML file (`--config FILE.yaml`, any subset of the
fields, nested dataclasses as nested mappings), then the command-line flags (tyro
builds them from the dataclass). `lay_over` applies one plain mapping (a YAML file, a
run's saved config.yaml) onto a config; `layered` does the whole stack for a CLI.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file that does not fit its dataclass; names the file and the field."""


def _is_path(annotation: Any) -> bool:
    if annotation is Path:
        return True
    origin = typing.get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and Path in typing.get_args(annotation)


def lay_over(config: T, values: Mapping[str, Any], where: str = "config") -> T:
    """`config` (a dataclass instance) with `values` (plain, as YAML gives them) laid over
    it: nested dataclasses take nested mappings, lists become tuples, paths become Path."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"{where}: lay_over needs a dataclass instance, not {type(config).__name__}")
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown field {key!r}; known: {', '.join(fields)}")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            value = lay_over(current, value, f"{where}.{key}")
        elif isinstance(value, list):
            value = tuple(value)
        elif value is not None and _is_path(hints.get(key)):
            value = Path(value)
        changes[key] = value
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in a YAML file, or a ConfigError naming the file."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read it as YAML ({error})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a config file holds a mapping of fields, not {type(loaded).__name__}")
    return loaded


def layered(cls: type[T], argv: list[str] | None, prog: str, description: str, base: T | None = None) -> T:
    """`cls` from its defaults (or `base`, for programs with a layer of their own below
    the file, such as a resumed run's saved config), then `--config FILE.yaml`, then the
    flags."""
    import tyro

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path)
    known, rest = pre.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    config = cls() if base is None else base
    if known.config is not None:
        config = lay_over(config, read_yaml(known.config), str(known.config))
    text = description + " Also: --config FILE.yaml (fields to lay under the flags)."
    return tyro.cli(cls, args=rest, default=config, prog=prog, description=text)


def check_lessons(size: int, kinds: Sequence[str] | None, validation_seeds: int = 1) -> None:
    """Refuse a grid size or lesson kind the generators do not have, or more validation
    seeds per kind than there are, before a run starts (and writes anything)."""
    from training.lessons import KINDS, VALIDATION_SEEDS
    from training.lessons.base import MAX_SIZE, MIN_SIZE

    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ConfigError(f"size must be {MIN_SIZE} to {MAX_SIZE} tiles a side, not {size}")
    unknown = [kind for kind in kinds or () if kind not in KINDS]
    if unknown:
        raise ConfigError(f"unknown lesson kinds {unknown}; known: {', '.join(KINDS)}")
    if not 1 <= validation_seeds <= len(VALIDATION_SEEDS):
        raise ConfigError(f"validation takes 1 to {len(VALIDATION_SEEDS)} seeds per kind, not {validation_seeds}")


PRECISIONS = ("auto", "fp32", "bf16")  # of the trainers' --precision (`training.model.precision_autocast`)


def check_precision(precision: str) -> None:
    """ConfigError unless `precision` is one of `PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision is one of {', '.join(PRECISIONS)}, not {precision!r}")

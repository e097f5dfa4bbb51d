"""Frozen dataclass configs: YAML/JSON presets, CLI overrides, saved with the run.

A stage defines ``@dataclass(frozen=True) class XConfig``; ``build_config``
merges (defaults <- preset file <- CLI flags that were given) and checks every
key and type, naming the file or flag at fault.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from datasetgan.core.errors import UserError

C = TypeVar("C")


def finite_float(text: str) -> float:
    """``argparse`` type for number flags: ``float()`` without its ``nan`` and ``inf``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def read_mapping(path: str | Path) -> dict:
    """Read a YAML or JSON file that must hold a mapping."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid YAML/JSON ({exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    return data


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except UserError as exc:
                errors.append(str(exc))
        raise UserError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise UserError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, where) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UserError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise UserError(f"{where}: expected a finite number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise UserError(f"{where}: expected a string, got {value!r}")
    return value


def build_config(cls: type[C], preset: str | Path | Mapping | None = None,
                 overrides: Mapping[str, Any] | None = None) -> C:
    """``cls`` defaults, then the preset (file or mapping), then non-None overrides."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    sources: list[tuple[str, Mapping]] = []
    if preset is not None:
        data = preset if isinstance(preset, Mapping) else read_mapping(preset)
        sources.append((str(preset) if not isinstance(preset, Mapping) else "config", data))
    if overrides:
        sources.append(("flag", {k: v for k, v in overrides.items() if v is not None}))
    for source, data in sources:
        for key, value in data.items():
            where = f"--{key.replace('_', '-')}" if source == "flag" else f"{source}: key '{key}'"
            if key not in names:
                raise UserError(f"{where}: unknown setting (known: {', '.join(sorted(names))})")
            values[key] = _coerce(value, hints[key], where)
    return cls(**values)


def config_to_dict(config: Any) -> dict:
    """A JSON-ready dict of a dataclass config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))

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
import warnings
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
                 overrides: Mapping[str, Any] | None = None, source: str | None = None,
                 flags: Mapping[str, Any] | None = None) -> C:
    """``cls`` defaults, then the preset (file or mapping), then non-None overrides.

    A nested dataclass field takes a mapping of its own keys, applied over its
    default. A field's old names (``aliases`` in its metadata) and old values
    (``value_aliases``) are accepted with a ``FutureWarning``. ``source`` names a
    mapping preset in errors (a file preset is named by its path). ``flags`` are
    applied last, ``None`` included (a flag given as ``all`` or ``none``).
    """
    values: dict[str, Any] = {}
    if preset is not None:
        data = preset if isinstance(preset, Mapping) else read_mapping(preset)
        where = source or (str(preset) if not isinstance(preset, Mapping) else "config")
        values.update(_read_section(cls, data, lambda key: f"{where}: key '{key}'"))
    if overrides:
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(_read_section(cls, given, lambda key: f"--{key.replace('_', '-')}"))
    if flags:
        values.update(_read_section(cls, flags, lambda key: f"--{key.replace('_', '-')}"))
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise UserError(", ".join(f"--{k.replace('_', '-')}" for k in missing) + ": required")
    return cls(**values)


def _read_section(cls: type, data: Mapping, where_of, prefix: str = "") -> dict[str, Any]:
    """Check and coerce the keys of one mapping for ``cls``; nested dataclasses recurse."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    renamed = {alias: f.name for f in fields.values() for alias in f.metadata.get("aliases", ())}
    values: dict[str, Any] = {}
    for key, value in data.items():
        where = where_of(prefix + key)
        if key in renamed:
            warnings.warn(f"{where}: '{key}' is deprecated and will be removed in the next release; "
                          f"use '{renamed[key]}'", FutureWarning, stacklevel=4)
            key = renamed[key]
        if key not in fields:
            raise UserError(f"{where}: unknown setting (known: {', '.join(sorted(fields))})")
        old_values = fields[key].metadata.get("value_aliases") or {}
        if isinstance(value, str) and value in old_values:
            warnings.warn(f"{where}: {value!r} is deprecated; use {old_values[value]!r}", FutureWarning,
                          stacklevel=4)
            value = old_values[value]
        hint = hints[key]
        parse = fields[key].metadata.get("parse")
        if parse is not None and isinstance(value, str) and hint is not str:
            try:   # a preset may spell a value as its flag does ("all", "0/4")
                value = parse(value)
            except (argparse.ArgumentTypeError, ValueError) as exc:
                raise UserError(f"{where}: {exc}") from None
        if dataclasses.is_dataclass(hint):
            if isinstance(value, hint):
                values[key] = value
                continue
            if not isinstance(value, Mapping):
                raise UserError(f"{where}: expected a mapping of {hint.__name__} keys, got {value!r}")
            base = values.get(key)
            if base is None:
                field = fields[key]
                base = field.default if field.default is not dataclasses.MISSING else hint()
            inner = _read_section(hint, value, where_of, prefix=f"{prefix}{key}.")
            values[key] = dataclasses.replace(base, **inner)
            continue
        values[key] = _coerce(value, hint, where)
    return values


def config_to_dict(config: Any) -> dict:
    """A JSON-ready dict of a dataclass config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))

"""Command-line flags built from config dataclasses: one vocabulary for every command.

A config field becomes a flag when it is declared with ``setting`` and a help text::

    @dataclass(frozen=True)
    class SynthesisConfig:
        batch_size: int = setting(8, "seeds per generator call", metavar="B")

``add_config_flags(parser, SynthesisConfig)`` then adds ``--batch-size B`` with its type,
choices and "(default: 8)" taken from the dataclass, plus ``--config FILE`` and
``--dry-run``. ``config_from_args(SynthesisConfig, args)`` merges the defaults, the
``--config`` preset and the flags that were given, and builds the dataclass, so that
its ``__post_init__`` checks apply to the command line, presets and Python callers
alike. Fields declared without a help text are settings of presets only.

Old spellings stay accepted for one release with a ``FutureWarning``: a field's
``aliases`` (old flag and preset-key names) and ``value_aliases`` (old values), and
``deprecated_flag`` for flags outside a config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
import warnings
from typing import Any, Callable, Mapping, TypeVar

from datasetgan.core.config import build_config, config_to_dict, finite_float

C = TypeVar("C")

_MISSING = dataclasses.MISSING


def setting(default: Any = _MISSING, help: str | None = None, *, metavar: str | None = None,
            parse: Callable[[str], Any] | None = None, choices: typing.Sequence[Any] | None = None,
            aliases: typing.Sequence[str] = (), value_aliases: Mapping[str, Any] | None = None,
            default_text: str | None = None, required: bool = False) -> Any:
    """A dataclass field that the command line shows as ``--name`` (when ``help`` is given).

    ``parse`` turns the flag's text into a value (default: from the type hint);
    ``aliases`` are old names of the setting (``"batch"`` accepts ``--batch`` and a
    preset key ``batch``); ``value_aliases`` maps old values to current ones;
    ``default_text`` replaces the printed default; ``required`` makes the flag mandatory
    on the command line (Python callers still get the default).
    """
    metadata = {"help": help, "metavar": metavar, "parse": parse, "choices": choices,
                "aliases": tuple(aliases), "value_aliases": dict(value_aliases or {}),
                "default_text": default_text, "required": required}
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def setting_name(cls: type, name: str) -> str:
    """How a user sets field ``name`` of ``cls``: its flag, or the preset key."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    return flag_name(name) if field.metadata.get("help") else f"key '{name}' (--config)"


def warn_deprecated(old: str, new: str) -> None:
    """A ``FutureWarning``: shown to users by default, and catchable by tests and callers."""
    warnings.warn(f"{old} is deprecated and will be removed in the next release; use {new}",
                  FutureWarning, stacklevel=3)


def _parsed(parser: argparse.ArgumentParser, parse: Callable[[str], Any] | None, text: Any, flag: str) -> Any:
    """``parse(text)``, a bad value being argparse's usage error for ``flag``."""
    if parse is None:
        return text
    try:
        return parse(text)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        parser.error(f"argument {flag}: {exc}")


class _Deprecated(argparse.Action):
    """An old flag: warns, then stores into the new flag's destination (a constant, or the parsed value)."""

    def __init__(self, option_strings, dest, new: str, parse=None, const_value=None, takes_value=True,
                 value_aliases=None, **kwargs):
        self.new, self.parse, self.const_value = new, parse, const_value
        self.value_aliases = value_aliases or {}
        super().__init__(option_strings, dest, nargs=None if takes_value else 0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        warn_deprecated(option_string, self.new)
        if self.nargs == 0:
            setattr(namespace, self.dest, self.const_value)
            return
        if isinstance(values, str) and values in self.value_aliases:
            values = self.value_aliases[values]
        else:
            values = _parsed(parser, self.parse, values, option_string)
        setattr(namespace, self.dest, values)


class _ValueAliases(argparse.Action):
    """A flag whose old values (``bf16``) still work, with a warning naming the current one.

    It checks ``choices`` itself: argparse would refuse an old value before the action sees it.
    """

    def __init__(self, option_strings, dest, value_aliases, parse=None, choices=None, **kwargs):
        self.value_aliases, self.parse, self.valid = value_aliases, parse, choices
        if choices is not None:
            kwargs.setdefault("metavar", "{" + ",".join(map(str, choices)) + "}")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if values in self.value_aliases:
            new = self.value_aliases[values]
            warn_deprecated(f"{option_string} {values}", f"{option_string} {new}")
            values = new
        if self.valid is not None:
            if values not in self.valid:
                parser.error(f"argument {option_string}: invalid choice: {values!r} "
                             f"(choose from {', '.join(map(repr, self.valid))})")
        else:
            values = _parsed(parser, self.parse, values, option_string)
        setattr(namespace, self.dest, values)


def deprecated_flag(parser: argparse.ArgumentParser, old: str, new: str, dest: str, *,
                    const: Any = None, takes_value: bool = True) -> None:
    """Accept ``old`` as a hidden, warning spelling of ``new`` (stored in ``dest``).

    Where ``new`` is a required flag, either spelling satisfies it (``check_required``).
    """
    for action in parser._actions:
        if new in action.option_strings and action.required:
            action.required = False
            required = dict(parser.get_default("required_flags") or {})
            required[dest] = f"{new} (or the old {old})"
            parser.set_defaults(required_flags=required)
    parser.add_argument(old, dest=dest, action=_Deprecated, new=new, const_value=const,
                        takes_value=takes_value, help=argparse.SUPPRESS, default=argparse.SUPPRESS)


def check_required(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The argparse error for a required flag that has an old spelling and was given in neither."""
    for dest, flags in (getattr(args, "required_flags", None) or {}).items():
        if getattr(args, dest, None) is None:
            parser.error(f"the following arguments are required: {flags}")


def comma_list(text: str) -> tuple[str, ...]:
    """``"all,img"`` -> ``("all", "img")``."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _optional_of(hint: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(hint, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(hint)):
            return args[0], True
    return hint, False


def _none_or(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_optional(text: str) -> Any:
        return None if text.lower() in ("none", "null") else parse(text)
    return parse_optional


def _parser_for(hint: Any) -> tuple[Callable[[str], Any] | None, list | None]:
    """(type, choices) for an argparse flag of type ``hint``."""
    inner, optional = _optional_of(hint)
    choices = None
    if typing.get_origin(inner) is typing.Literal:
        choices = list(typing.get_args(inner))
        parse: Callable[[str], Any] | None = None
    elif inner is int:
        parse = int
    elif inner is float:
        parse = finite_float
    elif typing.get_origin(inner) is tuple:
        parse = comma_list
    else:
        parse = str
    if optional and parse is not None:
        parse = _none_or(parse)
    return parse, choices


def _default_text(f: dataclasses.Field, default: Any) -> str | None:
    if f.metadata.get("default_text"):
        return f.metadata["default_text"]
    if default is None or default == ():
        return None
    if isinstance(default, bool):
        return flag_name(f.name) if default else "--no-" + f.name.replace("_", "-")
    if isinstance(default, tuple):
        return ",".join(map(str, default))
    return str(default)


def config_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are command-line flags."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("help")]


def add_config_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
                     defaults: Any = None, *, exclude: typing.Iterable[str] = (),
                     config_flags: bool = True) -> None:
    """Add a flag for every ``setting`` of ``cls`` with a help text (not in ``exclude``),
    and ``--config FILE`` / ``--dry-run`` unless ``config_flags`` is false.

    ``defaults`` (an instance of ``cls``) gives the printed defaults where a command's
    differ from the class's. Every flag's argparse default is "not given", so that
    ``config_from_args`` can tell a flag from a preset.
    """
    hints = typing.get_type_hints(cls)
    exclude = set(exclude)
    for f in config_fields(cls):
        if f.name in exclude:
            continue
        meta = f.metadata
        hint = hints[f.name]
        default = getattr(defaults, f.name) if defaults is not None else (
            f.default if f.default is not _MISSING else None)
        text = meta["help"]
        shown = _default_text(f, default)
        if shown is not None and not meta["required"]:
            text = f"{text} (default: {shown})"
        text = text.replace("%", "%%")
        name = flag_name(f.name)
        required = meta["required"]
        if _optional_of(hint)[0] is bool:
            parser.add_argument(name, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=text)
            for alias in meta["aliases"]:
                deprecated_flag(parser, flag_name(alias), name, f.name, const=True, takes_value=False)
            continue
        parse, choices = _parser_for(hint)
        parse = meta["parse"] or parse
        choices = meta["choices"] or choices
        kwargs: dict[str, Any] = dict(dest=f.name, default=argparse.SUPPRESS, help=text, required=required)
        if meta["metavar"]:
            kwargs["metavar"] = meta["metavar"]
        if meta["value_aliases"]:
            parser.add_argument(name, action=_ValueAliases, value_aliases=meta["value_aliases"],
                                parse=parse, choices=choices, **kwargs)
        else:
            parser.add_argument(name, type=parse, choices=choices, **kwargs)
        for alias in meta["aliases"]:
            parser.add_argument(flag_name(alias), dest=f.name, action=_Deprecated, new=name, parse=parse,
                                value_aliases=meta["value_aliases"], help=argparse.SUPPRESS,
                                default=argparse.SUPPRESS)
    if config_flags:
        parser.add_argument("--config", metavar="FILE", default=None,
                            help="YAML/JSON preset of these settings (configs/); flags override it")
        parser.add_argument("--dry-run", action="store_true",
                            help="print the resolved settings as JSON and exit")


def add_device_flags(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--quiet``, spelt and explained alike in every command that computes."""
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if present)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def given_flags(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The settings of ``cls`` that were given on the command line."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


def config_from_args(cls: type[C], args: argparse.Namespace, base: C | Mapping | None = None) -> C:
    """``base`` (an instance or mapping; default: the class defaults) <- ``--config`` <- given flags."""
    if base is not None and not isinstance(base, Mapping):
        base = config_to_dict(base)
    preset = dict(base or {})
    path = getattr(args, "config", None)
    if path:
        from datasetgan.core.config import read_mapping
        preset = merge_preset(preset, read_mapping(path))
        return build_config(cls, preset, source=str(path), flags=given_flags(cls, args))
    return build_config(cls, preset or None, flags=given_flags(cls, args))


def merge_preset(base: Mapping, update: Mapping) -> dict:
    """``update`` over ``base``, one level deep for nested sections."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_preset(merged[key], value)
        else:
            merged[key] = value
    return merged


def print_dry_run(config: Any, **extra: Any) -> None:
    """``--dry-run``: the resolved settings (and anything else the run would use) as JSON on stdout."""
    data = config_to_dict(config) if dataclasses.is_dataclass(config) else dict(config)
    json.dump({**data, **{k: v for k, v in extra.items()}}, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")

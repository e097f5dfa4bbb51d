"""The shared flag builder: flags, help and defaults from one dataclass; presets; old spellings."""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass
from typing import Literal

import pytest

from datasetgan.core.errors import UserError
from datasetgan.core.options import (add_config_flags, config_from_args, deprecated_flag, print_dry_run,
                                     setting, check_required)


@dataclass(frozen=True)
class Toy:
    batch_size: int = setting(8, "items per step", aliases=("batch",))
    lr: float = setting(1e-3, "learning rate")
    precision: Literal["auto", "float32", "bfloat16"] = setting("auto", "matmul precision",
                                                                value_aliases={"bf16": "bfloat16"})
    flip: bool = setting(False, "random flips", aliases=("mirror",))
    layers: tuple[str, ...] = setting((), "taps")
    cutoff: int | None = setting(None, "cut-off")
    hidden: int = 3          # a preset-only setting: no flag

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size}: must be >= 1")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_config_flags(parser, Toy)
    return parser.parse_args(list(argv))


def test_flags_types_and_help_come_from_the_dataclass():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, Toy)
    text = parser.format_help()
    assert "--batch-size" in text and "(default: 8)" in text and "--no-flip" in text
    assert "--hidden" not in text and "--batch " not in text      # preset-only, and the old spelling is hidden
    assert "--config" in text and "--dry-run" in text
    cfg = config_from_args(Toy, parse("--batch-size", "4", "--flip", "--layers", "all,img", "--cutoff", "none"))
    assert cfg == Toy(batch_size=4, flip=True, layers=("all", "img"), cutoff=None)
    with pytest.raises(SystemExit):
        parse("--precision", "fp16")


def test_flags_override_the_preset_and_the_preset_overrides_the_defaults(tmp_path):
    preset = tmp_path / "toy.yaml"
    preset.write_text("batch_size: 2\nlr: 0.5\nhidden: 7\ncutoff: 3\n")
    cfg = config_from_args(Toy, parse("--config", str(preset), "--lr", "0.25", "--cutoff", "none"))
    assert cfg == Toy(batch_size=2, lr=0.25, hidden=7, cutoff=None)


def test_checks_apply_to_flags_presets_and_python_alike(tmp_path):
    with pytest.raises(UserError, match="--batch-size 0"):
        config_from_args(Toy, parse("--batch-size", "0"))
    preset = tmp_path / "toy.yaml"
    preset.write_text("batch_size: 0\n")
    with pytest.raises(UserError, match="--batch-size 0"):
        config_from_args(Toy, parse("--config", str(preset)))
    with pytest.raises(UserError, match="--batch-size 0"):
        Toy(batch_size=0)
    preset.write_text("batchsize: 2\n")
    with pytest.raises(UserError, match=r"toy.yaml: key 'batchsize': unknown setting"):
        config_from_args(Toy, parse("--config", str(preset)))


def test_old_spellings_work_with_a_warning(tmp_path):
    with pytest.warns(FutureWarning, match="--batch is deprecated.*--batch-size"):
        args = parse("--batch", "16")
    with pytest.warns(FutureWarning, match="--mirror is deprecated.*--flip"):
        args2 = parse("--mirror")
    with pytest.warns(FutureWarning, match="bf16.*bfloat16"):
        args3 = parse("--precision", "bf16")
    assert config_from_args(Toy, args).batch_size == 16
    assert config_from_args(Toy, args2).flip is True
    assert config_from_args(Toy, args3).precision == "bfloat16"
    preset = tmp_path / "old.yaml"
    preset.write_text("batch: 4\nprecision: bf16\n")
    with pytest.warns(FutureWarning) as caught:
        cfg = config_from_args(Toy, parse("--config", str(preset)))
    messages = [str(w.message) for w in caught]
    assert any("'batch' is deprecated" in m for m in messages)
    assert any("'bf16' is deprecated" in m for m in messages)
    assert (cfg.batch_size, cfg.precision) == (4, "bfloat16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config_from_args(Toy, parse("--batch-size", "3", "--precision", "bfloat16"))   # no warning


def test_an_old_spelling_satisfies_a_required_flag():
    parser = argparse.ArgumentParser()
    parser.add_argument("--generator", required=True)
    deprecated_flag(parser, "--checkpoint", "--generator", "generator")
    with pytest.warns(FutureWarning):
        args = parser.parse_args(["--checkpoint", "G"])
    check_required(parser, args)
    assert args.generator == "G"
    with pytest.raises(SystemExit):
        check_required(parser, parser.parse_args([]))


def test_dry_run_prints_the_resolved_settings(capsys):
    print_dry_run(Toy(layers=("a",)), extra=1)
    printed = json.loads(capsys.readouterr().out)
    assert printed["layers"] == ["a"] and printed["extra"] == 1 and printed["hidden"] == 3

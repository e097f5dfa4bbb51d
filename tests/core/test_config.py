from dataclasses import dataclass
from typing import Literal, Optional

import pytest

from datasetgan.core.config import build_config, config_to_dict
from datasetgan.core.errors import UserError


@dataclass(frozen=True)
class Toy:
    lr: float = 1e-3
    members: int = 10
    mode: Literal["bilinear", "nearest"] = "bilinear"
    layers: Optional[tuple[int, ...]] = None


def test_defaults_preset_and_flags(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("members: 4\nlayers: [0, 2]\n")
    cfg = build_config(Toy, preset, {"lr": 0.5, "mode": None})
    assert cfg == Toy(lr=0.5, members=4, layers=(0, 2))
    assert config_to_dict(cfg)["layers"] == [0, 2]


def test_unknown_key_names_file_and_key(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("memberz: 4\n")
    with pytest.raises(UserError, match=r"p.yaml: key 'memberz'"):
        build_config(Toy, preset)


def test_bad_type_names_flag():
    with pytest.raises(UserError, match="--members"):
        build_config(Toy, None, {"members": "many"})
    with pytest.raises(UserError, match="--mode"):
        build_config(Toy, None, {"mode": "cubic"})


def test_numbers_must_be_finite(tmp_path):
    import argparse

    from datasetgan.core.config import finite_float

    preset = tmp_path / "p.yaml"
    preset.write_text("lr: .nan\n")
    with pytest.raises(UserError, match=r"p.yaml: key 'lr': expected a finite number"):
        build_config(Toy, preset)
    with pytest.raises(UserError, match="--lr: expected a finite number"):
        build_config(Toy, None, {"lr": float("inf")})
    assert finite_float("0.7") == 0.7 and finite_float("-1e-3") == -1e-3
    for text in ("nan", "inf", "-Infinity", "abc"):
        with pytest.raises(argparse.ArgumentTypeError):
            finite_float(text)

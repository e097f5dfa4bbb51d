"""The fixture of the synthesis tests: a tiny generator whose colours are a fixed function of its
features, 8 labelled samples of it, and an interpreter trained on them (once per session).

See test_synthesize.py for why the generator is built so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import make_tiny_generator

from datasetgan.cli import main

RED_THRESHOLD = 160  # uint8 red channel above this -> class 1


def red_labels(image: np.ndarray) -> np.ndarray:
    return (image[:, :, 0] > RED_THRESHOLD).astype(np.uint8)


def make_colour_generator(seed: int = 0):
    G = make_tiny_generator(seed=seed, architecture="orig")
    with torch.no_grad():
        for name, p in G.named_parameters():
            if "torgb.affine.weight" in name:
                p.zero_()
    return G


@pytest.fixture(scope="session")
def labelled(tmp_path_factory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("labelled")
    make_colour_generator().save_pretrained(root / "G")
    assert main(["sample", "--generator", str(root / "G"), "--seeds", "0-7", "--out", str(root / "samples"),
                 "--device", "cpu"]) == 0
    (root / "labels").mkdir()
    for p in sorted((root / "samples" / "images").glob("*.png")):
        Image.fromarray(red_labels(np.asarray(Image.open(p)))).save(root / "labels" / p.name)
    (root / "spec.yaml").write_text("classes: [other, red]\npalette: [[0, 0, 0], [255, 0, 0]]\n")
    return {"root": root, "G": root / "G", "samples": root / "samples", "labels": root / "labels",
            "spec": root / "spec.yaml"}


@pytest.fixture(scope="session")
def interpreter_dir(labelled) -> Path:
    """Trained with the reference settings (10 members, all pixels, early stopping)."""
    torch.set_num_threads(1)
    out = labelled["root"] / "interp"
    assert main(["train-interpreter", "--samples", str(labelled["samples"]), "--labels", str(labelled["labels"]),
                 "--spec", str(labelled["spec"]), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    return out


def _synth(labelled, interpreter_dir, out: Path, *extra: str) -> int:
    return main(["synthesize", "--generator", str(labelled["G"]), "--interpreter", str(interpreter_dir),
                 "--out", str(out), "--device", "cpu", "--quiet", *extra])


def _snapshot(out: Path) -> dict[str, bytes]:
    """Every file of a finished data set, by relative path (dataset.json aside: it names paths)."""
    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    files.pop("dataset.json")
    return files

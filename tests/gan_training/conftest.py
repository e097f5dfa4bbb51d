"""Tiny images and a tiny training config for the train-gan tests (16x16, a few thousand weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# A 16x16 model small enough that a training step takes milliseconds on one CPU thread.
TINY_FLAGS = ["--resolution", "16", "--batch-size", "4", "--channel-base", "128", "--channel-max", "32",
              "--map-depth", "1", "--z-dim", "16", "--w-dim", "16", "--gamma", "1", "--aug-p", "0.3",
              "--tick-kimg", "0.008", "--device", "cpu", "--quiet"]


def write_images(folder: Path, count: int = 12, size: tuple[int, int] = (24, 20), seed: int = 0) -> Path:
    """``count`` procedural RGB PNGs (a coloured square on a coloured background)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    for i in range(count):
        a = np.zeros((size[1], size[0], 3), np.uint8)
        a[...] = rng.randint(0, 255, 3)
        y, x = rng.randint(0, size[1] - 6), rng.randint(0, size[0] - 6)
        a[y:y + 6, x:x + 6] = rng.randint(0, 255, 3)
        Image.fromarray(a).save(folder / f"img{i:03d}.png")
    return folder


@pytest.fixture
def tiny_flags() -> list[str]:
    return list(TINY_FLAGS)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_images(tmp_path / "data")

"""A tiny labelled set: 4 images (40x36) whose mask is a known function of the image, and keypoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SPEC = "classes: [bg, fg]\npalette: [[0, 0, 0], [255, 255, 255]]\nkeypoints: [left, right, nose]\nkeypoint_flip: [[left, right]]\n"


def make_tiny_set(root: Path, n: int = 4, h: int = 40, w: int = 36) -> Path:
    rng = np.random.default_rng(0)
    for sub in ("images", "labels", "keypoints"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.integers(0, 255, (h, w, 3), np.uint8)
        Image.fromarray(img).save(root / "images" / f"{i:06d}.png")
        Image.fromarray((img[..., 0] > 128).astype(np.uint8), mode="L").save(root / "labels" / f"{i:06d}.png")
        (root / "keypoints" / f"{i:06d}.json").write_text(json.dumps([[5, 6, 1], [30, 8, 1], [18, 30, 0]]))
    (root / "spec.yaml").write_text(SPEC)
    return root


@pytest.fixture
def tiny_set(tmp_path) -> Path:
    return make_tiny_set(tmp_path / "tiny")

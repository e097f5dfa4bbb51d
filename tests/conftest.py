"""Shared fixtures: tiny seeded models on the CPU, and the shared data folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _few_threads():
    # CI has 2 cores; keep every test deterministic and light.
    torch.set_num_threads(1)
    yield


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"shared data folder missing: {SHARED_DATA}")
    return SHARED_DATA


# --- Generator fixtures (generator stage) -----------------------------------

TINY_GENERATOR_KWARGS = dict(z_dim=32, w_dim=32, img_resolution=32, img_channels=3, mapping_layers=2,
                             channel_base=512, channel_max=32)


def make_tiny_generator(seed: int = 0, **overrides):
    """A seeded 32x32 StyleGAN2 (channels 32/32/32/16) in eval mode on the CPU.

    Unlike a freshly initialised network it has non-zero noise strengths and a
    real ``w_avg`` (the mean w of 256 seeded z), so noise modes and truncation
    have visible effects.
    """
    from datasetgan.generator import Generator, GeneratorConfig

    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(**{**TINY_GENERATOR_KWARGS, **overrides}))
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.1)
        z = torch.randn([256, G.z_dim], generator=torch.Generator().manual_seed(seed))
        G.mapping.w_avg.copy_(G.mapping(z, update_w_avg=False)[:, 0].mean(dim=0))
    return G.eval()


@pytest.fixture
def tiny_generator():
    """Seeded 32x32 generator (z_dim = w_dim = 32, 8 ws, 7 feature maps, 192 channels)."""
    return make_tiny_generator()


@pytest.fixture
def tiny_generator_dir(tmp_path, tiny_generator) -> Path:
    """``tiny_generator`` saved in the own format (``config.json`` + ``model.safetensors``)."""
    directory = tmp_path / "tiny_generator"
    tiny_generator.save_pretrained(directory)
    return directory


# --- A tiny labelled image set (segmenter and evaluation stages) -------------

TINY_SET_SPEC = ("classes: [bg, fg]\npalette: [[0, 0, 0], [255, 255, 255]]\n"
                 "keypoints: [left, right, nose]\nkeypoint_flip: [[left, right]]\n")


def make_tiny_set(root: Path, n: int = 4, h: int = 40, w: int = 36) -> Path:
    """``n`` random images whose mask is (red > 128), fixed keypoints, and ``spec.yaml``."""
    rng = np.random.default_rng(0)
    for sub in ("images", "labels", "keypoints"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.integers(0, 255, (h, w, 3), np.uint8)
        Image.fromarray(img).save(root / "images" / f"{i:06d}.png")
        Image.fromarray((img[..., 0] > 128).astype(np.uint8)).save(root / "labels" / f"{i:06d}.png")
        (root / "keypoints" / f"{i:06d}.json").write_text(json.dumps([[5, 6, 1], [30, 8, 1], [18, 30, 0]]))
    (root / "spec.yaml").write_text(TINY_SET_SPEC)
    return root


@pytest.fixture
def tiny_set(tmp_path) -> Path:
    return make_tiny_set(tmp_path / "tiny")

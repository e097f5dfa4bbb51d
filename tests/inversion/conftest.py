"""Fixtures for the inversion tests: a tiny generator (as a train-gan snapshot too) and a tiny real set."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_tiny_generator, make_tiny_set

# Few steps and ws: the tests check the plumbing, benchmarks/inversion_quality.py the quality.
FAST = ["--steps", "6", "--batch-size", "2", "--device", "cpu", "--quiet"]


@pytest.fixture
def real_set(tmp_path) -> Path:
    """4 random 36x40 (WxH) images with masks in labels/, keypoints in keypoints/, spec.yaml."""
    return make_tiny_set(tmp_path / "real")


@pytest.fixture
def generator_dir(tmp_path) -> Path:
    directory = tmp_path / "G"
    make_tiny_generator().save_pretrained(directory)
    return directory


@pytest.fixture
def snapshot_dir(tmp_path) -> Path:
    """A train-gan snapshot's generator and discriminator folders (no optimiser state)."""
    from datasetgan.gan_training.discriminator import Discriminator, DiscriminatorConfig
    import torch

    snapshot = tmp_path / "run" / "snapshots" / "kimg-000000.004"
    make_tiny_generator().save_pretrained(snapshot / "G_ema")
    torch.manual_seed(1)
    Discriminator(DiscriminatorConfig(img_resolution=32, channel_base=512, channel_max=32)).save_pretrained(
        snapshot / "D")
    (snapshot / "state.json").write_text("{}")
    return snapshot

"""Shared fixtures: tiny seeded models on the CPU, and the shared data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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

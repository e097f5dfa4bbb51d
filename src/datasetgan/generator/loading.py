"""``load_generator``: one entry point for every checkpoint format we read.

- own-format folder (``config.json`` + ``model.safetensors``)
- a ``train-gan`` snapshot folder holding ``G_ema/`` (an own-format folder), or a
  ``train-gan`` run folder: its newest complete snapshot
- NVIDIA ``.pkl`` (stylegan2-ada-pytorch / stylegan3 with the stylegan2 config): ``G_ema``
- rosinality ``.pt`` / ``.pth``: ``g_ema``

Foreign readers return ``(GeneratorConfig, tensors keyed by NVIDIA's names)``;
every format then goes through ``build_generator``, which refuses tensors that
do not fit the architecture, naming the key.
"""

from __future__ import annotations

from pathlib import Path

import torch

from datasetgan.core.errors import CheckpointError
from datasetgan.generator.networks import Generator, build_generator
from datasetgan.generator.nvidia_pickle import load_nvidia_pickle
from datasetgan.generator.own_format import is_own_format
from datasetgan.generator.rosinality import load_rosinality

NVIDIA_SUFFIXES = (".pkl",)
ROSINALITY_SUFFIXES = (".pt", ".pth")


def newest_snapshot(run: Path) -> Path | None:
    """A ``train-gan`` run folder's newest complete snapshot (``snapshots/kimg-*`` with
    ``state.json`` and ``G_ema/``: names are fixed-width, so they sort by image count)."""
    folder = run / "snapshots"
    if not folder.is_dir():
        return None
    done = sorted(p for p in folder.glob("kimg-*")
                  if (p / "state.json").is_file() and is_own_format(p / "G_ema"))
    return done[-1] if done else None


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """Load any supported checkpoint as a ``Generator`` in eval mode on ``device``.

    No code from the file is run. A missing path, a damaged file, an unknown
    format or tensors that do not fit raise ``CheckpointError`` naming the path.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "not found")
    if path.is_dir():
        if is_own_format(path):
            return Generator.from_pretrained(path, device=device)
        if is_own_format(path / "G_ema"):
            return Generator.from_pretrained(path / "G_ema", device=device)
        snapshots = newest_snapshot(path)
        if snapshots is not None:
            return Generator.from_pretrained(snapshots / "G_ema", device=device)
        raise CheckpointError(path, "folder holds neither config.json + model.safetensors, "
                                    "nor a G_ema/ snapshot, nor a train-gan run's snapshots/")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "file is empty")
    suffix = path.suffix.lower()
    if suffix in NVIDIA_SUFFIXES:
        config, tensors = load_nvidia_pickle(path)
    elif suffix in ROSINALITY_SUFFIXES:
        config, tensors = load_rosinality(path)
    elif suffix == ".safetensors" and is_own_format(path.parent):
        return Generator.from_pretrained(path.parent, device=device)
    else:
        raise CheckpointError(path, f"unknown checkpoint format '{suffix or path.name}' (expected an own-format "
                                    "folder, an NVIDIA .pkl or a rosinality .pt/.pth)")
    return build_generator(config, tensors, source=path, device=device)

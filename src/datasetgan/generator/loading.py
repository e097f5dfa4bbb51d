"""``load_generator``: one entry point for every checkpoint format we read.

- own-format folder (``config.json`` + ``model.safetensors``)
- a ``train-gan`` snapshot folder holding ``G_ema/`` (an own-format folder), or a
  ``train-gan`` run folder: its newest complete snapshot
- NVIDIA ``.pkl`` (stylegan2-ada-pytorch / stylegan3 with the stylegan2 config): ``G_ema``
- rosinality ``.pt`` / ``.pth``: ``g_ema``
- the DatasetGAN release's StyleGAN1 ``*.for_g_all.pt`` (told from rosinality's by its keys):
  a ``StyleGAN1Generator``

Foreign readers return ``(GeneratorConfig, tensors keyed by NVIDIA's names)``;
every format then goes through ``build_generator``, which refuses tensors that
do not fit the architecture, naming the key.
"""

from __future__ import annotations

from pathlib import Path

import torch

from datasetgan.core.errors import CheckpointError
from datasetgan.generator.config import AnyGeneratorConfig, StyleGAN1Config
from datasetgan.generator.networks import Generator, build_generator
from datasetgan.generator.nvidia_pickle import load_nvidia_pickle
from datasetgan.generator.own_format import WEIGHTS_NAME, is_own_format, read_pretrained
from datasetgan.generator.rosinality import read_torch_checkpoint, rosinality_from_checkpoint
from datasetgan.generator.stylegan1 import StyleGAN1Generator, build_stylegan1
from datasetgan.generator.stylegan1_release import is_release_stylegan1, release_to_stylegan1

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


def load_torch_checkpoint(path: Path) -> tuple[AnyGeneratorConfig, dict[str, torch.Tensor]]:
    """A ``.pt``/``.pth`` file, read once without running code from it: the release's StyleGAN1
    (keys ``g_mapping.*``, ``g_synthesis.*``) or rosinality's StyleGAN2 (``g_ema``)."""
    data = read_torch_checkpoint(path)
    if is_release_stylegan1(data):
        return release_to_stylegan1(data, path)
    return rosinality_from_checkpoint(data, path)


def build_any(config: AnyGeneratorConfig, tensors: dict[str, torch.Tensor], source: Path,
              device: str | torch.device = "cpu") -> Generator | StyleGAN1Generator:
    """The network ``config`` describes, with ``tensors`` loaded (checked)."""
    if isinstance(config, StyleGAN1Config):
        return build_stylegan1(config, tensors, source=source, device=device)
    return build_generator(config, tensors, source=source, device=device)


def _from_folder(directory: Path, device: str | torch.device) -> Generator | StyleGAN1Generator:
    config, tensors = read_pretrained(directory)
    return build_any(config, tensors, source=directory / WEIGHTS_NAME, device=device)


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator | StyleGAN1Generator:
    """Load any supported checkpoint as a ``Generator`` (a ``StyleGAN1Generator`` for the
    release's StyleGAN1 files and own-format folders of one) in eval mode on ``device``.

    No code from the file is run. A missing path, a damaged file, an unknown
    format or tensors that do not fit raise ``CheckpointError`` naming the path.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "not found")
    if path.is_dir():
        if is_own_format(path):
            return _from_folder(path, device)
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
        config, tensors = load_torch_checkpoint(path)
    elif suffix == ".safetensors" and is_own_format(path.parent):
        return _from_folder(path.parent, device)
    else:
        raise CheckpointError(path, f"unknown checkpoint format '{suffix or path.name}' (expected an own-format "
                                    "folder, an NVIDIA .pkl, a rosinality .pt/.pth or a DatasetGAN-release "
                                    "StyleGAN1 .pt)")
    return build_any(config, tensors, source=path, device=device)

"""``load_generator``: one entry point for every checkpoint format we read.

- own-format folder (``config.json`` + ``model.safetensors``)
- a ``train-gan`` snapshot folder holding ``G_ema/`` (an own-format folder)
- NVIDIA ``.pkl`` (stylegan2-ada-pytorch / stylegan3 with the stylegan2 config): ``G_ema``
- rosinality ``.pt`` / ``.pth``: ``g_ema``

Foreign readers return ``(GeneratorConfig, tensors keyed by NVIDIA's names)``;
every format then goes through ``build_generator``, which refuses tensors that
do not fit the architecture, naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from datasetgan.core.errors import CheckpointError
from datasetgan.generator.config import GeneratorConfig
from datasetgan.generator.networks import Generator

NVIDIA_SUFFIXES = (".pkl",)
ROSINALITY_SUFFIXES = (".pt", ".pth")


def _key_list(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{k}'" for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_state_dict(G: Generator, tensors: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Raise ``CheckpointError`` unless ``tensors`` has exactly ``G``'s keys and shapes."""
    expected = G.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing:
        raise CheckpointError(source, f"missing key(s) {_key_list(missing)} for a generator with "
                                      f"{G.img_resolution}x{G.img_resolution} output")
    if unexpected:
        raise CheckpointError(source, f"unexpected key(s) {_key_list(unexpected)}")
    for key, ref in expected.items():
        t = tensors[key]
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(source, f"key '{key}': expected a tensor, got {type(t).__name__}")
        if tuple(t.shape) != tuple(ref.shape):
            raise CheckpointError(source, f"key '{key}': expected shape {list(ref.shape)}, "
                                          f"got {list(t.shape)}")
        if not (t.is_floating_point()):
            raise CheckpointError(source, f"key '{key}': expected floating-point values, got {t.dtype}")


def build_generator(config: GeneratorConfig, tensors: Mapping[str, torch.Tensor], source: str | Path,
                    device: str | torch.device = "cpu") -> Generator:
    """``Generator(config)`` with ``tensors`` loaded (checked), in eval mode, no grads, on ``device``."""
    G = Generator(config)
    check_state_dict(G, tensors, source)
    G.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()}, strict=True)
    return G.eval().requires_grad_(False).to(device)


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """Load any supported checkpoint as a ``Generator`` in eval mode on ``device``.

    No code from the file is run. A missing path, a damaged file, an unknown
    format or tensors that do not fit raise ``CheckpointError`` naming the path.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "not found")
    if path.is_dir():
        from datasetgan.generator.own_format import is_own_format, load_pretrained
        if is_own_format(path):
            return load_pretrained(path, device=device)
        if is_own_format(path / "G_ema"):
            return load_pretrained(path / "G_ema", device=device)
        raise CheckpointError(path, "folder holds neither config.json + model.safetensors "
                                    "nor a G_ema/ snapshot")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "file is empty")
    suffix = path.suffix.lower()
    if suffix in NVIDIA_SUFFIXES:
        from datasetgan.generator.nvidia_pickle import load_nvidia_pickle
        config, tensors = load_nvidia_pickle(path)
    elif suffix in ROSINALITY_SUFFIXES:
        from datasetgan.generator.rosinality import load_rosinality
        config, tensors = load_rosinality(path)
    elif suffix == ".safetensors" and (path.parent / "config.json").is_file():
        from datasetgan.generator.own_format import load_pretrained
        return load_pretrained(path.parent, device=device)
    else:
        raise CheckpointError(path, f"unknown checkpoint format '{suffix or path.name}' (expected an own-format "
                                    "folder, an NVIDIA .pkl or a rosinality .pt/.pth)")
    return build_generator(config, tensors, source=path, device=device)

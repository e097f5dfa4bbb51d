"""The project's own generator format: ``config.json`` + ``model.safetensors``.

No pickles: the config is plain JSON (with a format marker and version) and
the weights are safetensors, so loading runs no code from the files.

This module knows the files, not the network: it writes a generator's config
and tensors, and reads them back as ``(GeneratorConfig, tensors)`` like the
foreign readers; ``Generator.from_pretrained`` builds the network from them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.fileio import atomic_path, write_json
from datasetgan.core.weights import read_weights
from datasetgan.generator.config import STYLEGAN1, STYLEGAN2, AnyGeneratorConfig, GeneratorConfig, StyleGAN1Config

FORMAT = "datasetgan.generator"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
# "model" in config.json names the network; absent means StyleGAN2 (folders written before it existed).
CONFIG_CLASSES = {STYLEGAN2: GeneratorConfig, STYLEGAN1: StyleGAN1Config}
WEIGHTS_NAME = "model.safetensors"


def is_own_format(directory: str | Path) -> bool:
    """True when ``directory`` holds a ``config.json`` (the weights are checked on load)."""
    return (Path(directory) / CONFIG_NAME).is_file()


def _cpu_state(G: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in G.state_dict().items()}


def save_pretrained(G: torch.nn.Module, directory: str | Path) -> None:
    """Write the ``Generator`` ``G`` to ``directory`` (created if needed). Weights first,
    config last, each atomically: a folder with a ``config.json`` is always complete."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(_cpu_state(G), str(tmp), metadata={"format": FORMAT})
    model = getattr(G.config, "model", STYLEGAN2)
    write_json(directory / CONFIG_NAME, {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        **({"model": model} if model != STYLEGAN2 else {}),   # StyleGAN2 folders stay as they were
        "config": G.config.to_dict(),
        "feature_spec": G.feature_spec.to_dict(),  # informative; recomputed on load
        "fingerprint": generator_fingerprint(G),
    })


def read_config(directory: str | Path) -> AnyGeneratorConfig:
    """The config stored in ``directory/config.json``: a ``GeneratorConfig``, or a
    ``StyleGAN1Config`` where its ``"model"`` says ``"stylegan1"``."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(path, "file not found (expected a datasetgan generator folder)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(path, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(path, f"not a datasetgan generator config (missing \"format\": \"{FORMAT}\")")
    version = data.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(path, f"format version {version!r} is not supported "
                                    f"(this datasetgan reads up to {FORMAT_VERSION})")
    if not isinstance(data.get("config"), dict):
        raise CheckpointError(path, "key 'config': expected a mapping")
    model = data.get("model", STYLEGAN2)
    if model not in CONFIG_CLASSES:
        raise CheckpointError(path, f"key 'model': {model!r} is not a generator this datasetgan builds "
                                    f"(expected one of {', '.join(CONFIG_CLASSES)})")
    try:
        return CONFIG_CLASSES[model].from_dict(data["config"])
    except UserError as exc:
        raise CheckpointError(path, f"key 'config': {exc}") from None


def read_pretrained(directory: str | Path) -> tuple[AnyGeneratorConfig, dict[str, torch.Tensor]]:
    """The config and the (unchecked) tensors of an own-format folder; ``Generator.from_pretrained``
    checks that they fit and builds the network."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(directory, "not found (expected a folder with config.json and model.safetensors)")
    return read_config(directory), read_weights(directory / WEIGHTS_NAME)


def generator_fingerprint(G: torch.nn.Module) -> str:
    """sha256 over a ``Generator``'s config (canonical JSON) and every tensor's name, dtype, shape and bytes.

    Stable across save/load and devices; any change to a weight, buffer or
    config field changes it.
    """
    h = hashlib.sha256()
    h.update(json.dumps(G.config.to_dict(), sort_keys=True).encode("utf-8"))
    state = G.state_dict()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"\n{name}|{str(t.dtype).removeprefix('torch.')}|{list(t.shape)}|".encode("utf-8"))
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()

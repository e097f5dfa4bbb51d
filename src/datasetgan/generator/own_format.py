"""The project's own generator format: ``config.json`` + ``model.safetensors``.

No pickles: the config is plain JSON (with a format marker and version) and
the weights are safetensors, so loading runs no code from the files.
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
from datasetgan.generator.config import GeneratorConfig
from datasetgan.generator.networks import Generator

FORMAT = "datasetgan.generator"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def is_own_format(directory: str | Path) -> bool:
    """True when ``directory`` holds a ``config.json`` (the weights are checked on load)."""
    return (Path(directory) / CONFIG_NAME).is_file()


def _cpu_state(G: Generator) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in G.state_dict().items()}


def save_pretrained(G: Generator, directory: str | Path) -> None:
    """Write ``G`` to ``directory`` (created if needed). Weights first, config last,
    each atomically: a folder with a ``config.json`` is always complete."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(_cpu_state(G), str(tmp), metadata={"format": FORMAT})
    write_json(directory / CONFIG_NAME, {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": G.config.to_dict(),
        "feature_spec": G.feature_spec.to_dict(),  # informative; recomputed on load
        "fingerprint": generator_fingerprint(G),
    })


def read_config(directory: str | Path) -> GeneratorConfig:
    """The ``GeneratorConfig`` stored in ``directory/config.json``."""
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
    try:
        return GeneratorConfig.from_dict(data["config"])
    except UserError as exc:
        raise CheckpointError(path, f"key 'config': {exc}") from None


def load_pretrained(directory: str | Path, device: str | torch.device = "cpu") -> Generator:
    """Rebuild a generator from an own-format folder, in eval mode on ``device``."""
    from datasetgan.generator.loading import build_generator

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(directory, "not found (expected a folder with config.json and model.safetensors)")
    config = read_config(directory)
    tensors = read_weights(directory / WEIGHTS_NAME)
    return build_generator(config, tensors, source=directory / WEIGHTS_NAME, device=device)


def generator_fingerprint(G: Generator) -> str:
    """sha256 over the config (canonical JSON) and every tensor's name, dtype, shape and bytes.

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

"""Resumable training state, written once for every training loop.

A training loop that can stop and carry on keeps three kinds of state besides
its weights, and each goes to named tensors plus JSON-ready metadata:

- an optimiser (``torch.optim``, Adam and the like): ``optimizer_tensors``
  flattens its per-parameter state to ``<prefix>.<param index>.<name>``
  tensors and returns its param groups as JSON; ``load_optimizer`` puts
  both back.
- torch's global random generators (the CPU one, and the training device's
  CUDA one): ``rng_tensors`` as uint8 tensors ``cpu`` and ``cuda``,
  ``restore_rng`` back, so that a resumed run draws the numbers an
  uninterrupted one would have drawn. numpy's and Python's global generators
  are not captured: no training loop draws from them (each takes a seeded
  generator of its own).
- counters and settings: JSON.

``save_state`` writes tensors and metadata to one safetensors file (the
metadata as JSON in its header), ``load_state`` reads them back; a missing,
truncated or foreign file is a ``CheckpointError`` naming it. ``atomic_dir``
writes a folder of several such files (a train-gan snapshot, a segmenter
run's ``state/``). Both appear under their final name complete or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from datasetgan.core.errors import CheckpointError
from datasetgan.core.fileio import atomic_path
from datasetgan.core.weights import read_weights

# The safetensors header entry that holds a state file's JSON metadata.
METADATA_KEY = "state"


def prefixed(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` with ``prefix`` put before every name (``"model."`` + ``"conv.weight"``)."""
    return {prefix + name: t for name, t in tensors.items()}


def unprefixed(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors whose name starts with ``prefix``, with it removed (``prefixed``'s inverse)."""
    return {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}


# Optimisers -----------------------------------------------------------------

def optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """``opt``'s per-parameter state as CPU tensors ``<prefix>.<i>.<name>`` (Adam: ``step``,
    ``exp_avg``, ``exp_avg_sq``; a number becomes a 0-d tensor), and ``{"param_groups": ...}``
    (learning rates, betas, which parameters: plain JSON)."""
    sd = opt.state_dict()
    tensors = {}
    for i, st in sd["state"].items():
        for name, value in st.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{prefix}.{i}.{name}"] = t.detach().cpu().contiguous()
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer(opt: torch.optim.Optimizer, prefix: str, tensors: Mapping[str, torch.Tensor],
                   meta: Mapping[str, Any], source: str | Path) -> None:
    """Put back what ``optimizer_tensors(prefix, ...)`` gave: the ``<prefix>.*`` entries of
    ``tensors`` and ``meta``. A state of another network is a ``CheckpointError`` naming ``source``."""
    state: dict[int, dict[str, Any]] = {}
    for key, t in unprefixed(prefix + ".", tensors).items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = t
    try:
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(source, f"optimiser state {prefix!r} does not fit ({exc})") from None
    # Saved moments are contiguous; a channels-last parameter (train-gan's D on CUDA) needs its
    # moments in its own layout, or the fused Adam kernel refuses the step.
    for group in opt.param_groups:
        for param in group["params"]:
            moments = opt.state.get(param, {})
            for name, value in moments.items():
                if value.shape == param.shape and value.stride() != param.stride():
                    moments[name] = torch.empty_like(param, dtype=value.dtype).copy_(value)


# Random generators ----------------------------------------------------------

def rng_tensors(device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """torch's global generator states as uint8 tensors: ``cpu``, and on a CUDA ``device``
    that device's ``cuda``."""
    device = torch.device(device)
    out = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def restore_rng(tensors: Mapping[str, torch.Tensor], device: torch.device | str = "cpu") -> None:
    """Set torch's global generators to what ``rng_tensors`` captured (other entries are
    ignored). A CUDA state is restored on a CUDA ``device`` only; ``cuda.<index>`` entries
    (one per device, as segmenter states of earlier versions hold) go to their devices."""
    device = torch.device(device)
    torch.set_rng_state(tensors["cpu"])
    if device.type != "cuda":
        return
    if "cuda" in tensors:
        torch.cuda.set_rng_state(tensors["cuda"], device)
    for key, state in tensors.items():
        if key.startswith("cuda.") and key[5:].isdigit():
            torch.cuda.set_rng_state(state, int(key[5:]))


# Files and folders ------------------------------------------------------------

def save_state(path: str | Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any] | None = None) -> None:
    """Write ``tensors`` (any device; stored as CPU copies) and ``meta`` (JSON-ready; kept in
    the header) to the safetensors file ``path``, atomically."""
    cpu = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    header = {METADATA_KEY: json.dumps(meta)} if meta is not None else None
    with atomic_path(path) as tmp:
        save_file(cpu, str(tmp), metadata=header)


def load_state(path: str | Path, format: str | None = None,
               device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors (on ``device``) and metadata (``{}`` when saved without) of a ``save_state``
    file. With ``format``, the metadata must be a mapping whose ``"format"`` is ``format``. A
    missing, truncated or damaged file, or one of another format, is a ``CheckpointError`` naming it."""
    path = Path(path)
    tensors = read_weights(path, device)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = (f.metadata() or {}).get(METADATA_KEY)
        meta = json.loads(header) if header is not None else {}
    except (SafetensorError, OSError, ValueError) as exc:  # json's errors are ValueErrors too
        raise CheckpointError(path, f"damaged training state metadata ({exc})") from None
    if format is not None and (not isinstance(meta, dict) or meta.get("format") != format):
        raise CheckpointError(path, f"not a {format} state (its metadata has no \"format\": \"{format}\")")
    if not isinstance(meta, dict):
        raise CheckpointError(path, "damaged training state metadata (not a JSON object)")
    return tensors, meta


@contextlib.contextmanager
def atomic_dir(final: str | Path, tmp: str | Path | None = None) -> Iterator[Path]:
    """Yield a temporary folder to fill; when the block ends without error, it replaces
    ``final`` (an older ``final`` is removed), so that ``final`` is complete or absent.

    ``tmp`` (default ``.tmp-<name>`` beside ``final``) may exist already, holding files that
    other processes wrote into it (train-gan's ranks). On error it is removed.
    """
    final = Path(final)
    tmp = Path(tmp) if tmp is not None else final.with_name(f".tmp-{final.name}")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)

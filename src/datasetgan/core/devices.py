"""Device selection with a clear error instead of a CUDA traceback."""

from __future__ import annotations

from typing import Literal

import torch

from datasetgan.core.errors import UserError


def resolve_device(name: str | None, flag: str = "--device") -> torch.device:
    """``None``/``"auto"`` picks CUDA when present; ``"cuda"`` without a GPU is an error."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"{flag} {name!r}: not a device name (expected cpu, cuda or cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{flag} {name}: no CUDA GPU is available on this machine; use {flag} cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"{flag} {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    return device


def adam_kwargs(device: torch.device) -> dict:
    """``torch.optim.Adam`` implementation flags for ``device``: the fused kernel (one
    pass over all parameters; on a CPU several times faster than the default loop) where
    torch has it, the multi-tensor loop elsewhere. Same algorithm either way."""
    return {"fused": True} if device.type in ("cpu", "cuda") else {"foreach": True}


# The one spelling of ``--precision`` in every command. What ``auto`` means is each stage's
# choice (its help says): bfloat16 where it is both fast and safe there, float32 elsewhere.
Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")
# Spellings of earlier releases (train-gan --precision bf16/fp32), accepted with a warning.
OLD_PRECISIONS = {"bf16": "bfloat16", "fp32": "float32"}

"""Latents from seeds, and rendering batches of them.

Seed ``s`` means what it means in NVIDIA's ``gen_images.py``:
``z = np.random.RandomState(s).randn(z_dim)``, so a seed gives the same image here and there.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from datasetgan.generator.networks import Generator


def z_from_seeds(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """``[len(seeds), z_dim]`` float32 (CPU): row i is ``RandomState(seeds[i]).randn(z_dim)``."""
    rows = [np.random.RandomState(int(s)).randn(z_dim) for s in seeds]
    if not rows:
        return torch.zeros([0, z_dim], dtype=torch.float32)
    return torch.from_numpy(np.stack(rows).astype(np.float32))


@torch.no_grad()
def ws_from_seeds(G: Generator, seeds: Sequence[int], truncation_psi: float = 1.0,
                  truncation_cutoff: int | None = None, c: torch.Tensor | None = None) -> torch.Tensor:
    """``[len(seeds), num_ws, w_dim]`` on ``G``'s device, via ``G.mapping``."""
    device = next(G.parameters()).device
    z = z_from_seeds(seeds, G.z_dim).to(device)
    return G.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                     update_w_avg=False)


@torch.no_grad()
def render_seeds(G: Generator, seeds: Sequence[int], truncation_psi: float = 1.0,
                 truncation_cutoff: int | None = None, noise_mode: str = "const", batch_size: int = 8,
                 c: torch.Tensor | None = None, return_features: bool = False):
    """Yield ``(seeds_batch, z, ws, img[, features])`` per batch of at most ``batch_size`` seeds.

    ``z [B, z_dim]``, ``ws [B, num_ws, w_dim]``, ``img [B, C, R, R]`` (float32,
    on ``G``'s device). Each sample depends only on its seed (and ``c``), not on
    the batch it falls in. ``c`` is one label ``[c_dim]`` used for every sample.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(G.parameters()).device
    for start in range(0, len(seeds), batch_size):
        batch = list(seeds[start:start + batch_size])
        z = z_from_seeds(batch, G.z_dim).to(device)
        cb = None if c is None else c.to(device).reshape(1, -1).repeat(len(batch), 1)
        ws = G.mapping(z, cb, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                       update_w_avg=False)
        out = G.synthesis(ws, noise_mode=noise_mode, return_features=return_features)
        if return_features:
            yield (batch, z, ws, *out)
        else:
            yield batch, z, ws, out

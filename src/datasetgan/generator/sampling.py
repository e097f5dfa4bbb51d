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

"""Fit the tiny "red spot" generator used by the keypoint sanity test.

A randomly initialised generator has no semantics, so a keypoint on its
images (the peak of some colour) is not something a per-pixel interpreter can
recognise locally from 8 examples. This script gives a tiny StyleGAN2 the
kind of semantics a trained generator has, for one landmark: it is fitted by
plain regression (no discriminator) so that ``z`` maps to the image of a red
Gaussian spot (sigma ``SPOT_SIGMA`` px) at a ``z``-dependent position on a
``z``-dependent, never red, uniform background. The keypoint test then
labels the spot's centre from the rendered pixels alone (it never uses the
positions below).

Deterministic on the CPU with one thread (seeded initialisation and
latents); CPU kernels of another torch build may differ in the last bits,
so ``test_spot_generator_refit`` (slow) re-runs the fit and checks the
result passes the same sanity test rather than comparing bytes.

    PYTHONPATH=. OMP_NUM_THREADS=1 python tests/assets/make_spot_generator.py

writes ``tests/assets/spot_generator/`` (own format, 286 kB; the fit takes about 4 min).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ASSET = Path(__file__).resolve().parent / "spot_generator"
RES = 32
SPOT_SIGMA = 2.0      # px
STEPS = 3000
BATCH = 16
LR = 3e-3
SPOT_WEIGHT = 10.0    # the loss counts pixels of the spot (1 + 10 * spot) more


def targets(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``z [N, z_dim]`` -> target images ``[N, 3, R, R]`` in [-1, 1] and spot maps ``[N, R, R]``."""
    zn = z / z.square().mean(1, keepdim=True).sqrt()
    cx = 15.5 + 11 * torch.tanh(0.8 * zn[:, 0])
    cy = 15.5 + 11 * torch.tanh(0.8 * zn[:, 1])
    t = torch.tanh(zn[:, 2:5])
    background = torch.stack([-0.6 + 0.3 * t[:, 0], 0.4 * t[:, 1], 0.4 * t[:, 2]], 1)
    yy, xx = torch.meshgrid(torch.arange(RES).float(), torch.arange(RES).float(), indexing="ij")
    spot = torch.exp(-((xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2) / (2 * SPOT_SIGMA ** 2))
    red = torch.tensor([1.0, -0.8, -0.8])
    img = background[:, :, None, None] * (1 - spot[:, None]) + red[None, :, None, None] * spot[:, None]
    return img, spot


def fit(steps: int = STEPS, seed: int = 0, log=print):
    """The fitted generator (eval mode, CPU)."""
    from tests.conftest import make_tiny_generator

    torch.set_num_threads(1)
    G = make_tiny_generator(seed=seed, mapping_lr_multiplier=1.0).train()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.zero_()
    latents = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(G.parameters(), lr=LR, betas=(0.0, 0.99))
    t0 = time.time()
    for step in range(1, steps + 1):
        z = torch.randn([BATCH, G.z_dim], generator=latents)
        target, spot = targets(z)
        loss = ((G(z, noise_mode="const") - target) ** 2 * (1 + SPOT_WEIGHT * spot[:, None])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0 or step == steps:
            log(f"step {step}: weighted mse {loss.item():.4f} ({time.time() - t0:.0f} s)")
    G.eval()
    with torch.no_grad():  # as make_tiny_generator: the mean w of 256 seeded z
        z = torch.randn([256, G.z_dim], generator=torch.Generator().manual_seed(seed))
        G.mapping.w_avg.copy_(G.mapping(z, update_w_avg=False)[:, 0].mean(dim=0))
    return G


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ASSET
    fit().save_pretrained(out)
    print(f"wrote {out}")

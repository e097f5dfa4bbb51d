"""Pivotal tuning (Roich et al., 2021): the generator moves to the images, the latents stay.

Once every image has its latents (the "pivots"), a copy of the generator's
synthesis network is fine-tuned briefly with the same reconstruction loss on
the images at their pivots, a batch of images per step in a fixed order. What
an image's features then describe is closer to the real image, at the price of
a generator of its own: ``invert --tune-generator`` writes it to
``OUT/generator/`` and records it as the samples' generator, so that every
later stage uses it (and refuses the original by its fingerprint).
"""

from __future__ import annotations

import copy
from typing import Callable

import torch

from datasetgan.core.devices import adam_kwargs
from datasetgan.generator import Generator
from datasetgan.inversion.config import InversionConfig
from datasetgan.inversion.losses import ReconstructionLoss


def tune_generator(G: Generator, ws: torch.Tensor, noise: dict[str, torch.Tensor], images: torch.Tensor,
                   loss: ReconstructionLoss, config: InversionConfig,
                   on_step: Callable[[float], None] | None = None) -> Generator:
    """A copy of ``G`` whose synthesis weights are tuned ``config.tune_steps`` Adam steps on
    ``images [N, C, R, R]`` (in [-1, 1], on G's device) rendered from ``ws [N, num_ws, w_dim]``
    with ``noise`` ``{layer: [N, R, R]}`` (empty: the generator's own noise). ``G`` is unchanged.
    """
    device = images.device
    tuned = copy.deepcopy(G).requires_grad_(False)
    params = list(tuned.synthesis.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=config.tune_lr, **adam_kwargs(device))
    n = images.shape[0]
    batches = [slice(i, min(i + config.batch_size, n)) for i in range(0, n, config.batch_size)]
    targets = [loss.target(images[b]) for b in batches]
    ws = ws.to(device)
    noise = {k: v.to(device) for k, v in noise.items()}
    for step in range(config.tune_steps):
        k = step % len(batches)
        b = batches[k]
        img = tuned.synthesis(ws[b], noise_mode="const", noise={name: v[b] for name, v in noise.items()})
        value = loss(img, targets[k]).mean()
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        if on_step is not None:
            on_step(float(value.detach()))
    return tuned.eval().requires_grad_(False)

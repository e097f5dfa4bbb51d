"""The optimisation: NVIDIA's projector's recipe, in W or W+, a batch of images at a time.

For each image, ``w`` starts at the mean w (or the best of some random ws) and
Adam minimises the reconstruction loss, as in stylegan2-ada-pytorch's
``projector.py``: the learning rate ramps up over the first 5% of the steps and
down (cosine) over the last 25%; Gaussian noise of a decaying scale (a fraction
of the ws' spread) is added to ``w`` in every step, so that early steps explore
and late ones settle; the noise maps are optimised as well, renormalised after
each step and penalised for any autocorrelation at every scale, so that they
stay noise instead of painting the image. W+ (one ``w`` per layer) reaches
closer reconstructions than W, which NVIDIA's projector optimises.

Images in a batch do not interact: the loss is a sum of per-image losses and
Adam works element-wise, so an image's result depends on its batch only through
the random ``w`` noise, which is drawn from the batch's own seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from datasetgan.core.devices import adam_kwargs
from datasetgan.generator import Generator
from datasetgan.inversion.config import InversionConfig
from datasetgan.inversion.losses import ReconstructionLoss, Target, noise_penalty, normalise_noise


@dataclass(frozen=True)
class WStatistics:
    """Of ``config.w_samples`` random ws: their mean ``[w_dim]``, their spread (the root mean
    squared distance to the mean, NVIDIA's ``w_std``) and the first ``start_candidates`` ``[K, w_dim]``."""

    mean: torch.Tensor
    std: float
    candidates: torch.Tensor


@dataclass
class Inverted:
    """A batch's result: ``ws [B, num_ws, w_dim]``, noise maps ``{layer: [B, R, R]}`` (empty when
    not optimised) and the final loss ``[B]``; all on the CPU."""

    ws: torch.Tensor
    noise: dict[str, torch.Tensor]
    loss: torch.Tensor


@torch.no_grad()
def w_statistics(G: Generator, config: InversionConfig, device: torch.device) -> WStatistics:
    """Map ``config.w_samples`` seeded z (``torch.randn``, seed ``config.seed``, on the CPU)."""
    z = torch.randn([config.w_samples, G.z_dim], generator=torch.Generator().manual_seed(config.seed))
    ws = torch.cat([G.mapping(chunk.to(device), None, update_w_avg=False)[:, 0] for chunk in z.split(1000)])
    mean = ws.mean(dim=0)
    std = float(((ws - mean).square().sum() / len(ws)).sqrt())
    return WStatistics(mean, std, ws[:config.start_candidates].clone())


def learning_rate(t: float, config: InversionConfig) -> float:
    """The rate at ``t`` = step / steps in [0, 1): NVIDIA's ramp up, then cosine down."""
    ramp = min(1.0, (1.0 - t) / config.lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return config.lr * ramp * min(1.0, t / config.lr_rampup)


def noise_buffers(G: Generator) -> dict[str, torch.Tensor]:
    """The generator's own noise maps ``{layer: [R, R]}``, in ``noise_layers`` order."""
    buffers = dict(G.synthesis.named_buffers())
    return {name: buffers[f"{name}.noise_const"] for name, _ in G.synthesis.noise_layers}


@torch.no_grad()
def starting_ws(G: Generator, target: Target, loss: ReconstructionLoss, config: InversionConfig,
                stats: WStatistics) -> torch.Tensor:
    """``[B, w_dim]``: the mean w, or per image the candidate w whose image (with the generator's
    own noise) has the lowest loss."""
    n = target.images.shape[0]
    if config.start == "w_avg":
        return stats.mean.expand(n, -1).clone()
    scores = []
    for chunk in stats.candidates.split(max(config.batch_size, 16)):
        img = G.synthesis(chunk[:, None].expand(-1, G.num_ws, -1), noise_mode="const")
        scores.append(torch.stack([loss(img, target.select(slice(b, b + 1))) for b in range(n)], dim=1))
    return stats.candidates[torch.cat(scores).argmin(dim=0)].clone()


def invert_batch(G: Generator, images: torch.Tensor, loss: ReconstructionLoss, config: InversionConfig,
                 stats: WStatistics, seed: int, on_step: Callable[[float], None] | None = None) -> Inverted:
    """Find the latents of ``images [B, C, R, R]`` (float, in [-1, 1], on G's device).

    ``seed`` seeds the batch's ``w`` noise; ``on_step(loss)`` is called after every step
    with the batch's mean loss.
    """
    device = images.device
    n = images.shape[0]
    target = loss.target(images)
    start = starting_ws(G, target, loss, config, stats)
    w_opt = start[:, None, :].repeat(1, G.num_ws if config.space == "wplus" else 1, 1).requires_grad_(True)
    names = list(noise_buffers(G))
    noise = [buf.expand(n, -1, -1).clone() for buf in noise_buffers(G).values()]
    params = [w_opt]
    if config.optimise_noise and noise:
        params += [v.requires_grad_(True) for v in noise]
    opt = torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.999), **adam_kwargs(device))
    gen = torch.Generator(device).manual_seed(seed)
    for step in range(config.steps):
        t = step / config.steps
        scale = stats.std * config.w_noise * max(0.0, 1.0 - t / config.w_noise_ramp) ** 2
        for group in opt.param_groups:
            group["lr"] = learning_rate(t, config)
        w_noise = torch.randn(w_opt.shape, generator=gen, device=device) * scale
        img = G.synthesis((w_opt + w_noise).expand(-1, G.num_ws, -1), noise_mode="const",
                          noise=dict(zip(names, noise)))
        per_image = loss(img, target)
        total = per_image.sum()
        if len(params) > 1 and config.noise_weight > 0:
            total = total + config.noise_weight * noise_penalty(noise).sum()
        # Gradients for the latents only (the generator's weights may require grad in a caller's copy).
        for p, g in zip(params, torch.autograd.grad(total, params)):
            p.grad = g
        opt.step()
        if len(params) > 1:
            normalise_noise(noise)
        if on_step is not None:
            on_step(float(per_image.detach().mean()))
    with torch.no_grad():
        ws = w_opt.detach().expand(-1, G.num_ws, -1).contiguous()
        maps = {name: v.detach() for name, v in zip(names, noise)} if len(params) > 1 else {}
        final = loss(G.synthesis(ws, noise_mode="const", noise=maps), target)
    return Inverted(ws.cpu(), {k: v.cpu() for k, v in maps.items()}, final.cpu())

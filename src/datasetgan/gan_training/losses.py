"""StyleGAN2 losses (NVIDIA's ``StyleGAN2Loss``), one function per training phase.

- ``Gmain``: non-saturating logistic loss ``softplus(-D(aug(G(z))))``.
- ``Greg``: path-length regularisation (lazy, every ``pl_interval`` steps).
- ``Dmain``: ``softplus(D(aug(G(z)))) + softplus(-D(aug(x)))``.
- ``Dreg``: R1 ``gamma / 2 * |grad_x D(aug(x))|^2`` on reals (lazy, every ``r1_interval`` steps).

Each function calls ``backward`` itself (scaled by ``gain``) and returns
detached scalars for the statistics, so nothing syncs with the host.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from datasetgan.gan_training.augment import AdaController


@dataclass
class LossContext:
    """What the phases share: networks, augmentation, precision and hyper-parameters."""

    G: torch.nn.Module
    D: torch.nn.Module                     # possibly compiled; used where no double backward is needed
    D_eager: torch.nn.Module               # for R1 (double backward)
    augment: Callable[[torch.Tensor], torch.Tensor] | None
    ada: AdaController | None
    r1_gamma: float
    style_mixing: float = 0.9
    pl_weight: float = 0.0
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    autocast_dtype: torch.dtype | None = None
    channels_last: bool = False
    pl_mean: torch.Tensor | None = None     # running mean path length (state, saved in checkpoints)
    synthesis: Callable | None = None       # compiled G.synthesis (None: eager); not for double backward

    def autocast(self, device: torch.device):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def run_G(self, z: torch.Tensor, update_w_avg: bool = True, eager: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``z [N, z_dim]`` -> ``(img [N, 3, R, R], ws [N, num_ws, w_dim])`` with style mixing.

        As NVIDIA: one crossover layer per batch, drawn in [1, num_ws); each image mixes
        with probability ``style_mixing``.
        """
        G = self.G
        ws = G.mapping(z, None, update_w_avg=update_w_avg)
        if self.style_mixing > 0:
            num_ws = ws.shape[1]
            cutoff = torch.randint(1, num_ws, (), device=ws.device)
            cutoff = torch.where(torch.rand([], device=ws.device) < self.style_mixing, cutoff,
                                 torch.full_like(cutoff, num_ws))
            ws2 = G.mapping(torch.randn_like(z), None, update_w_avg=False)
            layer = torch.arange(num_ws, device=ws.device)[None, :, None]
            ws = torch.where(layer < cutoff, ws, ws2)
        synthesis = G.synthesis if (eager or self.synthesis is None) else self.synthesis
        img = synthesis(ws, noise_mode="random")
        return img, ws

    def run_D(self, img: torch.Tensor, eager: bool = False) -> torch.Tensor:
        """``img [N, 3, R, R]`` -> logits ``[N, 1]`` (float32) after augmentation."""
        if self.augment is not None:
            img = self.augment(img)
        if self.channels_last:
            img = img.contiguous(memory_format=torch.channels_last)
        return (self.D_eager if eager else self.D)(img).float()


def g_main(ctx: LossContext, z: torch.Tensor, gain: float) -> torch.Tensor:
    """Generator step: minimise ``softplus(-D(G(z)))``; returns the mean loss (detached)."""
    with ctx.autocast(z.device):
        img, _ = ctx.run_G(z)
        logits = ctx.run_D(img)
        loss = F.softplus(-logits).mean()
    loss.mul(gain).backward()
    return loss.detach()


def g_pl(ctx: LossContext, z: torch.Tensor, gain: float) -> torch.Tensor:
    """Path-length regularisation on ``N / pl_batch_shrink`` samples; returns the penalty (detached)."""
    n = max(z.shape[0] // ctx.pl_batch_shrink, 1)
    # Double backward through the generator: kept in float32 for stability.
    img, ws = ctx.run_G(z[:n], eager=True)
    noise = torch.randn_like(img) / np.sqrt(img.shape[2] * img.shape[3])
    grads, = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    lengths = grads.square().sum(2).mean(1).sqrt()
    pl_mean = ctx.pl_mean.lerp(lengths.mean().detach(), ctx.pl_decay)
    ctx.pl_mean.copy_(pl_mean)
    penalty = (lengths - pl_mean).square()
    (img[:, 0, 0, 0] * 0 + penalty * ctx.pl_weight).mean().mul(gain).backward()
    return penalty.mean().detach()


def d_main(ctx: LossContext, real: torch.Tensor, z: torch.Tensor, gain: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Discriminator step without regularisation; returns ``(loss_fake, loss_real)`` (detached)."""
    with torch.no_grad(), ctx.autocast(z.device):
        fake, _ = ctx.run_G(z, update_w_avg=False)
    with ctx.autocast(z.device):
        fake_logits = ctx.run_D(fake)
        loss_fake = F.softplus(fake_logits).mean()
    loss_fake.mul(gain).backward()
    with ctx.autocast(z.device):
        real_logits = ctx.run_D(real)
        loss_real = F.softplus(-real_logits).mean()
    loss_real.mul(gain).backward()
    if ctx.ada is not None:
        ctx.ada.accumulate(real_logits)
    return loss_fake.detach(), loss_real.detach()


def d_r1(ctx: LossContext, real: torch.Tensor, gain: float) -> torch.Tensor:
    """Lazy R1 on reals (through the augmentation, as NVIDIA); returns the mean penalty (detached)."""
    x = real.detach().requires_grad_(True)
    # Double backward: float32 and the eager (uncompiled) discriminator.
    logits = ctx.run_D(x, eager=True)
    grads, = torch.autograd.grad(logits.sum(), x, create_graph=True)
    penalty = grads.square().sum([1, 2, 3])
    (logits[:, 0] * 0 + penalty * (ctx.r1_gamma / 2)).mean().mul(gain).backward()
    return penalty.mean().detach()

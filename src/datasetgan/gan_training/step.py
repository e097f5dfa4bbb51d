"""One training step (NVIDIA's phase order), shared by the loop and the speed benchmark."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch

from datasetgan.gan_training import distributed as ddp
from datasetgan.gan_training.augment import AdaController
from datasetgan.gan_training.config import GanTrainingConfig
from datasetgan.gan_training.losses import LossContext, d_main, d_r1, g_main, g_pl
from datasetgan.generator import Generator


@dataclass
class StepParts:
    """Everything a step touches. ``cfg`` must be resolved (gamma, ema_kimg set)."""

    cfg: GanTrainingConfig
    ctx: LossContext
    G: Generator
    G_ema: Generator
    D: torch.nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    ada: AdaController | None
    info: ddp.DistInfo
    chunk: int                       # per-process chunk (gradient accumulation)

    def __post_init__(self) -> None:
        self.g_params = list(self.G.parameters())
        self.d_params = list(self.D.parameters())
        self.g_reg = self.cfg.pl_interval if self.cfg.pl_weight > 0 else None


def _nullphase(name: str) -> ContextManager:
    return contextlib.nullcontext()


def optimizer_step(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], info: ddp.DistInfo) -> None:
    """Average gradients over processes, replace NaN/inf (as NVIDIA), step."""
    ddp.all_reduce_grads(params, info)
    for param in params:
        if param.grad is not None:
            torch.nan_to_num_(param.grad, nan=0.0, posinf=1e5, neginf=-1e5)
    opt.step()


def ema_update(G_ema: Generator, G: Generator, beta: float) -> None:
    """``G_ema = lerp(G, G_ema, beta)`` for parameters (one fused op); buffers copied."""
    with torch.no_grad():
        torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1.0 - beta)
        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)


def train_step(p: StepParts, real: torch.Tensor, step: int, cur_nimg: int,
               add: Callable[[str, torch.Tensor], None],
               phase: Callable[[str], ContextManager] = _nullphase) -> int:
    """Run one step on this process's ``real [B_rank, 3, R, R]``; returns the new image count.

    ``step`` is the index of this step (0-based); ``phase(name)`` wraps each phase (for timing).
    """
    cfg, ctx, G, D, info = p.cfg, p.ctx, p.G, p.D, p.info
    n = real.shape[0]
    n_chunks = n // p.chunk
    z_g = torch.randn([n, G.z_dim], device=real.device)
    z_d = torch.randn([n, G.z_dim], device=real.device)

    with phase("Gmain"):
        G.requires_grad_(True)
        p.opt_G.zero_grad(set_to_none=True)
        for zc in z_g.split(p.chunk):
            add("Loss/G/loss", g_main(ctx, zc, gain=1 / n_chunks))
        optimizer_step(p.opt_G, p.g_params, info)
    if p.g_reg and step % p.g_reg == 0:
        with phase("Greg"):
            p.opt_G.zero_grad(set_to_none=True)
            for zc in torch.randn_like(z_g).split(p.chunk):
                add("Loss/pl_penalty", g_pl(ctx, zc, gain=p.g_reg / n_chunks))
            optimizer_step(p.opt_G, p.g_params, info)
    G.requires_grad_(False)

    with phase("Dmain"):
        D.requires_grad_(True)
        p.opt_D.zero_grad(set_to_none=True)
        for rc, zc in zip(real.split(p.chunk), z_d.split(p.chunk)):
            lf, lr = d_main(ctx, rc, zc, gain=1 / n_chunks)
            add("Loss/D/fake", lf)
            add("Loss/D/real", lr)
        optimizer_step(p.opt_D, p.d_params, info)
    if cfg.gamma > 0 and step % cfg.r1_interval == 0:
        with phase("Dreg"):
            p.opt_D.zero_grad(set_to_none=True)
            for rc in real.split(p.chunk):
                add("Loss/r1_penalty", d_r1(ctx, rc, gain=cfg.r1_interval / n_chunks))
            optimizer_step(p.opt_D, p.d_params, info)
    D.requires_grad_(False)

    cur_nimg += cfg.batch_size
    with phase("ema+ada"):
        ema_nimg = cfg.ema_kimg * 1000
        if cfg.ema_rampup:
            ema_nimg = min(ema_nimg, cur_nimg * cfg.ema_rampup)
        ema_update(p.G_ema, G, 0.5 ** (cfg.batch_size / max(ema_nimg, 1e-8)))
        if p.ada is not None and (step + 1) % cfg.ada_interval == 0:
            p.ada.update(cfg.batch_size, reduce=lambda t: ddp.all_reduce_sum(t, info))
    return cur_nimg

"""train-gan speed: images/s of our training step vs a straightforward one, side by side.

Both run the same networks (our Generator and Discriminator), the same losses,
lazy R1 every 16 steps and ADA at the same p; they differ in how the step is
executed:

- ours: the loop's ``train_step``: bf16 autocast and channels_last on CUDA,
  fused/foreach Adam, one fused EMA op, geometric augmentations composed into
  one matrix and one ``grid_sample`` (colour ones into one 4x4 matrix), no
  host syncs inside the step (losses and ADA statistics stay on the device).
- straightforward: fp32, contiguous tensors, plain Adam, a per-parameter EMA
  loop, each augmentation its own resampling / colour op, and the usual
  ``loss.item()`` logging and ADA update with host syncs every step.

Run: ``python benchmarks/train_gan_speed.py`` (CPU: a small 32x32 config);
on a GPU ``--preset h100`` is the issue's 64x64 config (channel base 8192,
max 256, mapping depth 2, batch 256, ADA). Prints images/s of both, their
ratio, and per-phase times (with a device sync around each phase, so the
phase times add up to a little more than the un-synced step).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections import defaultdict

import torch
import torch.nn.functional as F

from datasetgan.gan_training.augment import AdaController, AdaptiveAugment
from datasetgan.gan_training.config import GanTrainingConfig, resolve
from datasetgan.gan_training.distributed import DistInfo
from datasetgan.gan_training.loop import _autocast_dtype, build_networks, make_optimizer
from datasetgan.gan_training.losses import LossContext
from datasetgan.gan_training.step import StepParts, train_step

PRESETS = {
    "cpu": dict(resolution=32, channel_base=2048, channel_max=64, map_depth=2, batch_size=16, z_dim=128, w_dim=128),
    "h100": dict(resolution=64, channel_base=8192, channel_max=256, map_depth=2, batch_size=256),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """``with timer("name"):`` accumulates synced wall time per phase."""

    def __init__(self, device: torch.device, enabled: bool):
        self.device, self.enabled = device, enabled
        self.times: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, name: str):
        if not self.enabled:
            yield
            return
        sync(self.device)
        t = time.perf_counter()
        yield
        sync(self.device)
        self.times[name] += time.perf_counter() - t


# ---- the straightforward implementation ----------------------------------------------------

class SequentialAugment(torch.nn.Module):
    """The ADA transforms applied one after another, each with its own resampling or colour op."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def _resample(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(m, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, dev = x.shape[0], x.device

        def gate():
            return (torch.rand(n, device=dev) < self.p).float()

        def affine(a, b, c, d, tx=None, ty=None):
            m = torch.zeros(n, 2, 3, device=dev)
            m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = a, b, c, d
            if tx is not None:
                m[:, 0, 2], m[:, 1, 2] = tx, ty
            return m

        one, zero = torch.ones(n, device=dev), torch.zeros(n, device=dev)
        g = gate()
        x = self._resample(x, affine(1 - 2 * g * torch.randint(0, 2, (n,), device=dev), zero, zero, one))
        g = gate()
        k = torch.randint(0, 4, (n,), device=dev) * g
        th = -math.pi / 2 * k
        x = self._resample(x, affine(th.cos(), -th.sin(), th.sin(), th.cos()))
        g = gate()
        t = torch.round((torch.rand(n, 2, device=dev) * 2 - 1) * 0.125 * x.shape[-1]) * 2 / x.shape[-1] * g[:, None]
        x = self._resample(x, affine(one, zero, zero, one, t[:, 0], t[:, 1]))
        s = torch.exp2(torch.randn(n, device=dev) * 0.2 * gate())
        x = self._resample(x, affine(s, zero, zero, s))
        for _ in range(2):
            th = (torch.rand(n, device=dev) * 2 - 1) * math.pi * gate()
            x = self._resample(x, affine(th.cos(), -th.sin(), th.sin(), th.cos()))
            if _ == 0:
                s = torch.exp2(torch.randn(n, device=dev) * 0.2 * gate())
                x = self._resample(x, affine(s, zero, zero, 1 / s))
        t = torch.randn(n, 2, device=dev) * 0.25 * gate()[:, None]
        x = self._resample(x, affine(one, zero, zero, one, t[:, 0], t[:, 1]))
        x = x + (torch.randn(n, device=dev) * 0.2 * gate()).view(n, 1, 1, 1)                    # brightness
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        x = (x - mean) * torch.exp2(torch.randn(n, device=dev) * 0.5 * gate()).view(n, 1, 1, 1) + mean
        luma = x.mean(dim=1, keepdim=True)
        flip = (torch.randint(0, 2, (n,), device=dev) * gate()).view(n, 1, 1, 1)
        x = x - 2 * flip * luma                                                                   # lumaflip
        luma = x.mean(dim=1, keepdim=True)
        x = luma + (x - luma) * torch.exp2(torch.randn(n, device=dev) * gate()).view(n, 1, 1, 1)  # saturation
        return x


def straightforward_step(G, G_ema, D, opt_G, opt_D, augment, real, cfg, step, cur_nimg, ada_state, log,
                         phase) -> int:
    n = real.shape[0]

    def run_G(z, update=True):
        ws = G.mapping(z, None, update_w_avg=update)
        if torch.rand([]).item() < cfg.style_mixing:
            cutoff = int(torch.randint(1, ws.shape[1], ()).item())
            ws[:, cutoff:] = G.mapping(torch.randn_like(z), None, update_w_avg=False)[:, cutoff:]
        return G.synthesis(ws, noise_mode="random")

    with phase("Gmain"):
        G.requires_grad_(True)
        opt_G.zero_grad()
        loss = F.softplus(-D(augment(run_G(torch.randn(n, G.z_dim, device=real.device))))).mean()
        loss.backward()
        log["G"].append(loss.item())
        opt_G.step()
        G.requires_grad_(False)
    with phase("Dmain"):
        D.requires_grad_(True)
        opt_D.zero_grad()
        with torch.no_grad():
            fake = run_G(torch.randn(n, G.z_dim, device=real.device), update=False)
        loss_fake = F.softplus(D(augment(fake))).mean()
        real_logits = D(augment(real))
        loss_real = F.softplus(-real_logits).mean()
        (loss_fake + loss_real).backward()
        log["D"].append(loss_fake.item() + loss_real.item())
        ada_state["signs"].append(real_logits.sign().mean().item())
        opt_D.step()
    if step % cfg.r1_interval == 0:
        with phase("Dreg"):
            opt_D.zero_grad()
            x = real.detach().requires_grad_(True)
            logits = D(augment(x))
            grad, = torch.autograd.grad(logits.sum(), x, create_graph=True)
            (grad.square().sum([1, 2, 3]).mean() * cfg.gamma / 2 * cfg.r1_interval).backward()
            opt_D.step()
    D.requires_grad_(False)
    cur_nimg += n
    with phase("ema+ada"):
        ema_nimg = min(cfg.ema_kimg * 1000, cur_nimg * cfg.ema_rampup)
        beta = 0.5 ** (n / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)
        if (step + 1) % cfg.ada_interval == 0:
            rt = sum(ada_state["signs"]) / len(ada_state["signs"])
            augment.p = max(augment.p + math.copysign(1, rt - cfg.ada_target) * n * cfg.ada_interval / 500_000, 0)
            ada_state["signs"].clear()
    return cur_nimg


# ---- measurement -----------------------------------------------------------------------------

def setup(kind: str, cfg: GanTrainingConfig, device: torch.device):
    """Networks, optimisers and a ``one(step, nimg, phase) -> nimg`` closure for ``kind``."""
    G, G_ema, D = build_networks(cfg, device)
    G.train()
    opt_G = make_optimizer(G, cfg, None, device) if kind == "ours" else torch.optim.Adam(
        G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, foreach=False)
    r1 = cfg.r1_interval / (cfg.r1_interval + 1)
    opt_D = make_optimizer(D, cfg, cfg.r1_interval, device) if kind == "ours" else torch.optim.Adam(
        D.parameters(), lr=cfg.lr * r1, betas=(cfg.beta1 ** r1, cfg.beta2 ** r1), eps=cfg.eps, foreach=False)
    real = torch.rand(cfg.batch_size, 3, cfg.resolution, cfg.resolution, device=device) * 2 - 1
    if kind == "ours":
        channels_last = cfg.channels_last and device.type == "cuda"
        if channels_last:
            D = D.to(memory_format=torch.channels_last)
            real = real.contiguous(memory_format=torch.channels_last)
        augment = AdaptiveAugment(p=0.3).to(device)
        ada = AdaController(augment, cfg.ada_target, cfg.ada_interval, cfg.ada_kimg)
        ctx = LossContext(G=G, D=torch.compile(D) if cfg.compile else D, D_eager=D, augment=augment, ada=ada,
                          r1_gamma=cfg.gamma, style_mixing=cfg.style_mixing,
                          autocast_dtype=_autocast_dtype(cfg, device), channels_last=channels_last,
                          pl_mean=torch.zeros([], device=device),
                          synthesis=torch.compile(G.synthesis) if cfg.compile else None)
        parts = StepParts(cfg=cfg, ctx=ctx, G=G, G_ema=G_ema, D=D, opt_G=opt_G, opt_D=opt_D, ada=ada,
                          info=DistInfo(), chunk=cfg.batch_size)
        losses = []

        def one(step, nimg, phase):
            return train_step(parts, real, step, nimg, lambda k, v: losses.append(v), phase)
    else:
        augment = SequentialAugment(p=0.3)
        log, ada_state = defaultdict(list), {"signs": []}

        def one(step, nimg, phase):
            return straightforward_step(G, G_ema, D, opt_G, opt_D, augment, real, cfg, step, nimg, ada_state,
                                        log, phase)

    def aug_only():
        with torch.no_grad():
            return augment(real)
    return one, aug_only


def timed(one, steps: int, device: torch.device, phase) -> float:
    """Seconds for ``steps`` steps with indices 0..steps-1 (so R1 runs every 16th, as in training)."""
    sync(device)
    t0 = time.perf_counter()
    nimg = 0
    for s in range(steps):
        nimg = one(s, nimg, phase)
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default: h100 on CUDA, cpu otherwise")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (a multiple of 16 covers R1 evenly)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--compile", action="store_true", help="torch.compile G.synthesis and D for the main passes (ours)")
    ap.add_argument("--only-ours", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        # Global switches, on for both implementations (as train-gan sets them).
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    preset = args.preset or ("h100" if device.type == "cuda" else "cpu")
    kw = dict(PRESETS[preset])
    if args.batch_size:
        kw["batch_size"] = args.batch_size
    cfg = resolve(GanTrainingConfig(data="-", **kw, compile=args.compile, device=str(device)))
    steps = args.steps or 16
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"threads {torch.get_num_threads()}, preset {preset}: {kw}, {steps} timed steps "
          f"(R1 every {cfg.r1_interval}), torch {torch.__version__}")
    kinds = ["ours"] if args.only_ours else ["ours", "straightforward"]
    impls = {k: setup(k, cfg, device) for k in kinds}
    null = Timer(device, False)
    for k in kinds:                                   # warm-up (includes an R1 step)
        for s in range(args.warmup):
            impls[k][0](s, 0, null)
    best = {k: float("inf") for k in kinds}
    for _ in range(args.repeats):                     # interleaved, best of N: fair on a busy machine
        for k in kinds:
            best[k] = min(best[k], timed(impls[k][0], steps, device, null))
    for k in kinds:
        timer = Timer(device, True)
        timed(impls[k][0], steps, device, timer)
        with timer("augment fwd (inside D/G)"):
            for _ in range(steps):
                impls[k][1]()
        ips = cfg.batch_size * steps / best[k]
        print(f"\n{k:16s} {ips:9.1f} img/s   ({best[k] / steps * 1000:.1f} ms/step, {best[k] / steps / cfg.batch_size * 1000:.2f} s/kimg)")
        total = sum(v for n, v in timer.times.items() if not n.startswith("augment"))
        for n, v in timer.times.items():
            share = f"{100 * v / total:5.1f}%" if not n.startswith("augment") else "  (part of the above)"
            print(f"   {n:26s} {1000 * v / steps:9.2f} ms/step {share}")
    if len(kinds) == 2:
        print(f"\nspeed-up ours / straightforward (best of {args.repeats}): "
              f"{best['straightforward'] / best['ours']:.2f}x")


if __name__ == "__main__":
    main()

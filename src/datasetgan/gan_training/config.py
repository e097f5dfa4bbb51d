"""``TrainConfig``: every setting of a ``train-gan`` run, saved as ``training_options.json``.

Defaults follow NVIDIA's stylegan2-ada-pytorch (``--cfg auto`` style where it
depends on the batch size). Presets live in ``configs/gan/*.yaml``; CLI flags
override them; ``resolve`` fills the settings derived from others.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from datasetgan.core.errors import UserError
from datasetgan.gan_training.discriminator import DiscriminatorConfig
from datasetgan.generator import GeneratorConfig

# Fields that define the networks: a checkpoint can only be resumed by a run that agrees on them.
ARCHITECTURE_FIELDS = ("resolution", "channel_base", "channel_max", "map_depth", "z_dim", "w_dim",
                       "num_fp16_res", "conv_clamp", "mbstd_group")


@dataclass(frozen=True)
class TrainConfig:
    """One GAN training run. ``None`` means "derive from the others" (see ``resolve``)."""

    data: str = ""                       # folder or zip of images
    resolution: int = 0                  # output side, a power of two >= 8
    out: str = "runs"                    # parent folder of the numbered run folders
    name: str | None = None              # run name suffix (default: data folder name + resolution)
    kimg: float = 25000.0                # train length in thousands of real images shown to D
    batch: int = 32                      # global batch over all processes
    batch_gpu: int | None = None         # per-process chunk (gradient accumulation below batch / world)
    gamma: float | None = None           # R1 weight (None: 0.0002 * R^2 / batch, NVIDIA's heuristic)
    aug: Literal["ada", "diffaug", "none"] = "ada"
    ada_target: float = 0.6
    ada_kimg: float = 500.0              # p can go 0 -> 1 in this many kimg
    ada_interval: int = 4                # steps between p updates
    aug_p: float = 0.0                   # initial p (ADA), kept fixed when ada_target is 0
    mirror: bool = False                 # x-flip the data set (doubles it)
    channel_base: int = 16384
    channel_max: int = 512
    map_depth: int = 8
    z_dim: int = 512
    w_dim: int = 512
    num_fp16_res: int = 0                # NVIDIA-style fp16 blocks (G and D, CUDA only)
    conv_clamp: float | None = None      # NVIDIA uses 256 together with fp16 blocks
    mbstd_group: int = 4
    lr: float = 0.0025
    beta1: float = 0.0
    beta2: float = 0.99
    eps: float = 1e-8
    r1_interval: int = 16                # lazy R1 every N steps
    pl_weight: float = 0.0               # path-length regularisation weight (NVIDIA: 2; 0 = off)
    pl_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing: float = 0.9
    ema_kimg: float | None = None        # G_ema half-life (None: batch * 10 / 32)
    ema_rampup: float | None = 0.05
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool = True           # NHWC convolutions on CUDA
    tf32: bool = True                    # TF32 matmuls/convs for the float32 parts on CUDA
    compile: bool = False                # torch.compile G.synthesis and D for the main phases (experimental)
    seed: int = 0
    tick_kimg: float = 4.0               # progress line + stats.jsonl record every N kimg
    tick_minutes: float = 5.0            # ... or after this long (slow CPU runs), whichever comes first
    snap_ticks: int = 50                 # snapshot every N ticks (and at the end)
    snap_minutes: float = 30.0           # ... or at the first tick this long after the last snapshot
    image_ticks: int = 10                # sample grid every N ticks (and at the start and end)
    grid_size: int = 32                  # images in the sample grid (fixed seeds)
    keep_snapshots: int = 0              # keep only the newest N snapshots (0 = all)
    metrics: str = "fid,kid"             # at the end of training; skipped with a notice without metrics_weights
    metrics_weights: str | None = None   # local torchvision inception_v3 weights (.safetensors / .pt)
    metrics_images: int = 5000
    workers: int = 4                     # image-decoding threads when loading the data set
    device: str = "auto"

    def with_(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def check_config(cfg: TrainConfig, world_size: int = 1) -> None:
    """Raise ``UserError`` naming the flag for settings that cannot work."""
    r = cfg.resolution
    if not isinstance(r, int) or r < 8 or r & (r - 1):
        raise UserError(f"--resolution {r}: expected a power of two >= 8 (e.g. 64, 128, 256)")
    if not cfg.data:
        raise UserError("--data: required (a folder or .zip of images)")
    if cfg.kimg <= 0:
        raise UserError(f"--kimg {cfg.kimg}: expected a positive number")
    if cfg.batch < 1 or cfg.batch % world_size:
        raise UserError(f"--batch {cfg.batch}: expected a positive multiple of the process count ({world_size})")
    per_rank = cfg.batch // world_size
    bg = cfg.batch_gpu or per_rank
    if per_rank % bg:
        raise UserError(f"--batch-gpu {bg}: must divide the per-process batch {per_rank}")
    if bg % min(cfg.mbstd_group, bg):
        raise UserError(f"--batch {cfg.batch}: the per-process chunk {bg} must be a multiple of the "
                        f"minibatch-std group size {cfg.mbstd_group}")
    if min(cfg.channel_base // r, cfg.channel_max) < 1:
        raise UserError(f"--channel-base {cfg.channel_base}: gives no channels at {r}x{r}")
    if cfg.map_depth < 1:
        raise UserError(f"--map-depth {cfg.map_depth}: expected >= 1")
    if cfg.gamma is not None and cfg.gamma < 0:
        raise UserError(f"--gamma {cfg.gamma}: expected >= 0")
    for name in ("r1_interval", "pl_interval", "ada_interval", "snap_ticks", "image_ticks"):
        if getattr(cfg, name) < 1:
            raise UserError(f"--{name.replace('_', '-')}: expected >= 1")


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Fill the derived settings (gamma, ema_kimg) with NVIDIA's ``auto`` heuristics."""
    changes = {}
    if cfg.gamma is None:
        changes["gamma"] = 0.0002 * cfg.resolution ** 2 / cfg.batch
    if cfg.ema_kimg is None:
        changes["ema_kimg"] = cfg.batch * 10 / 32
    return dataclasses.replace(cfg, **changes) if changes else cfg


def generator_config(cfg: TrainConfig) -> GeneratorConfig:
    return GeneratorConfig(z_dim=cfg.z_dim, w_dim=cfg.w_dim, img_resolution=cfg.resolution,
                           mapping_layers=cfg.map_depth, channel_base=cfg.channel_base,
                           channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res,
                           conv_clamp=cfg.conv_clamp)


def discriminator_config(cfg: TrainConfig) -> DiscriminatorConfig:
    return DiscriminatorConfig(img_resolution=cfg.resolution, channel_base=cfg.channel_base,
                               channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res,
                               conv_clamp=cfg.conv_clamp, mbstd_group_size=cfg.mbstd_group)


def architecture_of(options: dict) -> dict:
    """The architecture fields of a saved ``training_options.json`` mapping."""
    defaults = dataclasses.asdict(TrainConfig())
    return {k: options.get(k, defaults[k]) for k in ARCHITECTURE_FIELDS}

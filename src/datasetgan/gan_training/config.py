"""``GanTrainingConfig``: every setting of a ``train-gan`` run, saved as ``training_options.json``.

Defaults follow NVIDIA's stylegan2-ada-pytorch (``--cfg auto`` style where it
depends on the batch size). Presets live in ``configs/gan/*.yaml``; CLI flags
override them; ``resolve`` fills the settings derived from others. Fields
declared with ``setting(default, help)`` are also ``train-gan`` flags; the
others are settings of presets only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from datasetgan.core.devices import PRECISIONS, OLD_PRECISIONS, Precision
from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.options import setting
from datasetgan.gan_training.discriminator import DiscriminatorConfig
from datasetgan.generator import GeneratorConfig

# Fields that define the networks: a checkpoint can only be resumed by a run that agrees on them.
ARCHITECTURE_FIELDS = ("resolution", "channel_base", "channel_max", "map_depth", "z_dim", "w_dim",
                       "num_fp16_res", "conv_clamp", "mbstd_group")
AUGMENTS = ("ada", "diffaug", "none")


@dataclass(frozen=True)
class GanTrainingConfig:
    """One GAN training run. ``None`` means "derive from the others" (see ``resolve``).

    Checked on construction (``UserError`` naming the flag); what depends on the
    number of processes is checked by ``check_world_size``.
    """

    data: str = setting(help="folder (searched recursively) or .zip of images in any format PIL reads",
                        metavar="DIR|ZIP")
    resolution: int = setting(help="output side, a power of two >= 8 (images are centre-cropped and resized)",
                              metavar="R")
    kimg: float = setting(25000.0, "train length in thousands of images shown to D (fractions allowed)")
    batch_size: int = setting(32, "global batch size, over all processes", metavar="B", aliases=("batch",))
    batch_gpu: int | None = setting(None, "per-process chunk for gradient accumulation", metavar="B",
                                    default_text="the per-process batch")
    gamma: float | None = setting(None, "R1 weight", default_text="0.0002 * R^2 / batch size")
    aug: Literal["ada", "diffaug", "none"] = setting("ada", "augmentation")
    ada_target: float = setting(0.6, "ADA target for E[sign(D(real))] (0 keeps p fixed)")
    ada_kimg: float = setting(500.0, "ADA speed: p can go 0 -> 1 in this many kimg (lower it for short runs)")
    ada_interval: int = 4                # steps between p updates
    aug_p: float = setting(0.0, "initial ADA probability")
    flip: bool = setting(False, "add x-flipped copies of the images (doubles the data set)", aliases=("mirror",))
    channel_base: int = setting(16384, "channels at resolution r: min(base / r, --channel-max)")
    channel_max: int = setting(512, "the most channels of any layer")
    map_depth: int = setting(8, "mapping network depth")
    z_dim: int = setting(512, "latent z size")
    w_dim: int = setting(512, "latent w size")
    num_fp16_res: int = setting(0, "NVIDIA-style fp16 blocks at the N highest resolutions (CUDA)", metavar="N")
    conv_clamp: float | None = setting(None, "clamp conv outputs (256 with fp16 blocks)", default_text="none")
    mbstd_group: int = 4
    lr: float = setting(0.0025, "Adam learning rate for G and D")
    beta1: float = 0.0
    beta2: float = 0.99
    eps: float = 1e-8
    r1_interval: int = 16                # lazy R1 every N steps
    pl_weight: float = setting(0.0, "path-length regularisation weight (0 = off; NVIDIA: 2)")
    pl_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing: float = 0.9
    ema_kimg: float | None = setting(None, "G_ema half-life in kimg", default_text="batch size * 10 / 32")
    ema_rampup: float | None = 0.05
    precision: Precision = setting("auto", "autocast of the training passes: auto = bfloat16 on CUDA, "
                                           "float32 on the CPU", value_aliases=OLD_PRECISIONS)
    channels_last: bool = True           # NHWC convolutions on CUDA
    tf32: bool = True                    # TF32 matmuls/convs for the float32 parts on CUDA
    # torch.compile G.synthesis and D for the main phases (experimental).
    compile: bool = setting(False, "torch.compile the main forward passes")
    seed: int = setting(0, "seed for initialisation, data order and training noise")
    tick_kimg: float = setting(4.0, "log and stats every N kimg", metavar="N")
    # A tick also ends after this long (slow CPU runs), whichever comes first.
    tick_minutes: float = setting(5.0, "... or after N minutes, whichever first", metavar="N")
    snap_ticks: int = setting(50, "snapshot every N ticks (always at the end)", metavar="N")
    snap_minutes: float = setting(30.0, "... or at the first tick N minutes after the last one", metavar="N")
    # Also at the start and the end.
    image_ticks: int = setting(10, "sample grid every N ticks", metavar="N")
    grid_size: int = 32                  # images in the sample grid (fixed seeds)
    keep_snapshots: int = setting(0, "keep only the newest N snapshots (0 = all)", metavar="N")
    # At the end of training; skipped with a notice without metrics_weights.
    metrics: str = setting("fid,kid", "'fid,kid' at the end of training (needs --metrics-weights), or 'none'")
    metrics_weights: str | None = setting(
        None, "local torchvision inception_v3 weights (.safetensors or .pt state dict)", metavar="FILE")
    metrics_images: int = setting(5000, "images per side for FID/KID", metavar="N")
    workers: int = 4                     # image-decoding threads when loading the data set
    device: str = setting("auto", "cpu, cuda or cuda:N", default_text="cuda when present")

    def __post_init__(self) -> None:
        r = self.resolution
        if not isinstance(r, int) or isinstance(r, bool) or r < 8 or r & (r - 1):
            raise UserError(f"--resolution {r}: expected a power of two >= 8 (e.g. 64, 128, 256)")
        if not self.data:
            raise UserError("--data: required (a folder or .zip of images)")
        if not self.kimg > 0:
            raise UserError(f"--kimg {self.kimg}: expected a positive number")
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size}: expected a positive number")
        if self.batch_gpu is not None and self.batch_gpu < 0:
            raise UserError(f"--batch-gpu {self.batch_gpu}: expected a positive number")
        if self.aug not in AUGMENTS:
            raise UserError(f"--aug {self.aug}: expected one of {', '.join(AUGMENTS)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision {self.precision}: expected one of {', '.join(PRECISIONS)}")
        if min(self.channel_base // r, self.channel_max) < 1:
            raise UserError(f"--channel-base {self.channel_base}: gives no channels at {r}x{r}")
        if self.map_depth < 1:
            raise UserError(f"--map-depth {self.map_depth}: expected >= 1")
        if self.gamma is not None and self.gamma < 0:
            raise UserError(f"--gamma {self.gamma}: expected >= 0")
        for name in ("r1_interval", "pl_interval", "ada_interval", "snap_ticks", "image_ticks"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')}: expected >= 1")

    def with_(self, **changes) -> "GanTrainingConfig":
        return dataclasses.replace(self, **changes)


def check_world_size(cfg: GanTrainingConfig, world_size: int = 1) -> None:
    """Raise ``UserError`` naming the flag when the batch cannot be split over ``world_size`` processes."""
    if cfg.batch_size % world_size:
        raise UserError(f"--batch-size {cfg.batch_size}: expected a positive multiple of the process count "
                        f"({world_size})")
    per_rank = cfg.batch_size // world_size
    bg = cfg.batch_gpu or per_rank
    if per_rank % bg:
        raise UserError(f"--batch-gpu {bg}: must divide the per-process batch {per_rank}")
    if bg % min(cfg.mbstd_group, bg):
        raise UserError(f"--batch-size {cfg.batch_size}: the per-process chunk {bg} must be a multiple of the "
                        f"minibatch-std group size {cfg.mbstd_group}")


def resolve(cfg: GanTrainingConfig) -> GanTrainingConfig:
    """Fill the derived settings (gamma, ema_kimg) with NVIDIA's ``auto`` heuristics."""
    changes = {}
    if cfg.gamma is None:
        changes["gamma"] = 0.0002 * cfg.resolution ** 2 / cfg.batch_size
    if cfg.ema_kimg is None:
        changes["ema_kimg"] = cfg.batch_size * 10 / 32
    return dataclasses.replace(cfg, **changes) if changes else cfg


def generator_config(cfg: GanTrainingConfig) -> GeneratorConfig:
    return GeneratorConfig(z_dim=cfg.z_dim, w_dim=cfg.w_dim, img_resolution=cfg.resolution,
                           mapping_layers=cfg.map_depth, channel_base=cfg.channel_base,
                           channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res,
                           conv_clamp=cfg.conv_clamp)


def discriminator_config(cfg: GanTrainingConfig) -> DiscriminatorConfig:
    return DiscriminatorConfig(img_resolution=cfg.resolution, channel_base=cfg.channel_base,
                               channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res,
                               conv_clamp=cfg.conv_clamp, mbstd_group_size=cfg.mbstd_group)


def saved_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``GanTrainingConfig`` settings among a snapshot's saved options (``state.json``'s
    ``options``, as written to ``training_options.json``), from this release or an earlier one.

    Earlier releases' names (``batch``, ``mirror``) and values (``precision: bf16``) are
    mapped quietly, as it is our own file; other keys (``world_size``, ``num_images``, and
    ``out``/``name`` of the old run-folder layout) are left out.
    """
    fields = {f.name: f for f in dataclasses.fields(GanTrainingConfig)}
    renamed = {alias: f.name for f in fields.values() for alias in f.metadata.get("aliases", ())}
    settings: dict[str, Any] = {}
    for key, value in options.items():
        key = renamed.get(key, key)
        if key not in fields:
            continue
        old_values = fields[key].metadata.get("value_aliases") or {}
        settings[key] = old_values.get(value, value) if isinstance(value, str) else value
    return settings


def architecture_of(options: Mapping[str, Any]) -> dict:
    """The architecture fields of a saved ``training_options.json`` mapping."""
    defaults = {f.name: f.default for f in dataclasses.fields(GanTrainingConfig)}
    return {k: options.get(k, defaults[k]) for k in ARCHITECTURE_FIELDS}


def check_architecture(cfg: GanTrainingConfig, options: Mapping[str, Any], snapshot: Path) -> None:
    """``CheckpointError`` naming the flags where ``cfg`` builds other networks than ``snapshot``
    (whose saved options are ``options``) holds."""
    saved = architecture_of(options)
    ours = {k: getattr(cfg, k) for k in ARCHITECTURE_FIELDS}
    diff = [k for k in ARCHITECTURE_FIELDS if saved[k] != ours[k]]
    if diff:
        detail = ", ".join(f"--{k.replace('_', '-')} {ours[k]} (snapshot: {saved[k]})" for k in diff)
        raise CheckpointError(snapshot, f"cannot resume: the snapshot has another architecture: {detail}")

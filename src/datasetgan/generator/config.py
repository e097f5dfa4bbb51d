"""The generator's architecture as one frozen dataclass.

Field names follow NVIDIA's ``Generator`` init kwargs (stylegan2-ada-pytorch
``training/networks.py``), flattened: ``mapping_kwargs.num_layers`` is
``mapping_layers``, ``mapping_kwargs.lr_multiplier`` is
``mapping_lr_multiplier`` and the ``synthesis_kwargs`` keep their names.
Defaults are NVIDIA's defaults.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Mapping, Union

from datasetgan.core.config import build_config, config_to_dict
from datasetgan.core.errors import UserError
from datasetgan.core.options import setting
from datasetgan.core.seeds import parse_seeds


def _check_architecture(config: Any, positive: tuple[str, ...]) -> None:
    """The checks every generator config shares: a power-of-two output side, positive sizes."""
    r = config.img_resolution
    if not isinstance(r, int) or r < 4 or r & (r - 1) != 0:
        raise UserError(f"img_resolution: expected a power of two >= 4, got {r!r}")
    for name in positive:
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise UserError(f"{name}: expected a positive integer, got {value!r}")


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything needed to build a StyleGAN2 ``Generator`` (weights aside)."""

    z_dim: int = 512                    # input latent size (0 = no z, needs c_dim > 0)
    c_dim: int = 0                      # conditioning label size (0 = unconditional)
    w_dim: int = 512                    # intermediate latent size
    img_resolution: int = 256           # output side, a power of two >= 4
    img_channels: int = 3               # output colour channels
    mapping_layers: int = 8             # depth of the mapping MLP
    channel_base: int = 32768           # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512
    num_fp16_res: int = 0               # the N highest resolutions run in fp16 (on CUDA)
    conv_clamp: float | None = None     # clamp conv outputs to +-X (NVIDIA uses 256 with fp16)
    architecture: Literal["orig", "skip", "resnet"] = "skip"
    embed_features: int | None = None   # label embedding size (None = w_dim)
    layer_features: int | None = None   # mapping hidden size (None = w_dim)
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float | None = 0.995    # decay of the tracked mean w (None = not tracked)
    use_noise: bool = True
    resample_filter: tuple[int, ...] = (1, 3, 3, 1)

    def __post_init__(self) -> None:
        # Canonical types, so that equal configs serialise (and fingerprint) equally
        # whether they came from JSON, a pickle's kwargs (conv_clamp=256) or code.
        for name in ("conv_clamp", "mapping_lr_multiplier", "w_avg_beta"):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        taps = tuple(self.resample_filter)
        if not all(isinstance(v, (int, float)) and float(v) == int(v) for v in taps):
            raise UserError(f"resample_filter: expected a list of integers, got {self.resample_filter!r}")
        object.__setattr__(self, "resample_filter", tuple(int(v) for v in taps))
        r = self.img_resolution
        _check_architecture(self, ("w_dim", "img_channels", "mapping_layers", "channel_base", "channel_max"))
        if self.z_dim < 0 or self.c_dim < 0 or self.z_dim + self.c_dim == 0:
            raise UserError(f"z_dim={self.z_dim}, c_dim={self.c_dim}: need z_dim > 0 or c_dim > 0")
        if self.num_fp16_res < 0:
            raise UserError(f"num_fp16_res: expected >= 0, got {self.num_fp16_res}")
        if min(self.channel_base // r, self.channel_max) < 1:
            raise UserError(f"channel_base={self.channel_base}: gives 0 channels at {r}x{r}")
        if len(self.resample_filter) == 0:
            raise UserError("resample_filter: must not be empty")

    # Derived quantities -------------------------------------------------

    @property
    def block_resolutions(self) -> tuple[int, ...]:
        """4, 8, ..., img_resolution."""
        return tuple(2 ** i for i in range(2, int(math.log2(self.img_resolution)) + 1))

    def channels_at(self, resolution: int) -> int:
        """Feature channels of the block at ``resolution`` (NVIDIA's formula)."""
        return min(self.channel_base // resolution, self.channel_max)

    @property
    def fp16_resolution(self) -> int:
        """Blocks at this resolution and above use fp16 (never the 4x4 block)."""
        return max(2 ** (int(math.log2(self.img_resolution)) + 1 - self.num_fp16_res), 8)

    @property
    def num_ws(self) -> int:
        """Number of w vectors synthesis takes: one per conv, plus the last toRGB."""
        return 2 * len(self.block_resolutions)  # 1 conv at 4x4, 2 per later block, +1 toRGB

    # Serialisation ------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> "GeneratorConfig":
        """Inverse of ``to_dict``; unknown keys or wrong types raise ``UserError``
        (prefixed with ``source``, e.g. the file the dict came from)."""
        try:
            return build_config(cls, dict(data))
        except UserError as exc:
            if source is None:
                raise
            raise UserError(f"{source}: {exc}") from None


CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(GeneratorConfig))

# The own format's "model" key: which network a config.json describes (absent = StyleGAN2).
STYLEGAN2 = "stylegan2"
STYLEGAN1 = "stylegan1"


@dataclass(frozen=True)
class StyleGAN1Config:
    """Everything needed to build a ``StyleGAN1Generator`` (weights aside).

    The architecture of NVIDIA's TensorFlow StyleGAN as ported to PyTorch in the
    DatasetGAN release (``models/stylegan1.py``); defaults are that port's. Field
    names follow its ``G_synthesis`` arguments where it has them.
    """

    model: ClassVar[str] = STYLEGAN1

    z_dim: int = 512                    # input latent size
    w_dim: int = 512                    # intermediate latent size (the release's dlatent_size)
    img_resolution: int = 1024          # output side, a power of two >= 4
    img_channels: int = 3
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    fmap_base: int = 8192               # channels at resolution r: min(2 * fmap_base // r, fmap_max)
    fmap_max: int = 512
    const_input: bool = True            # 4x4 input: a learned constant (False: a dense layer of w)
    use_noise: bool = True
    blur_filter: tuple[int, ...] = (1, 2, 1)   # after each upsampling conv; () = no blur

    def __post_init__(self) -> None:
        object.__setattr__(self, "mapping_lr_multiplier", float(self.mapping_lr_multiplier))
        taps = tuple(self.blur_filter)
        if not all(isinstance(v, (int, float)) and float(v) == int(v) for v in taps):
            raise UserError(f"blur_filter: expected a list of integers, got {self.blur_filter!r}")
        object.__setattr__(self, "blur_filter", tuple(int(v) for v in taps))
        r = self.img_resolution
        _check_architecture(self, ("z_dim", "w_dim", "img_channels", "mapping_layers", "fmap_base", "fmap_max"))
        if self.channels_at(r) < 1:
            raise UserError(f"fmap_base={self.fmap_base}: gives 0 channels at {r}x{r}")

    @property
    def c_dim(self) -> int:
        """Always 0: the release's StyleGAN1 is unconditional."""
        return 0

    @property
    def block_resolutions(self) -> tuple[int, ...]:
        """4, 8, ..., img_resolution."""
        return tuple(2 ** i for i in range(2, int(math.log2(self.img_resolution)) + 1))

    def channels_at(self, resolution: int) -> int:
        """Channels of the block at ``resolution``: the release's ``nf(log2(resolution) - 1)``."""
        return min(self.fmap_base * 2 // resolution, self.fmap_max)

    @property
    def num_ws(self) -> int:
        """Two ws per resolution, one per AdaIN (the toRGB layer takes none)."""
        return 2 * len(self.block_resolutions)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> "StyleGAN1Config":
        """Inverse of ``to_dict``; unknown keys or wrong types raise ``UserError``."""
        try:
            return build_config(cls, dict(data))
        except UserError as exc:
            if source is None:
                raise
            raise UserError(f"{source}: {exc}") from None


AnyGeneratorConfig = Union[GeneratorConfig, StyleGAN1Config]


@dataclass(frozen=True)
class SampleConfig:
    """``datasetgan sample``: which images to render for labelling, and how.

    The default truncation is 0.7 (what ``synthesize`` uses), not NVIDIA's 1.0, so
    that the samples one labels look like the data set that will be synthesised.
    """

    seeds: str = setting("0-31", "seed list, e.g. 0-31 or 1,5,9")
    truncation: float = setting(0.7, "truncation psi (1.0 = none)", metavar="PSI")
    truncation_cutoff: int | None = setting(None, "truncate only the first N ws", metavar="N",
                                            default_text="all")
    noise_mode: Literal["random", "const", "none"] = setting("const", "the synthesis noise inputs")
    class_idx: int | None = setting(None, "class for conditional generators")
    batch_size: int = setting(8, "images per generator call", metavar="B")
    select: int | None = setting(None, "keep only the K most diverse of the seeds (k-center greedy on the "
                                       "generator's pooled features), written in pick order", metavar="K",
                                 default_text="all")

    def __post_init__(self) -> None:
        parse_seeds(self.seeds)
        if self.select is not None and self.select < 1:
            raise UserError(f"--select {self.select}: must be >= 1")
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size}: must be >= 1")
        if self.truncation_cutoff is not None and self.truncation_cutoff < 0:
            raise UserError(f"--truncation-cutoff {self.truncation_cutoff}: must be >= 0")

    @property
    def seed_list(self) -> list[int]:
        return parse_seeds(self.seeds)

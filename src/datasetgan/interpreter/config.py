"""The interpreter's training settings: one frozen dataclass, saved with the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


REFERENCE_MIN_CLASS_PIXELS = 20   # per 512x512 mask (DESIGN.md: "fewer than ~20-30 pixels")


@dataclass(frozen=True)
class InterpreterConfig:
    """Defaults are the reference release's (DESIGN.md), except where noted."""

    members: int = 10                    # ensemble size
    pixels_per_image: int | None = None  # None = every labelled pixel ("all", the reference)
    batch_size: int = 64                 # pixels per batch, per member
    lr: float = 1e-3                     # Adam
    max_epochs: int = 100
    patience: int = 50                   # stop a member after this many batches without a new best loss...
    min_epochs: int = 4                  # ...counted only from this epoch on (the reference: "epoch > 3")
    # A class with fewer pixels in a mask is ignored there (specks). None = the reference's 20 pixels
    # per 512x512 mask, scaled to the mask's area (at least 1): at 64x64 a pupil covers ~8 pixels, and
    # a flat 20 would drop every thin part from training.
    min_class_pixels: int | None = None
    # Segmentation: cross-entropy weighted by each class's share of the training pixels ** -power
    # (0 = the reference's plain loss). A part of a few pixels per image (a pupil at 64x64) is a
    # fraction of a percent of the pixels; with the plain loss no member ever votes for it.
    class_weight_power: float = 0.0
    max_steps: int | None = None         # cap on batches (benchmarks, smoke runs); None = no cap
    seed: int = 0                        # initialisation, pixel sampling and batch order
    layers: tuple[str, ...] = ()         # feature taps (names, resolutions, "all", "img"); empty = all convs
    upsample: Literal["bilinear", "nearest"] = "bilinear"
    feature_dtype: Literal["float16", "float32"] = "float16"  # storage of the native-size maps
    heatmap_sigma: float = 2.0           # keypoints: Gaussian target width, in label pixels
    visibility_threshold: float = 0.5    # keypoints: a peak below this is reported invisible

    def class_pixel_threshold(self, size: tuple[int, int]) -> int:
        """``min_class_pixels`` for masks of ``size`` ``(H, W)``."""
        if self.min_class_pixels is not None:
            return self.min_class_pixels
        return max(1, round(REFERENCE_MIN_CLASS_PIXELS * size[0] * size[1] / 512 ** 2))

    def __post_init__(self) -> None:
        from datasetgan.core.errors import UserError
        checks = [("members", self.members, 1), ("batch_size", self.batch_size, 2),
                  ("max_epochs", self.max_epochs, 1), ("patience", self.patience, 0),
                  ("min_epochs", self.min_epochs, 0), ("min_class_pixels", self.min_class_pixels or 0, 0)]
        for name, value, low in checks:
            if value < low:
                raise UserError(f"{_setting(name)} {value}: must be >= {low}")
        if self.pixels_per_image is not None and self.pixels_per_image < 1:
            raise UserError(f"--pixels-per-image {self.pixels_per_image}: must be >= 1 or 'all'")
        if self.max_steps is not None and self.max_steps < 1:
            raise UserError(f"--max-steps {self.max_steps}: must be >= 1")
        if not 0 <= self.class_weight_power <= 2:
            raise UserError(f"--class-weight-power {self.class_weight_power}: must be in [0, 2]")
        for name in ("lr", "heatmap_sigma"):
            if getattr(self, name) <= 0:
                raise UserError(f"{_setting(name)} {getattr(self, name)}: must be > 0")


# Settings that train-interpreter takes as flags; the others come from a --config preset only.
_FLAGS = ("members", "pixels_per_image", "max_epochs", "min_epochs", "batch_size", "lr", "min_class_pixels",
          "class_weight_power", "max_steps", "heatmap_sigma")


def _setting(name: str) -> str:
    """How a user sets ``name``: ``--flag``, or the preset key."""
    return f"--{name.replace('_', '-')}" if name in _FLAGS else f"key '{name}' (--config)"

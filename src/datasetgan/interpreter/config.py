"""The interpreter's training settings: one frozen dataclass, saved with the model."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

from datasetgan.core.errors import UserError
from datasetgan.core.options import setting, setting_name


REFERENCE_MIN_CLASS_PIXELS = 20   # per 512x512 mask (DESIGN.md: "fewer than ~20-30 pixels")


def pixels_arg(text: str) -> int | None:
    """``--pixels-per-image``: a count, or ``all`` (every labelled pixel, as ``None``)."""
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {text!r}") from None


@dataclass(frozen=True)
class InterpreterConfig:
    """Defaults are the reference release's (DESIGN.md), except where noted."""

    members: int = setting(10, "ensemble size")
    pixels_per_image: int | None = setting(None, "training pixels per labelled image", metavar="N|all",
                                           parse=pixels_arg, default_text="all, as the reference")
    batch_size: int = setting(64, "pixels per batch, per member", metavar="B")
    lr: float = setting(1e-3, "Adam learning rate")
    max_epochs: int = setting(100, "at most this many epochs", metavar="E")
    # The reference's early stopping: a member stops after `patience` batches without a new best
    # loss, counted only from `min_epochs` on (its "epoch > 3").
    patience: int = 50
    min_epochs: int = setting(4, "no early stopping before epoch E (the reference's); with --max-epochs E, "
                                 "every member trains exactly E epochs", metavar="E")
    # A class with fewer pixels in a mask is ignored there (specks). None = the reference's 20 pixels
    # per 512x512 mask, scaled to the mask's area (at least 1): at 64x64 a pupil covers ~8 pixels, and
    # a flat 20 would drop every thin part from training.
    min_class_pixels: int | None = setting(None, "ignore a class in a mask where it covers fewer than N pixels",
                                           metavar="N", default_text="20 per 512x512, scaled to the mask's area")
    # Segmentation: cross-entropy weighted by each class's share of the training pixels ** -power
    # (0 = the reference's plain loss). A part of a few pixels per image (a pupil at 64x64) is a
    # fraction of a percent of the pixels; with the plain loss no member ever votes for it.
    class_weight_power: float = setting(0.0, "segmentation: weight each class by its share of the training "
                                             "pixels ** -P (0 = the reference's plain cross-entropy; 0.5 helps "
                                             "parts of a few pixels)", metavar="P")
    max_steps: int | None = setting(None, "stop after this many batches (smoke runs, benchmarks)")
    seed: int = setting(0, "initialisation, pixel sampling and batch order")
    layers: tuple[str, ...] = setting((), "comma-separated feature taps or resolutions; 'img' adds the "
                                          "generated image's own pixels, e.g. all,img",
                                      default_text="all, every convolution, as the reference")
    upsample: Literal["bilinear", "nearest"] = setting("bilinear", "how feature maps reach the label "
                                                                   "resolution")
    feature_dtype: Literal["float16", "float32"] = setting("float16", "storage of the native-size feature maps")
    heatmap_sigma: float = setting(2.0, "keypoints: Gaussian target sigma in label pixels")
    visibility_threshold: float = 0.5    # keypoints: a peak below this is reported invisible

    def class_pixel_threshold(self, size: tuple[int, int]) -> int:
        """``min_class_pixels`` for masks of ``size`` ``(H, W)``."""
        if self.min_class_pixels is not None:
            return self.min_class_pixels
        return max(1, round(REFERENCE_MIN_CLASS_PIXELS * size[0] * size[1] / 512 ** 2))

    def __post_init__(self) -> None:
        checks = [("members", self.members, 1), ("batch_size", self.batch_size, 2),
                  ("max_epochs", self.max_epochs, 1), ("patience", self.patience, 0),
                  ("min_epochs", self.min_epochs, 0), ("min_class_pixels", self.min_class_pixels or 0, 0)]
        for name, value, low in checks:
            if value < low:
                raise UserError(f"{setting_name(InterpreterConfig, name)} {value}: must be >= {low}")
        if self.pixels_per_image is not None and self.pixels_per_image < 1:
            raise UserError(f"--pixels-per-image {self.pixels_per_image}: must be >= 1 or 'all'")
        if self.max_steps is not None and self.max_steps < 1:
            raise UserError(f"--max-steps {self.max_steps}: must be >= 1")
        if not 0 <= self.class_weight_power <= 2:
            raise UserError(f"--class-weight-power {self.class_weight_power}: must be in [0, 2]")
        for name in ("lr", "heatmap_sigma"):
            if getattr(self, name) <= 0:
                raise UserError(f"{setting_name(InterpreterConfig, name)} {getattr(self, name)}: must be > 0")

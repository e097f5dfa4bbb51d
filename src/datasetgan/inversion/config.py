"""``InversionConfig``: how real images are projected into the generator (``datasetgan invert``).

The recipe, and why each default has its value, is in docs/INVERSION.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from datasetgan.core.errors import UserError
from datasetgan.core.options import setting, setting_name

Space = Literal["w", "wplus"]
Start = Literal["w_avg", "best"]
Perceptual = Literal["auto", "discriminator", "ssim", "none"]


@dataclass(frozen=True)
class InversionConfig:
    """The optimisation of NVIDIA's projector (Adam, a ramped learning rate, a decaying noise
    on ``w``, noise maps kept white by a multi-scale penalty), in W+ by default, on pixel MSE
    plus a perceptual term that needs no download; optionally followed by pivotal tuning."""

    steps: int = setting(1000, "Adam steps per image")
    space: Space = setting("wplus", "wplus: one w per synthesis layer; w: one w for all layers (NVIDIA's "
                                    "projector; coarser reconstructions)")
    start: Start = setting("w_avg", "where each image starts: the mean w, or the best by loss of "
                                    "--start-candidates random ws")
    start_candidates: int = setting(256, "random ws tried by --start best", metavar="N")
    lr: float = setting(0.2, "peak Adam learning rate; ramped up over the first 5% of the steps and down "
                             "(cosine) over the last 25%")
    lr_rampup: float = 0.05             # fraction of the steps, as NVIDIA's projector
    lr_rampdown: float = 0.25
    w_noise: float = setting(0.01, "noise added to the optimised w, as a fraction of the ws' spread; it "
                                   "decays (quadratically) to 0 at 3/4 of the steps", metavar="FRACTION")
    w_noise_ramp: float = 0.75
    optimise_noise: bool = setting(True, "optimise each image's noise maps too (they are stored in --out "
                                         "and used by every later stage)")
    noise_weight: float = setting(1e5, "weight of the penalty that keeps the noise maps white at every "
                                       "scale (so that they cannot carry the image)", metavar="WEIGHT")
    perceptual: Perceptual = setting(
        "auto", "the second loss term beside pixel MSE: discriminator features where --generator is a "
                "train-gan snapshot or run (it has D), else SSIM (auto); none: pixel MSE alone")
    perceptual_weight: float = setting(0.1, "weight of the perceptual term against pixel MSE (images in "
                                            "[-1, 1])", metavar="WEIGHT")
    tune_generator: bool = setting(False, "pivotal tuning: then fine-tune a copy of the generator's synthesis "
                                          "network on the images at their latents, write it to OUT/generator/ "
                                          "and make it the samples' generator")
    tune_steps: int = setting(300, "--tune-generator: Adam steps (one batch of images each)", metavar="N")
    tune_lr: float = setting(3e-4, "--tune-generator: learning rate")
    batch_size: int = setting(8, "images optimised together; each image's result does not depend on the "
                                 "others, but the run must keep one batch size to resume", metavar="B")
    w_samples: int = 10_000             # random ws for the mean w and the ws' spread (NVIDIA's count)
    seed: int = setting(0, "the random starting ws, the w noise and the mean w's samples")

    def __post_init__(self) -> None:
        for name, low in (("steps", 1), ("start_candidates", 1), ("tune_steps", 1), ("batch_size", 1),
                          ("w_samples", 2), ("seed", 0)):
            if getattr(self, name) < low:
                raise UserError(f"{setting_name(InversionConfig, name)} {getattr(self, name)}: must be >= {low}")
        for name in ("lr", "tune_lr"):
            if not getattr(self, name) > 0:
                raise UserError(f"{setting_name(InversionConfig, name)} {getattr(self, name)}: must be > 0")
        for name in ("w_noise", "noise_weight", "perceptual_weight"):
            if getattr(self, name) < 0:
                raise UserError(f"{setting_name(InversionConfig, name)} {getattr(self, name)}: must be >= 0")
        for name in ("lr_rampup", "lr_rampdown", "w_noise_ramp"):
            if not 0 < getattr(self, name) <= 1:
                raise UserError(f"{setting_name(InversionConfig, name)} {getattr(self, name)}: must lie in (0, 1]")
        if self.space not in ("w", "wplus"):
            raise UserError(f"--space {self.space}: expected w or wplus")
        if self.start not in ("w_avg", "best"):
            raise UserError(f"--start {self.start}: expected w_avg or best")
        if self.perceptual not in ("auto", "discriminator", "ssim", "none"):
            raise UserError(f"--perceptual {self.perceptual}: expected auto, discriminator, ssim or none")

"""What the inversion minimises: pixel MSE plus a perceptual term, and the noise maps' penalty.

Nothing here needs a download. The perceptual term is the distance between a
trained discriminator's intermediate features (LPIPS-like: unit-normalised over
channels, squared differences summed over channels and averaged over positions
and blocks) where the generator came with its ``D``, else one minus SSIM
(``pytorch_msssim``; MS-SSIM from 256 px on, where its five scales fit).
Every loss is per image, ``[N]``: images optimised together are summed, so
each one's gradient is what it would be alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim, ssim

# From this size on MS-SSIM's five scales each keep an 11 px window (pytorch_msssim needs > 160 px).
MS_SSIM_MIN_SIZE = 256


def ssim_window(resolution: int) -> int:
    """The Gaussian window for SSIM at ``resolution``: 11 px (the standard), smaller odd for tiny images."""
    return min(11, resolution - 1 if resolution % 2 == 0 else resolution)


def structural_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM`` (MS-SSIM from 256 px) of images ``[N, C, R, R]`` in [-1, 1]: ``[N]``."""
    size = a.shape[-1]
    if size >= MS_SSIM_MIN_SIZE:
        return 1 - ms_ssim(a, b, data_range=2.0, size_average=False)
    return 1 - ssim(a, b, data_range=2.0, size_average=False, win_size=ssim_window(size))


def structural_name(resolution: int) -> str:
    """What ``structural_distance`` computes at ``resolution`` (``samples.jsonl``'s ``perceptual``)."""
    return "ms-ssim" if resolution >= MS_SSIM_MIN_SIZE else "ssim"


def discriminator_features(D: torch.nn.Module, img: torch.Tensor) -> list[torch.Tensor]:
    """The output of every block of a ``gan_training`` ``Discriminator`` (before the minibatch-std
    head, so images stay independent): ``[N, C_b, R_b, R_b]`` per block, unit-normalised over channels."""
    feats, x = [], None
    for res in D.block_resolutions:
        x = getattr(D, f"b{res}")(x, img)
        f = x.float()
        feats.append(f * torch.rsqrt(f.square().sum(dim=1, keepdim=True) + 1e-10))
    return feats


@dataclass
class Target:
    """What the loss compares against, computed once per batch: the images ``[N, C, R, R]`` in
    [-1, 1] and, with a discriminator, their features."""

    images: torch.Tensor
    features: list[torch.Tensor] | None = None

    def select(self, index: torch.Tensor | slice) -> "Target":
        return Target(self.images[index], None if self.features is None else [f[index] for f in self.features])


class ReconstructionLoss:
    """``mse + weight * perceptual`` per image; ``kind`` is ``"discriminator"``, ``"ssim"`` or ``"none"``."""

    def __init__(self, kind: str, weight: float, D: torch.nn.Module | None = None):
        if kind == "discriminator" and D is None:
            raise ValueError("ReconstructionLoss: kind 'discriminator' needs D")
        self.kind, self.weight, self.D = kind, weight, D

    def name(self, resolution: int) -> str:
        """``samples.jsonl``'s ``perceptual``: discriminator, ssim, ms-ssim or none."""
        return structural_name(resolution) if self.kind == "ssim" else self.kind

    @torch.no_grad()
    def target(self, images: torch.Tensor) -> Target:
        feats = discriminator_features(self.D, images) if self.kind == "discriminator" else None
        return Target(images, feats)

    def __call__(self, img: torch.Tensor, target: Target) -> torch.Tensor:
        """``img [N, C, R, R]`` against ``target`` (N images, or one broadcast to all): ``[N]``."""
        n = img.shape[0]
        ref = target.images.expand(n, -1, -1, -1)
        loss = (img - ref).square().flatten(1).mean(dim=1)
        if self.kind == "none" or self.weight == 0:
            return loss
        if self.kind == "ssim":
            return loss + self.weight * structural_distance(img, ref)
        feats = discriminator_features(self.D, img)
        dist = sum((f - t).square().sum(dim=1).flatten(1).mean(dim=1) for f, t in zip(feats, target.features))
        return loss + self.weight * dist / len(feats)


def noise_penalty(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """NVIDIA's projector's noise regulariser, per image: for each map ``[N, R, R]``, the squared
    mean products with its neighbours one pixel right and down, summed over the map and its 2x2
    average-pooled versions down to 8 px. White noise scores near 0; a map that holds image
    structure (smooth, correlated) scores high. ``[N]``."""
    total = None
    for v in maps:
        x = v.unsqueeze(1)
        while True:
            term = ((x * torch.roll(x, shifts=1, dims=3)).mean(dim=(1, 2, 3)) ** 2
                    + (x * torch.roll(x, shifts=1, dims=2)).mean(dim=(1, 2, 3)) ** 2)
            total = term if total is None else total + term
            if x.shape[2] <= 8:
                break
            x = F.avg_pool2d(x, kernel_size=2)
    return total


@torch.no_grad()
def normalise_noise(maps: Sequence[torch.Tensor]) -> None:
    """Each image's map to mean 0 and variance 1, in place (after every step, as NVIDIA)."""
    for v in maps:
        v -= v.mean(dim=(1, 2), keepdim=True)
        v *= v.square().mean(dim=(1, 2), keepdim=True).rsqrt()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images of one shape (identical ones: as if the MSE were 1e-10)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0 ** 2 / max(mse, 1e-10))

"""Region fill: a sample's pixels grouped into parts by the generator's own per-pixel features.

A part is a k-means cluster of the per-pixel feature vectors the interpreter
reads (every synthesis map bilinearly upsampled to the label resolution,
and the image's colours), so that one click on the page paints the pixels
the generator built alike. It is computed once per sample, at the label
resolution, without ever holding the ``[D, H, W]`` upsampled features:

- every map is standardised per channel (its own mean and spread over the
  sample) and scaled by ``1 / sqrt(C)``, so that each map, whatever its
  width, carries the same share of a pixel's squared distance; this is an
  affine map per channel, so it commutes with bilinear upsampling;
- the centroids are fitted on a few thousand pixels whose feature vectors
  are gathered from the maps at their own resolution (``FeatureBank``:
  bilinear interpolation at a point is a weighted sum of 4 neighbours);
- every pixel then goes to the centroid ``c`` minimising
  ``|c|^2 - 2 x . c`` (its squared distance less ``|x|^2``, the same for all
  centroids). ``x . c`` is linear in ``x``, so it is computed as the
  interpreter's first layer is at synthesis: ``K`` projections of each map at
  its own resolution, upsampled and summed (``[K, H, W]``, not ``[D, H, W]``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from datasetgan.features import FeatureBank

SAMPLE_PIXELS = 4096
ITERATIONS = 25


def standardise(feature_maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``[1, C, r, r]`` (or ``[C, r, r]``) maps -> ``[C, r, r]`` float32, each channel at mean 0 and
    standard deviation ``1 / sqrt(C)`` over the map."""
    out = []
    for fmap in feature_maps:
        fmap = (fmap[0] if fmap.dim() == 4 else fmap).detach().float().cpu()
        mean = fmap.mean(dim=(1, 2), keepdim=True)
        std = fmap.std(dim=(1, 2), keepdim=True, unbiased=False).clamp_min(1e-6)
        out.append((fmap - mean) / std / math.sqrt(fmap.shape[0]))
    return out


def kmeans(points: torch.Tensor, k: int, generator: torch.Generator, iterations: int = ITERATIONS) -> torch.Tensor:
    """Centroids ``[k, D]`` of ``points [P, D]``: k-means++ seeding, then Lloyd's iterations.
    A centroid left without points restarts on the point farthest from its centroid."""
    n = points.shape[0]
    k = min(k, n)
    first = int(torch.randint(n, (1,), generator=generator))
    centroids = [points[first]]
    nearest = (points - points[first]).pow(2).sum(1)
    for _ in range(1, k):
        weights = nearest.clamp_min(0)
        index = (int(torch.multinomial(weights, 1, generator=generator)) if float(weights.sum()) > 0
                 else int(torch.randint(n, (1,), generator=generator)))
        centroids.append(points[index])
        nearest = torch.minimum(nearest, (points - points[index]).pow(2).sum(1))
    c = torch.stack(centroids)
    for _ in range(iterations):
        dist = torch.cdist(points, c).pow(2)                                  # [P, k]
        assign = dist.argmin(1)
        counts = torch.bincount(assign, minlength=k)
        new = torch.zeros_like(c).index_add_(0, assign, points) / counts.clamp_min(1)[:, None].to(points.dtype)
        gone = counts == 0
        if bool(gone.any()):
            far = dist.gather(1, assign[:, None])[:, 0].argsort(descending=True)
            new[gone] = points[far[:int(gone.sum())]]
        if torch.allclose(new, c):
            c = new
            break
        c = new
    return c


@torch.no_grad()
def part_clusters(feature_maps: Sequence[torch.Tensor], size: tuple[int, int], k: int, seed: int = 0,
                  sample_pixels: int = SAMPLE_PIXELS) -> np.ndarray:
    """Part ids ``[H, W]`` uint8 (``0..k-1``) for one sample at label size ``(H, W)``.

    ``feature_maps``: the sample's maps ``[1, C_i, r_i, r_i]``, the generated image
    ``[1, 3, R, R]`` among them if its colours should count. Deterministic for a seed.
    """
    H, W = size
    maps = standardise(feature_maps)
    bank = FeatureBank(1, [m.shape[-1] for m in maps], [m.shape[0] for m in maps], (H, W), "bilinear",
                       torch.float32)
    bank.store(0, maps)
    gen = torch.Generator().manual_seed(seed)
    flat = torch.randperm(H * W, generator=gen)[:min(sample_pixels, H * W)]
    points = bank.gather(torch.zeros_like(flat), flat // W, flat % W)         # [P, D]
    centroids = kmeans(points, k, gen)
    score = centroids.pow(2).sum(1)[:, None, None].repeat(1, H, W)            # [k, H, W]
    start = 0
    for fmap in maps:
        c = fmap.shape[0]
        proj = torch.einsum("kc,chw->khw", centroids[:, start:start + c], fmap)
        if proj.shape[-2:] != (H, W):
            proj = F.interpolate(proj[None], size=(H, W), mode="bilinear", align_corners=False)[0]
        score.sub_(proj, alpha=2.0)
        start += c
    return score.argmin(0).to(torch.uint8).numpy()

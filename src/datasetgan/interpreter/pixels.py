"""Which labelled pixels of an image are used for training.

Segmentation: classes with fewer than ``min_class_pixels`` pixels in a mask
are ignored there (the reference treated such specks as noise). With a
budget of ``n`` pixels, half is split evenly over the classes present, so
small parts are always represented, and the rest is drawn uniformly from the
remaining pixels. ``n=None`` takes every (non-ignored) pixel, as the reference.
Keypoints: half of the budget near visible keypoints (within 3 sigma), the
rest uniform.
"""

from __future__ import annotations

import torch

from datasetgan.labels import IGNORE


def _take(candidates: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    if k >= candidates.numel():
        return candidates
    return candidates[torch.randperm(candidates.numel(), generator=gen)[:k]]


def _fill(chosen: list[torch.Tensor], pool: torch.Tensor, n: int, size: int,
          gen: torch.Generator) -> torch.Tensor:
    """Top ``chosen`` up to ``n`` pixels with uniform picks from ``pool`` (flat indices)."""
    picked = torch.cat(chosen) if chosen else torch.zeros(0, dtype=torch.long)
    taken = torch.zeros(size, dtype=torch.bool)
    taken[picked] = True
    rest = pool[~taken[pool]]
    extra = _take(rest, max(0, n - picked.numel()), gen)
    return torch.sort(torch.cat([picked, extra])).values


def sample_segmentation_pixels(label_map: torch.Tensor, n: int | None, min_class_pixels: int,
                               gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """label_map ``[H, W]`` int64 (``IGNORE`` where unlabelled) -> flat pixel indices ``[P]`` and their labels ``[P]``."""
    flat = label_map.reshape(-1).long()
    counts = torch.bincount(flat)
    present = torch.nonzero(counts >= max(1, min_class_pixels)).flatten()
    present = present[present != IGNORE]          # unlabelled pixels are never sampled
    usable = torch.isin(flat, present)
    pool = torch.nonzero(usable).flatten()
    if n is None or n >= pool.numel():
        return pool, flat[pool]
    quota = max(1, n // (2 * max(1, present.numel())))
    chosen = [_take(torch.nonzero(flat == c).flatten(), quota, gen) for c in present.tolist()]
    index = _fill(chosen, pool, n, flat.numel(), gen)
    return index, flat[index]


def sample_keypoint_pixels(size: tuple[int, int], keypoints: torch.Tensor, n: int | None,
                           sigma: float, gen: torch.Generator) -> torch.Tensor:
    """keypoints ``[K, 3]`` (x, y, visible) -> flat pixel indices ``[P]``."""
    h, w = size
    pool = torch.arange(h * w)
    if n is None or n >= h * w:
        return pool
    ys, xs = torch.div(pool, w, rounding_mode="floor"), pool % w
    near = torch.zeros(h * w, dtype=torch.bool)
    for x, y, v in keypoints.tolist():
        if v > 0:
            near |= (xs - x) ** 2 + (ys - y) ** 2 <= (3 * sigma) ** 2
    chosen = [_take(torch.nonzero(near).flatten(), n // 2, gen)]
    return _fill(chosen, pool, n, h * w, gen)

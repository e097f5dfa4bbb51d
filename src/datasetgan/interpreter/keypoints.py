"""Keypoints as heatmaps: Gaussian targets for training, sub-pixel peaks out.

Coordinates are in label-grid pixels with pixel ``(row i, column j)``
centred at ``(x=j, y=i)``; the same convention is used for targets and for
decoding, and it is what ``LABELS/<stem>.json`` holds.
"""

from __future__ import annotations

import torch


def gaussian_targets(keypoints: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
                     sigma: float) -> torch.Tensor:
    """Heatmap values at pixels.

    keypoints: ``[P, K, 2]`` (x, y) of the image each pixel belongs to;
    ys, xs: ``[P]``. Returns ``[P, K]`` = ``exp(-d^2 / (2 sigma^2))``.
    """
    dx = xs.float().unsqueeze(1) - keypoints[..., 0]
    dy = ys.float().unsqueeze(1) - keypoints[..., 1]
    return torch.exp(-(dx * dx + dy * dy) / (2.0 * sigma * sigma))


def decode_heatmaps(heatmaps: torch.Tensor, visibility_threshold: float = 0.5) -> torch.Tensor:
    """``[N, K, H, W]`` -> ``[N, K, 3]`` of (x, y, visible).

    The peak pixel is refined with a parabola through it and its two
    neighbours along each axis (offset clamped to half a pixel). ``visible``
    is 1 when the peak value reaches ``visibility_threshold`` (targets peak
    at 1), else 0.
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1).float()
    peak, index = flat.max(dim=2)
    py, px = index // w, index % w

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).unsqueeze(2)
        return flat.gather(2, idx).squeeze(2)

    def offset(minus: torch.Tensor, centre: torch.Tensor, plus: torch.Tensor,
               inside: torch.Tensor) -> torch.Tensor:
        curvature = minus - 2 * centre + plus
        delta = torch.where(curvature < 0, 0.5 * (minus - plus) / curvature.clamp(max=-1e-12),
                            torch.zeros_like(centre))
        return torch.where(inside, delta.clamp(-0.5, 0.5), torch.zeros_like(delta))

    dx = offset(at(py, px - 1), peak, at(py, px + 1), (px > 0) & (px < w - 1))
    dy = offset(at(py - 1, px), peak, at(py + 1, px), (py > 0) & (py < h - 1))
    visible = (peak >= visibility_threshold).float()
    return torch.stack([px.float() + dx, py.float() + dy, visible], dim=2)

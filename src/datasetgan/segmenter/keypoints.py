"""Gaussian keypoint heatmaps and sub-pixel peak decoding.

Coordinates are pixels with ``(0, 0)`` at the centre of the top-left pixel.
"""

from __future__ import annotations

import torch


def render_heatmaps(keypoints: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """``keypoints [N, K, 3]`` (x, y, visible) -> heatmaps ``[N, K, size, size]`` peaking at 1.

    Invisible keypoints get an all-zero map (their loss is masked anyway).
    """
    grid = torch.arange(size, dtype=torch.float32, device=keypoints.device)
    x = keypoints[..., 0:1].float()
    y = keypoints[..., 1:2].float()
    gx = torch.exp(-((grid - x) ** 2) / (2 * sigma ** 2))          # [N, K, size]
    gy = torch.exp(-((grid - y) ** 2) / (2 * sigma ** 2))
    maps = gy[..., :, None] * gx[..., None, :]                      # [N, K, size, size]
    return maps * (keypoints[..., 2] > 0).float()[..., None, None]


def decode_heatmaps(heatmaps: torch.Tensor) -> torch.Tensor:
    """Heatmaps ``[N, K, H, W]`` -> ``[N, K, 3]`` (x, y, peak value).

    The arg-max is refined to sub-pixel by fitting a parabola through the peak
    and its two neighbours along each axis (offset clamped to half a pixel).
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.float().reshape(n, k, -1)
    peak, idx = flat.max(dim=-1)
    iy, ix = idx // w, idx % w

    def refine(line_at, i: torch.Tensor, size: int) -> torch.Tensor:
        left = line_at((i - 1).clamp(min=0))
        right = line_at((i + 1).clamp(max=size - 1))
        centre = line_at(i)
        denom = left - 2 * centre + right
        offset = torch.where(denom.abs() > 1e-12, 0.5 * (left - right) / denom, torch.zeros_like(denom))
        offset = torch.where((i > 0) & (i < size - 1), offset, torch.zeros_like(offset))
        return i.float() + offset.clamp(-0.5, 0.5)

    maps = heatmaps.float()
    b = torch.arange(n, device=maps.device)[:, None].expand(n, k)
    c = torch.arange(k, device=maps.device)[None, :].expand(n, k)
    x = refine(lambda j: maps[b, c, iy, j], ix, w)
    y = refine(lambda j: maps[b, c, j, ix], iy, h)
    return torch.stack([x, y, peak], dim=-1)


def rescale_keypoints(keypoints: torch.Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> torch.Tensor:
    """Map ``[..., >=2]`` pixel coordinates between image sizes ``(H, W)`` (pixel-centre convention)."""
    out = keypoints.clone().float()
    (fh, fw), (th, tw) = from_size, to_size
    out[..., 0] = (keypoints[..., 0] + 0.5) * (tw / fw) - 0.5
    out[..., 1] = (keypoints[..., 1] + 0.5) * (th / fh) - 0.5
    return out

"""Per-pixel features at chosen pixels, without ever upsampling a whole map.

Bilinear upsampling (``align_corners=False``) evaluated at one output pixel
is a weighted sum of the 4 neighbouring input pixels; nearest picks one. So
the feature vector of pixel ``(y, x)`` at the label resolution can be read
from every map at its own resolution. The reference upsampled every map to
512x512 and concatenated them (5,000+ floats per pixel, ~160 GB for 16
images); here only the maps at their native size are kept.
"""

from __future__ import annotations

from typing import Sequence

import torch

from datasetgan.features.config import UpsampleMode


def interp_taps(in_size: int, out_size: int, mode: UpsampleMode,
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """1-D source taps of ``F.interpolate`` for every output index.

    Returns ``(i0 [out], i1 [out], w1 [out])``: output ``j`` reads
    ``(1 - w1) * x[i0] + w1 * x[i1]``. Matches PyTorch's ``bilinear``
    (``align_corners=False``) and ``nearest`` index arithmetic.
    """
    j = torch.arange(out_size, dtype=torch.float64, device=device)
    scale = in_size / out_size
    if mode == "nearest":
        i0 = torch.clamp(torch.floor(j * scale), max=in_size - 1).long()
        return i0, i0, torch.zeros(out_size, dtype=torch.float32, device=device)
    src = torch.clamp((j + 0.5) * scale - 0.5, min=0.0)
    i0 = torch.clamp(torch.floor(src), max=in_size - 1).long()
    i1 = torch.clamp(i0 + 1, max=in_size - 1)
    w1 = (src - i0.to(torch.float64)).to(torch.float32)
    return i0, i1, w1


def _size2(out_size: int | tuple[int, int]) -> tuple[int, int]:
    return (out_size, out_size) if isinstance(out_size, int) else (int(out_size[0]), int(out_size[1]))


class FeatureBank:
    """The selected feature maps of a set of images, kept at native resolution
    (channels-last, optionally fp16), from which batches of pixels are gathered.

    Memory is ``sum_i C_i * R_i^2`` values per image, independent of how many
    pixels are sampled for training.
    """

    def __init__(self, num_images: int, resolutions: Sequence[int], channels: Sequence[int],
                 out_size: int | tuple[int, int], mode: UpsampleMode = "bilinear",
                 dtype: torch.dtype = torch.float16, device: torch.device | str = "cpu"):
        self.num_images = num_images
        self.resolutions = tuple(int(r) for r in resolutions)
        self.channels = tuple(int(c) for c in channels)
        self.out_size = _size2(out_size)
        self.mode = mode
        self.dtype = dtype
        # One [num_images * R * R, C] table per map: a pixel's row is contiguous.
        self.tables = [torch.zeros(num_images * r * r, c, dtype=dtype, device=device)
                       for r, c in zip(self.resolutions, self.channels)]
        H, W = self.out_size
        self.taps_y = [interp_taps(r, H, mode, device) for r in self.resolutions]
        self.taps_x = [interp_taps(r, W, mode, device) for r in self.resolutions]

    @property
    def width(self) -> int:
        return sum(self.channels)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tables)

    def store(self, image_index: int, feature_maps: Sequence[torch.Tensor]) -> None:
        """Keep one image's maps (``[1, C_i, R_i, R_i]`` or ``[C_i, R_i, R_i]``)."""
        if len(feature_maps) != len(self.tables):
            raise ValueError(f"expected {len(self.tables)} feature maps, got {len(feature_maps)}")
        for table, r, fmap in zip(self.tables, self.resolutions, feature_maps):
            fmap = fmap[0] if fmap.dim() == 4 else fmap
            if tuple(fmap.shape[1:]) != (r, r):
                raise ValueError(f"feature map of shape {tuple(fmap.shape)}, expected resolution {r}")
            values = fmap.detach().permute(1, 2, 0).reshape(r * r, -1).to(self.dtype)
            if not torch.isfinite(values).all():
                raise ValueError("feature values overflow the bank's dtype; store them as float32")
            table[image_index * r * r:(image_index + 1) * r * r] = values

    def gather(self, image_index: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """``[P]`` image indices and label-grid pixel coordinates -> ``[P, width]`` float32."""
        image_index, ys, xs = image_index.long(), ys.long(), xs.long()
        parts = []
        for table, r, (y0, y1, wy), (x0, x1, wx) in zip(self.tables, self.resolutions,
                                                        self.taps_y, self.taps_x):
            base = image_index * (r * r)
            ry0, ry1 = base + y0[ys] * r, base + y1[ys] * r
            cx0, cx1 = x0[xs], x1[xs]
            if self.mode == "nearest":
                parts.append(table[ry0 + cx0].float())
                continue
            a, b = wy[ys][:, None], wx[xs][:, None]
            top = torch.lerp(table[ry0 + cx0].float(), table[ry0 + cx1].float(), b)
            bottom = torch.lerp(table[ry1 + cx0].float(), table[ry1 + cx1].float(), b)
            parts.append(torch.lerp(top, bottom, a))
        return torch.cat(parts, dim=1)

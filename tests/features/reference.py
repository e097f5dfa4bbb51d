"""Plain reference versions of what the fast paths compute, for tests to compare against.

``gather_pixel_features`` reads a pixel's feature vector from every map at its
own resolution, written out as the 4-neighbour formula (``FeatureBank.gather``
is the training path). ``project_first_layer`` applies a linear layer before
the upsampling instead of after it, the identity that
``interpreter.predict.predict`` is built on (``features/projected.py``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F

from datasetgan.features import UpsampleMode, interp_taps


def _size2(out_size: int | tuple[int, int]) -> tuple[int, int]:
    return (out_size, out_size) if isinstance(out_size, int) else (int(out_size[0]), int(out_size[1]))


def gather_pixel_features(feature_maps: Sequence[torch.Tensor], ys: torch.Tensor, xs: torch.Tensor,
                          out_size: int | tuple[int, int], mode: UpsampleMode = "bilinear",
                          batch_index: torch.Tensor | None = None) -> torch.Tensor:
    """Feature vectors at pixels of the label grid, as if every map had been
    upsampled to ``out_size`` and concatenated, but reading only 4 neighbours.

    feature_maps: ``[N, C_i, R_i, R_i']`` each. ys, xs: ``[P]`` integer pixel
    coordinates on the ``out_size`` grid. batch_index: ``[P]`` which of the N
    images each pixel belongs to (default: all from image 0).
    Returns ``[P, sum C_i]`` float32.
    """
    H, W = _size2(out_size)
    device = feature_maps[0].device
    ys, xs = ys.to(device).long(), xs.to(device).long()
    b = torch.zeros_like(ys) if batch_index is None else batch_index.to(device).long()
    parts = []
    for fmap in feature_maps:
        rh, rw = fmap.shape[-2:]
        y0, y1, wy = (t[ys] for t in interp_taps(rh, H, mode, device))
        x0, x1, wx = (t[xs] for t in interp_taps(rw, W, mode, device))
        f = fmap.float() if fmap.dtype != torch.float32 else fmap
        if mode == "nearest":
            parts.append(f[b, :, y0, x0])
            continue
        wy, wx = wy[:, None], wx[:, None]
        top = f[b, :, y0, x0] * (1 - wx) + f[b, :, y0, x1] * wx
        bottom = f[b, :, y1, x0] * (1 - wx) + f[b, :, y1, x1] * wx
        parts.append(top * (1 - wy) + bottom * wy)
    return torch.cat(parts, dim=1)


def _upsample(x: torch.Tensor, size: tuple[int, int], mode: UpsampleMode) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == "bilinear":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return F.interpolate(x, size=size, mode="nearest")


def project_first_layer(feature_maps: Sequence[torch.Tensor], weight: torch.Tensor,
                        out_size: int | tuple[int, int], mode: UpsampleMode = "bilinear",
                        bias: torch.Tensor | None = None) -> torch.Tensor:
    """``upsample(concat(maps)) @ weight (+ bias)`` without the wide tensor.

    feature_maps: ``[N, C_i, R_i, R_i]``; weight: ``[sum C_i, O]``; bias: ``[O]``.
    Returns ``[N, O, H, W]``. Maps that share a resolution are summed before
    the (single) upsampling of their projection.
    """
    size = _size2(out_size)
    if weight.shape[0] != sum(m.shape[1] for m in feature_maps):
        raise ValueError(f"weight has {weight.shape[0]} input rows, maps have "
                         f"{sum(m.shape[1] for m in feature_maps)} channels")
    per_res: "OrderedDict[tuple[int, int], torch.Tensor]" = OrderedDict()
    start = 0
    for fmap in feature_maps:
        c = fmap.shape[1]
        w = weight[start:start + c].to(fmap.dtype)  # [C_i, O]
        start += c
        n, _, h, wd = fmap.shape
        # 1x1 conv as a batched matmul: [N, O, C_i] @ [N, C_i, h*w].
        proj = torch.matmul(w.t(), fmap.reshape(n, c, h * wd)).reshape(n, -1, h, wd).float()
        key = (h, wd)
        per_res[key] = per_res[key] + proj if key in per_res else proj
    out = None
    for proj in per_res.values():
        up = _upsample(proj, size, mode)
        out = up if out is None else out.add_(up)  # every tensor here is our own
    if bias is not None:
        out = out + bias.float().view(1, -1, 1, 1)
    return out

"""Whole-image features for synthesis: the fast projected path and the
straightforward one it replaces.

Upsampling is linear and acts on each channel alone, so a linear layer that
follows "upsample every map, then concatenate" can be applied first:
``W @ concat_i(up(F_i)) = sum_i up(W_i @ F_i)``, with ``W_i`` the columns of
``W`` that see map ``i``. ``W_i @ F_i`` is a 1x1 convolution at the map's own
(small) resolution, and only its few output channels are upsampled. Exact up
to float rounding, for bilinear and nearest alike.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F

from datasetgan.features.config import UpsampleMode


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
    size = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
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


def upsample_concat(feature_maps: Sequence[torch.Tensor], out_size: int | tuple[int, int],
                    mode: UpsampleMode = "bilinear") -> torch.Tensor:
    """The straightforward (reference) feature tensor: every map upsampled to
    ``out_size`` and concatenated. ``[N, sum C_i, H, W]``; kept for tests and
    benchmarks, it is what the fast paths avoid."""
    size = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
    return torch.cat([_upsample(m.float(), size, mode) for m in feature_maps], dim=1)

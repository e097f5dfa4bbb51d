"""Whole-image features: the straightforward tensor, and why labelling never builds it.

Upsampling is linear and acts on each channel alone, so a linear layer that
follows "upsample every map, then concatenate" can be applied first:
``W @ concat_i(up(F_i)) = sum_i up(W_i @ F_i)``, with ``W_i`` the columns of
``W`` that see map ``i``. ``W_i @ F_i`` is a 1x1 convolution at the map's own
(small) resolution, and only its few output channels are upsampled. Exact up
to float rounding, for bilinear and nearest alike. The interpreter's
whole-image labelling (``interpreter.predict.predict``) works that way;
``upsample_concat`` is the straightforward tensor it replaces.
"""

from __future__ import annotations

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


def upsample_concat(feature_maps: Sequence[torch.Tensor], out_size: int | tuple[int, int],
                    mode: UpsampleMode = "bilinear") -> torch.Tensor:
    """The straightforward (reference) feature tensor: every map upsampled to
    ``out_size`` and concatenated. ``[N, sum C_i, H, W]``; kept for tests and
    benchmarks, it is what the fast paths avoid."""
    size = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
    return torch.cat([_upsample(m.float(), size, mode) for m in feature_maps], dim=1)

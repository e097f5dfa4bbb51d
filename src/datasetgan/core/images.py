"""Image conversion, PNG writing, contact sheets and label overlays."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from datasetgan.core.fileio import atomic_path


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output in [-1, 1], ``[N, C, H, W]`` -> ``[N, H, W, C]`` uint8.

    The conversion is NVIDIA's (``gen_images.py``): ``(x * 127.5 + 128).clamp(0, 255)``.
    """
    x = (images.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def save_png(path: str | Path, array: np.ndarray, palette: Sequence[Sequence[int]] | None = None) -> None:
    """Write ``[H, W]`` or ``[H, W, C]`` uint8 atomically; with ``palette``, as an indexed PNG."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if palette is None:
        image = Image.fromarray(array)
    else:
        if array.ndim != 2 or array.min(initial=0) < 0 or array.max(initial=0) > 255:
            raise ValueError("save_png: an indexed PNG needs [H, W] class ids in 0..255")
        ids = np.ascontiguousarray(array, dtype=np.uint8)
        image = Image.frombytes("P", (ids.shape[1], ids.shape[0]), ids.tobytes())
        flat = [int(v) for rgb in palette for v in rgb]
        image.putpalette(flat + [0] * (768 - len(flat)))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def grid(images: Sequence[np.ndarray], columns: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile ``[H, W, 3]`` uint8 images of one size into a contact sheet."""
    if len(images) == 0:
        raise ValueError("grid: no images")
    h, w = images[0].shape[:2]
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    sheet = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        img = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
        r, c = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        sheet[y:y + h, x:x + w] = img[:, :, :3]
    return sheet


def default_palette(num_classes: int) -> list[list[int]]:
    """A distinct colour per class; class 0 (background) is black."""
    rng = np.random.RandomState(12345)
    colours = [[0, 0, 0]]
    golden = 0.618033988749895
    for i in range(1, num_classes):
        hue = (i * golden) % 1.0
        sat, val = 0.65 + 0.35 * rng.rand(), 0.75 + 0.25 * rng.rand()
        colours.append([int(255 * c) for c in _hsv_to_rgb(hue, sat, val)])
    return colours


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def colourize(labels: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """``[H, W]`` class ids -> ``[H, W, 3]`` uint8 colours; id 255, unlabelled pixels
    (``datasetgan.labels.IGNORE``) unless the palette has a colour for it, is white."""
    lut = np.zeros((256, 3), np.uint8)
    lut[255] = 255
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    return lut[labels.astype(np.int64).clip(0, 255)]


def overlay(image: np.ndarray, labels: np.ndarray, palette: Sequence[Sequence[int]], alpha: float = 0.5) -> np.ndarray:
    """Blend class colours over an ``[H, W, 3]`` uint8 image (background left as is)."""
    colours = colourize(labels, palette).astype(np.float32)
    out = image[:, :, :3].astype(np.float32)
    mask = (labels > 0)[:, :, None]
    out = np.where(mask, (1 - alpha) * out + alpha * colours, out)
    return out.round().clip(0, 255).astype(np.uint8)


def heatmap(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """``[H, W]`` non-negative floats -> ``[H, W, 3]`` uint8 (black-red-yellow-white)."""
    vmax = float(values.max()) if vmax is None else vmax
    x = np.clip(values / max(vmax, 1e-12), 0, 1)
    rgb = np.stack([np.clip(3 * x, 0, 1), np.clip(3 * x - 1, 0, 1), np.clip(3 * x - 2, 0, 1)], axis=-1)
    return (rgb * 255).round().astype(np.uint8)

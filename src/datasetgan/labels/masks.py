"""Label maps: one class id per pixel, read from every common mask format and written as indexed PNG.

A label map is ``<stem>.npy`` (integer ids), an 8-bit grey PNG of ids, an
indexed ('P') PNG, or a colour-coded RGB PNG mapped through the spec's
palette. Colour-coded masks drawn with anti-aliasing (FASSEG) carry blends of
two neighbouring class colours along borders; each pixel snaps to the nearest
palette colour (see ``read_label_map`` for the tolerance). This project
writes label maps as indexed PNGs with the spec's palette
(``write_label_map``), which read back as the same ids.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from PIL import Image

from datasetgan.core.errors import LabelError
from datasetgan.core.images import save_png
from datasetgan.labels.spec import IGNORE, LabelSpec

# Colour snapping defaults, measured on FASSEG (docs/ARCHITECTURE.md, "Labels"): apart from a
# little resampling noise, every pixel lies within the tolerance of a blend of two class
# colours, while a class colour missing from the spec covers far more than the allowed
# off-palette fraction of a face mask.
DEFAULT_TOLERANCE = 48.0
DEFAULT_MAX_OFF_FRACTION = 0.002


def read_label_map(path: str | Path, spec: LabelSpec, size: tuple[int, int] | None = None,
                   tolerance: float = DEFAULT_TOLERANCE,
                   max_off_fraction: float = DEFAULT_MAX_OFF_FRACTION) -> np.ndarray:
    """Read one label map as class ids, ``[H, W]`` int64; unlabelled pixels (the spec's
    ``ignore_index`` in id masks, ``ignore_colour`` in colour masks) read as ``IGNORE``.

    ``size`` is the expected ``(H, W)`` (the image's). Colour-coded pixels
    snap to the nearest palette colour; a pixel is *off-palette* when it lies
    farther than ``tolerance`` (Euclidean RGB) from every palette colour and
    from every straight blend of two palette colours (anti-aliased borders).
    Up to ``max_off_fraction`` of the pixels may be off-palette (they snap
    too); more is an error naming the file, the commonest off colour and its
    pixel count.
    """
    path = Path(path)
    if not path.exists():
        raise LabelError(path, "label file not found")
    if path.suffix.lower() == ".npy":
        labels, ignored = _read_npy(path), None
    elif path.suffix.lower() == ".png":
        labels, ignored = _read_png(path, spec, tolerance, max_off_fraction)
    else:
        raise LabelError(path, f"unsupported label format {path.suffix!r} (expected .png or .npy)")
    if size is not None and tuple(labels.shape) != tuple(size):
        raise LabelError(path, f"label is {labels.shape[0]}x{labels.shape[1]} (HxW) but its image is "
                               f"{size[0]}x{size[1]}")
    if ignored is None and spec.ignore_index is not None:   # an id mask
        ignored = labels == spec.ignore_index
    invalid = (labels < 0) | (labels >= spec.num_classes)
    if ignored is not None:
        invalid &= ~ignored
    if invalid.any():
        values = labels[invalid]
        bad = int(values.max()) if values.max() >= spec.num_classes else int(values.min())
        count = int((values == bad).sum())
        also = f", nor the ignore_index {spec.ignore_index}" if spec.ignore_index is not None else ""
        raise LabelError(path, f"class id {bad} ({count} pixels) is outside the spec's "
                               f"{spec.num_classes} classes (0..{spec.num_classes - 1}{also})")
    if ignored is not None:
        labels[ignored] = IGNORE
    return labels


def write_label_map(path: str | Path, labels: np.ndarray, spec: LabelSpec) -> None:
    """Write class ids ``labels [H, W]`` (integers) atomically as an indexed PNG with the spec's palette.

    Unlabelled pixels carry the spec's ``ignore_index`` or ``IGNORE``;
    ``read_label_map`` reads the file back as the same ids.
    """
    ids = np.asarray(labels)
    stray = (ids < 0) | (ids >= spec.num_classes)
    stray &= ids != IGNORE
    if spec.ignore_index is not None:
        stray &= ids != spec.ignore_index
    if stray.any():
        raise ValueError(f"write_label_map {path}: id {int(ids[stray][0])} is neither one of the spec's "
                         f"{spec.num_classes} classes nor an unlabelled id")
    save_png(path, ids, palette=spec.palette)


def _read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise LabelError(path, f"not a readable .npy array ({exc})") from None
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise LabelError(path, f"expected a 2-D array of class ids, got shape {tuple(arr.shape)}")
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.round()
        else:
            raise LabelError(path, f"expected integer class ids, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _read_png(path: Path, spec: LabelSpec, tolerance: float,
              max_off_fraction: float) -> tuple[np.ndarray, np.ndarray | None]:
    """``(ids [H, W] int64, ignored [H, W] bool)``; ``ignored`` is None for masks of ids (grey,
    or indexed with the spec's palette or a grey ramp), where ``ignore_index`` applies instead."""
    try:
        image = Image.open(path)
        image.load()
    except OSError as exc:
        raise LabelError(path, f"not a readable PNG ({exc})") from None
    mode = image.mode
    if mode in ("L", "I", "I;16", "1", "LA"):
        if mode == "LA":
            image = image.getchannel(0)
        return np.asarray(image).astype(np.int64), None
    if mode == "P":
        indices = np.asarray(image).astype(np.int64)
        file_palette = np.asarray(image.getpalette() or [], np.int64).reshape(-1, 3)
        used = np.unique(indices)
        spec_palette = np.asarray(spec.palette, np.int64).reshape(-1, 3)
        if used.max(initial=0) < len(file_palette):
            # The ignore_index's own entry may hold any colour (PASCAL VOC: 255 is (224, 224, 192)).
            classes = used if spec.ignore_index is None else used[used != spec.ignore_index]
            colours = file_palette[classes]
            # The file's palette agrees with the spec's at every index in use: the indices are class ids.
            if classes.max(initial=0) < len(spec_palette) and np.array_equal(colours, spec_palette[classes]):
                return indices, None
            # A plain grey ramp (i, i, i) carries no colour meaning: the indices are class ids.
            if np.array_equal(colours, np.repeat(classes[:, None], 3, axis=1)):
                return indices, None
            rgb = file_palette[indices]
        else:
            return indices, None
        return _snap_colours(path, rgb.astype(np.uint8), spec, tolerance, max_off_fraction)
    rgb = np.asarray(image.convert("RGB"))
    return _snap_colours(path, rgb, spec, tolerance, max_off_fraction)


def _blend_distance(colours: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Distance ``[U]`` of each colour ``[U, 3]`` to the nearest palette colour or two-colour blend."""
    best = np.sqrt(((colours[:, None, :] - palette[None]) ** 2).sum(-1)).min(1)
    for i, j in itertools.combinations(range(len(palette)), 2):
        a, ab = palette[i], palette[j] - palette[i]
        t = np.clip(((colours - a) @ ab) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(colours - (a + t[:, None] * ab), axis=1))
    return best


def _snap_colours(path: Path, rgb: np.ndarray, spec: LabelSpec, tolerance: float,
                  max_off_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Colour-coded ``rgb [H, W, 3]`` -> ``(class ids, ignored)``: each pixel snaps to the nearest
    palette colour or the ``ignore_colour`` (anti-aliased borders lie between two of them); an
    ignored pixel's id is ``num_classes`` here, and ``read_label_map`` makes it ``IGNORE``."""
    if spec.num_classes == 0:
        raise LabelError(path, "the label spec has no classes to map colours to")
    h, w = rgb.shape[:2]
    flat = rgb.reshape(-1, 3)
    # Work on the distinct colours only: a mask has a few hundred at most.
    # (np.unique on packed 24-bit integers is much faster than with axis=0.)
    packed = (flat[:, 0].astype(np.int32) << 16) | (flat[:, 1].astype(np.int32) << 8) | flat[:, 2]
    keys, inverse, counts = np.unique(packed, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    colours = np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], axis=1)
    palette = np.asarray(list(spec.palette) + ([spec.ignore_colour] if spec.ignore_colour else []), np.float64)
    c = colours.astype(np.float64)
    nearest = np.sqrt(((c[:, None, :] - palette[None]) ** 2).sum(-1)).argmin(1)
    off = _blend_distance(c, palette) > tolerance
    off_count = int(counts[off].sum())
    if off_count > max_off_fraction * flat.shape[0]:
        worst = np.flatnonzero(off)[np.argmax(counts[off])]
        raise LabelError(path, f"{off_count} of {flat.shape[0]} pixels have colours that are not in the spec's "
                               f"palette (beyond tolerance {tolerance:g}), e.g. {colours[worst].tolist()} on "
                               f"{int(counts[worst])} pixels; palette: {[list(p) for p in spec.palette]}"
                               + (f", ignore_colour {list(spec.ignore_colour)}" if spec.ignore_colour else ""))
    ids = nearest[inverse].reshape(h, w).astype(np.int64)
    return ids, ids == spec.num_classes    # the ignore colour's row of the extended palette

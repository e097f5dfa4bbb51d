"""LabelMe annotations (one ``<stem>.json`` per image) as this project's label files.

People label the generated samples in a tool; LabelMe (``labelme
samples/images --output DIR --nodata``) is a common one and writes, per
image, ``imageHeight``, ``imageWidth`` and a list of ``shapes``, each with a
``label``, a ``shape_type`` and ``points`` in canvas coordinates, where pixel
``(i, j)`` spans ``[i, i + 1) x [j, j + 1)``.

- Segmentation: ``polygon``, ``rectangle``, ``circle`` (centre, then a point
  on the circle) and ``mask`` (a base64 PNG covering the box from
  ``points[0]`` to ``points[1]``) shapes are painted with their class id in
  file order, later shapes over earlier ones (as LabelMe's own export
  does). A pixel is painted when its centre ``(i + 0.5, j + 0.5)`` lies
  inside the shape (LabelMe's own export hands the raw coordinates to PIL,
  which puts them half a pixel off). Pixels no
  shape covers are class 0 (the spec's first class, normally background),
  or unlabelled with ``uncovered="ignore"`` (the spec's ``ignore_index``).
  Written as ``<stem>.png``, indexed with the spec's palette.
- Keypoints: ``point`` shapes whose label is one of the spec's keypoint
  names, written as ``<stem>.json`` (``[x, y, visible]`` per keypoint, in
  this project's convention: ``(0, 0)`` is the centre of the top-left pixel);
  a keypoint without a point is invisible.

Anything else (an unknown label or shape type, a keypoint placed twice, a
file that is not LabelMe's) is a ``LabelError`` naming the file and the shape.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from datasetgan.core.errors import LabelError, UserError
from datasetgan.core.fileio import read_json
from datasetgan.labels.keypoints import write_keypoints
from datasetgan.labels.masks import write_label_map
from datasetgan.labels.spec import LabelSpec

AREA_SHAPES = ("polygon", "rectangle", "circle", "mask")
Uncovered = Literal["background", "ignore"]


def _points(path: Path, k: int, shape: dict, need: int) -> np.ndarray:
    """The shape's points ``[P, 2]`` (x, y) in canvas coordinates."""
    try:
        pts = np.array([[float(x), float(y)] for x, y in shape.get("points")], dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise LabelError(path, f"shape {k} ({shape.get('label')!r}): 'points' must be a list of [x, y]") from None
    if len(pts) < need or not np.isfinite(pts).all():
        raise LabelError(path, f"shape {k} ({shape.get('label')!r}): expected at least {need} finite points, "
                               f"got {len(pts)}")
    return pts


def _fill_polygon(pts: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` bool: pixels whose centres ``(i + 0.5, j + 0.5)`` lie inside the
    polygon (even-odd rule; a centre on a left edge is inside, on a right edge outside)."""
    h, w = size
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    out = np.zeros((h, w), bool)
    for row in range(h):
        yc = row + 0.5
        crossing = (np.minimum(y0, y1) <= yc) & (yc < np.maximum(y0, y1))
        if not crossing.any():
            continue
        a, b, c, d = x0[crossing], y0[crossing], x1[crossing], y1[crossing]
        xs = np.sort(a + (yc - b) / (d - b) * (c - a))
        for left, right in zip(xs[0::2], xs[1::2]):  # centres in [left, right)
            out[row, max(0, math.ceil(left - 0.5)):max(0, min(w, math.ceil(right - 0.5)))] = True
    return out


def _area_mask(path: Path, k: int, shape: dict, size: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` bool: the pixels of the shape."""
    h, w = size
    kind = shape.get("shape_type") or "polygon"
    if kind == "polygon":
        return _fill_polygon(_points(path, k, shape, 3), size)
    if kind == "rectangle":
        (ax, ay), (bx, by) = _points(path, k, shape, 2)[:2]
        return _fill_polygon(np.array([[ax, ay], [bx, ay], [bx, by], [ax, by]]), size)
    if kind == "circle":
        (cx, cy), (px, py) = _points(path, k, shape, 2)[:2]
        yc, xc = np.mgrid[0:h, 0:w] + 0.5
        return (xc - cx) ** 2 + (yc - cy) ** 2 <= (px - cx) ** 2 + (py - cy) ** 2
    # mask: a PNG of the box's pixels, anchored at the box's first pixel (LabelMe's int() of points[0])
    left, top = (math.floor(v) for v in _points(path, k, shape, 2)[0])
    try:
        crop = np.asarray(Image.open(io.BytesIO(base64.b64decode(shape["mask"], validate=True)))) > 0
    except Exception as exc:  # noqa: BLE001 - base64 and PIL fail in many ways
        raise LabelError(path, f"shape {k} ({shape.get('label')!r}): 'mask' is not a base64 PNG "
                               f"({type(exc).__name__})") from None
    if crop.ndim == 3:
        crop = crop.any(axis=2)
    out = np.zeros((h, w), bool)
    ys = slice(max(top, 0), max(0, min(top + crop.shape[0], h)))
    xs = slice(max(left, 0), max(0, min(left + crop.shape[1], w)))
    out[ys, xs] = crop[ys.start - top:ys.stop - top, xs.start - left:xs.stop - left]
    return out


def _size(path: Path, data: Any) -> tuple[int, int]:
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise LabelError(path, "not a LabelMe file (expected an object with a 'shapes' list)")
    try:
        h, w = int(data["imageHeight"]), int(data["imageWidth"])
    except (KeyError, TypeError, ValueError):
        raise LabelError(path, "expected integer 'imageHeight' and 'imageWidth'") from None
    if h < 1 or w < 1:
        raise LabelError(path, f"image size {w}x{h} is empty")
    return h, w


def convert_labelme(path: str | Path, spec: LabelSpec, uncovered: Uncovered = "background"
                    ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """One LabelMe file -> ``(class ids [H, W] uint8 or None, keypoints [K, 3] or None)``.

    Keypoints when the spec names keypoints; class ids when it has classes,
    unless it also names keypoints and the file holds points only.
    """
    path = Path(path)
    data = read_json(path, "LabelMe file")
    h, w = _size(path, data)
    classes = {name: i for i, name in enumerate(spec.classes)}
    names = {name: k for k, name in enumerate(spec.keypoints or [])}
    if uncovered == "ignore" and spec.ignore_index is None:
        raise UserError("--uncovered ignore: the label spec has no 'ignore_index' to mark unlabelled pixels")
    ids = np.full((h, w), 0 if uncovered == "background" else spec.ignore_index, np.uint8)
    keypoints = np.zeros((len(names), 3)) if names else None
    areas = 0
    for k, shape in enumerate(data["shapes"]):
        if not isinstance(shape, dict) or not isinstance(shape.get("label"), str):
            raise LabelError(path, f"shape {k}: expected an object with a 'label' string")
        label, kind = shape["label"], shape.get("shape_type") or "polygon"
        if kind == "point":
            if label not in names:
                known = f"the spec's keypoints are {list(names)}" if names else "the spec names no keypoints"
                raise LabelError(path, f"shape {k}: point {label!r} is not a keypoint ({known})")
            if keypoints[names[label], 2]:
                raise LabelError(path, f"shape {k}: keypoint {label!r} is placed twice")
            x, y = _points(path, k, shape, 1)[0]
            if not (0 <= x <= w and 0 <= y <= h):
                raise LabelError(path, f"shape {k}: keypoint {label!r} at ({x:g}, {y:g}) lies "
                                       f"outside the {w}x{h} image")
            keypoints[names[label]] = (x - 0.5, y - 0.5, 1.0)  # to pixel centres at integers
        elif kind in AREA_SHAPES:
            if label not in classes:
                raise LabelError(path, f"shape {k}: label {label!r} is not a class of the spec "
                                       f"({', '.join(spec.classes)})")
            ids[_area_mask(path, k, shape, (h, w))] = classes[label]
            areas += 1
        else:
            raise LabelError(path, f"shape {k} ({label!r}): shape type {kind!r} is not supported; use "
                                   f"{', '.join(AREA_SHAPES)} for parts or point for keypoints")
    if not spec.classes or (areas == 0 and names):
        ids = None
    return ids, keypoints


def import_labelme(src: str | Path, spec: LabelSpec, out: str | Path,
                   uncovered: Uncovered = "background") -> dict[str, int]:
    """Every ``src/*.json`` to ``out/<stem>.png`` and/or ``out/<stem>.json``; returns counts."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise UserError(f"{src}: not a folder of LabelMe .json files")
    if out.exists() and out.resolve() == src.resolve():
        raise UserError(f"--out {out}: is the LabelMe folder; keypoint files would overwrite its .json files, "
                        "so give another folder")
    files = sorted(src.glob("*.json"))
    if not files:
        raise UserError(f"{src}: no LabelMe .json files")
    converted = [(p.stem, *convert_labelme(p, spec, uncovered)) for p in files]  # every file checked first
    return {"files": len(files), **write_converted(out, converted, spec)}


def write_converted(out: Path, converted: list[tuple[str, np.ndarray | None, np.ndarray | None]],
                    spec: LabelSpec) -> dict[str, int]:
    """Write ``(stem, class ids or None, keypoints or None)`` as ``out/<stem>.png`` / ``.json``;
    the counts of each (shared by the importers, which check every file first)."""
    counts = {"masks": 0, "keypoint_files": 0}
    for stem, ids, keypoints in converted:
        if ids is not None:
            write_label_map(out / f"{stem}.png", ids, spec)
            counts["masks"] += 1
        if keypoints is not None:
            write_keypoints(out / f"{stem}.json", keypoints, spec)
            counts["keypoint_files"] += 1
    return counts

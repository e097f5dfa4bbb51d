"""Label Studio's JSON export as this project's label files.

Label Studio (``Export -> JSON``) writes one list of tasks; each task names its
image in ``data`` (``data.image``, e.g. ``/data/upload/3/1a2b3c4d-000001.png``
or ``/data/local-files/?d=samples/images/000001.png``) and holds
``annotations``, each a list of ``result`` regions with ``original_width``,
``original_height`` and a ``value`` whose coordinates are percentages of the
image's width and height.

- Segmentation: ``brushlabels`` (a run-length encoded RGBA mask, decoded with
  Label Studio's own decoder from the ``label-studio-converter`` package;
  a pixel belongs to the stroke where its alpha is non-zero),
  ``polygonlabels``, ``rectanglelabels`` and ``ellipselabels`` regions are
  painted with their class in file order, later over earlier. A polygon,
  rectangle or ellipse covers the pixels whose centres lie inside it (as the
  LabelMe importer fills). Uncovered pixels are class 0, or unlabelled with
  ``uncovered="ignore"``. Written as ``<stem>.png``, indexed with the spec's palette.
- Keypoints: ``keypointlabels`` regions named after the spec's keypoints,
  written as ``<stem>.json`` in this project's convention (``(0, 0)`` is the
  centre of the top-left pixel); a keypoint without a region is invisible.

The stem is the image file's name without its suffix, less the 8-hex-digit
``<hash>-`` prefix Label Studio gives uploaded files. A task's last
annotation that was not cancelled is used; tasks without one are skipped.
Anything else (an unknown label or region type, a keypoint placed twice,
regions of different sizes) is a ``LabelError`` naming the file, the task and
the region.
"""

from __future__ import annotations

import math
import re
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

from datasetgan.core.errors import LabelError, UserError
from datasetgan.core.fileio import read_json
from datasetgan.labels.labelme import _fill_polygon, write_converted
from datasetgan.labels.spec import LabelSpec

AREA_TYPES = ("brushlabels", "polygonlabels", "rectanglelabels", "ellipselabels")
KEYPOINT_TYPE = "keypointlabels"
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")
Uncovered = Literal["background", "ignore"]


def decode_brush(rle: list[int], size: tuple[int, int], where: str) -> np.ndarray:
    """A brush region's RLE -> ``[H, W]`` bool (Label Studio's decoder; alpha > 0)."""
    try:
        from label_studio_converter.brush import decode_rle
    except ImportError:
        raise UserError(f"{where}: brush regions need Label Studio's RLE decoder: "
                        "pip install 'datasetgan[labelstudio]' (the label-studio-converter package)") from None
    h, w = size
    try:
        flat = decode_rle(rle)
    except Exception as exc:  # noqa: BLE001 - a damaged RLE fails in many ways
        raise LabelError(where, f"brush 'rle' cannot be decoded ({type(exc).__name__})") from None
    if flat.size != h * w * 4:
        raise LabelError(where, f"brush 'rle' holds {flat.size} values, expected {h}x{w}x4 (RGBA)")
    return flat.reshape(h, w, 4)[:, :, 3] > 0


def task_stem(task: dict, where: str) -> str:
    """The stem of a task's image (its file name without suffix and upload prefix)."""
    data = task.get("data")
    if not isinstance(data, dict):
        raise LabelError(where, "expected a 'data' object naming the image")
    value = data.get("image")
    if not isinstance(value, str):
        strings = [v for v in data.values() if isinstance(v, str)]
        if len(strings) != 1:
            raise LabelError(where, "'data' has no 'image' key and not exactly one string to take instead")
        value = strings[0]
    url = urlparse(value)
    path = parse_qs(url.query).get("d", [url.path])[0]
    name = PurePosixPath(unquote(path)).name
    stem = UPLOAD_PREFIX.sub("", PurePosixPath(name).stem)
    if not stem or stem in (".", ".."):
        raise LabelError(where, f"cannot tell the image's name from {value!r}")
    return stem


def _percent_points(where: str, value: dict, w: int, h: int) -> np.ndarray:
    try:
        pts = np.array([[float(x) * w / 100.0, float(y) * h / 100.0] for x, y in value["points"]]).reshape(-1, 2)
    except (KeyError, TypeError, ValueError):
        raise LabelError(where, "'points' must be a list of [x%, y%]") from None
    if len(pts) < 3 or not np.isfinite(pts).all():
        raise LabelError(where, f"a polygon needs at least 3 finite points, got {len(pts)}")
    return pts


def _box(where: str, value: dict, w: int, h: int) -> tuple[float, float, float, float, float]:
    try:
        x, y = float(value["x"]) * w / 100.0, float(value["y"]) * h / 100.0
        rotation = math.radians(float(value.get("rotation", 0.0)))
        if "radiusX" in value:
            return x, y, float(value["radiusX"]) * w / 100.0, float(value["radiusY"]) * h / 100.0, rotation
        return x, y, float(value["width"]) * w / 100.0, float(value["height"]) * h / 100.0, rotation
    except (KeyError, TypeError, ValueError):
        raise LabelError(where, "expected numbers x, y and width, height (or radiusX, radiusY)") from None


def _area(where: str, kind: str, result: dict, size: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` bool: the pixels of one area region."""
    h, w = size
    value = result["value"]
    if kind == "brushlabels":
        if value.get("format", "rle") != "rle" or "rle" not in value:
            raise LabelError(where, "a brush region needs 'format': 'rle' and an 'rle' list")
        return decode_brush(value["rle"], size, where)
    if kind == "polygonlabels":
        return _fill_polygon(_percent_points(where, value, w, h), size)
    x, y, a, b, rotation = _box(where, value, w, h)
    cos, sin = math.cos(rotation), math.sin(rotation)
    if kind == "rectanglelabels":   # (x, y) is the top-left corner; it turns about that corner
        corners = np.array([[0, 0], [a, 0], [a, b], [0, b]], float)
        rotated = np.stack([x + corners[:, 0] * cos - corners[:, 1] * sin,
                            y + corners[:, 0] * sin + corners[:, 1] * cos], axis=1)
        return _fill_polygon(rotated, size)
    # ellipse: (x, y) is the centre, a and b the radii
    yc, xc = np.mgrid[0:h, 0:w] + 0.5
    dx, dy = xc - x, yc - y
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    return (u / max(a, 1e-9)) ** 2 + (v / max(b, 1e-9)) ** 2 <= 1.0


def _chosen_annotation(task: dict, where: str) -> list | None:
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not annotations:
        return None
    result = annotations[-1].get("result")
    if not isinstance(result, list):
        raise LabelError(where, "the annotation has no 'result' list")
    return result


def convert_task(task: dict, spec: LabelSpec, where: str, uncovered: Uncovered = "background"
                 ) -> tuple[str, np.ndarray | None, np.ndarray | None] | None:
    """One Label Studio task -> ``(stem, class ids [H, W] uint8 or None, keypoints [K, 3] or None)``,
    or ``None`` for a task nobody annotated. ``where`` names the task in errors."""
    if not isinstance(task, dict):
        raise LabelError(where, "expected a task object")
    stem = task_stem(task, where)
    results = _chosen_annotation(task, where)
    if results is None:
        return None
    classes = {name: i for i, name in enumerate(spec.classes)}
    names = {name: k for k, name in enumerate(spec.keypoints or [])}
    if uncovered == "ignore" and spec.ignore_index is None:
        raise UserError("--uncovered ignore: the label spec has no 'ignore_index' to mark unlabelled pixels")
    size: tuple[int, int] | None = None
    ids: np.ndarray | None = None
    keypoints = np.zeros((len(names), 3)) if names else None
    areas = 0
    for k, result in enumerate(results):
        at = f"{where}, region {k}"
        if not isinstance(result, dict) or not isinstance(result.get("value"), dict):
            raise LabelError(at, "expected an object with a 'value'")
        kind = str(result.get("type", "")).lower()
        if kind not in AREA_TYPES and kind != KEYPOINT_TYPE:
            if kind in ("choices", "textarea", "rating", "taxonomy", "relation"):
                continue   # whole-image answers and links carry no pixels
            raise LabelError(at, f"region type {kind!r} is not supported; use {', '.join(AREA_TYPES)} for parts "
                                 f"or {KEYPOINT_TYPE} for keypoints")
        try:
            this = (int(result["original_height"]), int(result["original_width"]))
        except (KeyError, TypeError, ValueError):
            raise LabelError(at, "expected integer 'original_width' and 'original_height'") from None
        if this[0] < 1 or this[1] < 1 or (size is not None and this != size):
            raise LabelError(at, f"image size {this[1]}x{this[0]} (WxH)"
                                 + (f" differs from the task's {size[1]}x{size[0]}" if size else " is empty"))
        size = this
        labels = result["value"].get(kind)
        if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
            raise LabelError(at, f"expected one label in '{kind}', got {labels!r}")
        label = labels[0]
        if kind == KEYPOINT_TYPE:
            if label not in names:
                known = f"the spec's keypoints are {list(names)}" if names else "the spec names no keypoints"
                raise LabelError(at, f"keypoint {label!r} is not a keypoint of the spec ({known})")
            if keypoints[names[label], 2]:
                raise LabelError(at, f"keypoint {label!r} is placed twice")
            x, y, _, _, _ = _box(at, {"width": 0, "height": 0, **result["value"]}, size[1], size[0])
            if not (0 <= x <= size[1] and 0 <= y <= size[0]):
                raise LabelError(at, f"keypoint {label!r} at ({x:g}, {y:g}) lies outside the "
                                     f"{size[1]}x{size[0]} image")
            keypoints[names[label]] = (x - 0.5, y - 0.5, 1.0)   # to pixel centres at integers
            continue
        if label not in classes:
            raise LabelError(at, f"label {label!r} is not a class of the spec ({', '.join(spec.classes)})")
        if ids is None:
            ids = np.full(size, 0 if uncovered == "background" else spec.ignore_index, np.uint8)
        ids[_area(at, kind, result, size)] = classes[label]
        areas += 1
    if not spec.classes or (areas == 0 and names):
        ids = None
    if size is None:
        return None
    return stem, ids, keypoints


def import_labelstudio(src: str | Path, spec: LabelSpec, out: str | Path,
                       uncovered: Uncovered = "background") -> dict[str, int]:
    """A Label Studio JSON export ``src`` to ``out/<stem>.png`` and/or ``out/<stem>.json``; returns counts.
    Every task is checked before anything is written."""
    src, out = Path(src), Path(out)
    tasks = read_json(src, "Label Studio export")
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise LabelError(src, "expected a list of tasks (Label Studio: Export -> JSON)")
    converted, seen = [], {}
    for i, task in enumerate(tasks):
        where = f"{src}, task {task.get('id', i) if isinstance(task, dict) else i}"
        done = convert_task(task, spec, where, uncovered)
        if done is None:
            continue
        if done[0] in seen:
            raise LabelError(where, f"image {done[0]!r} is also labelled in {seen[done[0]]}")
        seen[done[0]] = where
        converted.append(done)
    return {"tasks": len(tasks), "skipped": len(tasks) - len(converted), **write_converted(out, converted, spec)}

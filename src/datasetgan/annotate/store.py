"""The annotator's files: the samples it shows and the labels it reads and writes.

Only two folders are ever touched: the samples folder ``S`` (read) and the
labels folder ``L`` (``L/<stem>.png``, an indexed PNG with the spec's
palette, or ``L/<stem>.json`` for keypoints; written atomically, the files
the importers and ``train-interpreter`` read). A stem is looked up in the
samples folder's own list and never used as a path before that, so no
request can name a file elsewhere.

Label bodies from the page or a script are checked here, and a bad one is a
``BadLabel`` whose message the server returns with status 400.
"""

from __future__ import annotations

import io
import json
import math
import threading
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from datasetgan.core.errors import UserError
from datasetgan.interpreter.data import SamplesFolder, read_samples_folder
from datasetgan.labels import IGNORE, LabelSpec, read_keypoints, read_label_map, write_keypoints, write_label_map

Task = Literal["segmentation", "keypoints"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class BadLabel(ValueError):
    """A label body that cannot be saved; the message says why (for a 400 answer)."""


class UnknownStem(KeyError):
    """A stem that is not in the samples folder (a 404 answer)."""


def resolve_task(spec: LabelSpec, requested: str) -> Task:
    """``auto``: keypoints when the spec names keypoints and no classes, else segmentation."""
    if requested == "keypoints":
        if not spec.num_keypoints:
            raise UserError("--task keypoints: the label spec names no keypoints (add a 'keypoints' list)")
        return "keypoints"
    if requested == "segmentation" or (requested == "auto" and spec.num_classes):
        if spec.num_classes < 2:
            raise UserError("the label spec needs at least 2 classes to label segmentation masks")
        return "segmentation"
    if requested == "auto" and spec.num_keypoints:
        return "keypoints"
    raise UserError(f"--task {requested}: expected auto, segmentation or keypoints")


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


class LabelStore:
    """The samples folder ``samples`` and the labels folder ``labels`` for one spec and task."""

    def __init__(self, samples: str | Path, labels: str | Path, spec: LabelSpec, task: Task):
        self.folder: SamplesFolder = read_samples_folder(samples)
        self.root = Path(samples)
        self.labels = Path(labels)
        if self.labels.exists() and not self.labels.is_dir():
            raise UserError(f"--labels {self.labels}: is a file, not a folder")
        self.labels.mkdir(parents=True, exist_ok=True)
        self.spec, self.task = spec, task
        images = self.folder.images or tuple(f"images/{s}.png" for s in self.folder.stems)
        self.stems: list[str] = list(self.folder.stems)
        self.index = {stem: i for i, stem in enumerate(self.stems)}
        self._images: dict[str, Path] = {}
        for stem, rel in zip(self.stems, images):
            path = self.root / rel
            if not _inside(self.root, path):
                raise UserError(f"{self.root / 'samples.jsonl'}: image {rel!r} lies outside the samples folder")
            self._images[stem] = path
        self._sizes: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self.version = 0          # bumped by every saved label: the assistant retrains on a new version

    # --- lookups -------------------------------------------------------------------------------

    def check(self, stem: str) -> str:
        """``stem`` itself if the samples folder has it, else ``UnknownStem``."""
        if stem not in self.index:
            raise UnknownStem(stem)
        return stem

    def image_path(self, stem: str) -> Path:
        return self._images[self.check(stem)]

    def image_size(self, stem: str) -> tuple[int, int]:
        """``(H, W)`` of the sample's image (read from its PNG header once)."""
        stem = self.check(stem)
        if stem not in self._sizes:
            with Image.open(self._images[stem]) as image:
                self._sizes[stem] = (image.height, image.width)
        return self._sizes[stem]

    @property
    def suffix(self) -> str:
        return ".json" if self.task == "keypoints" else ".png"

    def label_path(self, stem: str) -> Path:
        path = self.labels / f"{self.check(stem)}{self.suffix}"
        if path.parent.resolve() != self.labels.resolve():
            raise UnknownStem(stem)
        return path

    def is_labelled(self, stem: str) -> bool:
        return self.label_path(stem).is_file()

    def labelled(self) -> list[str]:
        """The stems that have a label file, in sample order."""
        present = {p.name for p in self.labels.iterdir()} if self.labels.is_dir() else set()
        return [s for s in self.stems if f"{s}{self.suffix}" in present]

    # --- reading ------------------------------------------------------------------------------

    @property
    def erase_id(self) -> int:
        """The id of an unlabelled pixel (the spec's ``ignore_index``), else class 0 (background).

        A spec with only an ``ignore_colour`` (for colour-coded masks) has no id to write."""
        return self.spec.ignore_index if self.spec.ignore_index is not None else 0

    @property
    def has_unlabelled(self) -> bool:
        return self.spec.ignore_index is not None

    def read_ids(self, stem: str) -> np.ndarray:
        """The saved mask of ``stem`` as ``[H, W]`` uint8 class ids (unlabelled pixels: ``erase_id``)."""
        ids = read_label_map(self.label_path(stem), self.spec, size=self.image_size(stem))
        ids[ids == IGNORE] = self.erase_id
        return ids.astype(np.uint8)

    def read_points(self, stem: str) -> np.ndarray:
        """The saved keypoints of ``stem``, ``[K, 3]`` (x, y, visible)."""
        return read_keypoints(self.label_path(stem), self.spec, size=self.image_size(stem))

    def ids_png(self, ids: np.ndarray) -> bytes:
        """``ids [H, W]`` as an indexed PNG with the spec's palette."""
        image = Image.frombytes("P", (ids.shape[1], ids.shape[0]), np.ascontiguousarray(ids, np.uint8).tobytes())
        flat = [int(v) for rgb in self.spec.palette for v in rgb]
        image.putpalette(flat + [0] * (768 - len(flat)))
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()

    # --- checking and writing ------------------------------------------------------------------

    def parse_mask(self, stem: str, body: bytes) -> np.ndarray:
        """A PUT body: a PNG of class ids (mode L or P) of the sample's size -> ``[H, W]`` uint8."""
        if not body.startswith(PNG_SIGNATURE):
            raise BadLabel("the body is not a PNG (expected a PNG of class ids, mode L or P)")
        try:
            image = Image.open(io.BytesIO(body))
            size = (image.height, image.width)
            mode = image.mode
        except Exception as exc:  # noqa: BLE001 - PIL fails in many ways on damaged files
            raise BadLabel(f"the body is not a readable PNG ({type(exc).__name__})") from None
        if mode not in ("L", "P"):
            raise BadLabel(f"the PNG has mode {mode}; send class ids as a grey (L) or indexed (P) PNG")
        expected = self.image_size(stem)
        if size != expected:
            raise BadLabel(f"the label is {size[1]}x{size[0]} (WxH) but the sample's image is "
                           f"{expected[1]}x{expected[0]}")
        try:
            ids = np.asarray(image).astype(np.int64)
        except Exception as exc:  # noqa: BLE001
            raise BadLabel(f"the PNG's pixels cannot be read ({type(exc).__name__})") from None
        allowed = ids < self.spec.num_classes
        if self.has_unlabelled:
            allowed |= ids == self.erase_id
        if not allowed.all():
            bad = int(ids[~allowed].max())
            count = int((ids == bad).sum())
            also = f" nor the unlabelled id {self.erase_id}" if self.has_unlabelled else ""
            raise BadLabel(f"class id {bad} ({count} pixels) is not one of the spec's {self.spec.num_classes} "
                           f"classes (0..{self.spec.num_classes - 1}){also}")
        return ids.astype(np.uint8)

    def parse_points(self, stem: str, body: bytes) -> np.ndarray:
        """A PUT body for keypoints: a JSON list of ``[x, y, visible]`` per spec keypoint -> ``[K, 3]``."""
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadLabel(f"the body is not JSON ({exc})") from None
        if isinstance(data, dict):
            data = data.get("keypoints")
        names = self.spec.keypoints or ()
        if not isinstance(data, list) or len(data) != len(names):
            raise BadLabel(f"expected a list of {len(names)} [x, y, visible] entries, one per keypoint "
                           f"({', '.join(names)})")
        h, w = self.image_size(stem)
        out = np.zeros((len(names), 3), np.float64)
        for k, entry in enumerate(data):
            if (not isinstance(entry, list) or len(entry) != 3
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in entry)):
                raise BadLabel(f"keypoint {k} ({names[k]}): expected [x, y, visible] numbers, got {entry!r}")
            x, y, v = (float(e) for e in entry)
            if not (math.isfinite(x) and math.isfinite(y)) or v not in (0.0, 1.0, 2.0):
                raise BadLabel(f"keypoint {k} ({names[k]}): expected finite x, y and visible 0, 1 or 2, got {entry!r}")
            if v > 0 and not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
                raise BadLabel(f"keypoint {k} ({names[k]}) at ({x:g}, {y:g}) lies outside the {w}x{h} (WxH) image")
            out[k] = (x, y, v)
        return out

    def save(self, stem: str, body: bytes) -> int:
        """Check and write one label (atomically); returns the new version."""
        if self.task == "keypoints":
            points = self.parse_points(stem, body)
            with self._lock:
                write_keypoints(self.label_path(stem), points, self.spec)
        else:
            ids = self.parse_mask(stem, body)
            with self._lock:
                write_label_map(self.label_path(stem), ids, self.spec)
        with self._lock:
            self.version += 1
            return self.version

"""The real images and their labels, read and checked before anything is optimised.

Images are prepared exactly as ``train-gan`` prepares its training images
(``gan_training.dataset.prepare_image``: RGB, the centred square, Lanczos to
the generator's resolution). Their labels are brought into the same geometry:
masks are cropped to the same square and resized with nearest neighbour,
keypoints are mapped through the same crop and scale (pixel centres, as
``labels.keypoints``). A label is checked against its image's own size first,
so every error names the file as the user has it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from datasetgan.core.errors import UserError
from datasetgan.gan_training.dataset import centre_square, prepare_image
from datasetgan.labels import (IMAGE_SUFFIXES, KEYPOINT_SUFFIXES, MASK_SUFFIXES, LabelSpec, match_images_labels,
                               read_keypoints, read_label_map)


@dataclass(frozen=True)
class RealImage:
    """One real image: ``pixels [3, R, R]`` uint8 (prepared), its original ``size`` ``(W, H)``
    and the sha256 of its file (part of the run key)."""

    stem: str
    path: Path
    pixels: np.ndarray
    size: tuple[int, int]
    digest: str


@dataclass
class RealLabels:
    """Labels in the reconstructions' geometry: masks ``{stem: [R, R]}`` int64 class ids
    (``IGNORE`` kept), keypoints ``{stem: [K, 3]}`` ``(x, y, visible)``."""

    masks: dict[str, np.ndarray] = field(default_factory=dict)
    keypoints: dict[str, np.ndarray] = field(default_factory=dict)
    # Keypoints that were visible but fell outside the square crop (now invisible): "stem: name".
    cropped_keypoints: list[str] = field(default_factory=list)


def read_images(folder: str | Path, resolution: int) -> list[RealImage]:
    """Every file of ``folder`` (not its sub-folders or hidden files), sorted by stem, prepared
    at ``resolution``. A file that is not a readable image, two files with one stem, or a folder
    without images is a ``UserError`` naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--images {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise UserError(f"--images {folder}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images: dict[str, RealImage] = {}
    for path in files:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(f"{path}: not an image (expected {', '.join(IMAGE_SUFFIXES)}); --images must hold "
                            "only the images to invert")
        data = path.read_bytes()
        try:
            with Image.open(path) as image:
                image.load()
                size = image.size
                pixels = prepare_image(image, resolution)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise UserError(f"{path}: not a readable image ({exc})") from None
        if path.stem in images:
            raise UserError(f"{folder}: two images share the stem {path.stem!r}: {images[path.stem].path.name}, "
                            f"{path.name}")
        images[path.stem] = RealImage(path.stem, path, pixels, size, hashlib.sha256(data).hexdigest())
    return [images[s] for s in sorted(images)]


def read_labels(label_dir: str | Path, spec: LabelSpec, images_dir: str | Path, images: list[RealImage],
                resolution: int) -> RealLabels:
    """Read, check and transform the labels of ``images``: masks (``.png``/``.npy``) and/or keypoint
    files (``.json``) in ``label_dir``, each kind exactly one per image."""
    label_dir = Path(label_dir)
    if not label_dir.is_dir():
        raise UserError(f"--labels {label_dir}: not a folder")
    present = {p.suffix.lower() for p in label_dir.iterdir() if p.is_file() and not p.name.startswith(".")}
    kinds = [s for s in (MASK_SUFFIXES, KEYPOINT_SUFFIXES) if present & set(s)]
    if not kinds:
        raise UserError(f"--labels {label_dir}: no label files (masks .png/.npy or keypoints .json)")
    by_stem = {im.stem: im for im in images}
    out = RealLabels()
    for suffixes in kinds:
        for stem, _, path in match_images_labels(images_dir, label_dir, suffixes=suffixes):
            image = by_stem[stem]
            w, h = image.size
            if suffixes is KEYPOINT_SUFFIXES:
                kp, names = crop_keypoints(read_keypoints(path, spec, size=(h, w)), image.size, resolution)
                out.keypoints[stem] = kp
                out.cropped_keypoints += [f"{stem}: {spec.keypoints[k]}" for k in names]
            else:
                out.masks[stem] = crop_mask(read_label_map(path, spec, size=(h, w)), resolution)
    return out


def crop_mask(labels: np.ndarray, resolution: int) -> np.ndarray:
    """Class ids ``[H, W]`` -> ``[R, R]``: ``prepare_image``'s square, nearest-neighbour resized."""
    h, w = labels.shape
    left, top, side = centre_square(w, h)
    image = Image.fromarray(labels.astype(np.int32), mode="I").crop((left, top, left + side, top + side))
    if side != resolution:
        image = image.resize((resolution, resolution), Image.NEAREST)
    return np.asarray(image).astype(np.int64)


def crop_keypoints(keypoints: np.ndarray, size: tuple[int, int], resolution: int) -> tuple[np.ndarray, list[int]]:
    """``[K, 3]`` ``(x, y, visible)`` in an image of ``size`` ``(W, H)`` -> the same in the ``R x R``
    prepared image (pixel centres map to pixel centres). Visible keypoints outside the square
    become invisible; their indices are returned too."""
    left, top, side = centre_square(*size)
    scale = resolution / side
    out = keypoints.astype(np.float64).copy()
    out[:, 0] = (keypoints[:, 0] - left + 0.5) * scale - 0.5
    out[:, 1] = (keypoints[:, 1] - top + 0.5) * scale - 0.5
    inside = (out[:, :2] >= -0.5).all(axis=1) & (out[:, :2] <= resolution - 0.5).all(axis=1)
    lost = [int(k) for k in np.flatnonzero((keypoints[:, 2] > 0) & ~inside)]
    out[lost, 2] = 0
    return out, lost

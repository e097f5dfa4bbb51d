"""Helen's face landmarks as this project's keypoint label files.

Helen (29 LFPW landmarks, ``helen.mat``: ``imgs`` file names and ``Pts``, per
image a 2x29 array, row 0 = x, row 1 = y). The coordinates are MATLAB's
1-based pixel positions (the smallest is 2.0 and none reaches the image
width), so 1 is subtracted to get this project's convention (0 = centre of
the first pixel).

Helen photos show the head with much background (the 29 points span about a
third of the image side), while UTKFace, the generator's data, is cropped
tightly to the face. ``crop`` frames Helen like UTKFace: a square of
``crop`` times the larger side of the points' bounding box around its centre,
moved (then shrunk) to stay inside the photo.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from datasetgan.core.errors import UserError
from datasetgan.labels.items import Item
from datasetgan.labels.keypoints import write_keypoints
from datasetgan.labels.spec import LabelSpec, save_label_spec

HELEN_KEYPOINTS = 29


def mirror_pairs(shapes: np.ndarray) -> list[tuple[int, int]]:
    """Left/right keypoint pairs from shapes ``[N, K, 2]``: match the mean shape to its mirror image.

    Each shape is centred and scaled first; points on the midline pair with
    themselves and are left out.
    """
    s = shapes - shapes.mean(1, keepdims=True)
    s = s / np.abs(s).reshape(len(s), -1).max(1)[:, None, None]
    mean = s.mean(0)
    mirrored = mean * np.array([-1.0, 1.0])
    rows, cols = linear_sum_assignment(np.linalg.norm(mean[:, None] - mirrored[None], axis=-1))
    return sorted({(int(min(r, c)), int(max(r, c))) for r, c in zip(rows, cols) if r != c})


def helen_items(root: str | Path) -> tuple[list[Item], LabelSpec]:
    """All Helen images (sorted by file name) with ``[29, 3]`` keypoints, and a spec naming them."""
    from scipy.io import loadmat
    root = Path(root)
    mat = root / "helen.mat"
    if not mat.exists():
        raise UserError(f"{mat}: Helen annotation file not found")
    try:
        data = loadmat(str(mat))
    except Exception as exc:  # noqa: BLE001 - scipy's reader fails in many ways (IndexError on a short file)
        raise UserError(f"{mat}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from None
    if "imgs" not in data or "Pts" not in data:
        raise UserError(f"{mat}: expected the variables 'imgs' and 'Pts'")
    try:
        names = [str(np.asarray(a).ravel()[0]) for a in data["imgs"].ravel()]
        pts = [np.asarray(p, np.float64) for p in data["Pts"].ravel()]
    except (IndexError, TypeError, ValueError) as exc:
        raise UserError(f"{mat}: 'imgs' must hold file names and 'Pts' 2x29 point arrays ({exc})") from None
    if len(names) != len(pts):
        raise UserError(f"{mat}: {len(names)} image names but {len(pts)} point sets")
    items = []
    for name, p in sorted(zip(names, pts), key=lambda t: t[0]):
        if p.shape != (2, HELEN_KEYPOINTS):
            raise UserError(f"{mat}: points of {name} have shape {p.shape}, expected (2, {HELEN_KEYPOINTS})")
        image = root / "img" / name
        if not image.exists():
            raise UserError(f"{image}: image listed in {mat.name} not found")
        kp = np.concatenate([p.T - 1.0, np.ones((HELEN_KEYPOINTS, 1))], axis=1)
        items.append(Item(Path(name).stem, image, keypoints=kp))
    names29 = tuple(f"kp{i:02d}" for i in range(HELEN_KEYPOINTS))
    pairs = mirror_pairs(np.stack([it.keypoints[:, :2] for it in items]))
    return items, LabelSpec(classes=(), keypoints=names29, keypoint_flip=tuple(pairs))


def face_crop_box(keypoints: np.ndarray, size: tuple[int, int], scale: float) -> tuple[float, float, float, float]:
    """Square ``(x0, y0, x1, y1)`` of ``scale`` x the larger bbox side of ``keypoints [K, >=2]``, inside ``(H, W)``."""
    h, w = size
    lo, hi = keypoints[:, :2].min(0), keypoints[:, :2].max(0)
    side = min(scale * float((hi - lo).max()), h, w)
    cx, cy = (lo + hi) / 2
    x0 = min(max(cx - side / 2, -0.5), w - 0.5 - side)
    y0 = min(max(cy - side / 2, -0.5), h - 0.5 - side)
    return float(x0 + 0.5), float(y0 + 0.5), float(x0 + 0.5 + side), float(y0 + 0.5 + side)


def crop_items(items: list[Item], out: str | Path, scale: float, resolution: int | None = None) -> list[Item]:
    """Write face crops of keypoint ``items`` to ``out/images/<stem>.png`` and return items with moved keypoints.

    ``resolution`` resizes each crop to a square of that side (else the crop keeps its own pixel size).
    """
    from PIL import Image
    from datasetgan.core.images import save_png
    out = Path(out)
    cropped = []
    for item in items:
        image = Image.open(item.image).convert("RGB")
        box = face_crop_box(item.keypoints, (image.height, image.width), scale)
        side = box[2] - box[0]
        r = resolution or max(1, int(round(side)))
        path = out / "images" / f"{item.stem}.png"
        save_png(path, np.asarray(image.resize((r, r), Image.BILINEAR, box=box)))
        kp = item.keypoints.copy()
        kp[:, 0] = (kp[:, 0] + 0.5 - box[0]) * r / side - 0.5
        kp[:, 1] = (kp[:, 1] + 0.5 - box[1]) * r / side - 0.5
        cropped.append(Item(item.stem, path, keypoints=kp))
    return cropped


def helen_split(items: list[Item], test: int = 100) -> tuple[list[Item], list[Item]]:
    """The benchmark split: names sorted, the last ``test`` are the test set, the rest the pool."""
    return items[:-test], items[-test:]


def import_helen(root: str | Path, out: str | Path, subset: str = "all", crop: float | None = None,
                 resolution: int | None = None) -> int:
    """Write ``out/images/<name>``, ``out/labels/<stem>.json`` and ``out/spec.json``; returns the count.

    ``subset``: ``all``, ``pool`` (first 248 by name) or ``test`` (last 100).
    ``crop``: frame each face like UTKFace (see the module docstring; 1.5 is
    a good value) and write PNGs, resized to ``resolution`` if given.
    """
    items, spec = helen_items(root)
    pool, test = helen_split(items)
    chosen = {"all": items, "pool": pool, "test": test}.get(subset)
    if chosen is None:
        raise UserError(f"--subset {subset!r}: expected all, pool or test")
    if crop is not None and crop < 1.0:
        raise UserError(f"--crop {crop}: must be at least 1 (a multiple of the keypoints' bounding box)")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    if crop is not None:
        chosen = crop_items(chosen, out, crop, resolution)
    for item in chosen:
        if crop is None:
            shutil.copyfile(item.image, out / "images" / item.image.name)
        write_keypoints(out / "labels" / f"{item.stem}.json", item.keypoints, spec)
    save_label_spec(out / "spec.json", spec)
    return len(chosen)

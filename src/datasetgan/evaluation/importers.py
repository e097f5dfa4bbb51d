"""Importers that turn public labelled data sets into this project's label files.

Helen (29 LFPW landmarks, ``helen.mat``: ``imgs`` file names and ``Pts``, per
image a 2x29 array, row 0 = x, row 1 = y). The coordinates are MATLAB's
1-based pixel positions (the smallest is 2.0 and none reaches the image
width), so 1 is subtracted to get this project's convention (0 = centre of
the first pixel).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from datasetgan.core.errors import UserError
from datasetgan.core.fileio import write_json
from datasetgan.core.labels import LabelSpec, save_label_spec
from datasetgan.segmenter.data import Item

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
    data = loadmat(str(mat))
    if "imgs" not in data or "Pts" not in data:
        raise UserError(f"{mat}: expected the variables 'imgs' and 'Pts'")
    names = [str(np.asarray(a).ravel()[0]) for a in data["imgs"].ravel()]
    pts = [np.asarray(p, np.float64) for p in data["Pts"].ravel()]
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


def helen_split(items: list[Item], test: int = 100) -> tuple[list[Item], list[Item]]:
    """The benchmark split: names sorted, the last ``test`` are the test set, the rest the pool."""
    return items[:-test], items[-test:]


def import_helen(root: str | Path, out: str | Path, subset: str = "all") -> int:
    """Write ``out/images/<name>``, ``out/labels/<stem>.json`` and ``out/spec.json``; returns the count.

    ``subset``: ``all``, ``pool`` (first 248 by name) or ``test`` (last 100).
    """
    items, spec = helen_items(root)
    pool, test = helen_split(items)
    chosen = {"all": items, "pool": pool, "test": test}.get(subset)
    if chosen is None:
        raise UserError(f"--subset {subset!r}: expected all, pool or test")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for item in chosen:
        shutil.copyfile(item.image, out / "images" / item.image.name)
        write_json(out / "labels" / f"{item.stem}.json", [[round(float(x), 3), round(float(y), 3), int(v)]
                                                          for x, y, v in item.keypoints], indent=None)
    save_label_spec(out / "spec.json", spec)
    return len(chosen)

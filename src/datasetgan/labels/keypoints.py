"""Keypoint files: ``<stem>.json`` holding ``[[x, y, visible], ...]`` in pixels.

``(0, 0)`` is the centre of the top-left pixel; ``visible > 0`` means the
position is known and used. The ``K`` entries follow the order of the spec's
``keypoints`` names.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from datasetgan.core.errors import LabelError
from datasetgan.core.fileio import write_json
from datasetgan.labels.spec import LabelSpec


def read_keypoints(path: str | Path, spec: LabelSpec, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a keypoint file as ``[K, 3]`` float64 ``(x, y, visible)``.

    Accepts a JSON list of ``[x, y, visible]`` (or ``[x, y]``, visible = 1), or
    a mapping with a ``keypoints`` list. With ``size = (H, W)``, a visible
    keypoint must lie on the image: ``-0.5 <= x <= W - 0.5`` and likewise y.
    """
    path = Path(path)
    if spec.keypoints is None:
        raise LabelError(path, "the label spec has no 'keypoints' list, so keypoint files cannot be read")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabelError(path, "keypoint file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LabelError(path, f"not valid JSON ({exc})") from None
    if isinstance(data, dict):
        data = data.get("keypoints")
    if not isinstance(data, list):
        raise LabelError(path, "expected a list of [x, y, visible] entries")
    if len(data) != spec.num_keypoints:
        raise LabelError(path, f"{len(data)} keypoints, but the spec names {spec.num_keypoints}")
    out = np.zeros((len(data), 3), np.float64)
    for k, entry in enumerate(data):
        name = spec.keypoints[k]
        if not isinstance(entry, (list, tuple)) or len(entry) not in (2, 3):
            raise LabelError(path, f"keypoint {k} ({name}): expected [x, y, visible], got {entry!r}")
        vis = entry[2] if len(entry) == 3 else 1
        try:
            vis = float(vis)
            x = float(entry[0]) if entry[0] is not None else 0.0
            y = float(entry[1]) if entry[1] is not None else 0.0
        except (TypeError, ValueError):
            raise LabelError(path, f"keypoint {k} ({name}): expected numbers, got {entry!r}") from None
        if vis > 0 and (entry[0] is None or entry[1] is None or not np.isfinite([x, y]).all()):
            raise LabelError(path, f"keypoint {k} ({name}): visible but has no finite position")
        if vis > 0 and size is not None:
            h, w = size
            if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
                raise LabelError(path, f"keypoint {k} ({name}) at ({x:g}, {y:g}) lies outside the "
                                       f"{w}x{h} (WxH) image")
        out[k] = (x, y, vis)
    return out


def write_keypoints(path: str | Path, keypoints: np.ndarray, spec: LabelSpec) -> None:
    """Write ``keypoints [K, 3]`` ``(x, y, visible)`` atomically as a one-line keypoint file.

    Positions are rounded to a thousandth of a pixel and ``visible`` is
    written as an integer; ``read_keypoints`` reads the file back.
    """
    kp = np.asarray(keypoints, np.float64)
    if kp.ndim != 2 or kp.shape[1] != 3 or len(kp) != spec.num_keypoints:
        raise ValueError(f"write_keypoints {path}: expected [{spec.num_keypoints}, 3] keypoints (x, y, visible) "
                         f"for the spec's {spec.num_keypoints} names, got shape {tuple(kp.shape)}")
    write_json(path, [[round(x, 3), round(y, 3), int(v)] for x, y, v in kp.tolist()], indent=None)

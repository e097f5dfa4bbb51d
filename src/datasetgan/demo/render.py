"""Vectorised numpy renderer of the demo's stylised faces, with exact labels.

The image is painted at twice the output resolution and box-filtered down, so
thin parts (eyebrows, mouth) are anti-aliased like a photo. The label map is
the part under each *output* pixel's centre, evaluated with the same shapes
on the output grid, so it is exact. Everything runs on ``[B, H, W]`` arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from datasetgan.core.fileio import write_json
from datasetgan.core.images import save_png
from datasetgan.core.progress import progress
from datasetgan.demo.domain import (
    BACKGROUND, EAR, EYE, EYEBROW, HAIR, KEYPOINTS, MOUTH, NECK, NOSE, PALETTE, PUPIL,
    RESOLUTION, SKIN, FaceParams, label_spec, sample_params,
)
from datasetgan.labels import LabelSpec, write_label_map

SUPERSAMPLE = 2


@dataclass(frozen=True)
class Rendered:
    """A batch of faces: ``images [B, H, W, 3]`` uint8, ``labels [B, H, W]`` uint8
    class ids, ``keypoints [B, K, 3]`` float32 ``(x, y, visible)`` in pixel-index units."""

    images: np.ndarray
    labels: np.ndarray
    keypoints: np.ndarray


def _b(a: np.ndarray) -> np.ndarray:
    """``[B]`` -> ``[B, 1, 1]`` for broadcasting against ``[B, H, W]``."""
    return a[:, None, None]


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of a ``size`` grid, in output-pixel units: ``[1, size, size]``."""
    c = (np.arange(size, dtype=np.float32) + 0.5) * np.float32(RESOLUTION / size)
    return c[None, None, :], c[None, :, None]


def _ellipse(u, v, cu, cv, au, av) -> np.ndarray:
    return ((u - cu) / au) ** 2 + ((v - cv) / av) ** 2 < 1


def _face_frame(x, y, p: FaceParams) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(_b(p.rot)), np.sin(_b(p.rot))
    dx, dy = x - _b(p.cx), y - _b(p.cy)
    sc = _b(p.scale)
    return (c * dx + s * dy) / sc, (-s * dx + c * dy) / sc


def _shift(p: FaceParams) -> np.ndarray:
    """Sideways shift of the inner features with yaw: ``[B]``."""
    return 0.12 * p.yaw


def _part_masks(x, y, p: FaceParams) -> list[tuple[int, np.ndarray]]:
    """``(class, mask [B, H, W])`` in painting order (later parts cover earlier ones)."""
    u, v = _face_frame(x, y, p)
    fw, yaw, sh = _b(p.face_w), _b(p.yaw), _b(_shift(p))
    vpos = np.clip(v, 0, 1)  # the face ends at v = 1; clipping keeps the jaw term positive
    face = (u / (fw * (1 - _b(p.jaw) * vpos ** 2))) ** 2 + v ** 2 < 1
    long_hair = (_b(p.hair_style) == 1) & (v < _b(p.hair_len)) & (
        _ellipse(u, v, 0, -0.1, fw + 0.2, 1.15) | ((np.abs(u) < fw + 0.2) & (v > -0.1)))
    neck = (np.abs(u - 0.5 * sh) < _b(p.neck_w)) & (v > 0.5)
    ears = np.zeros_like(face)
    for side in (-1.0, 1.0):
        # The ear on the side the face turns towards shrinks behind the head.
        width = _b(p.ear_w) * np.clip(1 + 0.6 * side * yaw, 0.3, None)
        ears |= _ellipse(u, v, side * (fw + 0.02) + 0.3 * sh, _b(p.ear_v), width, _b(p.ear_h))
    hairline = _b(p.hairline) + _b(p.fringe_amp) * np.sin(_b(p.fringe_freq) * u + _b(p.fringe_phase)) \
        + 0.5 * (np.abs(u) / fw) ** 4
    cap = _ellipse(u, v, 0, -0.07, fw + 0.1, 1.08) & (v < hairline) & (_b(p.hair_style) != 2)
    brows = np.zeros_like(face)
    eyes = np.zeros_like(face)
    pupils = np.zeros_like(face)
    for side in (-1.0, 1.0):
        ex = side * _b(p.eye_x) + sh
        ew = _b(p.eye_w) * np.clip(1 + 0.35 * side * yaw, 0.5, None)
        eye = _ellipse(u, v, ex, _b(p.eye_y), ew, _b(p.eye_h))
        eyes |= eye
        pupils |= eye & _ellipse(u, v, ex + _b(p.gaze_x), _b(p.eye_y + p.gaze_y), _b(p.pupil_r), _b(p.pupil_r))
        du = (u - ex) / _b(p.brow_len)
        bv = _b(p.eye_y - p.brow_gap) - _b(p.brow_arch) * (1 - du ** 2) + side * _b(p.brow_tilt) * du * 0.1
        brows |= (np.abs(du) < 1) & (np.abs(v - bv) < _b(p.brow_th))
    nose_t = (v - _b(p.nose_top)) / _b(p.nose_bot - p.nose_top)
    nose = (nose_t > 0) & (nose_t < 1) & (np.abs(u - 1.4 * sh) < _b(p.nose_w) * (0.3 + 0.7 * nose_t))
    mu = (u - sh) / _b(p.mouth_w)
    mv = v - _b(p.mouth_y) - _b(p.mouth_curve) * (mu ** 2 - 0.5)
    mouth = (np.abs(mu) < 1) & (np.abs(mv) < _b(p.mouth_th) * np.sqrt(np.clip(1 - mu ** 2, 0, 1)) + 0.01)
    return [(HAIR, long_hair), (NECK, neck), (EAR, ears), (SKIN, face), (HAIR, cap), (EYEBROW, brows),
            (EYE, eyes), (PUPIL, pupils), (NOSE, nose), (MOUTH, mouth)]


def _paint_labels(masks: list[tuple[int, np.ndarray]]) -> np.ndarray:
    labels = np.zeros(masks[0][1].shape, np.uint8)
    for cls, mask in masks:
        labels[mask] = cls
    return labels


def _keypoints(p: FaceParams, labels: np.ndarray) -> np.ndarray:
    """``[B, K, 3]`` keypoints; an ear point is visible only where its ear shows."""
    sh = _shift(p)
    fw = p.face_w
    chin_v = np.ones_like(fw)
    uv = [
        (-p.eye_x + sh + p.gaze_x * 0, p.eye_y), (p.eye_x + sh, p.eye_y),
        (1.4 * sh, p.nose_bot),
        (sh - p.mouth_w, p.mouth_y + 0.5 * p.mouth_curve), (sh + p.mouth_w, p.mouth_y + 0.5 * p.mouth_curve),
        (np.zeros_like(fw), chin_v),
        (-(fw + 0.02) + 0.3 * sh, p.ear_v), (fw + 0.02 + 0.3 * sh, p.ear_v),
    ]
    assert len(uv) == len(KEYPOINTS)
    c, s = np.cos(p.rot), np.sin(p.rot)
    out = np.zeros((len(p.cx), len(uv), 3), np.float32)
    for k, (uu, vv) in enumerate(uv):
        x = p.cx + p.scale * (c * uu - s * vv) - 0.5   # continuous -> pixel-index units
        y = p.cy + p.scale * (s * uu + c * vv) - 0.5
        out[:, k, 0], out[:, k, 1] = x, y
    xi = np.clip(np.round(out[:, :, 0]).astype(int), 0, RESOLUTION - 1)
    yi = np.clip(np.round(out[:, :, 1]).astype(int), 0, RESOLUTION - 1)
    inside = (out[:, :, 0] >= 0) & (out[:, :, 0] <= RESOLUTION - 1) & (out[:, :, 1] >= 0) & (out[:, :, 1] <= RESOLUTION - 1)
    under = labels[np.arange(len(p.cx))[:, None], yi, xi]
    visible = inside.copy()
    visible[:, 6:8] &= under[:, 6:8] == EAR
    out[:, :, 2] = visible
    return out


def _stripes(x, y, freq, angle, phase=0.0) -> np.ndarray:
    return np.sin(2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)) / RESOLUTION + phase)


def _paint_image(x, y, p: FaceParams, labels: np.ndarray) -> np.ndarray:
    """Colour a ``[B, H, W]`` label map (painted on the fine grid) -> ``[B, H, W, 3]`` float32 in [0, 1].

    Each part gets a base colour per image (a lookup table gathered by class id)
    times a scalar shading/texture field, so only a few ops touch 3 channels.
    """
    B = len(p.cx)
    u, v = _face_frame(x, y, p)
    rows = np.arange(B)[:, None, None]
    # Every pixel gets a colour index: its class for face parts, NUM_CLASSES + j
    # for clutter shape j, 0 for bare background. One gather then colours all.
    ncls = len(PALETTE)
    index = labels.astype(np.int64)
    free = labels == BACKGROUND
    for j in range(p.clut_on.shape[1]):
        col = lambda a: a[:, j, None, None]  # noqa: E731
        dx, dy = x - col(p.clut_x), y - col(p.clut_y)
        c, s = np.cos(col(p.clut_rot)), np.sin(col(p.clut_rot))
        ru, rv = (c * dx + s * dy) / col(p.clut_a), (-s * dx + c * dy) / col(p.clut_b)
        inside = np.where(col(p.clut_kind) > 0.5, np.maximum(np.abs(ru), np.abs(rv)), ru ** 2 + rv ** 2) < 1
        index[inside & free & (col(p.clut_on) > 0.5)] = ncls + j
    lut = np.zeros((B, ncls + p.clut_on.shape[1], 3), np.float32)
    skin = p.skin_col
    for cls, colour in ((BACKGROUND, p.bg_col2), (SKIN, skin), (NECK, skin * 0.78), (EAR, skin * 0.92),
                        (NOSE, skin * 0.74), (HAIR, p.hair_col), (EYEBROW, p.brow_col), (EYE, p.sclera_col),
                        (PUPIL, p.iris_col), (MOUTH, p.lip_col)):
        lut[:, cls] = colour
    lut[:, ncls:] = p.clut_col
    # Scalar shading / texture per part.
    shade = 1.05 - _b(p.shade) * np.clip((u / _b(p.face_w)) ** 2 + v ** 2, 0, 1.5)
    strands = 1 + _b(p.hair_amp) * _stripes(u * (RESOLUTION / 4), v * (RESOLUTION / 4),
                                            _b(p.hair_freq), _b(p.hair_angle) + np.pi / 2)
    nose_side = 1 - 0.2 * np.tanh(8 * (u - 1.4 * _b(_shift(p)))) * np.sign(_b(p.light[:, 0]))
    mod = np.ones(labels.shape, np.float32)
    skinlike = (labels == SKIN) | (labels == NECK) | (labels == EAR)
    mod[skinlike] = shade[skinlike]
    for cls, field in ((NOSE, shade * nose_side), (HAIR, strands),
                       (PUPIL, 1 + 0.3 * np.clip((v - _b(p.eye_y)) / 0.08, -1, 1)),
                       (MOUTH, 1 - 0.3 * (np.abs(v - _b(p.mouth_y)) < 0.025))):
        m = labels == cls
        mod[m] = field[m]
    img = np.take(lut.reshape(-1, 3), rows * lut.shape[1] + index, axis=0) * mod[..., None]
    # Bare background: the two background colours mixed by a stripe pattern.
    t = 0.5 * _b(p.bg_amp) * (1 + _stripes(x, y, _b(p.bg_freq), _b(p.bg_angle)))
    img += (t * (index == 0))[..., None] * (p.bg_col - p.bg_col2)[:, None, None]
    # Global light: a linear gradient and a brightness factor.
    gx, gy = x / RESOLUTION - 0.5, y / RESOLUTION - 0.5
    light = _b(p.brightness) * (1 + 2 * (_b(p.light[:, 0]) * gx + _b(p.light[:, 1]) * gy))
    return np.clip(img * light[..., None], 0, 1)


def render_batch(seeds: Sequence[int]) -> Rendered:
    """Render the faces with these seeds; face ``i`` depends on ``seeds[i]`` only."""
    p = sample_params(seeds)
    size = RESOLUTION * SUPERSAMPLE
    fx, fy = _grid(size)
    fine_labels = _paint_labels(_part_masks(fx, fy, p))
    fine = _paint_image(fx, fy, p, fine_labels)
    B = len(seeds)
    img = fine.reshape(B, RESOLUTION, SUPERSAMPLE, RESOLUTION, SUPERSAMPLE, 3).mean(axis=(2, 4))
    noise = np.stack([np.random.RandomState([int(s), 1]).randn(RESOLUTION, RESOLUTION, 3) for s in seeds])
    img = img * 255 + noise.astype(np.float32) * p.noise_sigma[:, None, None, None]
    images = np.clip(np.round(img), 0, 255).astype(np.uint8)
    x, y = _grid(RESOLUTION)
    labels = _paint_labels(_part_masks(x, y, p))
    return Rendered(images=images, labels=labels, keypoints=_keypoints(p, labels))


def render(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One face: ``(image [H, W, 3] uint8, labels [H, W] uint8, keypoints [K, 3] float32)``."""
    r = render_batch([seed])
    return r.images[0], r.labels[0], r.keypoints[0]


def render_dataset(out: str | Path, n: int, seed_start: int = 0, batch_size: int = 250,
                   labels: bool = True, show_progress: bool = True) -> Path:
    """Write ``n`` faces with seeds ``seed_start ..``: ``images/<seed:06d>.png``,
    ``labels/<seed:06d>.png`` (indexed, spec palette), ``labels/<seed:06d>.json``
    (keypoints ``[[x, y, visible], ...]``) and ``spec.json``. Returns ``out``."""
    out = Path(out)
    spec = LabelSpec.from_dict(label_spec())
    (out / "images").mkdir(parents=True, exist_ok=True)
    if labels:
        (out / "labels").mkdir(parents=True, exist_ok=True)
        write_json(out / "spec.json", label_spec())
    bar = progress(total=n, desc="render faces", unit="img", disable=not show_progress)
    for start in range(seed_start, seed_start + n, batch_size):
        seeds = list(range(start, min(start + batch_size, seed_start + n)))
        r = render_batch(seeds)
        for i, s in enumerate(seeds):
            save_png(out / "images" / f"{s:06d}.png", r.images[i])
            if labels:
                write_label_map(out / "labels" / f"{s:06d}.png", r.labels[i], spec)
                # numpy's rounding, not write_keypoints': the committed demo labels and results were made so
                write_json(out / "labels" / f"{s:06d}.json", np.round(r.keypoints[i], 3).tolist(), indent=None)
        bar.update(len(seeds))
    bar.close()
    return out


__all__ = ["Rendered", "render", "render_batch", "render_dataset", "BACKGROUND"]

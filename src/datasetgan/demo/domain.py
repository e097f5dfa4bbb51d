"""The demo's procedural domain: stylised faces with parts, keypoints and clutter.

This module fixes *what* a face is: the label spec (classes, palette,
keypoints) and the random parameters of one face, drawn from its seed alone.
``render.py`` turns parameters into pixels.

Coordinates: a face lives in its own frame ``(u, v)``, with ``v`` pointing down
and the face ellipse's half-height equal to 1. The frame is rotated, scaled and
shifted into the image. Image coordinates are continuous, with pixel ``i``
covering ``[i, i + 1)``; keypoints are stored in pixel-index units, i.e. a
keypoint on the centre of pixel ``i`` has coordinate ``i``.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

RESOLUTION = 64

CLASSES: tuple[str, ...] = (
    "background", "skin", "hair", "ear", "eyebrow", "eye", "pupil", "nose", "mouth", "neck",
)
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (230, 180, 140), (120, 60, 20), (255, 120, 0), (255, 255, 0),
    (0, 160, 255), (0, 0, 255), (0, 200, 80), (255, 0, 80), (180, 0, 255),
)
# "_l"/"_r" are image-left / image-right.
KEYPOINTS: tuple[str, ...] = (
    "eye_l", "eye_r", "nose_tip", "mouth_l", "mouth_r", "chin", "ear_l", "ear_r",
)

# Index pairs that swap under a horizontal flip.
KEYPOINT_FLIP: tuple[tuple[int, int], ...] = ((0, 1), (3, 4), (6, 7))

BACKGROUND, SKIN, HAIR, EAR, EYEBROW, EYE, PUPIL, NOSE, MOUTH, NECK = range(len(CLASSES))
MAX_CLUTTER = 5


def label_spec() -> dict:
    """The spec as the label readers expect it: ``classes``, ``palette``, ``keypoints``."""
    return {"classes": list(CLASSES), "palette": [list(c) for c in PALETTE],
            "keypoints": list(KEYPOINTS), "keypoint_flip": [list(p) for p in KEYPOINT_FLIP]}


@dataclass(frozen=True)
class FaceParams:
    """Parameters of a batch of faces; every field is an array with leading dim ``B``.

    Lengths are in face units (face half-height = 1) unless noted; colours are
    RGB in [0, 1], shape ``[B, 3]``.
    """

    # pose (image pixels / radians)
    cx: np.ndarray
    cy: np.ndarray
    scale: np.ndarray       # face half-height in pixels
    rot: np.ndarray
    yaw: np.ndarray         # in [-1, 1]: shifts the features sideways, shrinks the far ear
    # shape
    face_w: np.ndarray      # half-width of the face ellipse
    jaw: np.ndarray         # narrowing of the lower face
    neck_w: np.ndarray
    ear_w: np.ndarray
    ear_h: np.ndarray
    ear_v: np.ndarray
    hair_style: np.ndarray  # 0 short, 1 long, 2 almost bald
    hairline: np.ndarray
    fringe_amp: np.ndarray
    fringe_freq: np.ndarray
    fringe_phase: np.ndarray
    hair_len: np.ndarray
    eye_x: np.ndarray
    eye_y: np.ndarray
    eye_w: np.ndarray
    eye_h: np.ndarray
    pupil_r: np.ndarray
    gaze_x: np.ndarray
    gaze_y: np.ndarray
    brow_gap: np.ndarray
    brow_len: np.ndarray
    brow_th: np.ndarray
    brow_arch: np.ndarray
    brow_tilt: np.ndarray
    nose_top: np.ndarray
    nose_bot: np.ndarray
    nose_w: np.ndarray
    mouth_y: np.ndarray
    mouth_w: np.ndarray
    mouth_th: np.ndarray
    mouth_curve: np.ndarray
    # colours and textures
    skin_col: np.ndarray
    hair_col: np.ndarray
    brow_col: np.ndarray
    sclera_col: np.ndarray
    iris_col: np.ndarray
    lip_col: np.ndarray
    bg_col: np.ndarray
    bg_col2: np.ndarray
    bg_freq: np.ndarray
    bg_angle: np.ndarray
    bg_amp: np.ndarray
    hair_freq: np.ndarray
    hair_angle: np.ndarray
    hair_amp: np.ndarray
    shade: np.ndarray       # strength of the pseudo-3D shading of skin
    light: np.ndarray       # [B, 2] global light gradient (x, y)
    brightness: np.ndarray
    noise_sigma: np.ndarray
    # clutter: [B, MAX_CLUTTER] (colours [B, MAX_CLUTTER, 3])
    clut_on: np.ndarray
    clut_kind: np.ndarray   # 0 disc, 1 rotated box
    clut_x: np.ndarray
    clut_y: np.ndarray
    clut_a: np.ndarray
    clut_b: np.ndarray
    clut_rot: np.ndarray
    clut_col: np.ndarray


def _hsv(h: float, s: float, v: float) -> list[float]:
    return list(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)))


def _skin_colour(rng: np.random.RandomState) -> list[float]:
    # Mostly human tones; a quarter "creatures" of any hue, so that skin colour
    # cannot be learnt as a fixed value.
    if rng.rand() < 0.75:
        return _hsv(rng.uniform(0.02, 0.10), rng.uniform(0.25, 0.6), rng.uniform(0.4, 0.95))
    return _hsv(rng.rand(), rng.uniform(0.25, 0.6), rng.uniform(0.45, 0.9))


def _any_colour(rng: np.random.RandomState) -> list[float]:
    return _hsv(rng.rand(), rng.uniform(0.0, 0.9), rng.uniform(0.15, 0.95))


def _one(seed: int) -> dict:
    """All parameters of the face with this seed (independent of any batch)."""
    r = np.random.RandomState(seed)
    u = r.uniform
    p: dict = {}
    p["cx"] = RESOLUTION / 2 + u(-3.5, 3.5)
    p["cy"] = RESOLUTION / 2 - 2 + u(-3, 3)
    p["scale"] = RESOLUTION * u(0.24, 0.30)
    p["rot"] = u(-0.3, 0.3)
    p["yaw"] = u(-1, 1)
    p["face_w"] = u(0.66, 0.84)
    p["jaw"] = u(0.0, 0.35)
    p["neck_w"] = u(0.28, 0.42)
    p["ear_w"] = u(0.10, 0.17)
    p["ear_h"] = u(0.18, 0.28)
    p["ear_v"] = u(-0.05, 0.12)
    p["hair_style"] = r.choice(3, p=[0.55, 0.35, 0.10])
    p["hairline"] = u(-0.75, -0.35)
    p["fringe_amp"] = u(0.0, 0.12)
    p["fringe_freq"] = u(4, 14)
    p["fringe_phase"] = u(0, 2 * np.pi)
    p["hair_len"] = u(0.3, 1.1)
    p["eye_x"] = u(0.28, 0.38)
    p["eye_y"] = u(-0.12, 0.02)
    p["eye_w"] = u(0.12, 0.18)
    p["eye_h"] = u(0.06, 0.10)
    p["pupil_r"] = u(0.055, 0.08)
    p["gaze_x"] = u(-0.05, 0.05)
    p["gaze_y"] = u(-0.015, 0.015)
    p["brow_gap"] = u(0.16, 0.24)
    p["brow_len"] = u(0.14, 0.2)
    p["brow_th"] = u(0.03, 0.055)
    p["brow_arch"] = u(-0.02, 0.07)
    p["brow_tilt"] = u(-0.25, 0.25)
    p["nose_top"] = u(0.0, 0.12)
    p["nose_bot"] = u(0.25, 0.36)
    p["nose_w"] = u(0.07, 0.13)
    p["mouth_y"] = u(0.5, 0.64)
    p["mouth_w"] = u(0.18, 0.3)
    p["mouth_th"] = u(0.03, 0.09)
    p["mouth_curve"] = u(-0.06, 0.1)
    p["skin_col"] = _skin_colour(r)
    p["hair_col"] = _any_colour(r)
    p["brow_col"] = [c * u(0.4, 0.8) for c in (p["hair_col"] if r.rand() < 0.7 else _any_colour(r))]
    p["sclera_col"] = _hsv(r.rand(), u(0.0, 0.15), u(0.8, 1.0))
    p["iris_col"] = _hsv(r.rand(), u(0.3, 1.0), u(0.05, 0.45))
    p["lip_col"] = _hsv(u(-0.05, 0.05), u(0.3, 0.8), u(0.3, 0.8)) if r.rand() < 0.8 else _any_colour(r)
    p["bg_col"] = _any_colour(r)
    p["bg_col2"] = _any_colour(r)
    p["bg_freq"] = u(1, 6)
    p["bg_angle"] = u(0, np.pi)
    p["bg_amp"] = u(0.0, 0.5)
    p["hair_freq"] = u(6, 16)
    p["hair_angle"] = u(-0.6, 0.6)
    p["hair_amp"] = u(0.05, 0.3)
    p["shade"] = u(0.1, 0.4)
    p["light"] = [u(-0.25, 0.25), u(-0.25, 0.25)]
    p["brightness"] = u(0.85, 1.1)
    p["noise_sigma"] = u(0.5, 3.0)
    n = r.randint(1, MAX_CLUTTER + 1)
    p["clut_on"] = np.arange(MAX_CLUTTER) < n
    p["clut_kind"] = r.randint(0, 2, MAX_CLUTTER)
    p["clut_x"] = u(0, RESOLUTION, MAX_CLUTTER)
    p["clut_y"] = u(0, RESOLUTION, MAX_CLUTTER)
    p["clut_a"] = u(3, 12, MAX_CLUTTER)
    p["clut_b"] = u(2, 8, MAX_CLUTTER)
    p["clut_rot"] = u(0, np.pi, MAX_CLUTTER)
    # Some clutter takes skin tones: a blob of skin colour is not a face.
    p["clut_col"] = [_skin_colour(r) if r.rand() < 0.3 else _any_colour(r) for _ in range(MAX_CLUTTER)]
    return p


def sample_params(seeds: Sequence[int]) -> FaceParams:
    """Parameters for ``seeds``; face ``i`` depends on ``seeds[i]`` only."""
    if len(seeds) == 0:
        raise ValueError("sample_params: no seeds")
    ones = [_one(int(s)) for s in seeds]
    return FaceParams(**{f.name: np.asarray([o[f.name] for o in ones], dtype=np.float32)
                         for f in fields(FaceParams)})

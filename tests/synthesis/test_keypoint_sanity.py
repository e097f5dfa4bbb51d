"""Keypoint sanity: 8 labelled samples -> keypoint interpreter -> keypoints on new seeds.

Issue 3 item 7: a tiny generator whose label is a known function of the
image, >= 95% from 8 labelled samples. A randomly initialised generator has
no semantics (its "peak of red" is a global comparison over a noisy colour
cloud, which a per-pixel interpreter cannot learn from 8 examples; that
version reached 0.85 on filtered images only), so this test uses a tiny
32x32 StyleGAN2 fitted by regression to draw one landmark, a red spot, at a
z-dependent position on a never-red background: ``tests/assets/spot_generator``,
made by ``tests/assets/make_spot_generator.py`` (seeded; the slow test below
re-runs it). The keypoint is the spot's centre, computed from the rendered
pixels alone (``spot_centre``), on every image: none is filtered out.

The whole path is the real CLI: ``sample`` seeds 0-7, label them,
``train-interpreter`` with its default settings (10 members, every feature
tap, heatmap sigma 2, visibility threshold 0.5), ``synthesize`` 200 held-out
seeds (1000-1199), both at truncation 1 (the full spread of spot positions),
and PCK@3.2 px (0.1 of the image side) against ``spot_centre`` of the
synthesised images; a prediction reported invisible counts as a miss.
Measured (2026-12-01, CPU, one thread, this file as it stands, two runs with
identical results): PCK 200/200 = 1.000 (median error 0.31 px); with each
label paired with another image (a broken pipeline) 3/200 = 0.015 (median
error 11.4 px); 43-48 s for the test on a shared 2-core machine. The slow
``test_spot_generator_refit`` (fit from scratch, then the same test) took
5 min 17 s; its refit was byte-identical to the committed asset.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from tests.assets.make_spot_generator import ASSET, fit

from datasetgan.cli import main

PCK_RADIUS = 3.2    # px: 0.1 of the 32-px image side
MIN_PCK = 0.95      # measured 1.000; see the module docstring
MAX_CONTROL = 0.3   # measured 0.015
HELD_OUT = 200


def redness(image: np.ndarray) -> np.ndarray:
    """R - (G + B) / 2 of a uint8 RGB image, as float."""
    a = image.astype(np.float64)
    return a[..., 0] - 0.5 * (a[..., 1] + a[..., 2])


def spot_centre(image: np.ndarray) -> list[float]:
    """(x, y, 1): the redness-weighted centroid of the red pixels within 3 px of
    the peak of the (1-px blurred) redness."""
    s = redness(image)
    y, x = np.unravel_index(int(np.argmax(gaussian_filter(s, 1.0, mode="nearest"))), s.shape)
    yy, xx = np.mgrid[:s.shape[0], :s.shape[1]]
    w = np.where(((yy - y) ** 2 + (xx - x) ** 2 <= 9) & (s > 0), s, 0.0)
    return [float((w * xx).sum() / w.sum()), float((w * yy).sum() / w.sum()), 1]


def _train(root: Path, labels: Path, out: Path) -> None:
    assert main(["train-interpreter", "--samples", str(root / "samples"), "--labels", str(labels),
                 "--spec", str(root / "spec.yaml"), "--out", str(out), "--device", "cpu", "--quiet"]) == 0


def _pck(generator: Path, interp: Path, out: Path) -> tuple[int, int, float]:
    """(hits, total, median error in px) over the held-out seeds."""
    assert main(["synthesize", "--generator", str(generator), "--interpreter", str(interp), "--out", str(out),
                 "--num-images", str(HELD_OUT), "--seed-start", "1000", "--truncation", "1", "--drop-uncertain", "0",
                 "--device", "cpu", "--quiet"]) == 0
    hits = total = 0
    errors = []
    for p in sorted((out / "images").glob("*.png")):
        truth = spot_centre(np.asarray(Image.open(p)))
        pred = json.loads((out / "labels" / f"{p.stem}.json").read_text())
        pred = pred["keypoints"] if isinstance(pred, dict) else pred
        x, y, visible = pred[0]
        error = float(np.hypot(x - truth[0], y - truth[1]))
        errors.append(error)
        total += 1
        hits += bool(visible) and error <= PCK_RADIUS
    return hits, total, float(np.median(errors))


def check_keypoint_sanity(generator: Path, root: Path) -> None:
    torch.set_num_threads(1)
    root.mkdir(parents=True, exist_ok=True)
    assert main(["sample", "--generator", str(generator), "--seeds", "0-7", "--truncation", "1",
                 "--out", str(root / "samples"), "--device", "cpu"]) == 0
    (root / "spec.yaml").write_text("classes: [bg]\nkeypoints: [spot]\n")
    labels, wrong = root / "labels", root / "wrong"
    labels.mkdir()
    wrong.mkdir()
    images = sorted((root / "samples" / "images").glob("*.png"))
    assert len(images) == 8
    keypoints = []
    for p in images:
        image = np.asarray(Image.open(p))
        # The generator draws one clear spot: its peak stands well above the background.
        assert redness(image).max() > 100, p.name
        keypoints.append(spot_centre(image))
    assert np.ptp([k[0] for k in keypoints]) > 8 and np.ptp([k[1] for k in keypoints]) > 8  # spots move
    for i, p in enumerate(images):
        (labels / f"{p.stem}.json").write_text(json.dumps([keypoints[i]]))
        # A broken pipeline: each label paired with another image.
        (wrong / f"{p.stem}.json").write_text(json.dumps([keypoints[(i + 3) % 8]]))
    _train(root, labels, root / "interp")
    hits, total, median = _pck(generator, root / "interp", root / "ds")
    print(f"keypoint PCK@{PCK_RADIUS}px {hits}/{total} = {hits / total:.3f} on held-out seeds "
          f"(median error {median:.2f} px)")
    assert total == HELD_OUT
    assert hits / total >= MIN_PCK
    _train(root, wrong, root / "interp_wrong")
    bad_hits, bad_total, bad_median = _pck(generator, root / "interp_wrong", root / "ds_wrong")
    print(f"with mismatched labels: {bad_hits}/{bad_total} = {bad_hits / bad_total:.3f} "
          f"(median error {bad_median:.2f} px)")
    assert bad_hits / bad_total <= MAX_CONTROL


def test_sanity_keypoint_pck(tmp_path):
    check_keypoint_sanity(ASSET, tmp_path)


@pytest.mark.slow
def test_spot_generator_refit(tmp_path):
    """The committed asset is what its script makes: refit from scratch, same test."""
    fit().save_pretrained(tmp_path / "G")
    check_keypoint_sanity(tmp_path / "G", tmp_path / "run")

"""The procedural face domain: determinism, exact labels, keypoints, files."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from datasetgan.demo.domain import CLASSES, KEYPOINTS, PALETTE, RESOLUTION, label_spec
from datasetgan.demo.render import render, render_batch, render_dataset


def test_shapes_and_types():
    r = render_batch([0, 1, 2])
    assert r.images.shape == (3, RESOLUTION, RESOLUTION, 3) and r.images.dtype == np.uint8
    assert r.labels.shape == (3, RESOLUTION, RESOLUTION) and r.labels.dtype == np.uint8
    assert r.keypoints.shape == (3, len(KEYPOINTS), 3) and r.keypoints.dtype == np.float32
    assert len(CLASSES) >= 9 and len(KEYPOINTS) >= 6 and len(PALETTE) == len(CLASSES)


def test_a_face_depends_on_its_seed_only():
    image, labels, keypoints = render(7)
    batch = render_batch([3, 7, 11])
    np.testing.assert_array_equal(batch.images[1], image)
    np.testing.assert_array_equal(batch.labels[1], labels)
    np.testing.assert_array_equal(batch.keypoints[1], keypoints)
    assert not np.array_equal(batch.images[0], batch.images[2])


def test_every_class_occurs_and_small_parts_are_small():
    r = render_batch(list(range(40)))
    counts = np.bincount(r.labels.ravel(), minlength=len(CLASSES)) / r.labels.size
    assert (counts > 0).all(), counts
    # Thin or small parts cover well under 1% of the image each.
    for name in ("eyebrow", "pupil", "nose", "mouth"):
        assert counts[CLASSES.index(name)] < 0.01, name


def test_keypoints_sit_on_their_parts():
    r = render_batch(list(range(30)))
    kp = r.keypoints
    assert (kp[:, :6, 2] == 1).mean() > 0.95  # inner points are almost always in the image
    for k, allowed in ((0, {"eye", "pupil"}), (1, {"eye", "pupil"})):
        x = np.round(kp[:, k, 0]).astype(int)
        y = np.round(kp[:, k, 1]).astype(int)
        names = {CLASSES[c] for c in r.labels[np.arange(len(kp)), y, x]}
        assert names <= allowed, names
    # Image-left eye is left of the image-right eye.
    assert (kp[:, 0, 0] < kp[:, 1, 0]).all()


def test_render_dataset_writes_images_labels_keypoints_and_spec(tmp_path):
    out = render_dataset(tmp_path / "faces", n=5, seed_start=100, batch_size=2, show_progress=False)
    stems = sorted(p.stem for p in (out / "images").glob("*.png"))
    assert stems == [f"{s:06d}" for s in range(100, 105)]
    spec = json.loads((out / "spec.json").read_text())
    assert spec == json.loads(json.dumps(label_spec()))
    label = Image.open(out / "labels" / "000102.png")
    assert label.mode == "P" and label.size == (RESOLUTION, RESOLUTION)
    _, labels, keypoints = render(102)
    np.testing.assert_array_equal(np.asarray(label), labels)
    kp = json.loads((out / "labels" / "000102.json").read_text())
    np.testing.assert_allclose(np.asarray(kp), keypoints, atol=1e-3)
    image = np.asarray(Image.open(out / "images" / "000102.png"))
    np.testing.assert_array_equal(image, render(102)[0])

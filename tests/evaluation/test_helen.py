"""The Helen importer on the real data in ../shared/data."""

from __future__ import annotations

import json

import numpy as np

from datasetgan.core.labels import load_label_spec, read_keypoints
from datasetgan.evaluation.importers import helen_items, helen_split, import_helen


def test_helen_items_split_and_flip_pairs(shared_data):
    items, spec = helen_items(shared_data / "helen")
    assert len(items) == 348 and spec.num_keypoints == 29
    names = [it.image.name for it in items]
    assert names == sorted(names)
    pool, test = helen_split(items)
    assert len(pool) == 248 and len(test) == 100 and test[-1].image.name == names[-1]
    assert all(it.keypoints.shape == (29, 3) for it in items)
    # Left/right pairs from the mirrored mean shape: 11 pairs, 7 points on the midline.
    assert len(spec.keypoint_flip) == 11 and (0, 1) in spec.keypoint_flip and (22, 23) in spec.keypoint_flip


def test_import_helen_writes_readable_labels(shared_data, tmp_path):
    n = import_helen(shared_data / "helen", tmp_path, subset="test")
    assert n == 100
    spec = load_label_spec(tmp_path / "spec.json")
    label = sorted((tmp_path / "labels").glob("*.json"))[0]
    image = tmp_path / "images" / (label.stem + ".jpg")
    from PIL import Image
    w, h = Image.open(image).size
    kp = read_keypoints(label, spec, size=(h, w))
    assert kp.shape == (29, 3) and np.all(kp[:, 2] == 1)
    assert len(json.loads(label.read_text())) == 29

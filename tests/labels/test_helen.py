"""The Helen importer, on the real data (the research data folder, see tests/conftest.py) and on damaged files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datasetgan.labels import load_label_spec, read_keypoints
from datasetgan.labels.helen import helen_items, helen_split, import_helen


@pytest.mark.shared_data("helen")
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


@pytest.mark.shared_data("helen")
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


def test_damaged_helen_mat_is_named(tmp_path):
    import pytest
    from scipy.io import savemat

    from datasetgan.core.errors import UserError

    (tmp_path / "img").mkdir()
    (tmp_path / "helen.mat").write_bytes(b"MATLAB 5.0 MAT-file, cut short")
    with pytest.raises(UserError, match=r"helen\.mat: not a readable MATLAB file"):
        helen_items(tmp_path)
    savemat(tmp_path / "helen.mat", {"imgs": np.array([1, 2]), "Pts": np.array([3, 4])})
    with pytest.raises(UserError, match=r"helen\.mat: points of 1 have shape \(\), expected \(2, 29\)"):
        helen_items(tmp_path)
    savemat(tmp_path / "helen.mat", {"imgs": np.array([1])})
    with pytest.raises(UserError, match="expected the variables 'imgs' and 'Pts'"):
        helen_items(tmp_path)


def test_face_crop_moves_keypoints_with_the_pixels(tmp_path):
    from PIL import Image

    from datasetgan.labels import Item
    from datasetgan.labels.helen import crop_items, face_crop_box
    img = np.zeros((90, 120, 3), np.uint8)
    img[40, 50] = (255, 0, 0)                  # the keypoints' pixels
    img[60, 80] = (0, 255, 0)
    Image.fromarray(img).save(tmp_path / "a.png")
    kp = np.array([[50.0, 40.0, 1], [80.0, 60.0, 1]])
    box = face_crop_box(kp, (90, 120), 2.0)    # bbox 30 x 20 -> a 60 px square around (65, 50)
    assert box == (35.5, 20.5, 95.5, 80.5)
    assert face_crop_box(kp, (50, 120), 2.0)[1::2] == (0.0, 50.0)   # shrunk and moved inside a short image
    (out,) = crop_items([Item("a", tmp_path / "a.png", keypoints=kp)], tmp_path / "crop", 2.0)
    crop = np.asarray(Image.open(out.image))
    assert crop.shape == (60, 60, 3)
    for (x, y, _), channel in zip(out.keypoints, (0, 1)):   # the marker's centre of mass is the keypoint
        w = crop[..., channel].astype(float)
        yy, xx = np.mgrid[:60, :60]
        assert np.allclose([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()], [x, y], atol=0.05)
    (small,) = crop_items([Item("a", tmp_path / "a.png", keypoints=kp)], tmp_path / "c2", 2.0, resolution=30)
    assert np.allclose(small.keypoints[:, :2], (out.keypoints[:, :2] + 0.5) / 2 - 0.5)

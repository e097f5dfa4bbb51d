"""Data sources, pairing errors and augmentation consistency."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from datasetgan.core.errors import LabelError, UserError
from datasetgan.core.images import save_png
from datasetgan.labels import Item, LabelSpec
from datasetgan.segmenter.data import Augment, LabelledImages, collect_items


def test_collect_from_folders_and_errors(tiny_set):
    items, spec = collect_items("segmentation", images=tiny_set / "images", labels=tiny_set / "labels",
                                spec=tiny_set / "spec.yaml")
    assert [it.stem for it in items] == ["000000", "000001", "000002", "000003"] and spec.num_classes == 2
    kitems, _ = collect_items("keypoints", images=tiny_set / "images", labels=tiny_set / "keypoints",
                              spec=tiny_set / "spec.yaml")
    assert kitems[0].keypoints.shape == (3, 3)
    (tiny_set / "labels" / "000003.png").rename(tiny_set / "labels" / "000009.png")
    with pytest.raises(UserError) as err:
        collect_items("segmentation", images=tiny_set / "images", labels=tiny_set / "labels", spec=tiny_set / "spec.yaml")
    assert "000003.png" in str(err.value) and "000009.png" in str(err.value)
    (tiny_set / "labels" / "000009.png").unlink()
    Image.fromarray(np.zeros((20, 20), np.uint8), mode="L").save(tiny_set / "labels" / "000003.png")
    with pytest.raises(LabelError, match=r"000003\.png: label is 20x20 \(HxW\) but its image 000003\.png is 40x36"):
        collect_items("segmentation", images=tiny_set / "images", labels=tiny_set / "labels", spec=tiny_set / "spec.yaml")
    (tiny_set / "keypoints" / "000001.json").write_text(json.dumps([[5, 6, 1], [50, 8, 1], [1, 1, 0]]))
    with pytest.raises(LabelError, match=r"000001\.json: keypoint 1 \(right\) at \(50, 8\) lies outside"):
        collect_items("keypoints", images=tiny_set / "images", labels=tiny_set / "keypoints", spec=tiny_set / "spec.yaml")
    with pytest.raises(UserError, match="either --data"):
        collect_items("segmentation", images=tiny_set / "images")


def test_collect_from_a_synthesize_folder(tmp_path):
    root = tmp_path / "synth"
    palette = [[0, 0, 0], [10, 200, 30], [200, 10, 30]]
    (root / "images").mkdir(parents=True)
    for seed in range(3):
        Image.fromarray(np.full((16, 16, 3), seed * 40, np.uint8)).save(root / "images" / f"{seed:06d}.png")
        save_png(root / "labels" / f"{seed:06d}.png", np.full((16, 16), seed, np.uint8), palette=palette)
    (root / "dataset.json").write_text(json.dumps({"classes": ["bg", "x", "y"], "palette": palette,
                                                   "keypoints": None, "generator": {"fingerprint": "abc"}}))
    items, spec = collect_items("segmentation", data=root)
    assert spec.classes == ("bg", "x", "y") and len(items) == 3
    with pytest.raises(UserError, match="no dataset.json"):
        collect_items("segmentation", data=tmp_path)


def test_damaged_data_set_files_are_named(tmp_path):
    root = tmp_path / "synth"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "images" / "000000.png")
    (root / "dataset.json").write_text('{"classes": ["bg", ')
    with pytest.raises(UserError, match=r"dataset\.json: data set description is not valid JSON"):
        collect_items("segmentation", data=root)
    # A COCO keypoints file: not JSON, JSON of the wrong shape, an annotation for an unknown image.
    (root / "dataset.json").write_text(json.dumps({"task": "keypoints", "classes": [], "palette": [],
                                                   "keypoints": ["l", "r"]}))
    coco = root / "coco.json"
    for text, message in (("[1, 2", r"COCO keypoints file is not valid JSON"),
                          (json.dumps([1, 2]), r"not a COCO keypoints file"),
                          (json.dumps({"images": [{"id": 1}]}), r"not a COCO keypoints file"),
                          (json.dumps({"images": [{"id": 1, "file_name": "000000.png"}],
                                       "annotations": [{"image_id": 1, "keypoints": [1, 2, 1, 3]}]}),
                           r"not a COCO keypoints file"),
                          (json.dumps({"images": [{"id": 1, "file_name": "000000.png"}],
                                       "annotations": [{"image_id": 7, "keypoints": [1, 2, 1, 3, 4, 1]}]}),
                           r"image id 7: no such id")):
        coco.write_text(text)
        with pytest.raises(UserError, match=message) as err:
            collect_items("keypoints", data=root)
        assert "coco.json" in str(err.value)
    # A damaged .npy mask.
    folder = tmp_path / "plain"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "images" / "a.png")
    (folder / "labels" / "a.npy").write_bytes(b"not a numpy file")
    (folder / "spec.json").write_text(json.dumps({"classes": ["bg", "x"]}))
    with pytest.raises(LabelError, match=r"a\.npy: not a readable \.npy mask"):
        collect_items("segmentation", images=folder / "images", labels=folder / "labels", spec=folder / "spec.json")
    np.save(folder / "labels" / "a.npy", np.zeros(16, np.uint8))
    with pytest.raises(LabelError, match=r"a\.npy: mask has shape \(16,\)"):
        collect_items("segmentation", images=folder / "images", labels=folder / "labels", spec=folder / "spec.json")


def test_augmentation_moves_keypoints_with_the_image():
    spec = LabelSpec(classes=(), keypoints=("left", "right"), keypoint_flip=((0, 1),))
    img = np.zeros((48, 48, 3), np.uint8)
    img[8:13, 8:13] = (255, 0, 0)         # "left" marker, centre (10, 10)
    img[28:33, 33:38] = (0, 255, 0)       # "right" marker, centre (35, 30)
    import tempfile, pathlib
    with tempfile.TemporaryDirectory() as d:
        path = pathlib.Path(d) / "a.png"
        Image.fromarray(img).save(path)
        item = Item("a", path, keypoints=np.array([[10.0, 10.0, 1], [35.0, 30.0, 1]]))
        data = LabelledImages([item], spec, 32, augment=Augment(flip=True, crop_min=0.8, jitter=0.0), seed=0)
        flips = 0
        for epoch in range(8):
            data.set_epoch(epoch)
            out = data[0]
            x, kp = out["image"].numpy(), out["keypoints"].numpy()
            red = np.argwhere(x[0] > 0.5)
            red_centre = red.mean(0)[::-1]  # (x, y)
            # Whichever index sits on the red marker must be "left" before the flip, i.e. swapped when flipped.
            dist = np.linalg.norm(kp[:, :2] - red_centre, axis=1)
            flips += int(dist.argmin() == 1)
            assert dist.min() < 1.0, (epoch, kp, red_centre)
        assert 0 < flips < 8    # both flipped and unflipped draws occurred


def test_keypoints_from_a_synthesize_folder(tmp_path):
    root = tmp_path / "synth"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for seed in range(2):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "images" / f"{seed:06d}.png")
        (root / "labels" / f"{seed:06d}.json").write_text(json.dumps([[3.0, 4.0, 1], [12.0, 4.0, 1]]))
    (root / "dataset.json").write_text(json.dumps({"task": "keypoints", "classes": [], "palette": [],
                                                   "keypoints": ["l", "r"], "keypoint_flip": [["l", "r"]]}))
    items, spec = collect_items("keypoints", data=root)
    assert spec.keypoint_flip == ((0, 1),) and items[1].keypoints[1, 0] == 12.0


def test_zoom_out_shrinks_the_image_and_keeps_labels_on_their_pixels(tmp_path):
    """``zoom_out`` > 1 places the whole image, smaller, inside a margin of repeated border pixels: the labels
    follow their pixels (the margin too), and objects come out smaller than without it."""
    spec = LabelSpec(classes=("bg", "square"))
    img = np.zeros((40, 40, 3), np.uint8)
    lab = np.zeros((40, 40), np.uint8)
    img[12:28, 12:28] = 255
    lab[12:28, 12:28] = 1
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(lab, mode="L").save(tmp_path / "a_label.png")
    item = Item("a", tmp_path / "a.png", label=tmp_path / "a_label.png")
    sizes = []
    for zoom in (1.0, 1.9):
        data = LabelledImages([item], spec, 40, augment=Augment(flip=False, crop_min=1.0, zoom_out=zoom,
                                                                jitter=0.0), seed=0)
        for epoch in range(6):
            data.set_epoch(epoch)
            out = data[0]
            white, target = out["image"][0].numpy() > 0.5, out["target"].numpy() == 1
            assert (white == target).mean() > 0.97, (zoom, epoch)   # labels stay on their pixels
            parts, count = ndimage.label(target)                       # the square (and any border copies)
            sizes.append((zoom, max(int((parts == k).sum()) for k in range(1, count + 1))))
    assert all(n == 256 for z, n in sizes if z == 1.0)                # crop_min 1: the image as it is
    zoomed = [n for z, n in sizes if z > 1.0]
    assert max(zoomed) <= 256 and np.mean(zoomed) < 0.7 * 256        # zoomed out: the square shrinks


def test_zoom_out_out_of_range_is_refused(tiny_set, tmp_path, capsys):
    from datasetgan.cli import main

    code = main(["train-segmenter", "--images", str(tiny_set / "images"), "--labels", str(tiny_set / "labels"),
                 "--spec", str(tiny_set / "spec.yaml"), "--out", str(tmp_path / "run"), "--zoom-out", "2.5"])
    assert code != 0 and "--zoom-out" in capsys.readouterr().err
    argv = ["train-segmenter", "--images", str(tiny_set / "images"), "--labels", str(tiny_set / "labels"),
            "--spec", str(tiny_set / "spec.yaml"), "--out", str(tmp_path / "run")]
    assert main([*argv, "--lr", "0"]) == 2 and "--lr 0.0: must be > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):                       # argparse's own refusal
        main([*argv, "--lr", "nan"])
    assert "--lr: expected a finite number, got 'nan'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_decoded_cache_changes_nothing_and_respects_its_budget(tmp_path):
    """Samples read through the in-memory cache equal freshly decoded ones (with jitter, flips and
    zoom-out), and items beyond ``cache_bytes`` are decoded every time instead of being kept."""
    spec = LabelSpec(classes=("bg", "square"))
    rng = np.random.default_rng(0)
    items = []
    for i in range(3):
        img = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
        lab = (rng.random((24, 24)) > 0.7).astype(np.uint8)
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        Image.fromarray(lab, mode="L").save(tmp_path / f"{i}_label.png")
        items.append(Item(str(i), tmp_path / f"{i}.png", label=tmp_path / f"{i}_label.png"))
    augment = Augment(zoom_out=1.5, jitter=0.3)
    cached = LabelledImages(items, spec, 16, augment=augment, seed=3)
    fresh = LabelledImages(items, spec, 16, augment=augment, seed=3, cache_bytes=0)
    one_item = 24 * 24 * 3 + 24 * 24
    tight = LabelledImages(items, spec, 16, augment=augment, seed=3, cache_bytes=2 * one_item)
    for epoch in range(3):
        for data in (cached, fresh, tight):
            data.set_epoch(epoch)
        for i in range(3):
            a, b, c = cached[i], fresh[i], tight[i]
            assert np.array_equal(a["image"].numpy(), b["image"].numpy())
            assert np.array_equal(a["target"].numpy(), b["target"].numpy())
            assert np.array_equal(c["image"].numpy(), b["image"].numpy())
    assert len(cached.cache) == 3 and not fresh.cache and len(tight.cache) == 2

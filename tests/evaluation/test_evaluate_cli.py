"""train-segmenter / train-keypoints / evaluate through the command line, on a tiny set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datasetgan.cli import main
from datasetgan.labels import load_label_spec, read_label_map


def test_segmenter_train_then_evaluate_with_cv(tiny_set, tmp_path, capsys):
    common = ["--images", str(tiny_set / "images"), "--labels", str(tiny_set / "labels"),
              "--spec", str(tiny_set / "spec.yaml")]
    assert main(["train-segmenter", *common, "--out", str(tmp_path / "run"), "--epochs", "2",
                 "--resolution", "32", "--batch-size", "2", "--quiet", "--device", "cpu"]) == 0
    assert main(["evaluate", "--model", str(tmp_path / "run"), *common, "--cv-folds", "2",
                 "--save-predictions", str(tmp_path / "pred"), "--out", str(tmp_path / "ev"),
                 "--quiet", "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert 0 <= metrics["miou"] <= 1 and len(metrics["cv"]["per_fold"]) == 2
    assert set(metrics["per_class_iou"]) == {"bg", "fg"}
    assert np.array(metrics["confusion_matrix"]).sum() == 4 * 40 * 36   # each image scored by k-1 = 1 fold
    for name in ("report.html", "confusion_matrix.png", "confusion_matrix.json", "per_class_iou.json"):
        assert (tmp_path / "ev" / name).exists(), name
    # The report shows the printed scores (4 decimals of a fraction) in percent, with no more digits.
    html = (tmp_path / "ev" / "report.html").read_text()
    assert f"mIoU {100 * metrics['miou']:.2f} ± " in html
    for iou in metrics["per_class_iou"].values():
        assert f"<td>{100 * iou:.2f}</td>" in html
    assert f"<td>{100 * metrics['cv']['per_fold'][0]['score']:.2f}</td>" in html
    spec = load_label_spec(tiny_set / "spec.yaml")
    pred = read_label_map(tmp_path / "pred" / "000002.png", spec, size=(40, 36))
    assert pred.shape == (40, 36)


def test_unlabelled_pixels_are_neither_trained_on_nor_scored(tiny_set, tmp_path):
    from PIL import Image

    # The left half of every mask is left unlabelled (255), and the spec says so.
    for path in sorted((tiny_set / "labels").glob("*.png")):
        mask = np.asarray(Image.open(path)).copy()
        mask[:, :18] = 255
        Image.fromarray(mask).save(path)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text((tiny_set / "spec.yaml").read_text() + "ignore_index: 255\n")
    common = ["--images", str(tiny_set / "images"), "--labels", str(tiny_set / "labels"), "--spec", str(spec_path)]
    assert main(["train-segmenter", *common, "--out", str(tmp_path / "run"), "--epochs", "1", "--resolution", "32",
                 "--batch-size", "2", "--class-weight-power", "0.5", "--quiet", "--device", "cpu"]) == 0
    stats = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[0])
    assert np.isfinite(stats["loss"])
    assert main(["evaluate", "--model", str(tmp_path / "run"), *common, "--out", str(tmp_path / "ev"),
                 "--quiet", "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert np.array(metrics["confusion_matrix"]).sum() == 4 * 40 * 18      # only the labelled half
    # Without the key, 255 is an id outside the spec, as before.
    assert main(["train-segmenter", "--images", str(tiny_set / "images"), "--labels", str(tiny_set / "labels"),
                 "--spec", str(tiny_set / "spec.yaml"), "--out", str(tmp_path / "run2"), "--epochs", "1",
                 "--resolution", "32", "--batch-size", "2", "--quiet", "--device", "cpu"]) == 2


def test_keypoints_train_then_evaluate(tiny_set, tmp_path):
    common = ["--images", str(tiny_set / "images"), "--labels", str(tiny_set / "keypoints"),
              "--spec", str(tiny_set / "spec.yaml")]
    assert main(["train-keypoints", *common, "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--resolution", "32", "--batch-size", "2", "--quiet", "--device", "cpu",
                 "--keypoint-head", "integral", "--output-stride", "8", "--lr-schedule", "cosine"]) == 0
    run_json = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_json["model"]["output_stride"] == 8 and run_json["model"]["keypoint_head"] == "integral"
    assert main(["evaluate", "--model", str(tmp_path / "run"), *common, "--out", str(tmp_path / "ev"),
                 "--quiet", "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["task"] == "keypoints" and {"pck_0.05", "pck_0.1", "mean_l2"} <= set(metrics)


def test_bad_input_exits_with_a_message(tiny_set, tmp_path, capsys):
    (tiny_set / "labels" / "000001.png").unlink()
    code = main(["train-segmenter", "--images", str(tiny_set / "images"), "--labels", str(tiny_set / "labels"),
                 "--spec", str(tiny_set / "spec.yaml"), "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 2 and "000001.png" in capsys.readouterr().err
    code = main(["evaluate", "--model", str(tmp_path / "nothing"), "--images", str(tiny_set / "images"),
                 "--labels", str(tiny_set / "labels"), "--spec", str(tiny_set / "spec.yaml"), "--out", str(tmp_path / "e")])
    assert code == 2 and "nothing" in capsys.readouterr().err


def test_evaluate_refuses_a_spec_with_other_classes(tiny_set, tmp_path, capsys):
    common = ["--images", str(tiny_set / "images"), "--labels", str(tiny_set / "labels")]
    assert main(["train-segmenter", *common, "--spec", str(tiny_set / "spec.yaml"), "--out", str(tmp_path / "run"),
                 "--epochs", "1", "--resolution", "32", "--batch-size", "2", "--quiet", "--device", "cpu"]) == 0
    other = tmp_path / "other.yaml"
    other.write_text("classes: [background, foreground]\npalette: [[0, 0, 0], [255, 255, 255]]\n")
    code = main(["evaluate", "--model", str(tmp_path / "run"), *common, "--spec", str(other),
                 "--out", str(tmp_path / "ev"), "--device", "cpu"])
    assert code == 2 and "differ from the test spec" in capsys.readouterr().err

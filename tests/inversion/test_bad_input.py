"""Bad input to `datasetgan invert`: an error naming the file, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.inversion.conftest import FAST

from datasetgan.cli import main


def refused(capsys, generator: Path, images: Path, out: Path, *extra: str) -> str:
    """Run invert, expect the user-error exit, check that OUT was not created; the message."""
    code = main(["invert", "--generator", str(generator), "--images", str(images), "--out", str(out),
                 *FAST, *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not out.exists()
    return err


def with_labels(real: Path, labels: Path | None = None) -> list[str]:
    return ["--labels", str(labels or real / "labels"), "--spec", str(real / "spec.yaml")]


def test_a_file_that_is_not_an_image(capsys, generator_dir, real_set, tmp_path):
    (real_set / "images" / "notes.txt").write_text("not a picture")
    err = refused(capsys, generator_dir, real_set / "images", tmp_path / "out")
    assert "notes.txt: not an image" in err
    (real_set / "images" / "notes.txt").unlink()
    (real_set / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    err = refused(capsys, generator_dir, real_set / "images", tmp_path / "out")
    assert "broken.png: not a readable image" in err


def test_an_empty_folder(capsys, generator_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "holds no images" in refused(capsys, generator_dir, tmp_path / "empty", tmp_path / "out")
    assert "not a folder" in refused(capsys, generator_dir, tmp_path / "missing", tmp_path / "out")


def test_a_label_without_its_image_and_an_image_without_its_label(capsys, generator_dir, real_set, tmp_path):
    labels = real_set / "labels"
    (labels / "000000.png").rename(labels / "999999.png")
    err = refused(capsys, generator_dir, real_set / "images", tmp_path / "out", *with_labels(real_set))
    assert "000000.png" in err and "without a label" in err
    assert "999999.png" in err and "without an image" in err


def test_a_label_of_another_size(capsys, generator_dir, real_set, tmp_path):
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(real_set / "labels" / "000002.png")
    err = refused(capsys, generator_dir, real_set / "images", tmp_path / "out", *with_labels(real_set))
    assert "000002.png" in err and "label is 32x32" in err


def test_an_unknown_class_or_colour(capsys, generator_dir, real_set, tmp_path):
    ids = np.zeros((40, 36), np.uint8)
    ids[:10] = 7
    Image.fromarray(ids).save(real_set / "labels" / "000001.png")
    err = refused(capsys, generator_dir, real_set / "images", tmp_path / "out", *with_labels(real_set))
    assert "000001.png" in err and "class id 7" in err
    rgb = np.zeros((40, 36, 3), np.uint8)
    rgb[:20] = (0, 200, 0)                                   # green: not in the black/white palette
    Image.fromarray(rgb).save(real_set / "labels" / "000001.png")
    err = refused(capsys, generator_dir, real_set / "images", tmp_path / "out", *with_labels(real_set))
    assert "000001.png" in err and "not in the spec's palette" in err


def test_bad_keypoints(capsys, generator_dir, real_set, tmp_path):
    (real_set / "keypoints" / "000003.json").write_text(json.dumps([[5, 6, 1], [99, 8, 1], [1, 1, 0]]))
    err = refused(capsys, generator_dir, real_set / "images", tmp_path / "out",
                  *with_labels(real_set, real_set / "keypoints"))
    assert "000003.json" in err and "outside the 36x40" in err


def test_a_generator_path_that_is_not_a_generator(capsys, real_set, tmp_path):
    (tmp_path / "notG").mkdir()
    (tmp_path / "notG" / "weights.bin").write_bytes(b"1234")
    err = refused(capsys, tmp_path / "notG", real_set / "images", tmp_path / "out")
    assert str(tmp_path / "notG") in err
    (tmp_path / "G.pkl").write_bytes(b"not a pickle")
    assert "G.pkl" in refused(capsys, tmp_path / "G.pkl", real_set / "images", tmp_path / "out")


def test_labels_without_a_spec_and_a_missing_discriminator(capsys, generator_dir, real_set, tmp_path):
    err = refused(capsys, generator_dir, real_set / "images", tmp_path / "out", "--labels", str(real_set / "labels"))
    assert "--labels needs --spec" in err
    err = refused(capsys, generator_dir, real_set / "images", tmp_path / "out", "--perceptual", "discriminator")
    assert "has no discriminator" in err


@pytest.mark.parametrize("flag, value", [("--steps", "0"), ("--batch-size", "0"), ("--lr", "-1")])
def test_bad_settings_name_the_flag(capsys, generator_dir, real_set, tmp_path, flag, value):
    assert flag in refused(capsys, generator_dir, real_set / "images", tmp_path / "out", flag, value)


def test_an_out_folder_that_holds_something_else(capsys, generator_dir, real_set, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code = main(["invert", "--generator", str(generator_dir), "--images", str(real_set / "images"),
                 "--out", str(out), *FAST])
    assert code == 2 and "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]

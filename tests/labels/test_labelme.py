"""LabelMe annotations to label files: shapes, keypoints and bad input."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasetgan.cli import main
from datasetgan.labels import IGNORE, load_label_spec, read_keypoints, read_label_map

H, W = 14, 16


def _spec(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text("classes: [bg, skin, eye, mouth, hair]\n"
                    "palette: [[0,0,0],[255,200,150],[0,0,255],[255,0,0],[90,60,30]]\n"
                    "keypoints: [left_eye, right_eye, nose]\n" + extra)
    return path


def _labelme(folder: Path, stem: str, shapes: list[dict], **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": f"{stem}.png", "imageData": None,
           "imageHeight": H, "imageWidth": W, **fields}
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(doc))
    return path


def _shape(label: str, kind: str, points, **extra) -> dict:
    return {"label": label, "points": points, "group_id": None, "shape_type": kind, "flags": {}, **extra}


def _png_b64(mask: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _run(src: Path, spec: Path, out: Path, *extra: str) -> int:
    return main(["import-labelme", str(src), "--spec", str(spec), "--out", str(out), *extra])


def test_shapes_are_painted_in_order_at_pixel_centres(tmp_path):
    crop = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1]], bool)
    _labelme(tmp_path / "lm", "000003", [
        _shape("skin", "rectangle", [[14, 12], [2, 2]]),              # corners in any order
        _shape("eye", "polygon", [[4, 3], [8, 3], [4, 7]]),            # a right triangle, over the skin
        _shape("mouth", "circle", [[9.5, 9.5], [11.5, 9.5]]),          # centre, then a point on the circle
        _shape("hair", "mask", [[5.2, 3.7], [8.9, 5.9]], mask=_png_b64(crop)),
    ])
    spec = _spec(tmp_path)
    assert _run(tmp_path / "lm", spec, tmp_path / "labels") == 0
    got = read_label_map(tmp_path / "labels" / "000003.png", load_label_spec(spec))
    yc, xc = np.mgrid[0:H, 0:W] + 0.5            # pixel centres in LabelMe's canvas coordinates
    want = np.zeros((H, W), np.int64)
    want[(2 <= xc) & (xc < 14) & (2 <= yc) & (yc < 12)] = 1
    want[(xc >= 4) & (yc >= 3) & (xc - 4 + yc - 3 < 4)] = 2
    want[(xc - 9.5) ** 2 + (yc - 9.5) ** 2 <= 4] = 3
    hair = np.zeros((H, W), bool)
    hair[3:6, 5:9] = crop                          # anchored at the box's first pixel, (5, 3)
    want[hair] = 4
    assert (got == want).all()
    assert Image.open(tmp_path / "labels" / "000003.png").mode == "P"


def test_points_become_keypoints_and_missing_ones_invisible(tmp_path):
    _labelme(tmp_path / "lm", "000001", [
        _shape("right_eye", "point", [[10.5, 4.5]]),
        _shape("left_eye", "point", [[4.0, 5.0]]),
        _shape("skin", "polygon", [[0, 0], [16, 0], [16, 14]]),
    ])
    spec = _spec(tmp_path)
    assert _run(tmp_path / "lm", spec, tmp_path / "labels") == 0
    kp = read_keypoints(tmp_path / "labels" / "000001.json", load_label_spec(spec), size=(H, W))
    # (0, 0) is the centre of the top-left pixel here, (0.5, 0.5) on LabelMe's canvas
    assert kp.tolist() == [[3.5, 4.5, 1.0], [10.0, 4.0, 1.0], [0.0, 0.0, 0.0]]
    assert (tmp_path / "labels" / "000001.png").exists()


def test_uncovered_pixels_can_be_left_unlabelled(tmp_path, capsys):
    _labelme(tmp_path / "lm", "000000", [_shape("skin", "rectangle", [[0, 0], [8, 14]])])
    assert _run(tmp_path / "lm", _spec(tmp_path), tmp_path / "a", "--uncovered", "ignore") == 2
    assert "ignore_index" in capsys.readouterr().err and not (tmp_path / "a").exists()
    spec = _spec(tmp_path, "ignore_index: 250\n")
    assert _run(tmp_path / "lm", spec, tmp_path / "b", "--uncovered", "ignore") == 0
    got = read_label_map(tmp_path / "b" / "000000.png", load_label_spec(spec))
    assert (got[:, :8] == 1).all() and (got[:, 8:] == IGNORE).all()


@pytest.mark.parametrize("shapes, fields, needle", [
    ([_shape("beard", "polygon", [[0, 0], [4, 0], [0, 4]])], {}, "label 'beard' is not a class of the spec"),
    ([_shape("chin", "point", [[1, 1]])], {}, "point 'chin' is not a keypoint"),
    ([_shape("nose", "point", [[1, 1]]), _shape("nose", "point", [[2, 2]])], {}, "keypoint 'nose' is placed twice"),
    ([_shape("nose", "point", [[17, 1]])], {}, "keypoint 'nose' at (17, 1) lies outside the 16x14 image"),
    ([_shape("eye", "linestrip", [[0, 0], [4, 4]])], {}, "shape type 'linestrip' is not supported"),
    ([_shape("eye", "polygon", [[0, 0], [4, 0]])], {}, "expected at least 3 finite points"),
    ([_shape("eye", "polygon", "oops")], {}, "'points' must be a list of [x, y]"),
    ([_shape("hair", "mask", [[0, 0], [3, 3]], mask="not base64!")], {}, "'mask' is not a base64 PNG"),
    ([], {"imageHeight": None}, "expected integer 'imageHeight' and 'imageWidth'"),
])
def test_bad_annotations_name_the_file_and_write_nothing(tmp_path, capsys, shapes, fields, needle):
    _labelme(tmp_path / "lm", "000000", [_shape("skin", "rectangle", [[0, 0], [4, 4]])])  # a good file first
    bad = _labelme(tmp_path / "lm", "000001", shapes, **fields)
    assert _run(tmp_path / "lm", _spec(tmp_path), tmp_path / "labels") == 2
    err = capsys.readouterr().err
    assert str(bad) in err and needle in err
    assert not (tmp_path / "labels").exists()


def test_not_labelme_files_and_empty_folders(tmp_path, capsys):
    spec = _spec(tmp_path)
    (tmp_path / "empty").mkdir()
    assert _run(tmp_path / "empty", spec, tmp_path / "o") == 2
    assert "no LabelMe .json files" in capsys.readouterr().err
    assert _run(tmp_path / "missing", spec, tmp_path / "o") == 2
    assert "not a folder of LabelMe .json files" in capsys.readouterr().err
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "a.json").write_text("[1, 2]")
    assert _run(tmp_path / "lm", spec, tmp_path / "o") == 2
    assert "a.json: not a LabelMe file" in capsys.readouterr().err
    (tmp_path / "lm" / "a.json").write_text("{")
    assert _run(tmp_path / "lm", spec, tmp_path / "o") == 2
    assert "a.json" in capsys.readouterr().err



def test_the_labelme_folder_itself_is_refused_as_out(tmp_path, capsys):
    src = _labelme(tmp_path / "lm", "000000", [_shape("nose", "point", [[3, 3]])]).parent
    before = (src / "000000.json").read_bytes()
    assert _run(src, _spec(tmp_path), tmp_path / "lm" / ".." / "lm") == 2
    assert "is the LabelMe folder" in capsys.readouterr().err
    assert (src / "000000.json").read_bytes() == before

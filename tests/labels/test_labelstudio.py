"""Label Studio's JSON export -> masks and keypoint files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datasetgan.core.errors import LabelError
from datasetgan.labels import LabelSpec, read_keypoints, read_label_map
from datasetgan.labels.labelme import _fill_polygon
from datasetgan.labels.labelstudio import convert_task, import_labelstudio, task_stem

SPEC = LabelSpec(classes=("background", "skin", "hair"), palette=((0, 0, 0), (200, 150, 120), (90, 50, 10)),
                 keypoints=("eye_l", "eye_r"), ignore_index=255)
W, H = 40, 30


def region(kind: str, label: str, **value) -> dict:
    return {"type": kind, "from_name": "tag", "to_name": "image", "original_width": W, "original_height": H,
            "value": {**value, kind: [label]}}


def task(image: str, *results: dict, **extra) -> dict:
    return {"id": 7, "data": {"image": image}, "annotations": [{"result": list(results), **extra}]}


def test_stems_from_uploads_and_local_files():
    assert task_stem({"data": {"image": "/data/upload/3/1a2b3c4d-000012.png"}}, "t") == "000012"
    assert task_stem({"data": {"image": "/data/local-files/?d=samples/images/000005.png"}}, "t") == "000005"
    assert task_stem({"data": {"img": "http://host/a/b/face%201.jpg"}}, "t") == "face 1"
    with pytest.raises(LabelError, match="cannot tell"):
        task_stem({"data": {"image": "http://host/"}}, "t")


def test_polygons_rectangles_and_ellipses_paint_in_order():
    poly = [[10, 10], [60, 20], [30, 80]]   # percent
    t = task("/x/000001.png",
             region("polygonlabels", "skin", points=poly),
             region("rectanglelabels", "hair", x=50, y=0, width=25, height=20, rotation=0),
             region("ellipselabels", "background", x=25, y=50, radiusX=5, radiusY=10, rotation=0))
    stem, ids, kp = convert_task(t, SPEC, "t")
    assert stem == "000001" and ids.shape == (H, W) and kp.tolist() == [[0, 0, 0], [0, 0, 0]]
    expected = np.zeros((H, W), np.uint8)
    expected[_fill_polygon(np.array(poly, float) * [W / 100, H / 100], (H, W))] = 1
    expected[:6, 20:30] = 2     # x 20..30 px, y 0..6 px: pixel centres inside
    yc, xc = np.mgrid[0:H, 0:W] + 0.5
    expected[((xc - 10) / 2) ** 2 + ((yc - 15) / 3) ** 2 <= 1] = 0
    np.testing.assert_array_equal(ids, expected)


def test_brush_masks_use_label_studios_decoder(tmp_path):
    brush = pytest.importorskip("label_studio_converter.brush")
    mask = np.zeros((H, W), np.uint8)
    mask[3:17, 5:22] = 255
    mask[20, :] = 255
    t = task("/data/upload/1/0badcafe-000002.png",
             region("brushlabels", "hair", format="rle", rle=brush.mask2rle(mask)),
             region("keypointlabels", "eye_r", x=25.0, y=50.0, width=0.5))
    out = tmp_path / "labels"
    counts = import_labelstudio(write(tmp_path, [t]), SPEC, out)
    assert counts == {"tasks": 1, "skipped": 0, "masks": 1, "keypoint_files": 1}
    np.testing.assert_array_equal(read_label_map(out / "000002.png", SPEC), (mask > 0).astype(np.int64) * 2)
    # (0, 0) is the top-left pixel's centre: 25% of 40 px is x = 10 in canvas units, 9.5 here.
    np.testing.assert_allclose(read_keypoints(out / "000002.json", SPEC), [[0, 0, 0], [9.5, 14.5, 1]])


def test_uncovered_pixels_can_stay_unlabelled(tmp_path):
    t = task("/x/000003.png", region("rectanglelabels", "skin", x=0, y=0, width=50, height=100))
    _, ids, _ = convert_task(t, SPEC, "t", uncovered="ignore")
    assert (ids[:, :20] == 1).all() and (ids[:, 20:] == 255).all()


def write(tmp_path, tasks) -> str:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    return str(path)


def test_tasks_without_an_annotation_are_skipped_and_the_last_one_counts(tmp_path):
    first = region("rectanglelabels", "skin", x=0, y=0, width=100, height=100)
    second = region("rectanglelabels", "hair", x=0, y=0, width=100, height=100)
    tasks = [
        {"id": 1, "data": {"image": "/x/000001.png"}, "annotations": []},
        {"id": 2, "data": {"image": "/x/000002.png"}, "annotations": [{"result": [first]}, {"result": [second]},
                                                                      {"result": [first], "was_cancelled": True}]},
    ]
    out = tmp_path / "labels"
    counts = import_labelstudio(write(tmp_path, tasks), LabelSpec(classes=SPEC.classes, palette=SPEC.palette), out)
    assert counts["skipped"] == 1 and counts["masks"] == 1
    assert (read_label_map(out / "000002.png", SPEC) == 2).all()
    assert not (out / "000001.png").exists()


@pytest.mark.parametrize("results, message", [
    ([region("polygonlabels", "beard", points=[[0, 0], [10, 0], [0, 10]])], "label 'beard' is not a class"),
    ([region("keypointlabels", "nose", x=1, y=1)], "keypoint 'nose' is not a keypoint"),
    ([region("keypointlabels", "eye_l", x=1, y=1), region("keypointlabels", "eye_l", x=2, y=2)], "placed twice"),
    ([region("videorectangle", "skin", x=1, y=1)], "region type 'videorectangle' is not supported"),
    ([region("polygonlabels", "skin", points=[[0, 0], [10, 0]])], "at least 3 finite points"),
    ([region("rectanglelabels", "skin", x=0, y=0, width=5, height=5),
      {**region("rectanglelabels", "hair", x=0, y=0, width=5, height=5), "original_width": 64}],
     "differs from the task's 40x30"),
])
def test_refusals_name_the_task_and_region(tmp_path, results, message):
    out = tmp_path / "labels"
    with pytest.raises(LabelError, match=message) as info:
        import_labelstudio(write(tmp_path, [task("/x/000001.png", *results)]), SPEC, out)
    assert "export.json, task 7, region" in str(info.value)
    assert not out.exists()


def test_two_tasks_of_one_image_are_refused(tmp_path):
    r = region("rectanglelabels", "skin", x=0, y=0, width=5, height=5)
    tasks = [task("/data/upload/1/aaaaaaaa-000001.png", r), task("/data/upload/1/bbbbbbbb-000001.png", r)]
    with pytest.raises(LabelError, match="also labelled"):
        import_labelstudio(write(tmp_path, tasks), SPEC, tmp_path / "labels")


def test_the_command(tmp_path, capsys):
    from datasetgan.cli import main

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC.to_dict()))
    export = write(tmp_path, [task("/x/000009.png", region("rectanglelabels", "hair", x=0, y=0, width=10, height=10),
                                   region("keypointlabels", "eye_l", x=50, y=50))])
    assert main(["import-labelstudio", export, "--spec", str(spec), "--out", str(tmp_path / "L")]) == 0
    assert "1 masks and 1 keypoint files from 1 Label Studio tasks" in capsys.readouterr().out
    assert (tmp_path / "L" / "000009.png").exists() and (tmp_path / "L" / "000009.json").exists()

"""Keypoint files: reading with checks, and the writer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datasetgan.core.errors import LabelError
from datasetgan.labels import LabelSpec, read_keypoints, write_keypoints


def test_keypoints(tmp_path):
    spec = LabelSpec(classes=(), keypoints=("l", "r", "n"))
    p = tmp_path / "k.json"
    p.write_text(json.dumps([[1.5, 2, 1], [3, 0, 1], [99, 99, 0]]))
    kp = read_keypoints(p, spec, size=(4, 4))
    assert kp.shape == (3, 3) and kp[0, 0] == 1.5 and kp[2, 2] == 0
    p.write_text(json.dumps([[1, 2, 1], [3, 0, 1]]))
    with pytest.raises(LabelError, match="2 keypoints, but the spec names 3"):
        read_keypoints(p, spec)
    p.write_text(json.dumps([[1, 2, 1], [3, 0, 1], [5, 1, 1]]))
    with pytest.raises(LabelError, match=r"keypoint 2 \(n\) at \(5, 1\) lies outside the 4x4"):
        read_keypoints(p, spec, size=(4, 4))


def test_write_keypoints_rounds_and_reads_back(tmp_path):
    spec = LabelSpec(classes=(), keypoints=("l", "r"))
    write_keypoints(tmp_path / "k.json", np.array([[1.23456, 2.0, 1.0], [3.0004, -0.25, 0.0]]), spec)
    assert (tmp_path / "k.json").read_text() == "[[1.235, 2.0, 1], [3.0, -0.25, 0]]\n"
    assert read_keypoints(tmp_path / "k.json", spec).tolist() == [[1.235, 2.0, 1.0], [3.0, -0.25, 0.0]]
    with pytest.raises(ValueError, match=r"expected \[2, 3\] keypoints"):
        write_keypoints(tmp_path / "bad.json", np.zeros((3, 3)), spec)

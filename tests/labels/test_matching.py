"""Pairing samples and images with label files by stem."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasetgan.core.errors import LabelError, UserError
from datasetgan.labels import match_images_labels, match_labels


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")


def test_match_labels(tmp_path):
    _touch(tmp_path / "L", "000001.png", "000003.npy", ".hidden.png", "notes.txt")
    got = match_labels(["000001", "000002", "000003"], tmp_path / "L")
    assert list(got) == ["000001", "000003"] and got["000003"].suffix == ".npy"
    _touch(tmp_path / "L", "000009.png")
    with pytest.raises(LabelError, match=r"000009\.png.*label without a sample"):
        match_labels(["000001", "000003"], tmp_path / "L")
    _touch(tmp_path / "E", "readme.txt")
    with pytest.raises(UserError, match=r"E: no label files"):
        match_labels(["000001"], tmp_path / "E")
    _touch(tmp_path / "D", "a.png", "a.npy")
    with pytest.raises(UserError, match="share the stem 'a'"):
        match_labels(["a"], tmp_path / "D")


def test_match_images_labels(tmp_path):
    _touch(tmp_path / "I", "a.jpg", "b.png", "c.png")
    _touch(tmp_path / "L", "a.png", "b.npy", "d.png")
    with pytest.raises(UserError) as err:
        match_images_labels(tmp_path / "I", tmp_path / "L")
    msg = str(err.value)
    assert "without a label: c.png" in msg and "without an image: d.png" in msg
    (tmp_path / "L" / "d.png").unlink()
    _touch(tmp_path / "L", "c.png")
    pairs = match_images_labels(tmp_path / "I", tmp_path / "L")
    assert [p[0] for p in pairs] == ["a", "b", "c"]

"""Label specs: reading, validation and the errors that name the file and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datasetgan.core.errors import LabelError
from datasetgan.labels import LabelSpec, load_label_spec, save_label_spec

REPO = Path(__file__).resolve().parents[2]
FASSEG_SPEC = REPO / "configs" / "labels" / "fasseg.yaml"


def test_spec_round_trip_and_default_palette(tmp_path):
    s = LabelSpec(classes=("bg", "x"), keypoints=("l", "r"), keypoint_flip=((0, 1),))
    assert s.num_classes == 2 and len(s.palette) == 2 and s.palette[0] == (0, 0, 0)
    assert LabelSpec.from_dict(s.to_dict()) == s
    assert s.flip_permutation() == [1, 0]
    p = tmp_path / "s.json"
    p.write_text(json.dumps(s.to_dict()))
    assert load_label_spec(p) == s


def test_spec_yaml_preset_fasseg():
    s = load_label_spec(FASSEG_SPEC)
    assert s.classes == ("background", "hair", "skin", "eyes", "nose", "mouth")
    assert s.palette[1] == (127, 0, 0)


@pytest.mark.parametrize("text, message", [
    ("classes: [a, b]\ncolours: []\n", "unknown key 'colours'"),
    ("classes: [a, b]\npalette: [[0,0,0]]\n", "key 'palette': 1 colours for 2 classes"),
    ("classes: [a, b]\npalette: [[0,0,0],[0,0,300]]\n", "not three values in 0..255"),
    ("classes: [a, b]\npalette: [[1,2,3],[1,2,3]]\n", "share the colour"),
    ("classes: [a, a]\n", "duplicate class name"),
    ("palette: []\n", "key 'classes'"),
    ("classes: [a]\nkeypoints: [l, r]\nkeypoint_flip: [[l, q]]\n", "'q' is not a keypoint name"),
    ("classes: [a, b]\nignore_index: 1\n", "key 'ignore_index': 1 must not be a class id; expected 2..255"),
    ("classes: [a, b]\nignore_index: 256\n", "key 'ignore_index': 256 must not be a class id"),
    ("classes: [a, b]\nignore_index: void\n", "key 'ignore_index': expected an integer id"),
    ("classes: [a, b]\npalette: [[0,0,0],[9,9,9]]\nignore_colour: [9, 9, 9]\n",
     "key 'ignore_colour': [9, 9, 9] is the colour of class 1"),
    ("classes: [a, b]\nignore_colour: [1, 2]\n", "key 'ignore_colour': expected an [r, g, b] integer triple"),
])
def test_spec_errors_name_file_and_key(tmp_path, text, message):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(LabelError) as err:
        load_label_spec(p)
    assert str(p) in str(err.value) and message in str(err.value)


def test_save_label_spec_round_trips(tmp_path):
    s = LabelSpec(classes=("bg", "x"), keypoints=("l", "r"), keypoint_flip=((0, 1),), ignore_index=255)
    save_label_spec(tmp_path / "spec.json", s)
    assert load_label_spec(tmp_path / "spec.json") == s

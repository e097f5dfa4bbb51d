"""Label specs, label maps (every format), keypoints and file pairing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasetgan.core.errors import LabelError, UserError
from datasetgan.core.labels import (IGNORE, LabelSpec, load_label_spec, match_images_labels, match_labels,
                                    read_keypoints, read_label_map)

REPO = Path(__file__).resolve().parents[2]
FASSEG_SPEC = REPO / "configs" / "labels" / "fasseg.yaml"
PALETTE = ((0, 0, 0), (255, 0, 0), (0, 255, 0))


@pytest.fixture
def spec() -> LabelSpec:
    return LabelSpec(classes=("bg", "a", "b"), palette=PALETTE)


def ids() -> np.ndarray:
    return np.array([[0, 1, 2, 2], [1, 1, 0, 2], [2, 0, 0, 1]], np.int64)


# ----------------------------------------------------------------------------- spec

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


# ----------------------------------------------------------------------------- label maps

def test_read_npy_grey_palette_and_rgb(tmp_path, spec):
    labels = ids()
    np.save(tmp_path / "a.npy", labels.astype(np.uint8))
    Image.fromarray(labels.astype(np.uint8), mode="L").save(tmp_path / "b.png")
    rgb = np.asarray(PALETTE, np.uint8)[labels]
    Image.fromarray(rgb).save(tmp_path / "c.png")
    p = Image.fromarray(labels.astype(np.uint8), mode="L").convert("P")
    p.putpalette([v for c in PALETTE for v in c])
    p.save(tmp_path / "d.png")
    # Indexed PNG whose palette differs from the spec's order: colours are mapped.
    q = Image.fromarray((2 - labels).astype(np.uint8), mode="L").convert("P")
    q.putpalette([v for c in PALETTE[::-1] for v in c])
    q.save(tmp_path / "e.png")
    for name in "abcde":
        path = tmp_path / (name + (".npy" if name == "a" else ".png"))
        out = read_label_map(path, spec, size=(3, 4))
        assert out.dtype == np.int64 and np.array_equal(out, labels), name


def test_rgb_antialiased_snaps_to_nearest(tmp_path, spec):
    rgb = np.asarray(PALETTE, np.uint8)[ids()].copy()
    rgb[0, 1] = (140, 2, 1)      # blend of bg and a: nearest is a
    rgb[1, 0] = (200, 60, 5)     # between a and b, closer to a
    Image.fromarray(rgb).save(tmp_path / "m.png")
    assert np.array_equal(read_label_map(tmp_path / "m.png", spec), ids())


def test_colours_beyond_tolerance_error(tmp_path, spec):
    rgb = np.asarray(PALETTE, np.uint8)[ids()].copy()
    rgb[0, :3] = (0, 0, 255)      # blue: far from every colour and blend
    Image.fromarray(rgb).save(tmp_path / "m.png")
    with pytest.raises(LabelError) as err:
        read_label_map(tmp_path / "m.png", spec)
    msg = str(err.value)
    assert str(tmp_path / "m.png") in msg and "[0, 0, 255]" in msg and "3 pixels" in msg


def test_spec_without_palette_reads_colours_through_the_default_palette(tmp_path):
    # The colours synthesize writes for a spec without a palette read back as the same ids;
    # an RGBA mask's alpha carries no meaning (transparent black is still black).
    plain = LabelSpec(classes=("bg", "a", "b"))
    rgba = np.concatenate([np.asarray(plain.palette, np.uint8)[ids()],
                           np.zeros(ids().shape + (1,), np.uint8)], axis=-1)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "m.png")
    assert np.array_equal(read_label_map(tmp_path / "m.png", plain), ids())
    rgba[0, 0, :3] = (255, 255, 255)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "w.png")
    with pytest.raises(LabelError, match=r"w\.png.*\[255, 255, 255\]"):
        read_label_map(tmp_path / "w.png", plain)


def test_size_mismatch_and_ids_outside_spec(tmp_path, spec):
    np.save(tmp_path / "a.npy", ids())
    with pytest.raises(LabelError, match=r"3x4 \(HxW\) but its image is 4x4"):
        read_label_map(tmp_path / "a.npy", spec, size=(4, 4))
    bad = ids()
    bad[0, 0] = 7
    Image.fromarray(bad.astype(np.uint8), mode="L").save(tmp_path / "b.png")
    with pytest.raises(LabelError) as err:
        read_label_map(tmp_path / "b.png", spec)
    assert "b.png" in str(err.value) and "class id 7" in str(err.value)
    np.save(tmp_path / "f.npy", ids() + 0.5)
    with pytest.raises(LabelError, match="integer class ids"):
        read_label_map(tmp_path / "f.npy", spec)


def test_unlabelled_pixels_read_as_ignore(tmp_path):
    spec = LabelSpec(classes=("bg", "a", "b"), palette=PALETTE, ignore_index=255, ignore_colour=(255, 255, 255))
    assert LabelSpec.from_dict(spec.to_dict()) == spec and spec.has_ignore
    assert "ignore_index" not in LabelSpec(classes=("bg", "a")).to_dict()   # unchanged specs stay as they were
    expected = ids()
    expected[0, 0] = expected[2, 3] = IGNORE
    raw = ids()
    raw[0, 0] = raw[2, 3] = 255
    # Id masks: .npy, grey PNG, and an indexed PNG whose entry 255 has its own colour (PASCAL VOC's habit).
    np.save(tmp_path / "a.npy", raw)
    Image.fromarray(raw.astype(np.uint8), mode="L").save(tmp_path / "b.png")
    p = Image.fromarray(raw.astype(np.uint8), mode="P")
    p.putpalette([v for c in PALETTE for v in c] + [0] * 3 * 252 + [224, 224, 192])
    p.save(tmp_path / "c.png")
    # Colour masks: the ignore colour, and an anti-aliased border between it and class a.
    rgb = np.asarray(PALETTE, np.uint8)[ids()].copy()
    rgb[0, 0] = rgb[2, 3] = (255, 255, 255)
    Image.fromarray(rgb).save(tmp_path / "d.png")
    rgb[2, 3] = (250, 240, 240)
    Image.fromarray(rgb).save(tmp_path / "e.png")
    for name in ("a.npy", "b.png", "c.png", "d.png", "e.png"):
        assert np.array_equal(read_label_map(tmp_path / name, spec), expected), name
    # Other ids stay errors, and the message says which id is ignored.
    raw[1, 1] = 7
    np.save(tmp_path / "f.npy", raw)
    with pytest.raises(LabelError, match=r"f\.npy: class id 7 \(1 pixels\) is outside .*nor the ignore_index 255"):
        read_label_map(tmp_path / "f.npy", spec)
    # Without ignore_index, 255 in an id mask is an error as before, even with an ignore colour.
    colour_only = LabelSpec(classes=("bg", "a", "b"), palette=PALETTE, ignore_colour=(255, 255, 255))
    with pytest.raises(LabelError, match="class id 255"):
        read_label_map(tmp_path / "a.npy", colour_only)
    assert np.array_equal(read_label_map(tmp_path / "d.png", colour_only), expected)


def test_fasseg_masks_load(shared_data):
    spec = load_label_spec(FASSEG_SPEC)
    files = sorted((shared_data / "fasseg" / "V2" / "Train_Labels").glob("*.png"))
    if len(files) != 20:
        pytest.fail(f"expected 20 FASSEG V2 train masks, found {len(files)}")
    for f in files[:4]:
        labels = read_label_map(f, spec)
        counts = np.bincount(labels.ravel(), minlength=6)
        assert (counts > 0).all(), f          # every part is present in a frontal face
        assert counts[0] > counts[3]          # more background than eyes
    # The same file with a spec lacking mouth green: far more than 0.2% off-palette.
    no_mouth = LabelSpec(classes=spec.classes[:5], palette=spec.palette[:5])
    with pytest.raises(LabelError, match="not in the spec's palette"):
        read_label_map(files[0], no_mouth)


# ----------------------------------------------------------------------------- keypoints

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


# ----------------------------------------------------------------------------- pairing

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


def test_cvat_labelmap_is_a_spec(tmp_path):
    """CVAT's "Segmentation mask 1.1" export: labelmap.txt beside colour-coded masks."""
    lm = tmp_path / "labelmap.txt"
    lm.write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\nhair:250,50,83::\n"
                  "skin: 51,221,255 ::\n\n")
    spec = load_label_spec(lm)
    assert list(spec.classes) == ["background", "hair", "skin"]
    assert [list(c) for c in spec.palette] == [[0, 0, 0], [250, 50, 83], [51, 221, 255]]
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2] = (250, 50, 83)
    rgb[3, 3] = (51, 221, 255)
    Image.fromarray(rgb).save(tmp_path / "m.png")
    ids = read_label_map(tmp_path / "m.png", spec)
    assert (ids[:2] == 1).all() and ids[3, 3] == 2 and ids[2, 0] == 0
    lm.write_text("background:0,0,0::\nhair:250,50::\n")
    with pytest.raises(LabelError, match=r"labelmap.txt: line 2: expected 'name:r,g,b:parts:actions'"):
        load_label_spec(lm)
    lm.write_text("background:0,0,0::\nbackground:1,1,1::\n")
    with pytest.raises(LabelError, match="duplicate class name 'background'"):
        load_label_spec(lm)

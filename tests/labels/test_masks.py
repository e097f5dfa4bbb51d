"""Label maps: every format read as class ids, unlabelled pixels, and the indexed PNG writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasetgan.core.errors import LabelError
from datasetgan.labels import IGNORE, LabelSpec, load_label_spec, read_label_map, write_label_map

REPO = Path(__file__).resolve().parents[2]
FASSEG_SPEC = REPO / "configs" / "labels" / "fasseg.yaml"
PALETTE = ((0, 0, 0), (255, 0, 0), (0, 255, 0))


@pytest.fixture
def spec() -> LabelSpec:
    return LabelSpec(classes=("bg", "a", "b"), palette=PALETTE)


def ids() -> np.ndarray:
    return np.array([[0, 1, 2, 2], [1, 1, 0, 2], [2, 0, 0, 1]], np.int64)


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


@pytest.mark.shared_data("fasseg")
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


def test_write_label_map_is_an_indexed_png_that_reads_back(tmp_path, spec):
    write_label_map(tmp_path / "m.png", ids().astype(np.uint8), spec)
    image = Image.open(tmp_path / "m.png")
    assert image.mode == "P" and image.getpalette()[:9] == [v for c in PALETTE for v in c]
    assert np.array_equal(read_label_map(tmp_path / "m.png", spec, size=(3, 4)), ids())
    # Unlabelled pixels: the spec's ignore_index (or IGNORE) is written and read back as IGNORE.
    void = LabelSpec(classes=("bg", "a", "b"), palette=PALETTE, ignore_index=250)
    raw = ids()
    raw[0, 0] = 250
    write_label_map(tmp_path / "v.png", raw, void)
    expected = ids()
    expected[0, 0] = IGNORE
    assert np.array_equal(read_label_map(tmp_path / "v.png", void), expected)
    raw[0, 0] = 3
    with pytest.raises(ValueError, match=r"x\.png: id 3 is neither"):
        write_label_map(tmp_path / "x.png", raw, spec)
    assert not (tmp_path / "x.png").exists()

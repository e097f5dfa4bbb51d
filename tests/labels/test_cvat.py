"""CVAT/Datumaro labelmap.txt as a label spec."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from datasetgan.core.errors import LabelError
from datasetgan.labels import load_label_spec, read_label_map


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

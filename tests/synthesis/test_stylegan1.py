"""The release's StyleGAN1 through the pipeline: convert, sample, train-interpreter, synthesize.

Random weights at 64 px (nearest-neighbour upsampling only) and 128 px (the fused
upscale too), written as a release ``*.for_g_all.pt`` by the test reference.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datasetgan.cli import main
from datasetgan.generator import StyleGAN1Generator, load_generator
from datasetgan.synthesis.render import render_batch
from tests.generator.stylegan1_reference import randomize, release_g_all

TINY = dict(fmap_base=128, fmap_max=32)   # channels 32, 32, 16, 8, 4, 2 at 4 ... 128 px


def _release_pt(root: Path, resolution: int) -> Path:
    torch.manual_seed(0)
    path = root / f"g{resolution}.for_g_all.pt"
    torch.save(randomize(release_g_all(resolution, **TINY)).state_dict(), path)
    return path


@pytest.mark.parametrize("resolution", [64, 128])
def test_convert_sample_train_synthesize(tmp_path, resolution):
    torch.set_num_threads(1)
    pt = _release_pt(tmp_path, resolution)
    assert main(["convert", str(pt), str(tmp_path / "G")]) == 0
    assert json.loads((tmp_path / "G" / "config.json").read_text())["model"] == "stylegan1"
    assert main(["sample", "--generator", str(tmp_path / "G"), "--seeds", "0-3", "--out", str(tmp_path / "s"),
                 "--device", "cpu", "--quiet"]) == 0
    (tmp_path / "L").mkdir()
    for p in sorted((tmp_path / "s" / "images").glob("*.png")):
        image = np.asarray(Image.open(p))
        assert image.shape == (resolution, resolution, 3)
        Image.fromarray((image[:, :, 0] > 128).astype(np.uint8)).save(tmp_path / "L" / p.name)
    (tmp_path / "spec.yaml").write_text("classes: [other, red]\npalette: [[0, 0, 0], [255, 0, 0]]\n")
    assert main(["train-interpreter", "--samples", str(tmp_path / "s"), "--labels", str(tmp_path / "L"),
                 "--spec", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "I"), "--device", "cpu",
                 "--quiet", "--members", "2", "--max-steps", "5", "--pixels-per-image", "200"]) == 0
    cfg = json.loads((tmp_path / "I" / "config.json").read_text())
    G = load_generator(tmp_path / "G")
    assert cfg["ensemble"]["in_features"] == G.feature_spec.total_channels
    assert main(["synthesize", "--generator", str(tmp_path / "G"), "--interpreter", str(tmp_path / "I"),
                 "--out", str(tmp_path / "D"), "--device", "cpu", "--quiet", "--num-images", "3",
                 "--drop-uncertain", "0"]) == 0
    manifest = [json.loads(line) for line in (tmp_path / "D" / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 3
    # A seed means the same image in `sample` and `synthesize` (up to the rounding of batched
    # against per-row matrix products: synthesis/render.py).
    a, b = (np.asarray(Image.open(d / "images/000000.png")).astype(int) for d in (tmp_path / "D", tmp_path / "s"))
    assert np.abs(a - b).max() <= 1 and (a != b).mean() < 0.01


def test_each_sample_is_independent_of_its_batch(tmp_path):
    torch.set_num_threads(1)
    G = load_generator(_release_pt(tmp_path, 32))
    assert isinstance(G, StyleGAN1Generator)
    seeds = [3, 4, 5]
    alone = [render_batch(G, [s], 2, 0.7) for s in seeds]
    img, maps = render_batch(G, seeds, 3, 0.7)
    for j in range(len(seeds)):
        assert torch.equal(img[j], alone[j][0][0])
        assert all(torch.equal(m[j], r[0]) for m, r in zip(maps, alone[j][1]))

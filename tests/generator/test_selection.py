"""Diverse samples: descriptors, k-center greedy, and ``sample --select``."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from datasetgan.generator.selection import descriptors, k_center_greedy, seed_descriptors, select_seeds


def test_k_center_greedy_starts_typical_then_goes_far():
    points = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [0.0, 3.0], [0.2, 0.1]])
    picks = k_center_greedy(points, 3)
    assert picks[0] == 4                 # nearest the mean (1.06, 0.62)
    assert picks[1:] == [2, 3]           # then the farthest from those picked
    assert k_center_greedy(points, 2, chosen=[2]) == [3, 1]
    assert sorted(k_center_greedy(points, 10)) == [0, 1, 2, 3, 4]   # runs out


def test_a_descriptor_depends_on_its_own_sample_only(tiny_generator):
    seeds = [3, 8, 11]
    together = seed_descriptors(tiny_generator, seeds, 0.7, None, "const", batch_size=3)
    alone = torch.cat([seed_descriptors(tiny_generator, [s], 0.7, None, "const", batch_size=1) for s in seeds])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(together.norm(dim=1), torch.ones(3))
    maps = [torch.randn(2, 4, 16, 16), torch.randn(2, 8, 2, 2) * 100]
    d = descriptors(maps)
    assert d.shape == (2, 4 * 16 + 8 * 4)
    # Each map weighs alike, however large its values.
    torch.testing.assert_close(d[:, :64].norm(dim=1), d[:, 64:].norm(dim=1))


def test_sample_select_writes_the_most_diverse_seeds(tiny_generator, tiny_generator_dir, tmp_path):
    from datasetgan.cli import main

    out = tmp_path / "picked"
    assert main(["sample", "--generator", str(tiny_generator_dir), "--seeds", "0-19", "--select", "4",
                 "--out", str(out), "--quiet"]) == 0
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    seeds = [r["seed"] for r in records]
    assert seeds == select_seeds(tiny_generator, list(range(20)), 4, 0.7, None, "const", 8)
    assert len(set(seeds)) == 4
    assert json.loads((out / "generator.json").read_text())["selected"] == {"k": 4, "from_seeds": "0-19"}
    # The images are exactly those the seeds give without --select.
    plain = tmp_path / "plain"
    assert main(["sample", "--generator", str(tiny_generator_dir), "--seeds", ",".join(map(str, seeds)),
                 "--out", str(plain), "--quiet"]) == 0
    for s in seeds:
        a = np.asarray(Image.open(out / "images" / f"{s:06d}.png"))
        b = np.asarray(Image.open(plain / "images" / f"{s:06d}.png"))
        np.testing.assert_array_equal(a, b)
    assert main(["sample", "--generator", str(tiny_generator_dir), "--select", "0", "--out", str(tmp_path / "x")]) == 2

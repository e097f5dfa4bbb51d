"""Stored-output regression test: the bundled demo generator's image for fixed seeds.

The other generator tests check properties (shapes, equivalences between
paths, round trips); this one compares a few numbers of an actual image with
values stored below, so that any change of the generator's numerics (an op,
the layer order, loading, noise or truncation) shows up. The numbers are a
3x3 patch of every channel at the image centre and each image's channel
means (which a change anywhere in the image moves).

The tolerance is float32 on a CPU at one thread (``conftest.py``): far above
rounding (another CPU, library version or summation order), far below what a
change of numerics moves. When a change of numerics is meant, print the new
values with ``python -m tests.generator.test_regression`` and paste them here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from datasetgan.generator import Generator, load_generator, z_from_seeds

SEEDS = (0, 1)
TRUNCATION = 0.7
PATCH = (slice(None), slice(None), slice(30, 33), slice(30, 33))   # [N, C, 3, 3] at the centre of 64x64
TOLERANCE = dict(atol=1e-4, rtol=1e-4)

EXPECTED_PATCH = [
    [[[-0.224189, -0.162878, -0.13128], [-0.199087, -0.159838, -0.143158], [-0.152701, -0.149228, -0.153445]],
     [[-0.442278, -0.426527, -0.403976], [-0.456338, -0.425557, -0.414911], [-0.445845, -0.42649, -0.424845]],
     [[-0.680142, -0.658273, -0.647152], [-0.692532, -0.657437, -0.653731], [-0.685533, -0.663014, -0.665093]]],
    [[[0.036135, 0.00939, 0.040122], [0.079581, 0.039694, 0.034971], [0.073305, 0.07297, 0.031425]],
     [[-0.123523, -0.186452, -0.179909], [-0.189757, -0.193818, -0.185426], [-0.249783, -0.201286, -0.198685]],
     [[-0.270335, -0.352803, -0.341095], [-0.350001, -0.373253, -0.352095], [-0.460742, -0.40333, -0.38672]]],
]
EXPECTED_MEANS = [[0.119455, 0.105279, 0.069387], [-0.180352, -0.324483, -0.385884]]


def demo_generator() -> Generator:
    """The generator bundled for the demo (64x64, own format)."""
    return load_generator(Path(str(resources.files("datasetgan") / "assets" / "demo_generator"))).eval()


@torch.no_grad()
def render(G: Generator) -> torch.Tensor:
    """``[len(SEEDS), 3, 64, 64]`` float32: the seeds' images, truncated, with the stored noise."""
    return G(z_from_seeds(SEEDS, G.z_dim), truncation_psi=TRUNCATION, noise_mode="const")


def test_demo_generator_image_matches_the_stored_pixels():
    img = render(demo_generator())
    torch.testing.assert_close(img[PATCH], torch.tensor(EXPECTED_PATCH), **TOLERANCE)
    torch.testing.assert_close(img.mean(dim=(2, 3)), torch.tensor(EXPECTED_MEANS), **TOLERANCE)


def _rounded(t: torch.Tensor):
    """Nested lists of ``t`` rounded to 6 decimals (far below the tolerance)."""
    return [_rounded(r) for r in t] if t.dim() else round(float(t), 6)


def _print_expected() -> None:
    torch.set_num_threads(1)
    img = render(demo_generator())
    print("EXPECTED_PATCH = [")
    for image in img[PATCH]:
        print("    [" + ",\n     ".join(str(_rounded(channel)) for channel in image) + "],")
    print("]")
    print("EXPECTED_MEANS =", _rounded(img.mean(dim=(2, 3))))


if __name__ == "__main__":
    _print_expected()

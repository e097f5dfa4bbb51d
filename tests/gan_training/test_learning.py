"""Does training actually learn? A toy distribution (red images with a blue square) on the CPU."""

import numpy as np
import pytest
import torch
from PIL import Image

from datasetgan.cli import build_parser
from datasetgan.gan_training.checkpoint import find_resume
from datasetgan.generator import load_generator


@pytest.mark.slow
def test_learns_red_images_with_blue_squares(tmp_path):
    rng = np.random.RandomState(0)
    data = tmp_path / "red"
    data.mkdir()
    for i in range(32):
        a = np.zeros((16, 16, 3), np.uint8)
        a[...] = (200, 40, 40)
        y, x = rng.randint(0, 10, 2)
        a[y:y + 6, x:x + 6] = (40, 40, 200)
        Image.fromarray(a).save(data / f"{i}.png")
    argv = ["train-gan", "--data", str(data), "--out", str(tmp_path / "run"), "--resolution", "16",
            "--batch-size", "8", "--channel-base", "256", "--channel-max", "32", "--map-depth", "2", "--z-dim", "32", "--w-dim", "32",
            "--gamma", "0.1", "--aug", "none", "--kimg", "3.2", "--tick-kimg", "0.4", "--ema-kimg", "0.05",
            "--device", "cpu", "--quiet"]                       # 400 steps, ~1-2 minutes on one core
    args = build_parser().parse_args(argv)
    args.func(args)
    G = load_generator(find_resume("latest", tmp_path / "run"))
    with torch.no_grad():
        x = (G(torch.randn(64, G.z_dim, generator=torch.Generator().manual_seed(0))) * 127.5 + 128).clamp(0, 255)
    mean = x.mean(dim=[0, 2, 3])
    # Data mean: (177.5, 40, 62.5); an untrained G gives roughly grey noise.
    assert abs(mean[0] - 177.5) < 25 and abs(mean[1] - 40) < 20 and abs(mean[2] - 62.5) < 25, mean.tolist()
    blue = ((x[:, 2] > 120) & (x[:, 0] < 120)).float().mean(dim=[1, 2])   # share of blue pixels per image
    assert (blue > 0.03).float().mean() > 0.5                  # most samples draw a square

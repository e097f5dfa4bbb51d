"""The inversion's loss terms and schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datasetgan.inversion.config import InversionConfig
from datasetgan.inversion.losses import ReconstructionLoss, noise_penalty, normalise_noise, psnr, ssim_window
from datasetgan.inversion.project import learning_rate


def test_the_noise_penalty_scores_structure_not_noise():
    g = torch.Generator().manual_seed(0)
    white = torch.randn([2, 32, 32], generator=g)
    smooth = torch.nn.functional.avg_pool2d(torch.randn([2, 1, 64, 64], generator=g), 2, 1, 0)[:, 0, :32, :32]
    maps = [torch.cat([white[:1], smooth[:1]])]
    normalise_noise(maps)
    assert maps[0].mean(dim=(1, 2)).abs().max() < 1e-5
    assert maps[0].square().mean(dim=(1, 2)) == pytest.approx(torch.ones(2), abs=1e-5)
    scores = noise_penalty(maps)
    assert scores.shape == (2,) and scores[0] * 100 < scores[1]


@pytest.mark.parametrize("kind", ["none", "ssim"])
def test_each_images_loss_is_its_own(kind):
    g = torch.Generator().manual_seed(1)
    img, ref = torch.rand([3, 3, 32, 32], generator=g) * 2 - 1, torch.rand([3, 3, 32, 32], generator=g) * 2 - 1
    loss = ReconstructionLoss(kind, 0.5)
    together = loss(img, loss.target(ref))
    alone = torch.cat([loss(img[i:i + 1], loss.target(ref[i:i + 1])) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-6)
    assert float(loss(ref, loss.target(ref)).abs().max()) < 1e-5


def test_the_learning_rate_ramps_like_nvidias_projector():
    cfg = InversionConfig(lr=0.1)
    assert learning_rate(0.0, cfg) == 0.0
    assert learning_rate(0.025, cfg) == pytest.approx(0.05)
    assert learning_rate(0.5, cfg) == pytest.approx(0.1)
    assert learning_rate(0.875, cfg) == pytest.approx(0.05)


def test_psnr_and_the_ssim_window():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255
    assert psnr(a, b) == pytest.approx(10 * np.log10(48))
    assert psnr(a, a) > 100
    assert ssim_window(64) == 11 and ssim_window(8) == 7

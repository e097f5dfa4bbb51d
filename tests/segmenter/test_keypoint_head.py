"""The keypoint network must be able to fit a handful of images (it could not before the integral head).

The legacy head (Gaussian heatmaps of sigma 2 px, MSE, arg-max) regresses
maps that DeepLabV3 can only draw as bilinear upsamplings of a coarse grid;
their arg-max lands on that grid, and the MSE is minimised by near-zero maps.
Measured with these settings (CPU, 2026-11-25): ``keypoint_head="heatmap"``
training PCK@0.1 0.00, mean error 13.0 px; the integral head at output
stride 8: PCK@0.1 1.00, mean error 0.29 px (at output stride 16 the 64 px
input leaves a 4 x 4 grid and it reaches only 0.75, 1.6 px).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from datasetgan.evaluation.evaluate import evaluate
from datasetgan.labels import Item, LabelSpec
from datasetgan.segmenter.keypoints import decode_keypoints, keypoint_loss, render_heatmaps, soft_argmax
from datasetgan.segmenter.models import Segmenter, SegmenterConfig, load_checkpoint
from datasetgan.segmenter.config import SegmenterTrainingConfig
from datasetgan.segmenter.train import train

COLOURS = ((230, 30, 30), (30, 200, 30), (40, 40, 230))


def _marker_images(root, n: int = 4, size: int = 64, seed: int = 0) -> list[Item]:
    """``n`` noisy grey images, each with one red, green and blue disc at random places (the keypoints)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    items = []
    for i in range(n):
        img = rng.integers(90, 160, (size, size, 3)).astype(np.uint8)
        kp = np.concatenate([rng.uniform(8, size - 9, (3, 2)), np.ones((3, 1))], axis=1)
        for (x, y, _), colour in zip(kp, COLOURS):
            img[(xx - x) ** 2 + (yy - y) ** 2 <= 9] = colour
        path = root / f"{i:02d}.png"
        Image.fromarray(img).save(path)
        items.append(Item(path.stem, path, keypoints=kp))
    return items


def test_soft_argmax_is_continuous_and_the_loss_is_zero_at_the_truth():
    kp = torch.tensor([[[10.3, 7.6, 1.0], [3.0, 20.2, 1.0], [5.0, 5.0, 0.0]]])
    logits = torch.log(render_heatmaps(kp[:, :2], 32, sigma=1.0).clamp(min=1e-30))
    xy, logp = soft_argmax(logits)
    assert torch.allclose(xy[0], kp[0, :2, :2], atol=1e-3) and torch.allclose(logp.exp().sum((2, 3)), torch.ones(1, 2))
    loss = keypoint_loss(logits, kp[:, :2], "integral", sigma=1.0, reg_weight=0.0)
    assert float(loss) < 1e-3
    dec = decode_keypoints(logits, "integral")
    assert dec.shape == (1, 2, 3) and torch.all(dec[..., 2] > 0.1)
    # Invisible keypoints add nothing to the loss, whatever the prediction.
    far = kp.clone()
    far[0, 2, :2] = 0.0
    assert torch.isclose(keypoint_loss(torch.zeros(1, 3, 32, 32), far, "integral", 1.0),
                         keypoint_loss(torch.zeros(1, 3, 32, 32), kp, "integral", 1.0))


def test_output_stride_8_for_mobilenet():
    torch.manual_seed(0)
    model = Segmenter(SegmenterConfig(num_outputs=2, output_stride=8)).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert model.net.backbone((x - model.mean) / model.std)["out"].shape[-1] == 8     # 64 / 8
        assert model(x).shape == (1, 2, 64, 64)
    from datasetgan.core.errors import UserError
    with pytest.raises(UserError, match="--output-stride 4"):
        Segmenter(SegmenterConfig(output_stride=4))


def test_keypoint_network_overfits_a_handful_of_images(tmp_path):
    torch.manual_seed(0)
    items = _marker_images(tmp_path)
    spec = LabelSpec(classes=(), keypoints=("red", "green", "blue"))
    cfg = SegmenterTrainingConfig(epochs=80, batch_size=4, resolution=64, flip=False, crop_min=1.0, jitter=0.0,
                                  checkpoint_every=80, lr_schedule="cosine", output_stride=8)
    run = train(items, spec, "keypoints", cfg, tmp_path / "run", torch.device("cpu"), quiet=True)
    model, _, meta = load_checkpoint(run / "epoch_080")
    assert meta["model"]["keypoint_head"] == "integral"
    # Scored by `evaluate` as any run: eval mode (BatchNorm recalibrated), predictions in image pixels.
    ev = evaluate(run, items, spec, torch.device("cpu"), quiet=True)
    assert ev.metrics["pck_0.1"] >= 0.9, ev.metrics
    assert ev.metrics["mean_l2"] < 2.0, ev.metrics

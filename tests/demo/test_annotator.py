"""The annotator: training runs, save/load round trip, keypoint decoding."""

from __future__ import annotations

import numpy as np
import torch

from datasetgan.demo.annotator import (
    Annotator, AnnotatorConfig, annotate, annotate_folder, keypoint_heatmaps, keypoint_loss, peaks, train_annotator,
)
from datasetgan.demo.domain import CLASSES, KEYPOINTS
from datasetgan.demo.render import render_batch, render_dataset


def test_peaks_recover_subpixel_positions():
    kp = torch.tensor([[[10.3, 20.6, 1.0], [40.0, 5.0, 1.0]]])
    heat = keypoint_heatmaps(kp, 64, sigma=1.0)
    logits = torch.log(heat + 1e-6) + 10      # peak logit > 0: visible
    out = peaks(logits)
    np.testing.assert_allclose(out[0, :, :2], kp[0, :, :2].numpy(), atol=0.25)
    assert (out[0, :, 2] == 1).all()
    assert peaks(torch.full((1, 1, 8, 8), -5.0))[0, 0, 2] == 0


def test_keypoint_loss_prefers_the_right_place():
    kp = torch.tensor([[[30.0, 30.0, 1.0], [5.0, 5.0, 0.0]]])
    right = torch.log(keypoint_heatmaps(kp[..., :2].new_tensor([[[30.0, 30.0, 1.0], [5.0, 5.0, 1.0]]]), 64, 1.0) + 1e-6)
    wrong = torch.roll(right, 10, dims=-1)
    assert keypoint_loss(right, kp, 1.0) < keypoint_loss(wrong, kp, 1.0)


def test_train_save_load_annotate(tmp_path):
    torch.manual_seed(0)
    model = train_annotator(AnnotatorConfig(width=4, train_images=8, steps=2, batch_size=4), show_progress=False)
    model.save(tmp_path / "ann")
    loaded = Annotator.load(tmp_path / "ann")
    images = render_batch([1, 2]).images
    labels, keypoints = annotate(model, images)
    labels2, keypoints2 = annotate(loaded, images)
    np.testing.assert_array_equal(labels, labels2)
    np.testing.assert_allclose(keypoints, keypoints2)
    assert labels.shape == (2, 64, 64) and labels.max() < len(CLASSES)
    assert keypoints.shape == (2, len(KEYPOINTS), 3)
    faces = render_dataset(tmp_path / "faces", 2, 0, labels=False, show_progress=False)
    out = annotate_folder(loaded, faces / "images", ["000000", "000001"], tmp_path / "labels")
    assert sorted(p.name for p in out.iterdir()) == ["000000.json", "000000.png", "000001.json", "000001.png"]

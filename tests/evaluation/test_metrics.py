"""Metrics against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from datasetgan.evaluation import metrics as M


def test_confusion_and_iou_by_hand():
    target = np.array([[0, 0, 1], [1, 1, 2]])
    pred = np.array([[0, 1, 1], [1, 0, 2]])
    cm = M.confusion_matrix(pred, target, 4)
    # rows = truth: class 0 -> (0:1, 1:1); class 1 -> (0:1, 1:2); class 2 -> (2:1); class 3 absent.
    assert cm.tolist() == [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    iou = M.iou_per_class(cm)
    # class 0: TP 1, union 1+1+1 = 3; class 1: TP 2, union 2+1+1 = 4; class 2: 1/1; class 3: zero union -> 0.
    assert iou == pytest.approx([1 / 3, 2 / 4, 1.0, 0.0])
    assert M.mean_iou(cm) == pytest.approx((1 / 3 + 0.5 + 1.0 + 0.0) / 4)
    assert M.pixel_accuracy(cm) == pytest.approx(4 / 6)
    assert M.image_score(cm) == pytest.approx((1 / 3 + 0.5 + 1.0) / 3)


def test_ignored_targets_are_not_counted():
    target = np.array([[0, 255, 1], [1, 255, 2]])
    pred = np.array([[0, 1, 1], [1, 0, 2]])
    cm = M.confusion_matrix(pred, target, 3, ignore_index=255)
    assert cm.tolist() == [[1, 0, 0], [0, 2, 0], [0, 0, 1]] and M.mean_iou(cm) == 1.0


def test_iou_accumulates_over_the_split_not_per_image():
    # Image A: class 1 perfect on 1 pixel; image B: class 1 all wrong on 3 pixels.
    a = M.confusion_matrix(np.array([1, 0]), np.array([1, 0]), 2)
    b = M.confusion_matrix(np.array([0, 0, 0, 0]), np.array([1, 1, 1, 0]), 2)
    split = M.iou_per_class(a + b)
    assert split[1] == pytest.approx(1 / 4)                              # 1 TP, union 4
    assert split[1] != pytest.approx((M.iou_per_class(a)[1] + M.iou_per_class(b)[1]) / 2)


def test_pck_and_l2_by_hand():
    target = np.array([[[0, 0, 1], [10, 0, 1], [0, 20, 1], [5, 5, 0]]], float)   # bbox 10 x 20 -> norm 20
    pred = np.array([[[0.5, 0, 0], [10, 1.5, 0], [3, 20, 0], [90, 90, 0]]], float)
    # distances 0.5, 1.5, 3.0 (the invisible point is ignored); thresholds 1.0 and 2.0.
    assert M.pck(pred, target, 0.05) == pytest.approx(1 / 3)
    assert M.pck(pred, target, 0.1) == pytest.approx(2 / 3)
    assert M.mean_l2(pred, target) == pytest.approx((0.5 + 1.5 + 3.0) / 3)
    # Normalisation is per image.
    two = np.concatenate([target, target * [[[2, 2, 1]]]])
    assert M.keypoint_errors(two, two)[2].tolist() == [20.0, 40.0]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        M.confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 2)

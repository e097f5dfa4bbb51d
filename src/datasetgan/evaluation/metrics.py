"""Metrics as pure functions of arrays.

Segmentation follows the DatasetGAN reference: intersection and union are
accumulated per class over a whole split (a confusion matrix summed over its
images), background included, and a class whose union is empty scores 0.
Keypoints: PCK at a threshold ``alpha`` times the larger side of the
ground-truth keypoints' bounding box, and the mean L2 error in pixels.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int,
                     ignore_index: int | None = None) -> np.ndarray:
    """``[C, C]`` int64 counts; rows = true class, columns = predicted class.

    ``pred`` and ``target`` are integer arrays of one shape with ids in ``[0, C)``;
    pixels whose target is ``ignore_index`` are not counted.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and label {target.shape} differ in shape")
    target, pred = target.astype(np.int64).ravel(), pred.astype(np.int64).ravel()
    if ignore_index is not None:
        keep = target != ignore_index
        target, pred = target[keep], pred[keep]
    idx = target * num_classes + pred
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """``[C]`` IoU = TP / (TP + FP + FN) from a ``[C, C]`` confusion matrix; 0 where the union is 0."""
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    return np.where(union > 0, tp / np.maximum(union, 1), 0.0)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean of ``iou_per_class`` over all classes (background included, empty classes count as 0)."""
    return float(iou_per_class(confusion).mean())


def pixel_accuracy(confusion: np.ndarray) -> float:
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else 0.0


def image_score(confusion: np.ndarray) -> float:
    """One image's mIoU over the classes present in its label or prediction (for best/worst ranking)."""
    confusion = np.asarray(confusion, np.float64)
    present = (confusion.sum(0) + confusion.sum(1)) > 0
    return float(iou_per_class(confusion)[present].mean()) if present.any() else 1.0


def keypoint_errors(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per keypoint L2 distance, visibility mask and per image normaliser.

    ``pred [N, K, >=2]``, ``target [N, K, 3]`` (x, y, visible). Returns
    ``dist [N, K]`` (pixels), ``visible [N, K]`` bool and ``norm [N]``: the
    larger side of the bounding box of the image's visible target keypoints.
    """
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    dist = np.linalg.norm(pred[..., :2] - target[..., :2], axis=-1)
    visible = target[..., 2] > 0
    norm = np.zeros(len(target))
    for i in range(len(target)):
        pts = target[i, visible[i], :2]
        if len(pts):
            norm[i] = float((pts.max(0) - pts.min(0)).max())
    return dist, visible, norm


def pck(pred: np.ndarray, target: np.ndarray, alpha: float) -> float:
    """Fraction of visible keypoints within ``alpha * norm`` of the truth, pooled over the split."""
    dist, visible, norm = keypoint_errors(pred, target)
    if not visible.any():
        return 0.0
    correct = (dist <= alpha * norm[:, None]) & visible
    return float(correct.sum() / visible.sum())


def mean_l2(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean pixel distance over visible keypoints."""
    dist, visible, _ = keypoint_errors(pred, target)
    return float(dist[visible].mean()) if visible.any() else 0.0

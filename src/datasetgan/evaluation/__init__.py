"""Scoring downstream models on real labelled images: metrics, cross-validation, reports.

Scoring a checkpoint is ``evaluation.evaluate.evaluate(model, items, spec, device, ...)`` (not
exported here, where the name would hide the ``evaluate`` module)."""

from datasetgan.evaluation.config import EvaluationConfig
from datasetgan.evaluation.evaluate import Evaluation
from datasetgan.evaluation.metrics import (confusion_matrix, iou_per_class, keypoint_errors, mean_iou, mean_l2,
                                           pck, pixel_accuracy)

__all__ = [
    "Evaluation", "EvaluationConfig", "confusion_matrix", "iou_per_class", "keypoint_errors",
    "mean_iou", "mean_l2", "pck", "pixel_accuracy",
]

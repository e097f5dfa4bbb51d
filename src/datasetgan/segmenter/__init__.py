"""Downstream networks trained on a labelled data set: DeepLabV3 segmentation and keypoint heatmaps."""


from datasetgan.segmenter.config import SegmenterTrainingConfig
from datasetgan.segmenter.data import Augment, LabelledImages, collect_items, spec_from_dataset_json
from datasetgan.segmenter.models import Segmenter, SegmenterConfig, load_checkpoint, save_checkpoint
from datasetgan.segmenter.train import list_epochs, read_init, train

__all__ = [
    "Augment", "LabelledImages", "Segmenter", "SegmenterConfig", "SegmenterTrainingConfig", "collect_items",
    "list_epochs", "load_checkpoint", "read_init", "save_checkpoint", "spec_from_dataset_json", "train",
]

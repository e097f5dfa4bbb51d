"""Downstream networks trained on a labelled data set: DeepLabV3 segmentation and keypoint heatmaps.

Training is ``segmenter.train.train(items, spec, task, config, run, device)`` (not exported
here, where the name would hide the ``train`` module); ``read_data`` gives its ``items`` from
either layout of a ``synthesize`` folder (WebDataset shards are streamed)."""

from datasetgan.segmenter.config import SegmenterTrainingConfig
from datasetgan.segmenter.data import Augment, LabelledImages, collect_items, spec_from_dataset_json
from datasetgan.segmenter.models import Segmenter, SegmenterConfig, load_checkpoint, save_checkpoint
from datasetgan.segmenter.streaming import StreamingImages, WebDatasetSource, read_data
from datasetgan.segmenter.train import list_epochs, read_init

__all__ = [
    "Augment", "LabelledImages", "Segmenter", "SegmenterConfig", "SegmenterTrainingConfig", "StreamingImages",
    "WebDatasetSource", "collect_items", "list_epochs", "load_checkpoint", "read_data", "read_init",
    "save_checkpoint", "spec_from_dataset_json",
]

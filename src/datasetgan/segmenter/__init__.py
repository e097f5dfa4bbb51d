"""Downstream networks trained on a labelled data set: DeepLabV3 segmentation and keypoint heatmaps."""

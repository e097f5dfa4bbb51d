"""Per-pixel features from generator taps: sampled at chosen pixels for
training, projected through the first MLP layer for whole-image synthesis."""

from datasetgan.features.config import FeatureConfig, SelectedFeatures, UpsampleMode, select_features
from datasetgan.features.projected import project_first_layer, upsample_concat
from datasetgan.features.sampled import FeatureBank, gather_pixel_features, interp_taps

__all__ = [
    "FeatureConfig", "SelectedFeatures", "UpsampleMode", "select_features",
    "project_first_layer", "upsample_concat",
    "FeatureBank", "gather_pixel_features", "interp_taps",
]

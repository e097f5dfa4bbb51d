"""Per-pixel features from generator taps: which taps (``select_features``), a
bank of native-size maps to gather training pixels from (``FeatureBank``), and
the straightforward upsampled tensor the fast paths are checked against."""

from datasetgan.features.config import FeatureConfig, SelectedFeatures, UpsampleMode, select_features
from datasetgan.features.projected import upsample_concat
from datasetgan.features.sampled import FeatureBank, interp_taps

__all__ = [
    "FeatureBank", "FeatureConfig", "SelectedFeatures", "UpsampleMode", "interp_taps", "select_features",
    "upsample_concat",
]

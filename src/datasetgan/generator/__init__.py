"""StyleGAN2 generator (NVIDIA layout), the DatasetGAN release's StyleGAN1, safe checkpoint loaders, feature taps.

See docs/ARCHITECTURE.md, "Generator", for the contract other stages use.
"""

from datasetgan.generator.config import GeneratorConfig, SampleConfig, StyleGAN1Config
from datasetgan.generator.features import IMAGE_TAP, FeatureMap, FeatureSpec
from datasetgan.generator.loading import load_generator
from datasetgan.generator.networks import (Generator, MappingNetwork, SynthesisNetwork, build_generator,
                                           check_state_dict)
from datasetgan.generator.own_format import generator_fingerprint
from datasetgan.generator.samples import sample_to_folder
from datasetgan.generator.sampling import render_seeds, ws_from_seeds, z_from_seeds
from datasetgan.generator.stylegan1 import StyleGAN1Generator

__all__ = [
    "IMAGE_TAP", "FeatureMap", "FeatureSpec", "Generator", "GeneratorConfig", "MappingNetwork", "SampleConfig",
    "StyleGAN1Config", "StyleGAN1Generator", "SynthesisNetwork", "build_generator", "check_state_dict", "generator_fingerprint", "load_generator",
    "render_seeds", "sample_to_folder", "ws_from_seeds", "z_from_seeds",
]

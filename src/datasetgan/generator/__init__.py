"""StyleGAN2 generator (NVIDIA layout), safe checkpoint loaders, feature taps.

See docs/ARCHITECTURE.md, "Generator", for the contract other stages use.
"""

from datasetgan.generator.config import GeneratorConfig
from datasetgan.generator.features import FeatureMap, FeatureSpec
from datasetgan.generator.loading import build_generator, check_state_dict, load_generator
from datasetgan.generator.networks import Generator, MappingNetwork, SynthesisNetwork
from datasetgan.generator.own_format import generator_fingerprint
from datasetgan.generator.sampling import ws_from_seeds, z_from_seeds

__all__ = [
    "FeatureMap", "FeatureSpec", "Generator", "GeneratorConfig", "MappingNetwork", "SynthesisNetwork",
    "build_generator", "check_state_dict", "generator_fingerprint", "load_generator",
    "ws_from_seeds", "z_from_seeds",
]

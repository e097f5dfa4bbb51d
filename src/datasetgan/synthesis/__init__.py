"""Labelled data set synthesis: `datasetgan synthesize`."""

from datasetgan.synthesis.config import SynthesisConfig
from datasetgan.synthesis.render import render_batch
from datasetgan.synthesis.run import missing_seeds, read_manifest, synthesize

__all__ = ["SynthesisConfig", "missing_seeds", "read_manifest", "render_batch", "synthesize"]

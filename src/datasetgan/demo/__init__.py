"""The end-to-end demo: a procedural face domain with exact labels, and ``datasetgan demo``."""

from datasetgan.demo.config import DemoConfig, load_demo_config
from datasetgan.demo.pipeline import run_demo

__all__ = ["DemoConfig", "load_demo_config", "run_demo"]

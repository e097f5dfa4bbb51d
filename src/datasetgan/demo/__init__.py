"""The end-to-end demo: a procedural face domain with exact labels, and ``datasetgan demo``."""

"""Labelled data set synthesis: `datasetgan synthesize`."""

"""datasetgan: labelled-data factory from a StyleGAN and a few labels."""
__version__ = "0.1.0"

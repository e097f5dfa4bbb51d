"""The style interpreter: an ensemble of pixel MLPs over generator features,
its training (``train-interpreter``) and its whole-image predictions."""

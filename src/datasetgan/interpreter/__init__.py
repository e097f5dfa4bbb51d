"""The style interpreter: an ensemble of pixel MLPs over generator features,
its training (``train-interpreter``) and its whole-image predictions
(``Interpreter.predict``; the function behind it is ``interpreter.predict.predict``)."""

from datasetgan.interpreter.artifact import Interpreter
from datasetgan.interpreter.config import InterpreterConfig
from datasetgan.interpreter.model import EnsembleConfig, EnsembleMLP
from datasetgan.interpreter.predict import Prediction, Workspace, first_layer_precision
from datasetgan.interpreter.run import train_interpreter
from datasetgan.interpreter.train import PixelSet, Resume, TrainStats, train_ensemble

__all__ = [
    "EnsembleConfig", "EnsembleMLP", "Interpreter", "InterpreterConfig", "PixelSet", "Prediction", "Resume",
    "TrainStats", "Workspace", "first_layer_precision", "train_ensemble", "train_interpreter",
]

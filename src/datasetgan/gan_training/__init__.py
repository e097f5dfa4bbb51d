"""StyleGAN2 training on the user's own images: ``datasetgan train-gan``.

Modules: ``config`` (GanTrainingConfig), ``dataset`` (folder/zip -> uint8 tensor),
``discriminator`` (NVIDIA resnet D), ``augment`` (ADA, DiffAugment), ``losses``
(the four phases), ``loop`` (``train``), ``checkpoint`` (run folders and
snapshots), ``distributed`` (torchrun), ``metrics`` (FID/KID), ``cli``.
"""

from datasetgan.gan_training.checkpoint import find_resume, list_snapshots
from datasetgan.gan_training.config import GanTrainingConfig, check_world_size, resolve
from datasetgan.gan_training.loop import TrainingInterrupted, train

__all__ = ["GanTrainingConfig", "TrainingInterrupted", "check_world_size", "find_resume", "list_snapshots",
           "resolve", "train"]

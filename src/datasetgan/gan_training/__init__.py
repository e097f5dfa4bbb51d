"""StyleGAN2 training on the user's own images: ``datasetgan train-gan``.

Modules: ``config`` (TrainConfig), ``dataset`` (folder/zip -> uint8 tensor),
``discriminator`` (NVIDIA resnet D), ``augment`` (ADA, DiffAugment), ``losses``
(the four phases), ``loop`` (``train``), ``checkpoint`` (run folders and
snapshots), ``distributed`` (torchrun), ``metrics`` (FID/KID), ``cli``.
"""

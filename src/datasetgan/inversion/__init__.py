"""Real images into the generator's latent space (``datasetgan invert``), so that real labels
train the style interpreter (HandsOff, Xu et al., CVPR 2023).

- ``config``: ``InversionConfig``.
- ``losses``: pixel MSE plus discriminator features or SSIM; the noise maps' penalty; PSNR.
- ``project``: the optimisation (NVIDIA's projector's schedule, W or W+, a batch at a time).
- ``tune``: pivotal tuning of a copy of the generator.
- ``inputs``: the real images and labels, read, checked and brought into the generator's geometry.
- ``run``: ``invert_folder``, the resumable command behind ``invert``; writes a samples folder.
"""

from datasetgan.inversion.config import InversionConfig
from datasetgan.inversion.run import invert_folder

__all__ = ["InversionConfig", "invert_folder"]

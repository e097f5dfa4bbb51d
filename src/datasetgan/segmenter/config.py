"""``SegmenterTrainingConfig``: every setting of a ``train-segmenter`` / ``train-keypoints`` run.

Saved as the ``train`` section of the run folder's ``run.json``. The checks live in
``__post_init__``, so that ``segmenter.train.train()`` called from Python refuses
what the command line refuses, naming the same flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from datasetgan.core.devices import PRECISIONS, Precision
from datasetgan.core.errors import UserError
from datasetgan.core.options import setting
from datasetgan.segmenter.keypoints import KEYPOINT_HEADS, KeypointHead
from datasetgan.segmenter.models import ARCHS, DECODERS, Arch, Decoder

LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
# Settings that only one of the two commands shows as flags (a preset may still set them).
KEYPOINT_ONLY: tuple[str, ...] = ("keypoint_head", "heatmap_sigma", "keypoint_reg")
SEGMENTATION_ONLY: tuple[str, ...] = ("class_weight_power",)


@dataclass(frozen=True)
class SegmenterTrainingConfig:
    """Downstream training settings (the reference: Adam 1e-3, batch 8, 20 epochs)."""

    arch: Arch = setting("deeplabv3_mobilenet_v3_large", "DeepLabV3 backbone")
    epochs: int = setting(20, "training epochs; a finished run started again with more goes on")
    batch_size: int = setting(8, "images per optimisation step (at least 2: BatchNorm needs two samples)",
                              metavar="B")
    lr: float = setting(1e-3, "Adam learning rate")
    weight_decay: float = setting(0.0, "Adam's L2 weight decay", metavar="L2")
    resolution: int = setting(128, "square training side in pixels")
    flip: bool = setting(True, "random horizontal flips")
    crop_min: float = setting(0.7, "smallest random crop side, fraction of the image")
    # Largest random box side / image side (> 1: shrink the image, see Augment).
    zoom_out: float = setting(1.0, "largest random box side, fraction of the image (1 = crops only); e.g. 1.6 "
                                   "also shrinks the image to as little as 1/1.6 inside a margin of repeated "
                                   "border pixels, for test objects smaller than the training ones", metavar="S")
    jitter: float = setting(0.2, "colour jitter strength (0 = off)")
    heatmap_sigma: float = setting(2.0, "Gaussian sigma in pixels at --resolution: the integral head's regulariser "
                                        "target, or the heatmap head's target")
    # See segmenter.keypoints for why not "heatmap".
    keypoint_head: KeypointHead = setting("integral", "integral: soft-argmax with an L1 pixel loss; heatmap: the "
                                                      "legacy Gaussian-heatmap MSE with arg-max decoding")
    keypoint_reg: float = setting(0.1, "weight of the integral head's Gaussian cross-entropy term", metavar="W")
    # None = the architecture's own; 8 for MobileNetV3 is finer.
    output_stride: int | None = setting(None, "backbone output stride; 8 for MobileNetV3 dilates its last stages, "
                                              "about 2x slower", choices=(8, 16),
                                        default_text="the architecture's own: 16 for MobileNetV3, 8 for the ResNets")
    decoder: Decoder = setting("none", "none: DeepLabV3 as torchvision builds it; plus: DeepLabV3+'s decoder on the "
                                       "stride-4 features, for parts a few pixels wide; plus-separable: the same "
                                       "with depthwise-separable convolutions (the paper's; cheaper)")
    # Segmentation: weight class c's cross-entropy by freq_c ** -power (0 = unweighted; 0.5 = inverse square
    # root). Thin parts cover a fraction of a percent of the pixels; unweighted, a short run never learns them.
    class_weight_power: float = setting(0.0, "weight each class's loss by its pixel frequency ** -P (0 = unweighted; "
                                             "0.5 helps thin, rare parts)", metavar="P")
    # "cosine": per-step cosine decay from lr to 0 over `epochs` (DeepLab trains with a decaying rate; on
    # 20 images from scratch a constant 1e-3 keeps the loss noisy to the end).
    lr_schedule: Literal["constant", "cosine"] = setting("constant", "constant, or cosine: per-step decay from "
                                                                     "--lr to 0 over --epochs")
    checkpoint_every: int = setting(1, "keep an epoch checkpoint every N epochs and after the last", metavar="N")
    seed: int = setting(0, "seed of initialisation, augmentation, batch order and dropout")
    # Replaces the boolean ``amp`` of earlier releases: amp on = auto, off = float32 (see _same_run).
    precision: Precision = setting("auto", "auto: float16 mixed precision with loss scaling on CUDA (autocast and "
                                           "GradScaler), float32 on a CPU; float32: no mixed precision; bfloat16: "
                                           "bfloat16 autocast on CUDA, without loss scaling (float32 on a CPU)")
    workers: int = setting(0, "data loader processes")
    backbone_weights: str | None = setting(None, "local ImageNet classifier weights for the backbone (.pth or "
                                                 ".safetensors)", metavar="PATH")
    # Start from a trained segmenter of the same network and classes (a checkpoint, or a run folder's
    # last epoch): fine-tuning, e.g. a DatasetGAN segmenter on the hand-labelled images (see the demo).
    init: str | None = setting(None, "start from a trained network of the same settings and classes (a checkpoint "
                                     "or a run folder's last epoch): fine-tuning, e.g. on hand-labelled images",
                               metavar="CKPT")
    # torchvision's MobileNetV3 uses BN momentum 0.01: after a few hundred steps from scratch its
    # running statistics still lag the weights, and eval-mode predictions collapse to one class.
    bn_recalibrate: int = setting(256, "re-estimate BatchNorm statistics on N training images before each "
                                       "checkpoint (0 = off)", metavar="N")
    # Keep every BatchNorm's running statistics as they came (from --init or --backbone-weights) and
    # normalise with them in training too; recalibration is then off. For fine-tuning on a few images,
    # whose own statistics are a poor estimate, such as the demo's 16 labelled samples (docs/DEMO_RESULTS.md).
    freeze_bn: bool = setting(False, "keep the BatchNorm statistics of --init or --backbone-weights, in training "
                                     "too (fine-tuning on a few images)")

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise UserError(f"--arch {self.arch!r}: expected one of {', '.join(ARCHS)}")
        if self.epochs < 1:
            raise UserError(f"--epochs {self.epochs}: must be at least 1")
        if self.batch_size < 2:
            raise UserError(f"--batch-size {self.batch_size}: must be at least 2 (BatchNorm needs two samples)")
        if not self.lr > 0:
            raise UserError(f"--lr {self.lr}: must be > 0")
        if self.weight_decay < 0:
            raise UserError(f"--weight-decay {self.weight_decay}: must be >= 0")
        if self.resolution < 16:
            raise UserError(f"--resolution {self.resolution}: must be at least 16")
        if not 0 < self.crop_min <= 1:
            raise UserError(f"--crop-min {self.crop_min}: must lie in (0, 1]")
        if not 1 <= self.zoom_out < 2:
            raise UserError(f"--zoom-out {self.zoom_out}: must lie in [1, 2)")
        if not 0 <= self.jitter < 1:
            raise UserError(f"--jitter {self.jitter}: must lie in [0, 1)")
        if not self.heatmap_sigma > 0:
            raise UserError(f"--heatmap-sigma {self.heatmap_sigma}: must be > 0")
        if self.keypoint_head not in KEYPOINT_HEADS:
            raise UserError(f"--keypoint-head {self.keypoint_head!r}: expected one of {', '.join(KEYPOINT_HEADS)}")
        if self.keypoint_reg < 0:
            raise UserError(f"--keypoint-reg {self.keypoint_reg}: must be >= 0")
        if self.output_stride not in (None, 8, 16):
            raise UserError(f"--output-stride {self.output_stride}: expected 8 or 16")
        if self.decoder not in DECODERS:
            raise UserError(f"--decoder {self.decoder!r}: expected one of {', '.join(DECODERS)}")
        if not 0 <= self.class_weight_power <= 2:
            raise UserError(f"--class-weight-power {self.class_weight_power}: must lie in [0, 2]")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"--lr-schedule {self.lr_schedule!r}: expected one of {', '.join(LR_SCHEDULES)}")
        if self.checkpoint_every < 1:
            raise UserError(f"--checkpoint-every {self.checkpoint_every}: must be at least 1")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if self.workers < 0:
            raise UserError(f"--workers {self.workers}: must be >= 0")
        if self.freeze_bn and not (self.init or self.backbone_weights):
            raise UserError("--freeze-bn: needs --init or --backbone-weights (a network whose statistics to keep)")

"""``datasetgan train-segmenter`` and ``datasetgan train-keypoints``."""

from __future__ import annotations

import argparse
from pathlib import Path

from datasetgan.core.config import build_config, finite_float
from datasetgan.core.devices import resolve_device
from datasetgan.segmenter.data import collect_items
from datasetgan.segmenter.keypoints import KEYPOINT_HEADS
from datasetgan.segmenter.models import ARCHS, DECODERS
from datasetgan.segmenter.train import LR_SCHEDULES, TrainConfig, train


def register(subparsers: argparse._SubParsersAction) -> None:
    for name, task, what in (("train-segmenter", "segmentation", "a DeepLabV3 part segmenter"),
                             ("train-keypoints", "keypoints", "a DeepLabV3 keypoint heatmap network")):
        p = subparsers.add_parser(name, help=f"train {what} on labelled images",
                                  description=f"Train {what} on a `synthesize` output folder (--data) or on any "
                                              "folder of images with labels (--images --labels --spec).")
        src = p.add_argument_group("data (either --data, or --images --labels --spec)")
        src.add_argument("--data", metavar="DIR", help="a `datasetgan synthesize` output folder")
        src.add_argument("--images", metavar="DIR", help="folder of images")
        src.add_argument("--labels", metavar="DIR",
                         help="folder of <stem>.png/.npy masks" if task == "segmentation"
                         else "folder of <stem>.json keypoint files")
        src.add_argument("--spec", metavar="SPEC", help="label spec (YAML/JSON); with --data it overrides dataset.json")
        p.add_argument("--out", required=True, metavar="RUN", help="run folder (an interrupted run resumes)")
        p.add_argument("--config", metavar="YAML", help="preset file of TrainConfig keys; flags override it")
        p.add_argument("--arch", choices=ARCHS, default=None, help="default: deeplabv3_mobilenet_v3_large")
        p.add_argument("--backbone-weights", metavar="PATH",
                       help="local ImageNet classifier weights for the backbone (.pth or .safetensors)")
        p.add_argument("--init", metavar="CKPT",
                       help="start from a trained network of the same settings and classes (a checkpoint or "
                            "a run folder's last epoch): fine-tuning, e.g. on hand-labelled images")
        p.add_argument("--epochs", type=int, help="default: 20")
        p.add_argument("--batch-size", type=int, help="default: 8")
        p.add_argument("--lr", type=finite_float, help="Adam learning rate (default: 1e-3)")
        p.add_argument("--weight-decay", type=finite_float, metavar="L2",
                       help="Adam's L2 weight decay (default: 0)")
        p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=None,
                       help="constant (default) or cosine: per-step decay from --lr to 0 over --epochs")
        p.add_argument("--output-stride", type=int, choices=(8, 16), default=None,
                       help="backbone output stride (default: the architecture's own, 16 for MobileNetV3 and "
                            "8 for the ResNets; 8 for MobileNetV3 dilates its last stages, about 2x slower)")
        p.add_argument("--decoder", choices=DECODERS, default=None,
                       help="none (default): DeepLabV3 as torchvision builds it; plus: DeepLabV3+'s decoder on "
                            "the stride-4 features, for parts a few pixels wide; plus-separable: the same with "
                            "depthwise-separable convolutions (the paper's; cheaper)")
        p.add_argument("--resolution", type=int, help="square training side in pixels (default: 128)")
        p.add_argument("--no-flip", dest="flip", action="store_false", default=None, help="no horizontal flips")
        p.add_argument("--crop-min", type=finite_float, help="smallest random crop side, fraction of the image (0.7)")
        p.add_argument("--zoom-out", type=finite_float, metavar="S",
                       help="largest random box side, fraction of the image (default 1 = crops only); e.g. 1.6 "
                            "also shrinks the image to as little as 1/1.6 inside a margin of repeated border "
                            "pixels, for test objects smaller than the training ones")
        p.add_argument("--jitter", type=finite_float, help="colour jitter strength (0.2; 0 = off)")
        if task == "segmentation":
            p.add_argument("--class-weight-power", type=finite_float, metavar="P",
                           help="weight each class's loss by its pixel frequency ** -P (default 0 = unweighted; "
                                "0.5 helps thin, rare parts)")
        if task == "keypoints":
            p.add_argument("--keypoint-head", choices=KEYPOINT_HEADS, default=None,
                           help="integral (default): soft-argmax with an L1 pixel loss; heatmap: the legacy "
                                "Gaussian-heatmap MSE with arg-max decoding")
            p.add_argument("--heatmap-sigma", type=finite_float,
                           help="Gaussian sigma in pixels at --resolution: the integral head's regulariser "
                                "target, or the heatmap head's target (default: 2)")
            p.add_argument("--keypoint-reg", type=finite_float, metavar="W",
                           help="weight of the integral head's Gaussian cross-entropy term (default: 0.1)")
        p.add_argument("--bn-recalibrate", type=int, metavar="N",
                       help="re-estimate BatchNorm statistics on N training images before each checkpoint "
                            "(default 256; 0 = off)")
        p.add_argument("--freeze-bn", action="store_true", default=None,
                       help="keep the BatchNorm statistics of --init or --backbone-weights, in training too "
                            "(fine-tuning on a few images)")
        p.add_argument("--checkpoint-every", type=int, metavar="N",
                       help="keep an epoch checkpoint every N epochs and after the last (default: 1)")
        p.add_argument("--seed", type=int, help="default: 0")
        p.add_argument("--no-amp", dest="amp", action="store_false", default=None, help="no mixed precision on GPU")
        p.add_argument("--workers", type=int, help="data loader processes (default: 0)")
        p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if present)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.set_defaults(func=run_train, task=task)


def run_train(args: argparse.Namespace) -> int:
    keys = ("arch", "backbone_weights", "init", "epochs", "batch_size", "lr", "weight_decay", "resolution", "flip",
            "crop_min", "zoom_out", "jitter", "heatmap_sigma", "seed", "amp", "workers", "bn_recalibrate",
            "keypoint_head", "keypoint_reg", "output_stride", "lr_schedule", "checkpoint_every", "decoder",
            "class_weight_power", "freeze_bn")
    config = build_config(TrainConfig, args.config, {k: getattr(args, k, None) for k in keys})
    _check(config)
    device = resolve_device(args.device)
    items, spec = collect_items(args.task, data=args.data, images=args.images, labels=args.labels, spec=args.spec)
    source = {"data": args.data, "images": args.images, "labels": args.labels, "spec": args.spec}
    source = {k: str(Path(v).resolve()) for k, v in source.items() if v is not None}
    run = train(items, spec, args.task, config, args.out, device, source=source, quiet=args.quiet)
    print(f"wrote {run} ({len(items)} images, {config.epochs} epochs)")
    return 0


def _check(config: TrainConfig) -> None:
    from datasetgan.core.errors import UserError
    if config.epochs < 1:
        raise UserError("--epochs: must be at least 1")
    if config.batch_size < 2:
        raise UserError("--batch-size: must be at least 2 (BatchNorm needs two samples)")
    if config.lr <= 0:
        raise UserError(f"--lr {config.lr}: must be > 0")
    if config.weight_decay < 0:
        raise UserError(f"--weight-decay {config.weight_decay}: must be >= 0")
    if config.resolution < 16:
        raise UserError("--resolution: must be at least 16")
    if not 0 < config.crop_min <= 1:
        raise UserError("--crop-min: must lie in (0, 1]")
    if not 1 <= config.zoom_out < 2:
        raise UserError("--zoom-out: must lie in [1, 2)")
    if not 0 <= config.jitter < 1:
        raise UserError("--jitter: must lie in [0, 1)")
    if config.checkpoint_every < 1:
        raise UserError("--checkpoint-every: must be at least 1")
    if config.lr_schedule not in LR_SCHEDULES:
        raise UserError(f"lr_schedule {config.lr_schedule!r}: expected one of {', '.join(LR_SCHEDULES)}")
    if config.keypoint_head not in KEYPOINT_HEADS:
        raise UserError(f"keypoint_head {config.keypoint_head!r}: expected one of {', '.join(KEYPOINT_HEADS)}")
    if not 0 <= config.class_weight_power <= 2:
        raise UserError("--class-weight-power: must lie in [0, 2]")
    if config.decoder not in DECODERS:
        raise UserError(f"decoder {config.decoder!r}: expected one of {', '.join(DECODERS)}")
    if config.freeze_bn and not (config.init or config.backbone_weights):
        raise UserError("--freeze-bn: needs --init or --backbone-weights (a network whose statistics to keep)")
    if config.heatmap_sigma <= 0 or config.keypoint_reg < 0:
        raise UserError("--heatmap-sigma must be positive and --keypoint-reg at least 0")

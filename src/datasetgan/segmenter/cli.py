"""``datasetgan train-segmenter`` and ``datasetgan train-keypoints``."""

from __future__ import annotations

import argparse
from pathlib import Path

from datasetgan.core.devices import resolve_device
from datasetgan.core.options import (add_config_flags, add_device_flags, config_from_args, deprecated_flag,
                                     print_dry_run)
from datasetgan.segmenter.config import KEYPOINT_ONLY, SEGMENTATION_ONLY, SegmenterTrainingConfig
from datasetgan.segmenter.streaming import read_data
from datasetgan.segmenter.train import train


def register(subparsers: argparse._SubParsersAction) -> None:
    for name, task, what in (("train-segmenter", "segmentation", "a DeepLabV3 part segmenter"),
                             ("train-keypoints", "keypoints", "a DeepLabV3 keypoint heatmap network")):
        p = subparsers.add_parser(name, help=f"train {what} on labelled images",
                                  description=f"Train {what} on a `synthesize` output folder (--data) or on any "
                                              "folder of images with labels (--images --labels --spec).")
        src = p.add_argument_group("data (either --data, or --images --labels --spec)")
        src.add_argument("--data", metavar="DIR", help="a `datasetgan synthesize` output folder, of PNG files or "
                                                        "WebDataset shards (streamed)")
        src.add_argument("--images", metavar="DIR", help="folder of images")
        src.add_argument("--labels", metavar="DIR",
                         help="folder of <stem>.png/.npy masks" if task == "segmentation"
                         else "folder of <stem>.json keypoint files")
        src.add_argument("--spec", metavar="SPEC", help="label spec (YAML/JSON); with --data it overrides dataset.json")
        p.add_argument("--out", required=True, metavar="RUN", help="run folder (an interrupted run resumes)")
        add_config_flags(p, SegmenterTrainingConfig,
                         exclude=SEGMENTATION_ONLY if task == "keypoints" else KEYPOINT_ONLY)
        deprecated_flag(p, "--no-amp", "--precision float32", "precision", const="float32", takes_value=False)
        add_device_flags(p)
        p.set_defaults(func=run_train, task=task)


def run_train(args: argparse.Namespace) -> int:
    config = config_from_args(SegmenterTrainingConfig, args)
    if args.dry_run:
        print_dry_run(config)
        return 0
    device = resolve_device(args.device)
    items, spec = read_data(args.task, data=args.data, images=args.images, labels=args.labels, spec=args.spec)
    source = {"data": args.data, "images": args.images, "labels": args.labels, "spec": args.spec}
    source = {k: str(Path(v).resolve()) for k, v in source.items() if v is not None}
    run = train(items, spec, args.task, config, args.out, device, source=source, quiet=args.quiet)
    print(f"wrote {run} ({len(items)} images, {config.epochs} epochs)")
    return 0

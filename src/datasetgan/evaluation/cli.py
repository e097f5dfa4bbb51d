"""``datasetgan evaluate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from datasetgan.core.devices import resolve_device
from datasetgan.core.options import add_config_flags, add_device_flags, config_from_args, print_dry_run
from datasetgan.evaluation.config import EvaluationConfig
from datasetgan.segmenter.data import collect_items


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="score a segmenter or keypoint run on real labelled images",
                              description="mIoU (segmentation) or PCK (keypoints) of a train-segmenter/"
                                          "train-keypoints run on labelled images, with optional k-fold "
                                          "cross-validation over the run's epoch checkpoints.")
    p.add_argument("--model", required=True, metavar="RUN", help="run folder (or one epoch_*/ checkpoint)")
    p.add_argument("--images", required=True, metavar="DIR", help="test images")
    p.add_argument("--labels", required=True, metavar="DIR", help="their masks (.png/.npy) or keypoint .json files")
    p.add_argument("--spec", required=True, metavar="SPEC", help="label spec of the test labels (YAML/JSON)")
    p.add_argument("--save-predictions", metavar="DIR", help="write <stem>.png class-id maps (or <stem>.json)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (metrics.json, report.html, ...)")
    add_config_flags(p, EvaluationConfig)
    add_device_flags(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from datasetgan.evaluation.evaluate import evaluate, resolve_checkpoints, save_predictions
    from datasetgan.evaluation.report import write_outputs
    from datasetgan.segmenter.models import load_checkpoint
    config = config_from_args(EvaluationConfig, args)
    if args.dry_run:
        print_dry_run(config)
        return 0
    device = resolve_device(args.device)
    ckpts = resolve_checkpoints(args.model)
    task = load_checkpoint(ckpts[-1])[2]["model"]["task"]
    items, spec = collect_items(task, images=args.images, labels=args.labels, spec=args.spec)
    if config.cv_folds and len(ckpts) < 2:
        print(f"note: {args.model} has one checkpoint; cross-validation only estimates its spread")
    ev = evaluate(args.model, items, spec, device, config, quiet=args.quiet)
    write_outputs(args.out, ev, items, spec, title=f"Evaluation of {Path(args.model).name}")
    if args.save_predictions:
        save_predictions(args.save_predictions, ev, items, spec)
    m = ev.metrics
    keys = ("miou", "miou_std", "pixel_accuracy") if task == "segmentation" else \
        ("pck_0.05", "pck_0.1", "mean_l2", "pck_0.1_std")
    print(json.dumps({k: round(m[k], 4) for k in keys if k in m}))
    print(f"wrote {args.out}/metrics.json and report.html")
    return 0


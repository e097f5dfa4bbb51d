"""``datasetgan evaluate``, ``datasetgan import-helen`` and ``datasetgan import-labelme``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from datasetgan.core.config import finite_float
from datasetgan.core.devices import resolve_device
from datasetgan.core.errors import UserError
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
    p.add_argument("--cv-folds", type=int, default=None, metavar="K",
                   help="k-fold CV: 1/k picks the checkpoint, the other k-1/k score it (default: off, last epoch)")
    p.add_argument("--cv-seed", type=int, default=0, help="seed of the fold split (default: 0)")
    p.add_argument("--checkpoint-every", type=int, default=1, metavar="N",
                   help="with --cv-folds: consider every N-th epoch checkpoint, counted back from the last")
    p.add_argument("--save-predictions", metavar="DIR", help="write <stem>.png class-id maps (or <stem>.json)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (metrics.json, report.html, ...)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if present)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_evaluate)

    h = subparsers.add_parser("import-helen", help="turn Helen's helen.mat into keypoint label files",
                              description="Write images/, labels/<stem>.json (29 keypoints) and spec.json.")
    h.add_argument("root", help="the Helen folder (helen.mat and img/)")
    h.add_argument("--out", required=True, metavar="DIR")
    h.add_argument("--subset", choices=("all", "pool", "test"), default="all",
                   help="pool = first 248 by name, test = last 100 (default: all)")
    h.add_argument("--crop", type=finite_float, default=None, metavar="S",
                   help="frame faces like UTKFace: a square of S x the larger side of the keypoints' bounding "
                        "box (e.g. 1.5), written as PNG (default: copy the photos uncropped)")
    h.add_argument("--resolution", type=int, default=None, metavar="R", help="with --crop: resize crops to R x R")
    h.set_defaults(func=run_import_helen)

    m = subparsers.add_parser("import-labelme", help="turn LabelMe .json annotations into label files",
                              description="Write OUT/<stem>.png (class ids, indexed with the spec's palette) "
                                          "from polygon, rectangle, circle and mask shapes, and OUT/<stem>.json "
                                          "from point shapes named after the spec's keypoints. Every file is "
                                          "checked before anything is written.")
    m.add_argument("src", help="folder of LabelMe <stem>.json files (e.g. labelme samples/images --output SRC)")
    m.add_argument("--spec", required=True, metavar="SPEC", help="label spec (YAML/JSON): shape labels are "
                                                                  "its class and keypoint names")
    m.add_argument("--out", required=True, metavar="DIR", help="the labels folder for train-interpreter")
    m.add_argument("--uncovered", choices=("background", "ignore"), default="background",
                   help="pixels no shape covers: class 0 (default) or the spec's ignore_index (unlabelled)")
    m.set_defaults(func=run_import_labelme)


def run_evaluate(args: argparse.Namespace) -> int:
    from datasetgan.evaluation.evaluate import evaluate, resolve_checkpoints, save_predictions
    from datasetgan.evaluation.report import write_outputs
    from datasetgan.segmenter.models import load_checkpoint
    if args.batch_size < 1:
        raise UserError("--batch-size: must be at least 1")
    device = resolve_device(args.device)
    ckpts = resolve_checkpoints(args.model)
    task = load_checkpoint(ckpts[-1])[2]["model"]["task"]
    items, spec = collect_items(task, images=args.images, labels=args.labels, spec=args.spec)
    if args.cv_folds is not None and len(ckpts) < 2:
        print(f"note: {args.model} has one checkpoint; cross-validation only estimates its spread")
    ev = evaluate(args.model, items, spec, device, cv_folds=args.cv_folds, cv_seed=args.cv_seed,
                  batch_size=args.batch_size, every=args.checkpoint_every, quiet=args.quiet)
    write_outputs(args.out, ev, items, spec, title=f"Evaluation of {Path(args.model).name}")
    if args.save_predictions:
        save_predictions(args.save_predictions, ev, items, spec)
    m = ev.metrics
    keys = ("miou", "miou_std", "pixel_accuracy") if task == "segmentation" else \
        ("pck_0.05", "pck_0.1", "mean_l2", "pck_0.1_std")
    print(json.dumps({k: round(m[k], 4) for k in keys if k in m}))
    print(f"wrote {args.out}/metrics.json and report.html")
    return 0


def run_import_helen(args: argparse.Namespace) -> int:
    from datasetgan.evaluation.importers import import_helen
    n = import_helen(args.root, args.out, subset=args.subset, crop=args.crop, resolution=args.resolution)
    print(f"wrote {n} images with 29 keypoints each to {args.out} (spec: {args.out}/spec.json)")
    return 0


def run_import_labelme(args: argparse.Namespace) -> int:
    from datasetgan.core.labelme import import_labelme
    from datasetgan.core.labels import load_label_spec
    counts = import_labelme(args.src, load_label_spec(args.spec), args.out, uncovered=args.uncovered)
    print(f"{args.out}: {counts['masks']} masks and {counts['keypoint_files']} keypoint files "
          f"from {counts['files']} LabelMe files")
    return 0

"""``datasetgan import-helen``, ``import-labelme`` and ``import-labelstudio``: foreign labels as this
project's label files."""

from __future__ import annotations

import argparse

from datasetgan.core.config import finite_float


def register(subparsers: argparse._SubParsersAction) -> None:
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

    s = subparsers.add_parser("import-labelstudio", help="turn a Label Studio JSON export into label files",
                              description="Write OUT/<stem>.png (class ids, indexed with the spec's palette) from "
                                          "brush, polygon, rectangle and ellipse regions, and OUT/<stem>.json from "
                                          "keypoint regions named after the spec's keypoints. Every task is "
                                          "checked before anything is written.")
    s.add_argument("src", help="the export file (Label Studio: Export -> JSON)")
    s.add_argument("--spec", required=True, metavar="SPEC", help="label spec (YAML/JSON): region labels are "
                                                                  "its class and keypoint names")
    s.add_argument("--out", required=True, metavar="DIR", help="the labels folder for train-interpreter")
    s.add_argument("--uncovered", choices=("background", "ignore"), default="background",
                   help="pixels no region covers: class 0 (default) or the spec's ignore_index (unlabelled)")
    s.set_defaults(func=run_import_labelstudio)


def run_import_helen(args: argparse.Namespace) -> int:
    from datasetgan.labels.helen import import_helen
    n = import_helen(args.root, args.out, subset=args.subset, crop=args.crop, resolution=args.resolution)
    print(f"wrote {n} images with 29 keypoints each to {args.out} (spec: {args.out}/spec.json)")
    return 0


def run_import_labelme(args: argparse.Namespace) -> int:
    from datasetgan.labels.labelme import import_labelme
    from datasetgan.labels.spec import load_label_spec
    counts = import_labelme(args.src, load_label_spec(args.spec), args.out, uncovered=args.uncovered)
    print(f"{args.out}: {counts['masks']} masks and {counts['keypoint_files']} keypoint files "
          f"from {counts['files']} LabelMe files")
    return 0


def run_import_labelstudio(args: argparse.Namespace) -> int:
    from datasetgan.labels.labelstudio import import_labelstudio
    from datasetgan.labels.spec import load_label_spec
    counts = import_labelstudio(args.src, load_label_spec(args.spec), args.out, uncovered=args.uncovered)
    skipped = f" ({counts['skipped']} tasks without an annotation skipped)" if counts["skipped"] else ""
    print(f"{args.out}: {counts['masks']} masks and {counts['keypoint_files']} keypoint files "
          f"from {counts['tasks']} Label Studio tasks{skipped}")
    return 0

"""How well a `synthesize` output's labels agree with the demo annotator's labels of the same images.

On the demo domain the annotator (a U-Net trained on rendered faces with exact labels, 75.6 mIoU on
rendered faces) stands in for a person: its labels of generated images are a yardstick for the style
interpreter's labels, per class.

    .venv/bin/python benchmarks/demo_label_agreement.py SYNTH_DIR [--images 200]

Pixels the data set left unlabelled (``synthesize --ignore-pixels-above``) are not compared; the
printout says how many there were.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datasetgan.core.fileio import read_json
from datasetgan.demo.annotator import Annotator, annotate
from datasetgan.demo.domain import label_spec
from datasetgan.demo.pipeline import bundled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("synthetic", type=Path, help="a `datasetgan synthesize` output folder of the demo domain")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--annotator", type=Path, default=None, help="default: the bundled one")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = Annotator.load(args.annotator or bundled("demo_annotator"))
    files = sorted((args.synthetic / "images").glob("*.png"))[:args.images]
    if not files:
        raise SystemExit(f"{args.synthetic}/images: no PNG images")
    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    reference, _ = annotate(model, images)
    labels = np.stack([np.asarray(Image.open(args.synthetic / "labels" / f.name)) for f in files])
    ignore = read_json(args.synthetic / "dataset.json", "data set description").get("ignore_index")
    kept = labels != ignore if ignore is not None else np.ones(labels.shape, bool)
    reference, labels = reference[kept], labels[kept]
    classes = label_spec()["classes"]
    ious = []
    for c in range(len(classes)):
        union = ((reference == c) | (labels == c)).sum()
        ious.append(100.0 * ((reference == c) & (labels == c)).sum() / union if union else 0.0)
    print(f"{len(files)} images, {100 * (1 - kept.mean()):.1f}% of their pixels unlabelled: pixel agreement "
          f"{100 * (reference == labels).mean():.1f}%, mIoU (interpreter vs annotator) {np.mean(ious):.1f}")
    print("  ".join(f"{name} {iou:.0f}" for name, iou in zip(classes, ious)))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Make the demo's 16 labelled generated samples, reproducibly.

The labels stand in for a person's: an annotator network learns parts and
keypoints from rendered faces with exact labels (the domain's "real" images),
then labels the generator's samples of seeds 0-15 from their pixels alone
(see ``datasetgan.demo.annotator``).

    .venv/bin/python scripts/make_demo_labels.py [--annotator DIR] [--generator DIR] [--seeds 0-15]

Writes ``src/datasetgan/assets/demo_annotator/`` (unless ``--annotator`` gives
a trained one) and ``src/datasetgan/assets/demo_labels/`` (``labels/<seed>.png``
and ``.json``, ``spec.json``, ``provenance.json``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch

ASSETS = Path(__file__).resolve().parents[1] / "src" / "datasetgan" / "assets"


def main() -> int:
    from datasetgan.cli import main as cli
    from datasetgan.core.config import config_to_dict
    from datasetgan.core.fileio import write_json
    from datasetgan.core.seeds import parse_seeds
    from datasetgan.demo.annotator import (
        Annotator, AnnotatorConfig, annotate_folder, evaluate_annotator, train_annotator,
    )
    from datasetgan.demo.domain import label_spec
    from datasetgan.generator import generator_fingerprint, load_generator

    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--annotator", help="a trained annotator folder (default: train one into the assets)")
    p.add_argument("--generator", default=str(ASSETS / "demo_generator"))
    p.add_argument("--seeds", default="0-15")
    p.add_argument("--truncation", default="0.7")
    p.add_argument("--steps", type=int, default=None, help="annotator training steps (default: AnnotatorConfig)")
    p.add_argument("--out", default=str(ASSETS / "demo_labels"))
    args = p.parse_args()

    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.annotator:
        model = Annotator.load(args.annotator)
    else:
        cfg = AnnotatorConfig() if args.steps is None else AnnotatorConfig(steps=args.steps)
        model = train_annotator(cfg)
        model.save(ASSETS / "demo_annotator")
    seeds = parse_seeds(args.seeds)
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        code = cli(["sample", "--generator", args.generator, "--seeds", args.seeds, "--truncation", args.truncation,
                    "--out", tmp, "--device", "cpu"])
        if code:
            return code
        if (out / "labels").exists():
            shutil.rmtree(out / "labels")
        annotate_folder(model, Path(tmp) / "images", [f"{s:06d}" for s in seeds], out / "labels")
    write_json(out / "spec.json", label_spec())
    write_json(out / "provenance.json", {
        "made_by": "scripts/make_demo_labels.py " + " ".join(sys.argv[1:]),
        "seeds": seeds, "truncation": float(args.truncation),
        "generator_fingerprint": generator_fingerprint(load_generator(args.generator)),
        "annotator": config_to_dict(model.config),
        "annotator_on_rendered_faces": evaluate_annotator(model),
    })
    print(f"wrote {len(seeds)} labelled samples to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

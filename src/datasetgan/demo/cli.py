"""``datasetgan demo --out DIR [--quick]``: the whole method on the bundled face domain."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="run the whole pipeline on the bundled procedural face domain (CPU, minutes)",
        description="Sample the demo generator, label 16 samples, train the style interpreter, synthesise a "
                    "labelled data set, train DeepLabV3 on it and on the 16 samples alone, and compare both "
                    "on rendered faces with exact labels.")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (results.json, report.html, ...)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and an untrained generator: checks the plumbing in about a minute")
    p.add_argument("--config", metavar="YAML", help="demo preset (default: configs/demo.yaml or demo_quick.yaml)")
    p.add_argument("--generator", metavar="CKPT", help="use this generator instead of the bundled one")
    p.add_argument("--synth-keep", type=int, metavar="N", help="synthetic images to keep (default 2000)")
    p.add_argument("--seg-epochs", type=int, metavar="E", help="DeepLabV3 epochs on the synthetic set")
    p.add_argument("--baseline-epochs", type=int, metavar="E",
                   help="DeepLabV3 epochs on the labelled samples alone (at most --seg-epochs)")
    p.add_argument("--test-images", type=int, metavar="N", help="rendered test faces (default 300)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: from the preset, cpu)")
    p.add_argument("--quiet", action="store_true", default=None, help="stage headers and table only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from datasetgan.demo.config import load_demo_config
    from datasetgan.demo.pipeline import run_demo

    overrides = {"generator": args.generator, "synth_keep": args.synth_keep, "seg_epochs": args.seg_epochs,
                 "baseline_epochs": args.baseline_epochs,
                 "test_images": args.test_images, "device": args.device, "quiet": args.quiet}
    cfg = load_demo_config(args.config, args.quick, overrides)
    run_demo(cfg, args.out)
    return 0

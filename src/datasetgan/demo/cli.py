"""``datasetgan demo --out DIR [--quick]``: the whole method on the bundled face domain."""

from __future__ import annotations

import argparse

from datasetgan.core.options import add_config_flags, given_flags, print_dry_run


def register(subparsers: argparse._SubParsersAction) -> None:
    from datasetgan.demo.config import DemoConfig

    p = subparsers.add_parser(
        "demo", help="run the whole pipeline on the bundled procedural face domain (CPU, minutes)",
        description="Sample the demo generator, label 16 samples, train the style interpreter, synthesise a "
                    "labelled data set, train DeepLabV3 on it and on the 16 samples alone, and compare both "
                    "on rendered faces with exact labels. --config takes a demo preset (configs/demo.yaml, "
                    "one section per stage).")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (results.json, report.html, ...)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and an untrained generator: checks the plumbing in about a minute")
    add_config_flags(p, DemoConfig)
    p.add_argument("--seg-epochs", type=int, metavar="E", default=None,
                   help="DeepLabV3 epochs on the synthetic set (segmenter.epochs of the preset)")
    p.add_argument("--baseline-epochs", type=int, metavar="E", default=None,
                   help="DeepLabV3 epochs on the labelled samples alone, at most --seg-epochs "
                        "(baseline.epochs of the preset)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from datasetgan.demo.config import DemoConfig, load_demo_config
    from datasetgan.demo.pipeline import run_demo

    overrides: dict = given_flags(DemoConfig, args)
    if args.seg_epochs is not None:
        overrides["segmenter"] = {"epochs": args.seg_epochs}
    if args.baseline_epochs is not None:
        overrides["baseline"] = {"epochs": args.baseline_epochs}
    cfg = load_demo_config(args.config, args.quick, overrides)
    if args.dry_run:
        print_dry_run(cfg, synthesis_seeds=cfg.synth_total)
        return 0
    run_demo(cfg, args.out)
    return 0

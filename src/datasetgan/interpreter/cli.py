"""``datasetgan train-interpreter``: fit the ensemble of pixel MLPs to a few labels."""

from __future__ import annotations

import argparse

from datasetgan.core.devices import resolve_device
from datasetgan.core.options import add_config_flags, add_device_flags, config_from_args, print_dry_run
from datasetgan.interpreter.config import InterpreterConfig
from datasetgan.interpreter.run import train_interpreter
from datasetgan.labels import load_label_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-interpreter", help="train the style interpreter (pixel MLP ensemble) on a few labels",
        description="Train an ensemble of pixel MLPs on generator features of labelled samples. The "
                    "training state is saved in --out every 5 minutes and on Ctrl-C or SIGTERM; the same "
                    "command started again resumes it and gives the same interpreter.")
    p.add_argument("--samples", required=True, metavar="DIR", help="folder written by `datasetgan sample`")
    p.add_argument("--labels", required=True, metavar="DIR",
                   help="LABELS/<stem>.png|.npy (masks) or LABELS/<stem>.json (keypoints)")
    p.add_argument("--spec", required=True, metavar="FILE", help="label spec (YAML/JSON: classes, palette, keypoints)")
    p.add_argument("--out", required=True, metavar="DIR", help="the interpreter folder (config.json + model.safetensors)")
    p.add_argument("--task", choices=["auto", "segmentation", "keypoints"], default="auto",
                   help="default: keypoints if LABELS holds .json files, else segmentation")
    p.add_argument("--generator", metavar="CKPT", help="generator checkpoint (default: the one the samples recorded)")
    p.add_argument("--allow-unlabelled", action="store_true",
                   help="skip samples without a label file (default: that is an error naming them)")
    add_config_flags(p, InterpreterConfig)
    add_device_flags(p)
    p.set_defaults(func=run_train_interpreter)


def run_train_interpreter(args: argparse.Namespace) -> int:
    config = config_from_args(InterpreterConfig, args)
    if args.dry_run:
        print_dry_run(config)
        return 0
    spec = load_label_spec(args.spec)
    interp = train_interpreter(args.samples, args.labels, spec, args.out, config, resolve_device(args.device),
                               task=args.task, generator=args.generator, allow_unlabelled=args.allow_unlabelled,
                               quiet=args.quiet)
    t = interp.training
    print(f"trained {config.members} members on {t['pixels']} pixels of {len(t['labelled'])} labelled "
          f"images ({interp.task}, feature width {t['feature_width']}) in {t['steps']} steps; wrote {args.out}")
    return 0

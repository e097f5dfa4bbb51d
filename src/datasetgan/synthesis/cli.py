"""``datasetgan synthesize``: a labelled data set from a generator and an interpreter."""

from __future__ import annotations

import argparse

from datasetgan.core.devices import resolve_device
from datasetgan.core.options import add_config_flags, add_device_flags, config_from_args, print_dry_run
from datasetgan.generator import load_generator
from datasetgan.interpreter.artifact import Interpreter
from datasetgan.synthesis.config import SynthesisConfig
from datasetgan.synthesis.run import missing_seeds, synthesize


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synthesize", help="generate a labelled data set (images, labels, uncertainty filtering)",
        description="Render seeds S..S+N-1, label them with the interpreter, drop the most uncertain, "
                    "and write images/, labels/, dataset.json, manifest.jsonl and a contact sheet. "
                    "An interrupted run, restarted with the same arguments, finishes the same data set.")
    p.add_argument("--generator", required=True, metavar="CKPT", help="the generator the interpreter was trained for")
    p.add_argument("--interpreter", required=True, metavar="DIR", help="folder written by train-interpreter")
    p.add_argument("--out", required=True, metavar="DIR", help="the data set folder")
    add_config_flags(p, SynthesisConfig)
    add_device_flags(p)
    p.set_defaults(func=run_synthesize)


def run_synthesize(args: argparse.Namespace) -> int:
    config = config_from_args(SynthesisConfig, args)
    if args.dry_run:
        print_dry_run(config)
        return 0
    device = resolve_device(args.device)
    interp = Interpreter.load(args.interpreter, device=device)
    G = load_generator(args.generator, device=device)
    info = synthesize(G, interp, args.out, config, device, generator_checkpoint=str(args.generator),
                      interpreter_dir=str(args.interpreter), quiet=args.quiet)
    if info is None:
        missing = len(missing_seeds(args.out, config))
        state = (f"{missing} of {config.n} seeds still missing. When every shard has ended, run"
                 if missing else "every seed is staged: run")
        print(f"{args.out}: shard {config.shard[0]}/{config.shard[1]} staged ({len(config.shard_seeds)} seeds); "
              f"{state} the same command without --shard to finish the data set")
        return 0
    print(f"{args.out}: {info['kept']} of {config.n} samples kept "
          f"({len(info['dropped_seeds'])} most uncertain dropped)"
          + (f"; {info['unlabelled']['pixel_fraction']:.1%} of their pixels left unlabelled"
             if "unlabelled" in info else "")
          + ("; bfloat16 first-layer matmuls (--precision float32: exact ones)"
             if info.get("first_layer_precision") == "bfloat16" else ""))
    return 0

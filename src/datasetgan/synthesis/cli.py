"""``datasetgan synthesize``: a labelled data set from a generator and an interpreter."""

from __future__ import annotations

import argparse

from datasetgan.core.config import finite_float
from datasetgan.core.devices import resolve_device
from datasetgan.generator import load_generator
from datasetgan.interpreter.artifact import Interpreter
from datasetgan.synthesis.run import PRECISIONS, SynthesisConfig, missing_seeds, synthesize


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synthesize", help="generate a labelled data set (images, labels, uncertainty filtering)",
        description="Render seeds S..S+N-1, label them with the interpreter, drop the most uncertain, "
                    "and write images/, labels/, dataset.json, manifest.jsonl and a contact sheet. "
                    "An interrupted run, restarted with the same arguments, finishes the same data set.")
    p.add_argument("--generator", required=True, metavar="CKPT", help="the generator the interpreter was trained for")
    p.add_argument("--interpreter", required=True, metavar="DIR", help="folder written by train-interpreter")
    p.add_argument("--n", required=True, type=int, help="number of candidate seeds")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--seed-start", type=int, default=0, help="first seed (seeds mean what they mean in `sample`)")
    p.add_argument("--truncation", type=finite_float, default=0.7, metavar="PSI", help="default 0.7")
    p.add_argument("--truncation-cutoff", type=int, default=None, metavar="N",
                   help="truncate only the first N ws (default: all, as `sample`)")
    p.add_argument("--drop-uncertain", type=finite_float, default=0.1, metavar="FRACTION",
                   help="fraction of the most uncertain samples to drop (default 0.1)")
    p.add_argument("--ignore-pixels-above", type=finite_float, default=None, metavar="JS",
                   help="segmentation: write pixels whose ensemble Jensen-Shannon divergence exceeds JS "
                        "(nats, at most ln(members)) as unlabelled, so that train-segmenter skips them. "
                        "The demo uses 0.15 (about 3.5%% of its pixels). Default: every pixel keeps its vote")
    p.add_argument("--batch-size", type=int, default=8,
                   help="seeds per generator call (default 8; padded to at least 2). The data set is the same "
                        "whatever the batch size: each sample is computed as if alone")
    p.add_argument("--shard", type=shard_arg, default=None, metavar="I/N",
                   help="render only every N-th seed from the I-th (0 <= I < N) into --out, e.g. one process "
                        "per GPU; shards do not finish the data set: when all have ended, run the same "
                        "command without --shard (it renders what is missing, then writes dataset.json)")
    p.add_argument("--class-idx", type=int, default=None, help="class for conditional generators")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if present)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="the interpreter's first-layer matmuls: auto (default) = bfloat16 on a CPU with AMX or "
                        "AVX512-BF16 (matmuls 2-5x faster; labels equal float32's on 99.9-99.99%% of pixels), "
                        "else float32 (exact)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_synthesize)


def shard_arg(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)``; the range is checked by ``SynthesisConfig``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected I/N, e.g. 0/4") from None
    return index, count


def run_synthesize(args: argparse.Namespace) -> int:
    config = SynthesisConfig(n=args.n, seed_start=args.seed_start, truncation=args.truncation,
                             truncation_cutoff=args.truncation_cutoff, drop_uncertain=args.drop_uncertain,
                             batch_size=args.batch_size, class_idx=args.class_idx,
                             ignore_pixels_above=args.ignore_pixels_above, shard=args.shard,
                             precision=args.precision)
    device = resolve_device(args.device)
    interp = Interpreter.load(args.interpreter, device=device)
    G = load_generator(args.generator, device=device)
    info = synthesize(G, interp, args.out, config, device, generator_checkpoint=str(args.generator),
                      interpreter_dir=str(args.interpreter), quiet=args.quiet)
    if info is None:
        missing = len(missing_seeds(args.out, config))
        state = (f"{missing} of {config.n} seeds still missing. When every shard has ended, run"
                 if missing else "every seed is staged: run")
        print(f"{args.out}: shard {args.shard[0]}/{args.shard[1]} staged ({len(config.shard_seeds)} seeds); "
              f"{state} the same command without --shard to finish the data set")
        return 0
    print(f"{args.out}: {info['kept']} of {config.n} samples kept "
          f"({len(info['dropped_seeds'])} most uncertain dropped)"
          + (f"; {info['unlabelled']['pixel_fraction']:.1%} of their pixels left unlabelled"
             if "unlabelled" in info else "")
          + ("; bfloat16 first-layer matmuls (--precision float32: exact ones)"
             if info.get("first_layer_precision") == "bfloat16" else ""))
    return 0

"""``datasetgan synthesize``: a labelled data set from a generator and an interpreter."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from datasetgan.core.distributed import gloo_group, init_distributed, launched_info, rank_device, shutdown
from datasetgan.core.options import add_config_flags, add_device_flags, config_from_args, print_dry_run
from datasetgan.core.signals import SIGNAL_NAMES, Interrupted
from datasetgan.generator import load_generator
from datasetgan.interpreter.artifact import Interpreter
from datasetgan.synthesis.claim import describe, read_claim
from datasetgan.synthesis.config import SynthesisConfig
from datasetgan.synthesis.run import FINISH_TIMEOUT, STAGING, missing_seeds, synthesize


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synthesize", help="generate a labelled data set (images, labels, uncertainty filtering)",
        description="Render seeds S..S+N-1, label them with the interpreter, drop the most uncertain, "
                    "and write images/ and labels/ (or WebDataset shards), dataset.json, manifest.jsonl and a "
                    "contact sheet. An interrupted run, restarted with the same arguments, finishes the same data "
                    "set. Under `torchrun --nproc-per-node G -m datasetgan.cli synthesize ...` each process "
                    "renders its share of the seeds on its own GPU, and process 0 finishes the data set.")
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
    dist = launched_info()   # under torchrun: this process's rank
    device = rank_device(args.device, dist)
    dist = init_distributed(device.type, timeout=FINISH_TIMEOUT)
    try:
        with _sigterm_interrupts():
            group = gloo_group(dist, FINISH_TIMEOUT)
            interp = Interpreter.load(args.interpreter, device=device)
            G = load_generator(args.generator, device=device)
            info = synthesize(G, interp, args.out, config, device, generator_checkpoint=str(args.generator),
                              interpreter_dir=str(args.interpreter), quiet=args.quiet, dist=dist, group=group)
    except KeyboardInterrupt as exc:
        signal_name = str(exc) if isinstance(exc, Interrupted) and str(exc) else "an interruption"
        rank = (f" (rank {dist.rank} of {dist.world_size}; torchrun stops every rank when one fails, and its "
                "report names the one that failed)" if dist.enabled else "")
        staged = config.num_images - len(missing_seeds(args.out, config))
        print(f"datasetgan synthesize: stopped by {signal_name}{rank}; {staged} of {config.num_images} seeds are "
              f"staged in {Path(args.out) / STAGING}: run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        shutdown(dist)
    if not dist.is_main:
        return 0
    if info is None:
        _print_unfinished(args.out, config)
        return 0
    print(f"{args.out}: {info['kept']} of {config.num_images} samples kept "
          f"({len(info['dropped_seeds'])} most uncertain dropped)"
          + (f" in {info['shards']['count']} WebDataset shards" if info.get("layout") == "webdataset" else "")
          + (f"; {info['unlabelled']['pixel_fraction']:.1%} of their pixels left unlabelled"
             if "unlabelled" in info else "")
          + ("; bfloat16 first-layer matmuls (--precision float32: exact ones)"
             if info.get("first_layer_precision") == "bfloat16" else ""))
    return 0


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Within the block SIGTERM interrupts as SIGINT does (``Interrupted``), so that a process that
    torchrun stops says so and leaves no temporary files; rendering and the barrier hold both signals
    until their next safe point (``StopFlag``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise Interrupted(SIGNAL_NAMES.get(signum, "a signal"))
    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _print_unfinished(out: str, config: SynthesisConfig) -> None:
    """Why this process did not finish the data set: seeds of other shards missing, or another finishing it."""
    missing = len(missing_seeds(out, config))
    if missing:
        shard = f"shard {config.shard[0]}/{config.shard[1]}" if config.shard is not None else "this run"
        print(f"{out}: {shard} staged ({len(config.shard_seeds)} seeds); {missing} of {config.num_images} seeds "
              "still missing. The shard that ends last finishes the data set (or, once every shard has ended, "
              "run the same command without --shard: it renders what is missing, then finishes)")
    else:
        print(f"{out}: every seed is staged; {describe(read_claim(Path(out)), out)}")

"""``datasetgan sample`` and ``datasetgan convert``."""

from __future__ import annotations

import argparse
from pathlib import Path

from datasetgan.core.devices import resolve_device
from datasetgan.core.errors import UserError
from datasetgan.core.options import (add_config_flags, add_device_flags, config_from_args, deprecated_flag,
                                     print_dry_run)
from datasetgan.generator.config import SampleConfig
from datasetgan.generator.loading import load_generator
from datasetgan.generator.own_format import generator_fingerprint, is_own_format
from datasetgan.generator.samples import sample_to_folder

CHECKPOINT_KINDS = "own-format folder, train-gan run or snapshot folder, NVIDIA .pkl or rosinality .pt"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sample", help="render images (and their latents) from seeds",
                              description="Render one image per seed, with the exact z and w that made it, "
                                          "into a samples folder (images/, latents.safetensors, "
                                          "samples.jsonl, grid.png, generator.json).")
    p.add_argument("--generator", required=True, metavar="CKPT", help=CHECKPOINT_KINDS)
    deprecated_flag(p, "--checkpoint", "--generator", "generator")
    p.add_argument("--out", required=True, metavar="DIR", help="the samples folder")
    add_config_flags(p, SampleConfig)
    add_device_flags(p)
    p.set_defaults(func=run_sample)

    c = subparsers.add_parser("convert", help="write any supported checkpoint in the own format",
                              description="Read a checkpoint safely and write config.json + model.safetensors.")
    c.add_argument("src", help=CHECKPOINT_KINDS)
    c.add_argument("dst", help="output folder")
    c.add_argument("--overwrite", action="store_true", help="replace an existing generator in DST")
    c.set_defaults(func=run_convert)


def run_sample(args: argparse.Namespace) -> int:
    config = config_from_args(SampleConfig, args)
    if args.dry_run:
        print_dry_run(config, generator=args.generator)
        return 0
    G = load_generator(args.generator, device=resolve_device(args.device))
    out = sample_to_folder(G, config, args.out, args.generator, quiet=args.quiet)
    print(f"wrote {len(config.seed_list)} samples to {out}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    dst = Path(args.dst)
    if is_own_format(dst) and not args.overwrite:
        raise UserError(f"{dst}: already holds a generator; pass --overwrite to replace it")
    G = load_generator(args.src, device="cpu")
    G.save_pretrained(dst)
    cfg = G.config
    print(f"wrote {dst} ({cfg.img_resolution}x{cfg.img_resolution}, z_dim {cfg.z_dim}, w_dim {cfg.w_dim}, "
          f"{G.num_ws} ws; fingerprint {generator_fingerprint(G)[:16]})")
    return 0

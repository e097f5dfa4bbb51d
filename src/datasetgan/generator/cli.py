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

CHECKPOINT_KINDS = ("own-format folder, train-gan run or snapshot folder, NVIDIA .pkl, rosinality .pt "
                    "or the DatasetGAN release's StyleGAN1 .pt")


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

    r = subparsers.add_parser("import-release", help="turn one of the DatasetGAN release's experiments into "
                                                     "generator, samples, labels and test set folders",
                              description="Read a release experiment file (face_34.json, car_20.json, ...) and the "
                                          "files it names under --root: its StyleGAN1 checkpoint, average latent, "
                                          "annotated latents, image_mask{i}.npy and image_{i}.jpg, and its "
                                          "testing folder. Write OUT/generator, OUT/samples, OUT/labels, "
                                          "OUT/spec.json, OUT/test/{images,labels} and OUT/release.json.")
    r.add_argument("experiment", nargs="?", metavar="EXP.json", help="the release's experiment file")
    r.add_argument("--experiment", dest="experiment_flag", metavar="EXP.json", help="the same, as a flag")
    r.add_argument("--root", required=True, metavar="DIR",
                   help="the folder the experiment's relative paths start from (the release's datasetGAN/)")
    r.add_argument("--out", required=True, metavar="OUT")
    r.add_argument("--clean-small-regions", action=argparse.BooleanOptionalAction, default=True,
                   help="as the release, set annotated regions of fewer than 30 pixels to class 0")
    add_device_flags(r)
    r.set_defaults(func=run_import_release)


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


def run_import_release(args: argparse.Namespace) -> int:
    from datasetgan.generator.release_import import import_release
    experiment = args.experiment_flag or args.experiment
    if not experiment or (args.experiment_flag and args.experiment and args.experiment_flag != args.experiment):
        raise UserError("import-release: give the experiment file once (EXP.json or --experiment EXP.json)")
    record = import_release(experiment, args.root, args.out, clean=args.clean_small_regions,
                            device=resolve_device(args.device))
    print(f"wrote {args.out}: a {record['resolution']} px StyleGAN1 (feature width {record['feature_width']}), "
          f"{record['annotations']} labelled samples, {record['test_images']} test images, "
          f"{record['classes']} classes; train-interpreter with --members {record['interpreter']['members']}")
    return 0

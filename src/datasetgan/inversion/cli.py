"""``datasetgan invert``: real (labelled) images into the generator's latent space."""

from __future__ import annotations

import argparse

from datasetgan.core.devices import resolve_device
from datasetgan.core.errors import UserError
from datasetgan.core.options import add_config_flags, config_from_args, print_dry_run
from datasetgan.inversion.config import InversionConfig
from datasetgan.inversion.run import invert_folder
from datasetgan.labels import load_label_spec

GENERATOR_KINDS = ("own-format folder, train-gan run or snapshot folder (its discriminator then gives the "
                   "perceptual loss), NVIDIA .pkl or rosinality .pt")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "invert", help="project real images (and their labels) into the generator: a samples folder",
        description="Find each real image's latents (W+ by default, with its own noise maps) and write a "
                    "samples folder in the layout of `sample`, with the reconstructions as images/<stem>.png "
                    "and, with --labels, the labels in their geometry in OUT/labels/. Then "
                    "`train-interpreter --samples OUT --labels OUT/labels --spec SPEC` trains on real labels. "
                    "An interrupted run, started again with the same arguments, keeps the finished images and "
                    "ends with the same latents.")
    p.add_argument("--generator", required=True, metavar="CKPT", help=GENERATOR_KINDS)
    p.add_argument("--images", required=True, metavar="DIR",
                   help="the real images (any size: centre-cropped and resized as train-gan does)")
    p.add_argument("--out", required=True, metavar="DIR", help="the samples folder")
    p.add_argument("--labels", metavar="DIR", help="their labels, LABELS/<stem>.png|.npy (masks) and/or "
                                                  "LABELS/<stem>.json (keypoints), one per image; needs --spec")
    p.add_argument("--spec", metavar="FILE", help="label spec (YAML/JSON: classes, palette, keypoints)")
    add_config_flags(p, InversionConfig)
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if present)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_invert)


def run_invert(args: argparse.Namespace) -> int:
    config = config_from_args(InversionConfig, args)
    if (args.labels is None) != (args.spec is None):
        given, missing = ("--labels", "--spec") if args.spec is None else ("--spec", "--labels")
        raise UserError(f"{given} needs {missing}: give the label folder and its spec together, or neither")
    if args.dry_run:
        print_dry_run(config, generator=args.generator, images=args.images, labels=args.labels, spec=args.spec)
        return 0
    spec = load_label_spec(args.spec) if args.spec else None
    info = invert_folder(args.generator, args.images, args.out, config, resolve_device(args.device),
                         labels=args.labels, spec=spec, quiet=args.quiet)
    if info.get("already_complete"):
        print(f"{args.out}: already holds these {info['images']} inverted images; nothing to do")
        return 0
    what = f"{info['images']} images inverted, mean PSNR {info['mean_psnr']:.2f} dB ({info['perceptual']} loss"
    what += ", tuned generator in OUT/generator)" if info["tuned"] else ")"
    print(f"{args.out}: {what}" + ("; resumed, the batches an earlier run finished were kept"
                                    if info.get("resumed") else ""))
    if "labels" in info:
        counts = info["labels"]
        lost = (f"; {counts['keypoints_outside_crop']} visible keypoints fell outside the square crop and are "
                "now invisible" if counts["keypoints_outside_crop"] else "")
        print(f"{args.out}/labels: {counts['masks']} masks, {counts['keypoints']} keypoint files{lost}. Next: "
              f"datasetgan train-interpreter --samples {args.out} --labels {args.out}/labels --spec {args.spec} "
              f"--out INTERPRETER")
    return 0


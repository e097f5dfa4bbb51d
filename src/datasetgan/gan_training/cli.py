"""``datasetgan train-gan``: train a StyleGAN2 on a folder or zip of images."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from datasetgan.core.config import build_config, config_to_dict, finite_float, read_mapping
from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.gan_training.config import ARCHITECTURE_FIELDS, TrainConfig, architecture_of, check_config, resolve

# flag -> TrainConfig field, for flags whose value maps 1:1.
_FLAGS = {
    "data": str, "resolution": int, "out": str, "kimg": float, "batch": int, "batch_gpu": int,
    "gamma": float, "aug": str, "channel_base": int, "channel_max": int, "map_depth": int,
    "z_dim": int, "w_dim": int, "device": str, "seed": int, "name": str, "pl_weight": float, "tick_kimg": float, "tick_minutes": float, "snap_ticks": int, "snap_minutes": float,
    "image_ticks": int, "keep_snapshots": int, "precision": str, "metrics": str, "metrics_weights": str,
    "metrics_images": int, "aug_p": float, "ada_target": float, "ada_kimg": float, "ema_kimg": float, "lr": float, "num_fp16_res": int, "conv_clamp": float,
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-gan", help="train a StyleGAN2 on your images",
        description="Train a StyleGAN2 (with adaptive augmentation) on a folder or zip of images. "
                    "Each run gets a numbered folder under --out with training_options.json, stats.jsonl, "
                    "sample grids and resumable snapshots (snapshots/kimg-*/; G_ema loads in sample, "
                    "train-interpreter and synthesize). Multi-GPU: torchrun --nproc_per_node N -m datasetgan.cli train-gan ...")
    p.add_argument("--data", help="folder (searched recursively) or .zip of images in any format PIL reads")
    p.add_argument("--resolution", type=int, help="output side, a power of two >= 8 (images are centre-cropped and resized)")
    p.add_argument("--out", default=None, help="parent folder of the numbered run folders (default: runs)")
    p.add_argument("--kimg", type=finite_float, help="train length in thousands of images shown to D (fractions allowed)")
    p.add_argument("--batch", type=int, help="global batch size (default 32)")
    p.add_argument("--batch-gpu", type=int, help="per-process chunk for gradient accumulation")
    p.add_argument("--gamma", type=finite_float, help="R1 weight (default: 0.0002 * R^2 / batch)")
    p.add_argument("--aug", choices=["ada", "diffaug", "none"], help="augmentation (default ada)")
    p.add_argument("--aug-p", type=finite_float, help="initial ADA probability")
    p.add_argument("--ada-target", type=finite_float, help="ADA target for E[sign(D(real))] (default 0.6; 0 keeps p fixed)")
    p.add_argument("--ada-kimg", type=finite_float, help="ADA speed: p can go 0 -> 1 in this many kimg (default 500; "
                                                "lower it for short runs)")
    p.add_argument("--mirror", action="store_true", default=None, help="add x-flipped copies of the images")
    p.add_argument("--channel-base", type=int, help="channels at resolution r: min(base / r, max) (default 16384)")
    p.add_argument("--channel-max", type=int, help="(default 512)")
    p.add_argument("--map-depth", type=int, help="mapping network depth (default 8)")
    p.add_argument("--ema-kimg", type=finite_float, help="G_ema half-life in kimg (default batch * 10 / 32)")
    p.add_argument("--lr", type=finite_float, help="Adam learning rate for G and D (default 0.0025)")
    p.add_argument("--z-dim", type=int, help="latent z size (default 512)")
    p.add_argument("--w-dim", type=int, help="latent w size (default 512)")
    p.add_argument("--pl-weight", type=finite_float, help="path-length regularisation weight (default 0 = off; NVIDIA: 2)")
    p.add_argument("--num-fp16-res", type=int, help="NVIDIA-style fp16 blocks at the N highest resolutions (CUDA)")
    p.add_argument("--conv-clamp", type=finite_float, help="clamp conv outputs (256 with fp16 blocks)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], help="auto: bf16 autocast on CUDA, fp32 on CPU")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the main forward passes")
    p.add_argument("--seed", type=int, help="seed for initialisation, data order and training noise")
    p.add_argument("--name", help="run name after the number (default: <data name>-<resolution>)")
    p.add_argument("--tick-kimg", type=finite_float, help="log and stats every N kimg (default 4)")
    p.add_argument("--tick-minutes", type=finite_float, help="... or after N minutes, whichever first (default 5)")
    p.add_argument("--snap-ticks", type=int, help="snapshot every N ticks (default 50; always at the end)")
    p.add_argument("--snap-minutes", type=finite_float, help="... or at the first tick N minutes after the last one (default 30)")
    p.add_argument("--image-ticks", type=int, help="sample grid every N ticks (default 10)")
    p.add_argument("--keep-snapshots", type=int, help="keep only the newest N snapshots (default: all)")
    p.add_argument("--metrics", help="'fid,kid' at the end of training (needs --metrics-weights), or 'none'")
    p.add_argument("--metrics-weights", help="local torchvision inception_v3 weights (.safetensors or .pt state dict)")
    p.add_argument("--metrics-images", type=int, help="images per side for FID/KID (default 5000)")
    p.add_argument("--resume", help="snapshot folder, run folder, or 'latest' (newest run under --out)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when present)")
    p.add_argument("--config", help="YAML/JSON preset (configs/gan/*.yaml); flags override it")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def build_train_config(args: argparse.Namespace) -> tuple[TrainConfig, Path | None]:
    """defaults <- resumed run's options <- preset <- flags; checks a resume's architecture."""
    from datasetgan.gan_training import checkpoint as ckpt

    flags = {k: getattr(args, k, None) for k in _FLAGS}
    flags["mirror"] = getattr(args, "mirror", None)
    flags["compile"] = getattr(args, "compile", None)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    base: dict = {}
    snapshot = None
    if getattr(args, "resume", None):
        snapshot = ckpt.find_resume(args.resume, args.out or "runs")
        state = ckpt.read_state(snapshot)
        saved = state.get("options", {})
        base = {k: v for k, v in saved.items() if k in fields}
    if getattr(args, "config", None):
        base.update(read_mapping(args.config))
    cfg = build_config(TrainConfig, preset=base or None, overrides=flags)
    if snapshot is not None:
        saved_arch = architecture_of(state.get("options", {}))
        ours = {k: getattr(cfg, k) for k in ARCHITECTURE_FIELDS}
        diff = [k for k in ARCHITECTURE_FIELDS if saved_arch[k] != ours[k]]
        if diff:
            detail = ", ".join(f"--{k.replace('_', '-')} {ours[k]} (snapshot: {saved_arch[k]})" for k in diff)
            raise CheckpointError(snapshot, f"cannot resume: the snapshot has another architecture: {detail}")
    return cfg, snapshot


def run(args: argparse.Namespace) -> int:
    from datasetgan.gan_training.loop import train

    cfg, snapshot = build_train_config(args)
    if args.dry_run:
        check_config(cfg)
        print(json.dumps({**config_to_dict(resolve(cfg)), "resume": str(snapshot) if snapshot else None}, indent=2))
        return 0
    run_dir = train(cfg, resume=snapshot, quiet=args.quiet)
    if os.environ.get("RANK", "0") == "0":
        print(run_dir)
    return 0

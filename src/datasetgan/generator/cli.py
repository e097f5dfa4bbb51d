"""``datasetgan sample`` and ``datasetgan convert``.

``sample`` writes, into ``--out``::

    images/<seed:06d>.png   one image per seed (NVIDIA's uint8 conversion)
    latents.safetensors     z [N, z_dim], w [N, num_ws, w_dim], seeds [N] (int64)
    samples.jsonl           one line per sample: seed, truncation_psi, noise_mode, image
    grid.png                contact sheet of the first 64 samples
    generator.json          checkpoint, fingerprint, config, feature spec

The default truncation is 0.7 (as ``synthesize`` uses), not NVIDIA's 1.0, so
the samples one labels look like the data set that will be synthesised.
Every file is written atomically; ``samples.jsonl`` and ``latents.safetensors``
come last, so their presence means the run finished.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from datasetgan.core.config import finite_float
from datasetgan.core.devices import resolve_device
from datasetgan.core.errors import UserError
from datasetgan.core.fileio import atomic_path, write_json, write_text
from datasetgan.core.images import grid, save_png, to_uint8
from datasetgan.core.progress import progress
from datasetgan.core.seeds import parse_seeds
from datasetgan.generator.layers import NOISE_MODES
from datasetgan.generator.loading import load_generator
from datasetgan.generator.networks import Generator
from datasetgan.generator.own_format import generator_fingerprint, is_own_format
from datasetgan.generator.sampling import render_seeds

GRID_MAX = 64


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sample", help="render images (and their latents) from seeds",
                              description="Render one image per seed, with the exact z and w that made it.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="own-format folder, train-gan snapshot folder, NVIDIA .pkl or rosinality .pt")
    p.add_argument("--seeds", required=True, help="seed list, e.g. 0-31 or 1,5,9")
    p.add_argument("--truncation", type=finite_float, default=0.7, metavar="PSI",
                   help="truncation psi (default 0.7; 1.0 = none)")
    p.add_argument("--truncation-cutoff", type=int, default=None, metavar="N",
                   help="truncate only the first N ws (default: all)")
    p.add_argument("--noise-mode", choices=NOISE_MODES, default="const", help="default: const")
    p.add_argument("--class-idx", type=int, default=None, help="class for conditional generators")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if present)")
    p.set_defaults(func=run_sample)

    c = subparsers.add_parser("convert", help="write any supported checkpoint in the own format",
                              description="Read a checkpoint safely and write config.json + model.safetensors.")
    c.add_argument("src", help="own-format folder, train-gan snapshot folder, NVIDIA .pkl or rosinality .pt")
    c.add_argument("dst", help="output folder")
    c.add_argument("--overwrite", action="store_true", help="replace an existing generator in DST")
    c.set_defaults(func=run_convert)


def class_vector(G: Generator, class_idx: int | None) -> torch.Tensor | None:
    """One-hot ``[c_dim]`` for conditional generators; ``None`` for unconditional ones."""
    if G.c_dim == 0:
        if class_idx is not None:
            raise UserError("--class-idx: this generator is unconditional (c_dim = 0)")
        return None
    if class_idx is None or not 0 <= class_idx < G.c_dim:
        raise UserError(f"--class-idx: this generator is conditional; give a class in [0, {G.c_dim})")
    c = torch.zeros([G.c_dim])
    c[class_idx] = 1
    return c


def run_sample(args: argparse.Namespace) -> int:
    seeds = parse_seeds(args.seeds)
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be >= 1")
    device = resolve_device(args.device)
    G = load_generator(args.checkpoint, device=device)
    if args.truncation_cutoff is not None and not 0 <= args.truncation_cutoff <= G.num_ws:
        raise UserError(f"--truncation-cutoff {args.truncation_cutoff}: must lie in [0, {G.num_ws}]")
    c = class_vector(G, args.class_idx)
    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)

    zs, ws, records, thumbs = [], [], [], []
    bar = progress(desc="sample", total=len(seeds), unit="img")
    for batch, z, w, img in render_seeds(G, seeds, args.truncation, args.truncation_cutoff,
                                         args.noise_mode, args.batch_size, c=c):
        images = to_uint8(img)
        for seed, array in zip(batch, images):
            rel = f"images/{seed:06d}.png"
            save_png(out / rel, array)
            records.append({"seed": seed, "truncation_psi": args.truncation,
                            "truncation_cutoff": args.truncation_cutoff,
                            "noise_mode": args.noise_mode, "image": rel})
            if len(thumbs) < GRID_MAX:
                thumbs.append(array)
        zs.append(z.cpu())
        ws.append(w.float().cpu())
        bar.update(len(batch))
    bar.close()

    save_png(out / "grid.png", grid(thumbs))
    write_json(out / "generator.json", {
        "checkpoint": str(Path(args.checkpoint).resolve()),
        "fingerprint": generator_fingerprint(G),
        "config": G.config.to_dict(),
        "feature_spec": G.feature_spec.to_dict(),
        "class_idx": args.class_idx,
    })
    with atomic_path(out / "latents.safetensors") as tmp:
        save_file({"z": torch.cat(zs).contiguous(), "w": torch.cat(ws).contiguous(),
                   "seeds": torch.tensor(seeds, dtype=torch.int64)}, str(tmp))
    write_text(out / "samples.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    print(f"wrote {len(seeds)} samples to {out}")
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

"""The samples folder: images to label, with the exact latents that made them.

``sample_to_folder`` writes, into ``out``::

    images/<seed:06d>.png   one image per seed (NVIDIA's uint8 conversion)
    latents.safetensors     z [N, z_dim], w [N, num_ws, w_dim], seeds [N] (int64)
    samples.jsonl           one line per sample: seed, truncation_psi, noise_mode, image
    grid.png                contact sheet of the first 64 samples
    generator.json          checkpoint, fingerprint, config, feature spec

``datasetgan invert`` writes the same layout through ``finish_samples_folder``
(stems are the real images' stems, no z or seeds; per-image noise maps
``noise.<layer> [N, R, R]`` in ``latents.safetensors`` with ``noise_mode``
``"stored"``).

Every file is written atomically; ``samples.jsonl`` and ``latents.safetensors``
come last, so their presence means the folder is complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from datasetgan.core.errors import UserError
from datasetgan.core.fileio import atomic_path, write_json, write_text
from datasetgan.core.images import grid, save_png, to_uint8
from datasetgan.core.progress import progress
from datasetgan.generator.config import SampleConfig
from datasetgan.generator.networks import Generator
from datasetgan.generator.own_format import generator_fingerprint
from datasetgan.generator.sampling import render_seeds
from datasetgan.generator.selection import select_seeds

GRID_MAX = 64
# The noise_mode of samples rendered with noise maps of their own, stored in latents.safetensors
# as NOISE_PREFIX + layer name (``b8.conv0``), ``[N, R, R]``: ``G.synthesis(..., noise=...)``.
STORED_NOISE = "stored"
NOISE_PREFIX = "noise."


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


def sample_to_folder(G: Generator, config: SampleConfig, out: str | Path, checkpoint: str | Path,
                     quiet: bool = False) -> Path:
    """Render ``config``'s seeds with ``G`` (loaded from ``checkpoint``) into the samples folder ``out``.

    With ``config.select = K``, only the K most diverse seeds are written (``selection.select_seeds``),
    in the order they were picked, and ``generator.json`` records ``selected``."""
    seeds = config.seed_list
    if config.truncation_cutoff is not None and config.truncation_cutoff > G.num_ws:
        raise UserError(f"--truncation-cutoff {config.truncation_cutoff}: must lie in [0, {G.num_ws}]")
    c = class_vector(G, config.class_idx)
    if config.select is not None:   # only the most diverse seeds, in pick order (generator/selection.py)
        seeds = select_seeds(G, seeds, config.select, config.truncation, config.truncation_cutoff,
                             config.noise_mode, config.batch_size, c=c)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)

    zs, ws, records, thumbs = [], [], [], []
    bar = progress(desc="sample", total=len(seeds), unit="img", disable=quiet or None)
    for batch, z, w, img in render_seeds(G, seeds, config.truncation, config.truncation_cutoff,
                                         config.noise_mode, config.batch_size, c=c):
        images = to_uint8(img)
        for seed, array in zip(batch, images):
            rel = f"images/{seed:06d}.png"
            save_png(out / rel, array)
            records.append({"seed": seed, "truncation_psi": config.truncation,
                            "truncation_cutoff": config.truncation_cutoff,
                            "noise_mode": config.noise_mode, "image": rel})
            if len(thumbs) < GRID_MAX:
                thumbs.append(array)
        zs.append(z.cpu())
        ws.append(w.float().cpu())
        bar.update(len(batch))
    bar.close()

    latents = {"z": torch.cat(zs), "w": torch.cat(ws), "seeds": torch.tensor(seeds, dtype=torch.int64)}
    selected = {"selected": {"k": config.select, "from_seeds": config.seeds}} if config.select is not None else {}
    finish_samples_folder(out, G, checkpoint, latents, records, thumbs, class_idx=config.class_idx, **selected)
    return out


def finish_samples_folder(out: str | Path, G: Generator, checkpoint: str | Path, latents: dict[str, torch.Tensor],
                          records: list[dict], thumbs: list[np.ndarray], class_idx: int | None = None,
                          **generator_meta) -> None:
    """Write what completes a samples folder whose ``images/`` are written: ``grid.png`` of
    ``thumbs`` (``[H, W, 3]`` uint8), ``generator.json`` (``G`` as loaded from ``checkpoint``,
    plus ``generator_meta``), ``latents.safetensors`` (``latents``: at least ``w [N, num_ws,
    w_dim]``) and, last, ``samples.jsonl`` (``records``, one per sample, each naming its ``image``)."""
    out = Path(out)
    if len(records) != int(latents["w"].shape[0]):
        raise ValueError(f"finish_samples_folder: {len(records)} records but {latents['w'].shape[0]} ws")
    save_png(out / "grid.png", grid(thumbs[:GRID_MAX]))
    write_json(out / "generator.json", {
        "checkpoint": str(Path(checkpoint).resolve()),
        "fingerprint": generator_fingerprint(G),
        "config": G.config.to_dict(),
        "feature_spec": G.feature_spec.to_dict(),
        "class_idx": class_idx,
        **generator_meta,
    })
    with atomic_path(out / "latents.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in latents.items()}, str(tmp))
    write_text(out / "samples.jsonl", "".join(json.dumps(r) + "\n" for r in records))

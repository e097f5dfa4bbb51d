"""Per-pixel uncertainty maps of a few synthesised images, for the demo report."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from datasetgan.core.fileio import read_jsonl
from datasetgan.core.images import save_png, to_uint8


def pick_seeds(manifest: Path, n: int = 8) -> list[int]:
    """The ``n // 2`` most and ``n // 2`` least uncertain kept samples of a ``synthesize`` run."""
    records = [r for r in read_jsonl(manifest) if "seed" in r]
    key = next((k for k in ("uncertainty", "uncertainty_score", "score") if records and k in records[0]), None)
    if key is None:
        return [int(r["seed"]) for r in records[:n]]
    ranked = sorted(records, key=lambda r: -float(r[key]))
    half = max(1, n // 2)
    chosen = ranked[:half] + ranked[-half:] if len(ranked) > n else ranked
    return [int(r["seed"]) for r in chosen]


@torch.no_grad()
def write_uncertainty_maps(generator: str | Path, interpreter: str | Path, seeds: Sequence[int],
                           truncation: float, out: str | Path, precision: str = "auto") -> Path:
    """``out/<rank>_<seed>.png`` (the image) and ``out/<rank>_<seed>.npy`` (``[H, W]`` float32
    Jensen-Shannon divergence of the ensemble), regenerated from the seeds exactly as
    ``synthesize`` does (``render_batch``: the same bits whatever the batch); ``rank`` keeps the
    order of ``seeds``; ``precision`` as ``synthesize --precision``."""
    from datasetgan.generator import load_generator
    from datasetgan.synthesis.render import padded_batch_size, render_batch
    from datasetgan.interpreter.artifact import Interpreter
    from datasetgan.interpreter.predict import first_layer_precision

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    G = load_generator(generator, device="cpu").eval()
    interp = Interpreter.load(interpreter).bind(G)
    rank = {s: i for i, s in enumerate(seeds)}
    seeds = list(seeds)
    first_layer_dtype = first_layer_precision(torch.device("cpu"), precision)
    size = padded_batch_size(8, len(seeds))
    for start in range(0, len(seeds), size):
        batch = seeds[start:start + size]
        img, feats = render_batch(G, batch, size, truncation)
        pred = interp.predict(feats, img, first_layer_dtype=first_layer_dtype)
        for seed, image, unc in zip(batch, to_uint8(img), pred.uncertainty.cpu().numpy()):
            save_png(out / f"{rank[seed]:02d}_{seed:06d}.png", image)
            np.save(out / f"{rank[seed]:02d}_{seed:06d}.npy", unc.astype(np.float32))
    return out

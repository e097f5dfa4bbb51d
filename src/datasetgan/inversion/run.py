"""``invert_folder``: real images (and their labels) in, a samples folder out.

OUT gets exactly the layout ``datasetgan sample`` writes (``generator/samples.py``),
with the real images' stems: ``images/<stem>.png`` (the reconstructions),
``latents.safetensors`` (``w [N, num_ws, w_dim]`` and, when the noise maps were
optimised, ``noise.<layer> [N, R, R]``), ``samples.jsonl`` (source file, loss,
PSNR, perceptual term), ``grid.png``, ``generator.json``; with labels
``labels/<stem>.png|.json`` in the reconstructions' geometry; with
``tune_generator`` the tuned generator in ``generator/``.

Everything the run reads is checked before anything is written: the generator,
every image, every label. Resumable: while running, ``OUT/.staging/`` holds
``run.json`` (the run key: generator, settings, images by content) and one
``batch-<k>.safetensors`` per finished batch; a run restarted with the same
arguments optimises only the missing batches, each from its own seed, so it
ends with the latents an uninterrupted run gives (same machine and thread
count). ``samples.jsonl`` is written last; then the staging folder goes.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from datasetgan.core.config import config_to_dict
from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.fileio import atomic_path, read_json, write_json
from datasetgan.core.images import save_png, to_uint8
from datasetgan.core.progress import progress
from datasetgan.gan_training.checkpoint import list_snapshots
from datasetgan.gan_training.discriminator import Discriminator
from datasetgan.generator import Generator, generator_fingerprint, load_generator
from datasetgan.generator.own_format import is_own_format
from datasetgan.generator.samples import NOISE_PREFIX, STORED_NOISE, finish_samples_folder
from datasetgan.inversion.config import InversionConfig
from datasetgan.inversion.inputs import RealImage, RealLabels, read_images, read_labels
from datasetgan.inversion.losses import ReconstructionLoss, psnr
from datasetgan.inversion.project import Inverted, invert_batch, w_statistics
from datasetgan.inversion.tune import tune_generator
from datasetgan.labels import LabelSpec, write_keypoints, write_label_map

STAGING = ".staging"
TUNED = "generator"


@dataclass(frozen=True)
class Source:
    """The generator to invert into: its checkpoint (a run folder resolved to its newest
    snapshot) and, for train-gan snapshots, the discriminator folder beside it."""

    checkpoint: Path
    discriminator: Path | None


def resolve_source(path: str | Path) -> Source:
    path = Path(path)
    if path.is_dir() and not is_own_format(path) and not (path / "G_ema").is_dir():
        snapshots = list_snapshots(path)
        if snapshots:
            path = snapshots[-1]
    candidates = [path / "D"] + ([path.parent / "D"] if path.name in ("G_ema", "G") else [])
    found = next((c for c in candidates if (c / "config.json").is_file() and (c / "model.safetensors").is_file()),
                 None)
    return Source(path, found)


def load_loss(config: InversionConfig, source: Source, device: torch.device) -> ReconstructionLoss:
    """The reconstruction loss ``config.perceptual`` asks for (``auto``: D where the snapshot has one)."""
    kind = config.perceptual
    if kind == "auto":
        kind = "discriminator" if source.discriminator is not None else "ssim"
    if kind != "discriminator":
        return ReconstructionLoss(kind, config.perceptual_weight)
    if source.discriminator is None:
        raise UserError(f"--perceptual discriminator: {source.checkpoint} has no discriminator (D/); give a "
                        "train-gan snapshot or run folder, or --perceptual ssim")
    D = Discriminator.from_pretrained(source.discriminator, device=device).eval().requires_grad_(False)
    return ReconstructionLoss("discriminator", config.perceptual_weight, D)


def check_generator(G: Generator, source: Source, D: torch.nn.Module | None) -> None:
    if not isinstance(G, Generator):
        raise UserError(f"--generator {source.checkpoint}: a {type(G).__name__}; invert supports StyleGAN2 "
                        "generators only (its pivotal tuning saves and reloads a StyleGAN2)")
    if G.c_dim:
        raise UserError(f"--generator {source.checkpoint}: a conditional generator (c_dim {G.c_dim}); invert "
                        "supports unconditional ones")
    if G.img_channels != 3:
        raise UserError(f"--generator {source.checkpoint}: {G.img_channels} image channels; invert needs RGB")
    if D is not None and D.config.img_resolution != G.img_resolution:
        raise CheckpointError(source.discriminator, f"a {D.config.img_resolution} px discriminator for a "
                                                    f"{G.img_resolution} px generator")


def run_key(fingerprint: str, config: InversionConfig, perceptual: str, images: list[RealImage]) -> dict:
    """What determines the latents (the device and the labels do not)."""
    return {"generator": fingerprint, "config": config_to_dict(config), "perceptual": perceptual,
            "images": {im.stem: im.digest for im in images}}


def _prepare_out(out: Path, key: dict) -> bool:
    """Check ``out`` for this run; True when it already holds it complete."""
    if (out / "samples.jsonl").is_file():
        old = read_json(out / "generator.json", "generator record").get("inversion", {}).get("run")
        if old == key:
            return True
        raise UserError(f"--out {out}: already holds a samples folder of other images, settings or generator; "
                        "give another --out (or remove it)")
    staged = out / STAGING / "run.json"
    if staged.is_file():
        if read_json(staged, "run record") != key:
            raise UserError(f"--out {out}: holds an interrupted invert run of other images, settings or "
                            f"generator ({staged}); run that command again to finish it, or give another --out")
        return False
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out {out}: the folder is not empty; give a new folder")
    return False


def _batch_path(out: Path, k: int) -> Path:
    return out / STAGING / f"batch-{k:05d}.safetensors"


def _save_batch(path: Path, result: Inverted) -> None:
    tensors = {"w": result.ws, "loss": result.loss, **{NOISE_PREFIX + k: v for k, v in result.noise.items()}}
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))


def _load_batch(path: Path) -> Inverted:
    try:
        t = load_file(str(path))
    except Exception as exc:  # a damaged staging file: say which
        raise UserError(f"{path}: not readable ({exc}); remove it and run again") from None
    noise = {k[len(NOISE_PREFIX):]: v for k, v in t.items() if k.startswith(NOISE_PREFIX)}
    return Inverted(t["w"], noise, t["loss"])


def _to_device(images: list[RealImage], device: torch.device) -> torch.Tensor:
    """``[N, 3, R, R]`` float in [-1, 1], as train-gan feeds its discriminator."""
    x = torch.from_numpy(np.stack([im.pixels for im in images])).to(device)
    return x.float().mul_(1 / 127.5).sub_(1)


@torch.no_grad()
def render_one(G: Generator, ws: torch.Tensor, noise: dict[str, torch.Tensor], i: int,
               device: torch.device) -> np.ndarray:
    """Sample ``i`` rendered alone, as every reader of the samples folder renders it: ``[R, R, 3]`` uint8."""
    kwargs = {"noise": {k: v[i:i + 1].to(device) for k, v in noise.items()}} if noise else {}
    return to_uint8(G.synthesis(ws[i:i + 1].to(device), noise_mode="const", **kwargs))[0]


def invert_folder(generator: str | Path, images_dir: str | Path, out: str | Path, config: InversionConfig,
                  device: torch.device, labels: str | Path | None = None, spec: LabelSpec | None = None,
                  quiet: bool = False) -> dict:
    """Invert every image of ``images_dir`` into ``generator``; write the samples folder ``out``.

    Returns a summary: ``images``, ``mean_psnr``, ``perceptual``, ``tuned``, ``labels`` (counts)
    and ``resumed`` / ``already_complete``.
    """
    out = Path(out)
    if (labels is None) != (spec is None):
        raise UserError("--labels and --spec go together")
    source = resolve_source(generator)
    G = load_generator(source.checkpoint, device=device)
    loss = load_loss(config, source, device)
    check_generator(G, source, loss.D)
    R = G.img_resolution
    images = read_images(images_dir, R)
    real_labels = read_labels(labels, spec, images_dir, images, R) if labels is not None else None
    fingerprint = generator_fingerprint(G)
    key = run_key(fingerprint, config, loss.name(R), images)
    summary = {"images": len(images), "perceptual": loss.name(R), "tuned": config.tune_generator}
    if _prepare_out(out, key):
        return {**summary, "already_complete": True}

    (out / STAGING).mkdir(parents=True, exist_ok=True)
    write_json(out / STAGING / "run.json", key)
    batches = [images[i:i + config.batch_size] for i in range(0, len(images), config.batch_size)]
    todo = [k for k in range(len(batches)) if not _batch_path(out, k).is_file()]
    summary["resumed"] = len(todo) < len(batches)
    tuned_dir = out / TUNED
    tune_needed = config.tune_generator and not is_own_format(tuned_dir)
    total = len(todo) * config.steps + (config.tune_steps if tune_needed else 0)
    bar = progress(desc="invert", total=total, unit="step", disable=quiet or None)

    def step(value: float) -> None:
        bar.update(1)
        bar.set_postfix_str(f"loss {value:.4f}", refresh=False)

    stats = w_statistics(G, config, device) if todo else None
    for k in todo:
        bar.set_description(f"invert batch {k + 1}/{len(batches)}")
        result = invert_batch(G, _to_device(batches[k], device), loss, config, stats,
                              seed=config.seed * 1_000_003 + k, on_step=step)
        _save_batch(_batch_path(out, k), result)
    parts = [_load_batch(_batch_path(out, k)) for k in range(len(batches))]
    ws = torch.cat([p.ws for p in parts]).float()
    noise = {name: torch.cat([p.noise[name] for p in parts]).float() for name in parts[0].noise}
    losses = torch.cat([p.loss for p in parts]).tolist()

    final_G, checkpoint = G, source.checkpoint
    if config.tune_generator:
        if tune_needed:
            bar.set_description("tune generator")
            tuned = tune_generator(G, ws, noise, _to_device(images, device), loss, config, on_step=step)
            staging = out / STAGING / TUNED
            shutil.rmtree(staging, ignore_errors=True)
            tuned.save_pretrained(staging)
            staging.rename(tuned_dir)
        final_G, checkpoint = Generator.from_pretrained(tuned_dir, device=device), tuned_dir
    bar.close()

    records, thumbs = [], []
    for i, image in enumerate(images):
        array = render_one(final_G, ws, noise, i, device)
        save_png(out / "images" / f"{image.stem}.png", array)
        record = {"image": f"images/{image.stem}.png", "source": str(image.path.resolve()),
                  "noise_mode": STORED_NOISE if noise else "const", "space": config.space,
                  "steps": config.steps, "perceptual": loss.name(R), "loss": round(losses[i], 6),
                  "psnr": round(psnr(array, image.pixels.transpose(1, 2, 0)), 3)}
        if final_G is not G:
            record["psnr_before_tuning"] = round(psnr(render_one(G, ws, noise, i, device),
                                                      image.pixels.transpose(1, 2, 0)), 3)
        records.append(record)
        if len(thumbs) < 64:
            thumbs.append(array)
    if real_labels is not None:
        summary["labels"] = write_labels(out / "labels", real_labels, spec)
    latents = {"w": ws, **{NOISE_PREFIX + k: v for k, v in noise.items()}}
    finish_samples_folder(out, final_G, checkpoint, latents, records, thumbs, inversion={
        "run": key, "source_generator": {"checkpoint": str(source.checkpoint.resolve()), "fingerprint": fingerprint},
        "discriminator": str(source.discriminator.resolve()) if loss.kind == "discriminator" else None,
        "tuned": config.tune_generator, "images": str(Path(images_dir).resolve()),
        "labels": str(Path(labels).resolve()) if labels is not None else None})
    shutil.rmtree(out / STAGING, ignore_errors=True)
    finite = [r["psnr"] for r in records if math.isfinite(r["psnr"])]
    return {**summary, "mean_psnr": float(np.mean(finite)) if finite else None}


def write_labels(folder: Path, labels: RealLabels, spec: LabelSpec) -> dict:
    """Masks as indexed PNGs, keypoints as keypoint files, in ``folder``; returns the counts."""
    for stem, ids in labels.masks.items():
        write_label_map(folder / f"{stem}.png", ids, spec)
    for stem, kp in labels.keypoints.items():
        write_keypoints(folder / f"{stem}.json", kp, spec)
    return {"masks": len(labels.masks), "keypoints": len(labels.keypoints),
            "keypoints_outside_crop": len(labels.cropped_keypoints)}

"""``datasetgan import-release``: one of the DatasetGAN release's experiments as this project's folders.

From an experiment file (``face_34.json``, ...) and the files it names under the
release folder, ``import_release`` writes into ``out``::

    generator/        the StyleGAN1 checkpoint in the own format, ``w_avg`` = the release's average latent
    samples/          a samples folder of the annotated latents: ``w`` with the release's truncation
                      (psi 0.7 on the first ``max_layer`` ws; none for ``annotation_data_from_w``)
    labels/           ``<stem>.png`` class ids (indexed), from ``image_mask{i}.npy``
    release_images/   the release's ``image_{i}.jpg``, to compare with ``samples/images``
    spec.json         class names and palette (``labels.release.release_spec``)
    test/images/, test/labels/   the real test set, as ``evaluate --images --labels`` reads it
    release.json      what was read and how it maps, written last

The label side is ``labels.release``; this module adds the generator and samples.
Noise: the release draws fresh noise at every call, so no sample has one fixed
image there; the samples here use the generator's ``"const"`` noise, so that
``train-interpreter`` recomputes exactly the features of the image it shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.fileio import write_json
from datasetgan.core.images import save_png, to_uint8
from datasetgan.generator.rosinality import read_torch_checkpoint
from datasetgan.generator.samples import finish_samples_folder
from datasetgan.generator.stylegan1 import StyleGAN1Generator, build_stylegan1
from datasetgan.generator.stylegan1_release import is_release_stylegan1, release_to_stylegan1
from datasetgan.labels import save_label_spec
from datasetgan.labels.release import (TRUNCATION_PSI, ReleaseExperiment, import_annotations, import_test_set,
                                       read_experiment, release_spec)


def _npy(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{path}: not found ({what})")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:   # noqa: BLE001 - numpy raises several types for damaged files
        raise UserError(f"{path}: not a readable .npy array ({type(exc).__name__}: {exc})") from None


def load_release_generator(exp: ReleaseExperiment, device: str | torch.device = "cpu") -> StyleGAN1Generator:
    """The experiment's checkpoint with ``w_avg`` = its ``average_latent``; its feature width must be
    the experiment's ``dim[2]``."""
    if not exp.checkpoint.is_file():
        raise UserError(f"{exp.checkpoint}: not found (stylegan_checkpoint in {exp.path})")
    data = read_torch_checkpoint(exp.checkpoint)
    if not is_release_stylegan1(data):
        raise CheckpointError(exp.checkpoint, "not the release's StyleGAN1 g_all state dict "
                                              "(no 'g_mapping.dense0.weight')")
    avg = torch.from_numpy(np.asarray(_npy(exp.average_latent, f"average_latent in {exp.path}"), dtype=np.float32))
    config, tensors = release_to_stylegan1(data, exp.checkpoint, avg_latent=avg)
    G = build_stylegan1(config, tensors, source=exp.checkpoint, device=device)
    width = G.feature_spec.total_channels
    if width != exp.dim[2]:
        raise UserError(f"{exp.path}: key 'dim' says a feature width of {exp.dim[2]}, but {exp.checkpoint} "
                        f"({G.img_resolution} px) gives {width}")
    return G


@torch.no_grad()
def release_latents(exp: ReleaseExperiment, G: StyleGAN1Generator) -> dict[str, torch.Tensor]:
    """The first ``max_training`` annotated latents: ``{"z": [N, z_dim], "w": [N, num_ws, w_dim]}``
    (``w`` = the release's truncation of ``mapping(z)``), or ``{"w": ...}`` when they are ws."""
    latents = _npy(exp.latents, f"annotation_image_latent_path in {exp.path}")
    n = exp.max_training
    if latents.ndim < 1 or latents.shape[0] < n:
        raise UserError(f"{exp.latents}: {latents.shape[0] if latents.ndim else 0} latents, fewer than "
                        f"max_training {n} in {exp.path}")
    x = torch.from_numpy(np.asarray(latents[:n], dtype=np.float32))
    device = next(G.parameters()).device
    if exp.from_w:
        if x.ndim != 3 or x.shape[1] < G.num_ws or x.shape[2] != G.w_dim:
            raise UserError(f"{exp.latents}: ws of shape {list(latents.shape)}; expected [N, >= {G.num_ws}, "
                            f"{G.w_dim}] (annotation_data_from_w is true in {exp.path})")
        return {"w": x[:, :G.num_ws].contiguous()}
    x = x.reshape(n, -1)
    if x.shape[1] != G.z_dim:
        raise UserError(f"{exp.latents}: latents of shape {list(latents.shape)}; expected [N, {G.z_dim}]")
    w = G.mapping(x.to(device), truncation_psi=TRUNCATION_PSI, truncation_cutoff=exp.max_layer).cpu()
    return {"z": x, "w": w}


@torch.no_grad()
def import_release(experiment: str | Path, root: str | Path, out: str | Path, clean: bool = True,
                   device: str | torch.device = "cpu") -> dict:
    """Write ``out`` (see the module docstring) and return ``release.json``'s record."""
    exp = read_experiment(experiment, root)
    out = Path(out)
    G = load_release_generator(exp, device=device)
    latents = release_latents(exp, G)
    stems = [f"{i:06d}" for i in range(exp.max_training)]
    spec, notes = release_spec(exp)
    counts = import_annotations(exp, stems, out / "labels", out / "release_images", spec, G.img_resolution,
                                clean=clean)
    tests = import_test_set(exp, out / "test", spec)
    save_label_spec(out / "spec.json", spec)
    G.save_pretrained(out / "generator")

    psi, cutoff = (1.0, None) if exp.from_w else (TRUNCATION_PSI, exp.max_layer)
    (out / "samples" / "images").mkdir(parents=True, exist_ok=True)
    records, thumbs = [], []
    for i, stem in enumerate(stems):
        img = G.synthesis(latents["w"][i:i + 1].to(next(G.parameters()).device), noise_mode="const")
        array = to_uint8(img)[0]
        rel = f"images/{stem}.png"
        save_png(out / "samples" / rel, array)
        records.append({"image": rel, "release_index": i, "truncation_psi": psi, "truncation_cutoff": cutoff,
                        "noise_mode": "const"})
        thumbs.append(array)
    finish_samples_folder(out / "samples", G, out / "generator", latents, records, thumbs,
                          release={"experiment": str(exp.path.resolve()), "from_w": exp.from_w})
    record = {
        "experiment": str(exp.path.resolve()), "category": exp.category, "checkpoint": str(exp.checkpoint),
        "resolution": G.img_resolution, "dim": list(exp.dim), "feature_width": G.feature_spec.total_channels,
        "truncation": {"psi": psi, "cutoff": cutoff, "average_latent": str(exp.average_latent)},
        "annotations": counts["masks"], "small_regions_cleaned": clean, "cleaned_pixels": counts["cleaned_pixels"],
        "test_images": tests, "classes": spec.num_classes, "notes": notes,
        "interpreter": {"members": exp.model_num, "upsample": exp.upsample_mode},
    }
    write_json(out / "release.json", record)
    return record

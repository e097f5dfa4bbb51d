"""From a ``datasetgan sample`` folder plus a label folder to training pixels.

For each labelled sample the generator re-renders its stored ``w`` (so the
features are exactly those of the labelled image), the selected maps go into
a ``FeatureBank`` at their own resolution, and the chosen pixels with their
targets into a ``PixelSet``. Nothing of label resolution times feature width
is ever allocated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from safetensors.torch import load_file

from datasetgan.core.errors import UserError
from datasetgan.core.fileio import read_jsonl
from datasetgan.core.progress import progress
from datasetgan.features import FeatureBank, FeatureConfig, SelectedFeatures, select_features
from datasetgan.generator import Generator, generator_fingerprint, load_generator
from datasetgan.generator.samples import NOISE_PREFIX, STORED_NOISE
from datasetgan.interpreter.config import InterpreterConfig
from datasetgan.interpreter.pixels import sample_keypoint_pixels, sample_segmentation_pixels
from datasetgan.interpreter.train import PixelSet
from datasetgan.labels import (KEYPOINT_SUFFIXES, MASK_SUFFIXES, LabelSpec, match_labels,
                               read_keypoints, read_label_map)

Task = Literal["segmentation", "keypoints"]


@dataclass
class SamplesFolder:
    """What ``datasetgan sample`` or ``invert`` wrote: stems (``<seed:06d>``, or the real
    images' stems), ``w [N, num_ws, w_dim]``, the noise mode, and the generator's checkpoint
    path and fingerprint."""

    root: Path
    stems: list[str]
    ws: torch.Tensor
    noise_mode: str
    checkpoint: str
    fingerprint: str
    # Image paths relative to ``root`` (one per stem), for error messages.
    images: tuple[str, ...] = ()
    # noise_mode "stored": each sample's own noise maps, ``{layer: [N, R, R]}``.
    noise: dict[str, torch.Tensor] = field(default_factory=dict)

    def synthesis_kwargs(self, index: int, device: torch.device | str) -> dict:
        """``G.synthesis`` arguments that render sample ``index`` (alone) as it was made."""
        if self.noise_mode != STORED_NOISE:
            return {"noise_mode": self.noise_mode}
        return {"noise_mode": "const",
                "noise": {name: maps[index:index + 1].to(device) for name, maps in self.noise.items()}}


def read_samples_folder(root: str | Path) -> SamplesFolder:
    root = Path(root)
    for name in ("generator.json", "latents.safetensors", "samples.jsonl"):
        if not (root / name).is_file():
            raise UserError(f"{root / name}: not found; --samples must be a folder written by "
                            "`datasetgan sample` or `datasetgan invert`")
    try:
        meta = json.loads((root / "generator.json").read_text(encoding="utf-8"))
        latents = load_file(str(root / "latents.safetensors"))
    except Exception as exc:  # damaged files: say which
        raise UserError(f"{root}: cannot read generator.json / latents.safetensors ({exc})") from None
    records = read_jsonl(root / "samples.jsonl")
    if "w" not in latents:
        raise UserError(f"{root / 'latents.safetensors'}: expected a tensor 'w'")
    count = int(latents["w"].shape[0])
    stems = [Path(r["image"]).stem if "image" in r else f"{int(r['seed']):06d}" for r in records]
    if len(stems) != count:
        raise UserError(f"{root}: samples.jsonl has {len(stems)} lines but latents hold {count} samples")
    modes = {r.get("noise_mode", "const") for r in records}
    if modes - {"const", "none", STORED_NOISE}:
        raise UserError(f"{root}: samples made with noise_mode {sorted(modes)}; features can only be "
                        "recomputed for 'const' or 'none' noise (re-run `datasetgan sample --noise-mode const`)")
    if STORED_NOISE in modes and len(modes) > 1:
        raise UserError(f"{root / 'samples.jsonl'}: mixes noise_mode 'stored' with {sorted(modes - {STORED_NOISE})}")
    mode = modes.pop() if modes else "const"
    noise = {k[len(NOISE_PREFIX):]: v.float() for k, v in latents.items() if k.startswith(NOISE_PREFIX)}
    if mode == STORED_NOISE and not noise:
        raise UserError(f"{root / 'latents.safetensors'}: samples.jsonl says noise_mode 'stored', but there "
                        f"are no '{NOISE_PREFIX}<layer>' noise maps")
    bad = [k for k, v in noise.items() if v.ndim != 3 or v.shape[0] != count]
    if bad:
        raise UserError(f"{root / 'latents.safetensors'}: noise map '{NOISE_PREFIX}{bad[0]}' has shape "
                        f"{list(noise[bad[0]].shape)}, expected [{count}, R, R]")
    return SamplesFolder(root, stems, latents["w"].float(), mode,
                         str(meta.get("checkpoint", "")), str(meta.get("fingerprint", "")),
                         tuple(str(r.get("image", f"images/{stem}.png")) for r, stem in zip(records, stems)),
                         noise=noise if mode == STORED_NOISE else {})


def open_generator(samples: SamplesFolder, override: str | None, device: torch.device) -> tuple[Generator, str]:
    """The generator the samples were made with (``--generator`` overrides the
    recorded path); its fingerprint must match the one the samples recorded."""
    path = override or samples.checkpoint
    if not path:
        raise UserError(f"{samples.root / 'generator.json'}: no checkpoint recorded; pass --generator")
    G = load_generator(path, device=device)
    fp = generator_fingerprint(G)
    if samples.fingerprint and fp != samples.fingerprint:
        raise UserError(f"{path}: this generator (fingerprint {fp[:12]}) is not the one that made "
                        f"{samples.root} (fingerprint {samples.fingerprint[:12]})")
    return G, fp


def check_unlabelled(samples: SamplesFolder, pairs: dict[str, Path], label_dir: Path,
                     allow: bool, limit: int = 5) -> list[str]:
    """The stems of samples without a label; an error unless ``allow`` (then a notice)."""
    missing = [s for s in samples.stems if s not in pairs]
    if not missing:
        return missing
    if allow:
        print(f"note: {len(missing)} of {len(samples.stems)} samples in {samples.root} have no label in "
              f"{label_dir}; training on the {len(pairs)} labelled ones")
        return missing
    images = dict(zip(samples.stems, samples.images)) if samples.images else {}
    names = [str(samples.root / images.get(s, f"images/{s}.png")) for s in missing[:limit]]
    more = f" and {len(missing) - limit} more" if len(missing) > limit else ""
    raise UserError(f"{len(missing)} of {len(samples.stems)} samples have no label file in {label_dir}: "
                    f"{', '.join(names)}{more}. Label them, or pass --allow-unlabelled to train on the "
                    f"{len(pairs)} labelled ones only")


def detect_task(label_dir: Path, requested: str) -> Task:
    """``auto``: keypoints when the folder holds ``.json`` files, else segmentation."""
    if requested in ("segmentation", "keypoints"):
        return requested  # type: ignore[return-value]
    if not label_dir.is_dir():
        raise UserError(f"{label_dir}: label folder not found")
    suffixes = {p.suffix.lower() for p in label_dir.iterdir() if p.is_file() and not p.name.startswith(".")}
    has_kp, has_masks = bool(suffixes & set(KEYPOINT_SUFFIXES)), bool(suffixes & set(MASK_SUFFIXES))
    if has_kp and has_masks:
        raise UserError(f"{label_dir}: holds both masks and keypoint files; pass --task")
    return "keypoints" if has_kp else "segmentation"


@dataclass
class TrainingData:
    bank: FeatureBank
    pixels: PixelSet
    selected: SelectedFeatures
    stems: list[str]
    out_size: tuple[int, int]


@torch.no_grad()
def build_training_data(G: Generator, samples: SamplesFolder, label_dir: str | Path, spec: LabelSpec,
                        task: Task, config: InterpreterConfig, device: torch.device,
                        quiet: bool = False, allow_unlabelled: bool = False) -> TrainingData:
    """Render every labelled sample's features once and pick its training pixels.

    A sample without a label file is an error naming the samples and the label
    folder (usually a labelling job not yet finished, or the wrong folder);
    ``allow_unlabelled`` skips such samples with a one-line notice instead.
    """
    label_dir = Path(label_dir)
    if task == "keypoints" and not spec.num_keypoints:
        raise UserError("the label spec names no keypoints; add a 'keypoints' list for keypoint labels")
    if task == "segmentation" and spec.num_classes < 2:
        raise UserError("the label spec needs at least 2 classes for segmentation")
    suffixes = KEYPOINT_SUFFIXES if task == "keypoints" else MASK_SUFFIXES
    pairs = match_labels(samples.stems, label_dir, suffixes=suffixes)
    check_unlabelled(samples, pairs, label_dir, allow_unlabelled)
    selected = select_features(G.feature_spec, FeatureConfig(config.layers, config.upsample))
    size = (G.img_resolution, G.img_resolution)
    dtype = torch.float16 if config.feature_dtype == "float16" else torch.float32
    bank = FeatureBank(len(pairs), selected.resolutions, selected.channels, size, config.upsample, dtype)
    gen = torch.Generator().manual_seed(config.seed)
    index = {s: i for i, s in enumerate(samples.stems)}
    parts: dict[str, list[torch.Tensor]] = {"img": [], "ys": [], "xs": [], "labels": []}
    keypoints = torch.zeros(len(pairs), spec.num_keypoints, 2)
    visible = torch.zeros(len(pairs), spec.num_keypoints, dtype=torch.bool)
    for i, (stem, path) in enumerate(progress(pairs.items(), desc="features", total=len(pairs),
                                              unit="img", disable=quiet)):
        w = samples.ws[index[stem]:index[stem] + 1].to(device)
        img, maps = G.synthesis(w, return_features=True, **samples.synthesis_kwargs(index[stem], device))
        try:
            bank.store(i, [m.cpu() for m in selected.pick(maps, img)])
        except ValueError as exc:
            raise UserError(f"{path}: {exc} (pass --feature-dtype float32)") from None
        if task == "segmentation":
            labels = torch.from_numpy(read_label_map(path, spec, size=size))
            flat, targets = sample_segmentation_pixels(labels, config.pixels_per_image,
                                                       config.class_pixel_threshold(size), gen)
            parts["labels"].append(targets.to(torch.int16))
        else:
            kp = torch.from_numpy(read_keypoints(path, spec, size=size)).float()
            keypoints[i], visible[i] = kp[:, :2], kp[:, 2] > 0
            flat = sample_keypoint_pixels(size, kp, config.pixels_per_image, config.heatmap_sigma, gen)
        # Narrow dtypes: with --pixels-per-image all there are millions of pixels.
        parts["img"].append(torch.full(flat.shape, i, dtype=torch.int32))
        parts["ys"].append(torch.div(flat, size[1], rounding_mode="floor").to(torch.int32))
        parts["xs"].append((flat % size[1]).to(torch.int32))
    pixels = PixelSet(torch.cat(parts["img"]), torch.cat(parts["ys"]), torch.cat(parts["xs"]),
                      labels=torch.cat(parts["labels"]) if task == "segmentation" else None,
                      keypoints=keypoints if task == "keypoints" else None,
                      visible=visible if task == "keypoints" else None)
    if len(pixels) < 2:
        raise UserError(f"{label_dir}: fewer than 2 usable labelled pixels (classes with fewer than "
                        f"{config.class_pixel_threshold(size)} pixels in a mask are ignored; "
                        f"see --min-class-pixels)")
    if task == "keypoints" and not bool(visible.any()):
        raise UserError(f"{label_dir}: no visible keypoint in any label file")
    return TrainingData(bank, pixels, selected, list(pairs), size)


def class_histogram(labels: np.ndarray, num_classes: int) -> list[int]:
    return np.bincount(labels.reshape(-1), minlength=num_classes)[:num_classes].tolist()

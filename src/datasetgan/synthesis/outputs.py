"""Side outputs of a synthetic data set: COCO keypoints, contact sheet, HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from datasetgan.core.fileio import write_json
from datasetgan.core.images import grid, overlay, save_png
from datasetgan.core.report import HtmlReport
from datasetgan.labels import LabelSpec

SHEET_MAX = 64


def write_coco_keypoints(path: Path, manifest: Sequence[dict], spec: LabelSpec, size: Sequence[int]) -> None:
    """COCO keypoints JSON: one image and one annotation per kept sample.
    ``v`` is 2 for a keypoint predicted visible, else 0 (with x = y = 0)."""
    h, w = int(size[0]), int(size[1])
    images, annotations = [], []
    for i, entry in enumerate(manifest, start=1):
        # WebDataset layout: the member name inside its shard.
        name = entry["image"] if "image" in entry else f"{entry['key']}.png"
        images.append({"id": i, "file_name": name, "width": w, "height": h, "seed": entry["seed"],
                       **({"shard": entry["shard"]} if "shard" in entry else {})})
        flat, xs, ys = [], [], []
        for x, y, v in entry["keypoints"]:
            if v:
                flat += [x, y, 2]
                xs.append(x)
                ys.append(y)
            else:
                flat += [0, 0, 0]
        bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)] if xs else [0, 0, 0, 0]
        annotations.append({"id": i, "image_id": i, "category_id": 1, "keypoints": flat,
                            "num_keypoints": len(xs), "bbox": bbox, "area": bbox[2] * bbox[3],
                            "iscrowd": 0})
    write_json(path, {"images": images, "annotations": annotations,
                      "categories": [{"id": 1, "name": "object", "keypoints": list(spec.keypoints or []),
                                      "skeleton": []}]})


def _draw_keypoints(image: np.ndarray, keypoints: Sequence[Sequence[float]], palette) -> np.ndarray:
    out = image[:, :, :3].copy()
    h, w = out.shape[:2]
    r = max(1, min(h, w) // 64)
    for k, (x, y, v) in enumerate(keypoints):
        if not v:
            continue
        cx, cy = int(round(x)), int(round(y))
        colour = palette[(k + 1) % len(palette)] if len(palette) > 1 else (255, 0, 0)
        out[max(0, cy - r):cy + r + 1, max(0, cx - r):cx + r + 1] = colour
    return out


def write_contact_sheet(out: Path, manifest: Sequence[dict], spec: LabelSpec, task: str,
                        dropped: Sequence[int],
                        files: Callable[[dict], tuple[Path, Path | None]] | None = None) -> None:
    """``contact_sheet.png`` (label overlays of the first kept samples) and ``index.html``.

    ``files(entry)`` gives a sample's image and label files (default: ``out`` / the
    entry's ``image`` and ``label``; the WebDataset layout passes the staged ones)."""
    if files is None:
        def files(entry: dict) -> tuple[Path, Path | None]:
            return out / entry["image"], out / entry["label"] if "label" in entry else None
    from datasetgan.core.images import default_palette
    palette = spec.palette if spec.palette and len(spec.palette) > 1 else default_palette(
        max(2, spec.num_keypoints + 1))
    tiles = []
    for entry in manifest[:SHEET_MAX]:
        image_file, label_file = files(entry)
        image = np.asarray(Image.open(image_file).convert("RGB"))
        if task == "segmentation":
            labels = np.asarray(Image.open(label_file))
            tiles.append(overlay(image, labels, palette))
        else:
            tiles.append(_draw_keypoints(image, entry["keypoints"], palette))
    if tiles:
        save_png(out / "contact_sheet.png", grid(tiles))
    report = HtmlReport("Synthetic data set")
    report.paragraph(f"{len(manifest)} samples kept, {len(dropped)} dropped as most uncertain "
                     f"(seeds {', '.join(map(str, dropped[:20]))}{' ...' if len(dropped) > 20 else ''}).")
    if any("unlabelled_pixels" in e for e in manifest):
        unlabelled = sum(e.get("unlabelled_pixels", 0) for e in manifest)
        report.paragraph(f"{unlabelled} pixels of the kept samples left unlabelled (the ensemble disagreed); "
                         "white in the overlays.")
    if tiles:
        report.image("contact_sheet.png", f"first {len(tiles)} kept samples with their labels")
    if task == "segmentation":
        report.table(["class", "colour", "pixels"],
                     [(name, str(list(spec.palette[i])), sum(e["class_pixels"].get(name, 0) for e in manifest))
                      for i, name in enumerate(spec.classes)])
    ranked = sorted(manifest, key=lambda e: -e["uncertainty"])[:10]
    report.heading("Most uncertain kept samples")
    report.table(["seed", "uncertainty", "image"],
                 [(e["seed"], e["uncertainty"], e["image"] if "image" in e else f"{e['shard']}: {e['key']}.png")
                  for e in ranked])
    report.write(out / "index.html")

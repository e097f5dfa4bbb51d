"""The demo's outputs: a Table-1-style comparison, ``results.json`` and ``report.html``."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from datasetgan.core.config import config_to_dict
from datasetgan.core.errors import UserError
from datasetgan.core.fileio import read_jsonl
from datasetgan.core.images import grid, heatmap, overlay, save_png
from datasetgan.core.report import HtmlReport
from datasetgan.demo.config import DemoConfig
from datasetgan.demo.domain import CLASSES, PALETTE

ZOOM = 3


def _read_metrics(path: Path) -> tuple[float, dict[str, float]]:
    """``(miou, {class: iou})`` from an ``evaluate`` ``metrics.json``, in [0, 1]."""
    if not path.exists():
        raise UserError(f"{path}: evaluation metrics missing")
    data = json.loads(path.read_text())
    per = data.get("per_class_iou", data.get("iou", data.get("class_iou")))
    if isinstance(per, list):
        if per and isinstance(per[0], dict):
            per = {d.get("class", d.get("name")): d.get("iou") for d in per}
        else:
            per = dict(zip(CLASSES, per))
    if not isinstance(per, dict):
        raise UserError(f"{path}: no per-class IoU found (keys: {', '.join(data)})")
    return float(data["miou"]), {str(k): float(v) for k, v in per.items()}


def collect_results(cfg: DemoConfig, out: Path, n_synth: int, baseline_repeats: int) -> dict:
    """Everything ``results.json`` holds, mIoU in percent points."""
    ds_miou, ds_iou = _read_metrics(out / "eval_datasetgan" / "metrics.json")
    bl_miou, bl_iou = _read_metrics(out / "eval_baseline" / "metrics.json")
    gen = json.loads((out / "samples" / "generator.json").read_text()) if (out / "samples" / "generator.json").exists() else {}
    pct = lambda d: {k: round(100 * v, 2) for k, v in d.items()}  # noqa: E731
    finetuned = {}
    if cfg.finetune_epochs:
        ft_miou, ft_iou = _read_metrics(out / "eval_finetuned" / "metrics.json")
        finetuned = {"finetuned_miou": round(100 * ft_miou, 2),
                     "finetuned_gain_miou": round(100 * (ft_miou - bl_miou), 2),
                     "finetuned_per_class_iou": pct(ft_iou), "finetune_epochs": cfg.finetune_epochs}
    return {
        "datasetgan_miou": round(100 * ds_miou, 2),
        "baseline_miou": round(100 * bl_miou, 2),
        "gain_miou": round(100 * (ds_miou - bl_miou), 2),
        "datasetgan_per_class_iou": pct(ds_iou),
        "baseline_per_class_iou": pct(bl_iou),
        **finetuned,   # the DatasetGAN segmenter fine-tuned on the labelled samples (DemoConfig.finetune_epochs)
        "units": "IoU in percent; background included, as the reference computes mIoU",
        "labelled_images": len(list((out / "labels").glob("*.png"))),
        "synthetic_images": n_synth,
        "test_images": cfg.test_images,
        "baseline_repeats": baseline_repeats,   # each labelled sample listed this often per epoch
        "datasetgan_epochs": cfg.segmenter.epochs,
        "baseline_epochs": cfg.baseline_run.epochs,
        "generator": {"checkpoint": gen.get("checkpoint"), "fingerprint": gen.get("fingerprint")},
        "config": config_to_dict(cfg),
    }


def format_miou(value: float, signed: bool = False) -> str:
    """An mIoU or IoU in percent points as both the terminal table and ``report.html`` show it:
    one decimal, and a sign for a gain."""
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def format_seconds(value: float) -> str:
    """A stage's time as the terminal table and ``report.html`` show it: whole seconds."""
    return f"{value:.0f}"


def print_table(results: dict, file=sys.stdout) -> None:
    """The paper's Table 1, for this domain: mIoU on rendered faces with exact labels."""
    n_lab, n_syn = results["labelled_images"], results["synthetic_images"]
    rows = [(f"Baseline: the {n_lab} labelled samples alone", results["baseline_miou"],
             results["baseline_per_class_iou"]),
            (f"DatasetGAN: {n_syn} synthesised from {n_lab} labelled", results["datasetgan_miou"],
             results["datasetgan_per_class_iou"])]
    if "finetuned_miou" in results:
        rows.append((f"DatasetGAN, then fine-tuned on the {n_lab}", results["finetuned_miou"],
                     results["finetuned_per_class_iou"]))
    width = max(len(r[0]) for r in rows) + 2
    print(f"\nDeepLabV3 ({results['config']['segmenter']['arch']}), mIoU on {results['test_images']} rendered test faces "
          f"with exact labels:", file=file)
    print(f"{'Training data':<{width}}{'mIoU':>7}", file=file)
    for name, miou, _ in rows:
        print(f"{name:<{width}}{format_miou(miou):>7}", file=file)
    print(f"{'Gain':<{width}}{format_miou(results['gain_miou'], signed=True):>7}", file=file)
    if "finetuned_miou" in results:
        print(f"{'Gain, fine-tuned':<{width}}{format_miou(results['finetuned_gain_miou'], signed=True):>7}",
              file=file)
    print(file=file)
    header = "".join(f"{c[:8]:>9}" for c in CLASSES)
    print(f"{'per-class IoU':<{width}}{header}", file=file)
    for name, _, per in rows:
        print(f"{name[:width - 2]:<{width}}" + "".join(f"{format_miou(per.get(c, float('nan'))):>9}"
                                                      for c in CLASSES), file=file)
    secs = results.get("seconds", {})
    if "total" in secs:
        print(f"\npipeline time: {format_seconds(secs['total'])} s", file=file)


def _zoom(img: np.ndarray) -> np.ndarray:
    return np.kron(img, np.ones((ZOOM, ZOOM, 1), np.uint8)) if img.ndim == 3 else np.kron(img, np.ones((ZOOM, ZOOM), img.dtype))


def _load(path: Path, mode: str = "RGB") -> np.ndarray:
    img = Image.open(path)
    return np.asarray(img if mode == "P" else img.convert(mode))


def _overlay_sheet(images: Sequence[Path], labels: Sequence[Path], columns: int = 8) -> np.ndarray:
    tiles = []
    for ip, lp in zip(images, labels):
        img = _load(ip)
        tiles.append(img)
        tiles.append(overlay(img, _load(lp, "P"), PALETTE, alpha=0.6))
    return grid([_zoom(t) for t in tiles], columns=columns)


def write_report(out: Path, results: dict, uncertainty_examples: int = 8) -> None:
    """``out/report.html`` with its images under ``out/report/``."""
    fig = out / "report"
    fig.mkdir(exist_ok=True)
    rep = HtmlReport("datasetgan demo: stylised faces")
    n_lab, n_syn = results["labelled_images"], results["synthetic_images"]
    rep.paragraph(f"DeepLabV3 ({results['config']['segmenter']['arch']}) trained on {n_syn} images synthesised by DatasetGAN "
                  f"from {n_lab} labelled generated samples, against the same network trained on those "
                  f"{n_lab} samples alone. mIoU on {results['test_images']} rendered faces with exact labels "
                  f"(percent, background included).")
    rep.table(["Training data", "mIoU"], [
        [f"{n_lab} labelled samples (baseline)", format_miou(results["baseline_miou"])],
        [f"DatasetGAN, {n_syn} synthetic", format_miou(results["datasetgan_miou"])],
        ["Gain", format_miou(results["gain_miou"], signed=True)],
        *([[f"DatasetGAN, then fine-tuned on the {n_lab} labelled samples", format_miou(results["finetuned_miou"])],
           ["Gain, fine-tuned", format_miou(results["finetuned_gain_miou"], signed=True)]]
          if "finetuned_miou" in results else [])])
    rep.heading("Per-class IoU")
    columns = [("baseline", "baseline_per_class_iou"), ("DatasetGAN", "datasetgan_per_class_iou"),
               ("DatasetGAN, fine-tuned", "finetuned_per_class_iou")]
    columns = [(name, key) for name, key in columns if key in results]
    rep.table(["class", *(name for name, _ in columns)],
              [[c, *(format_miou(results[key].get(c, float("nan"))) for _, key in columns)] for c in CLASSES])
    samples = sorted((out / "samples" / "images").glob("*.png"))
    if (out / "samples" / "grid.png").exists():
        shutil.copy(out / "samples" / "grid.png", fig / "samples_grid.png")
        rep.heading("Generated samples")
        rep.image("report/samples_grid.png", "samples of the demo generator (truncation "
                  f"{results['config']['labelled']['truncation']})")
    labelled = [p for p in samples if (out / "labels" / f"{p.stem}.png").exists()]
    if labelled:
        save_png(fig / "labelled.png", _overlay_sheet(labelled, [out / "labels" / f"{p.stem}.png" for p in labelled]))
        rep.heading("The labelled samples")
        rep.image("report/labelled.png", "image and label, pairwise")
    manifest = read_jsonl(out / "synthetic" / "manifest.jsonl")
    if manifest:
        keep = manifest[:16]
        ims = [out / "synthetic" / m.get("image", f"images/{m['seed']:06d}.png") for m in keep]
        lbs = [out / "synthetic" / m.get("label", f"labels/{m['seed']:06d}.png") for m in keep]
        save_png(fig / "synthetic.png", _overlay_sheet(ims, lbs))
        rep.heading("Synthesised labelled images")
        rep.image("report/synthetic.png", "image and synthesised label, pairwise (white: left unlabelled)")
    unc = sorted((out / "uncertainty").glob("*.npy")) if (out / "uncertainty").exists() else []
    if unc:
        tiles = []
        vmax = max(float(np.load(p).max()) for p in unc)
        for p in unc[:uncertainty_examples]:
            img = _load(out / "uncertainty" / f"{p.stem}.png")
            tiles += [img, heatmap(np.load(p), vmax=vmax)]
        save_png(fig / "uncertainty.png", grid([_zoom(t) for t in tiles], columns=4))
        rep.heading("Uncertainty (ensemble Jensen-Shannon divergence)")
        rep.image("report/uncertainty.png", "most and least uncertain synthesised images, with their per-pixel "
                  "uncertainty (brighter = members disagree)")
    preds = out / "predictions"
    if preds.exists():
        tiles = []
        for p in sorted((out / "test" / "images").glob("*.png"))[:8]:
            img = _load(p)
            tiles += [img, overlay(img, _load(out / "test" / "labels" / p.name, "P"), PALETTE, 0.6)]
            for name in ("baseline", "datasetgan"):
                q = preds / name / p.name
                tiles.append(overlay(img, np.asarray(Image.open(q)), PALETTE, 0.6) if q.exists() else img)
        save_png(fig / "predictions.png", grid([_zoom(t) for t in tiles], columns=8))
        rep.heading("Test faces")
        rep.image("report/predictions.png", "image, exact label, baseline, DatasetGAN (two faces per row)")
    secs = results.get("seconds", {})
    if secs:
        rep.heading("Time per stage (seconds)")
        rep.table(["stage", "seconds"], [[k, format_seconds(float(v))] for k, v in secs.items()])
    rep.write(out / "report.html")

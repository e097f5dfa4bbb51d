"""Evaluation outputs: metrics.json, per-class IoU, confusion matrix (JSON + PNG), HTML report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from datasetgan.core.fileio import write_json
from datasetgan.core.images import heatmap, overlay, save_png
from datasetgan.core.report import HtmlReport
from datasetgan.evaluation.evaluate import Evaluation
from datasetgan.labels import LabelSpec

SHOW = 4          # best and worst images shown in the report
THUMB = 192       # longest side of a report thumbnail


def percent(fraction: float, digits: int = 2) -> str:
    """A score in [0, 1] (IoU, PCK, accuracy) as ``report.html`` shows it: percent with ``digits``
    decimals, the precision ``evaluate`` prints (4 decimals of the fraction)."""
    return f"{100 * fraction:.{digits}f}"


def confusion_png(confusion: np.ndarray, cell: int = 24) -> np.ndarray:
    """Row-normalised confusion matrix as ``[C*cell, C*cell, 3]`` uint8 (rows = truth)."""
    rows = confusion.sum(1, keepdims=True)
    norm = np.where(rows > 0, confusion / np.maximum(rows, 1), 0.0)
    return np.kron(heatmap(norm, vmax=1.0), np.ones((cell, cell, 1), np.uint8))


def _thumb(array: np.ndarray) -> np.ndarray:
    h, w = array.shape[:2]
    s = THUMB / max(h, w)
    return np.asarray(Image.fromarray(array).resize((max(1, round(w * s)), max(1, round(h * s))), Image.NEAREST))


def _draw_points(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Truth in green, prediction in red, joined by a line."""
    im = Image.fromarray(image.copy())
    d = ImageDraw.Draw(im)
    r = max(1.5, max(image.shape[:2]) / 150)
    for (tx, ty, v), (px, py, *_) in zip(truth, pred):
        if v > 0:
            d.line([(tx, ty), (px, py)], fill=(255, 255, 0), width=1)
            d.ellipse([tx - r, ty - r, tx + r, ty + r], fill=(0, 255, 0))
        d.ellipse([px - r, py - r, px + r, py + r], fill=(255, 0, 0))
    return np.asarray(im)


def write_outputs(out: str | Path, ev: Evaluation, items: list, spec: LabelSpec, title: str) -> None:
    """Write every output file into ``out``."""
    test = ev.test
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", ev.metrics)
    report = HtmlReport(title)
    m = ev.metrics
    if ev.task == "segmentation":
        write_json(out / "per_class_iou.json", m["per_class_iou"])
        write_json(out / "confusion_matrix.json", {"classes": list(spec.classes), "rows": "true class",
                                                   "columns": "predicted class", "matrix": m["confusion_matrix"]})
        save_png(out / "confusion_matrix.png", confusion_png(ev.confusion))
        headline = f"mIoU {percent(m['miou'])}"
        if "cv" in m:
            headline += f" ± {percent(m['miou_std'])} ({m['cv']['folds']}-fold CV over checkpoints)"
    else:
        headline = (f"PCK@0.05 {percent(m['pck_0.05'])}, PCK@0.1 {percent(m['pck_0.1'])}, "
                    f"mean L2 {m['mean_l2']:.2f} px")
    report.paragraph(f"{headline}; {m['num_images']} images; shown checkpoint: {m['checkpoint']}.")
    if ev.task == "segmentation":
        report.heading("Per-class IoU")
        report.table(["class", "IoU"], [(c, percent(v)) for c, v in m["per_class_iou"].items()])
        report.heading("Confusion matrix (rows: truth, row-normalised)")
        report.image("confusion_matrix.png", ", ".join(f"{i}={c}" for i, c in enumerate(spec.classes)))
    if "cv" in m:
        report.heading("Cross-validation folds")
        report.table(["fold", "checkpoint", "selection score", "score"],
                     [(f["fold"], f["checkpoint"], percent(f["select_score"]), percent(f["score"]))
                      for f in m["cv"]["per_fold"]])
    order = np.argsort(ev.image_scores, kind="stable")
    picks = [("Best", order[::-1][:SHOW]), ("Worst", order[:SHOW])]
    for name, idx in picks:
        report.heading(f"{name} images (per-image {'mIoU' if ev.task == 'segmentation' else 'PCK@0.1'})")
        for i in idx:
            image = np.asarray(Image.open(items[i].image).convert("RGB"))
            if ev.task == "segmentation":
                panel = np.concatenate([_thumb(image), _thumb(overlay(image, test.labels[i], spec.palette)),
                                        _thumb(overlay(image, ev.predictions[i], spec.palette))], axis=1)
                caption = f"{items[i].stem}: {percent(ev.image_scores[i], 1)} (image | truth | prediction)"
            else:
                panel = _thumb(_draw_points(image, test.keypoints[i], ev.predictions[i]))
                caption = f"{items[i].stem}: {percent(ev.image_scores[i], 1)} (green truth, red prediction)"
            rel = f"images/{name.lower()}_{items[i].stem}.png"
            save_png(out / rel, panel)
            report.image(rel, caption)
    report.write(out / "report.html")

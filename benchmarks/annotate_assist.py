"""What the annotator's assistant is worth: label order, and the wait for a suggestion.

On the demo domain, with the bundled demo annotator as the person (it labels whatever sample
it is shown), on a pool of generated samples:

1. the interpreter's agreement with the annotator (mIoU, and the share of equal pixels) on
   held-out samples after 2, 4, 8, 12 and 16 labels, with the samples labelled in random order
   (the mean of ``--random-orders`` orders) and in the order ``annotate``'s "next" picks them
   (k-center greedy in generator-feature space before any label, then the most uncertain of
   the far ones, retrained after every label as the page does); a plot of both curves (PNG);
2. the time from a saved label to a ready suggestion (the server's background training, then
   one suggestion), on the demo generator (64 px) and on a 256 px generator of the demo's
   widths, with ``--threads`` CPU threads.

    .venv/bin/python benchmarks/annotate_assist.py --out /tmp/annotate_assist
    .venv/bin/python benchmarks/annotate_assist.py --pool 60 --heldout 30 --random-orders 1 --checkpoints 2,4,8

Everything it writes goes to ``--out``; docs/ANNOTATE.md has the figures of a run.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from datasetgan.annotate.assist import Assistant
from datasetgan.annotate.config import AnnotateConfig
from datasetgan.annotate.store import LabelStore
from datasetgan.core.config import config_to_dict
from datasetgan.core.images import to_uint8
from datasetgan.demo.annotator import Annotator, annotate, annotate_folder
from datasetgan.demo.domain import label_spec
from datasetgan.demo.pipeline import bundled
from datasetgan.generator import Generator, GeneratorConfig, load_generator
from datasetgan.generator.config import SampleConfig
from datasetgan.generator.samples import sample_to_folder
from datasetgan.generator.sampling import ws_from_seeds
from datasetgan.labels import LabelSpec


def agreement(pred: np.ndarray, truth: np.ndarray, classes: int) -> tuple[float, float]:
    """(mIoU over the classes present in either, percent; equal pixels, percent)."""
    conf = np.bincount(truth.ravel().astype(np.int64) * classes + pred.ravel(), minlength=classes ** 2)
    conf = conf.reshape(classes, classes)
    union = conf.sum(0) + conf.sum(1) - np.diag(conf)
    iou = np.diag(conf)[union > 0] / union[union > 0]
    return 100 * float(iou.mean()), 100 * float(np.diag(conf).sum() / conf.sum())


class HeldOut:
    """Held-out samples: their features (rendered once) and the annotator's labels of their images."""

    def __init__(self, G: Generator, seeds: list[int], annotator: Annotator, truncation: float, batch: int = 25):
        self.batches = []
        truth = []
        with torch.no_grad():
            for start in range(0, len(seeds), batch):
                ws = ws_from_seeds(G, seeds[start:start + batch], truncation)
                img, maps = G.synthesis(ws, noise_mode="const", return_features=True)
                self.batches.append((img, maps))
                truth.append(annotate(annotator, to_uint8(img))[0])
        self.truth = np.concatenate(truth)

    def score(self, interp, classes: int) -> tuple[float, float]:
        pred = np.concatenate([interp.predict(maps, img).labels.numpy() for img, maps in self.batches])
        return agreement(pred.astype(np.int64), self.truth, classes)


def label_bytes(path: Path) -> bytes:
    """A label file as the page sends it: a grey PNG of class ids."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(Image.open(path)), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def run_order(samples: Path, truth: Path, labels: Path, spec: LabelSpec, config: AnnotateConfig,
              held: HeldOut, checkpoints: list[int], order: list[str] | None,
              uncertainty: bool = True) -> tuple[list, list[str]]:
    """Label samples one by one (``order``, or the assistant's "next" when None; without
    ``uncertainty``, next is k-center greedy throughout); at each checkpoint, the agreement of the
    interpreter trained on the labels so far. Returns (rows, the order used)."""
    shutil.rmtree(labels, ignore_errors=True)
    store = LabelStore(samples, labels, spec, "segmentation")
    assistant = Assistant(store, config)
    rows, used = [], []
    for k in range(1, max(checkpoints) + 1):
        stem = order[k - 1] if order is not None else assistant.next_stem()[0]
        used.append(stem)
        store.save(stem, label_bytes(truth / f"{stem}.png"))        # the person labels it
        if order is None and k >= config.min_labels:
            assistant.refresh(score=uncertainty)                   # as the page's assistant does
        if k in checkpoints:
            if order is not None:
                assistant.refresh(score=False)
            start = time.monotonic()
            miou, pixels = held.score(assistant.model, spec.num_classes)
            rows.append({"labels": k, "miou": round(miou, 2), "pixels": round(pixels, 2),
                         "train_seconds": assistant.last_seconds, "score_seconds": round(time.monotonic() - start, 2)})
            print(f"    {k:2d} labels: mIoU {miou:5.1f}, equal pixels {pixels:5.1f}%", flush=True)
    return rows, used


def plot(curves: dict[str, list[dict]], path: Path, title: str) -> None:
    """A line chart of mIoU against labels (PIL only)."""
    W, H, left, right, top, bottom = 640, 400, 60, 20, 40, 50
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    d.font = ImageFont.load_default(size=13)
    xs = sorted({r["labels"] for rows in curves.values() for r in rows})
    ys = [r["miou"] for rows in curves.values() for r in rows]
    lo, hi = np.floor(min(ys) / 5) * 5, np.ceil(max(ys) / 5) * 5
    hi = max(hi, lo + 5)

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (x - xs[0]) / max(xs[-1] - xs[0], 1) * (W - left - right),
                top + (hi - y) / (hi - lo) * (H - top - bottom))

    d.rectangle([left, top, W - right, H - bottom], outline="black")
    for y in np.arange(lo, hi + 0.01, 5):
        py = at(xs[0], y)[1]
        d.line([left - 4, py, W - right, py], fill=(225, 225, 225))
        d.text((8, py - 6), f"{y:.0f}", fill="black")
    for x in xs:
        px = at(x, lo)[0]
        d.line([px, H - bottom, px, H - bottom + 4], fill="black")
        d.text((px - 5, H - bottom + 8), str(x), fill="black")
    d.text((W // 2 - 70, H - 22), "labelled samples", fill="black")
    d.text((8, 12), title, fill="black")
    colours = {"random order": (200, 60, 40), "next order": (30, 90, 200), "kcenter order": (40, 150, 70)}
    for n, (name, rows) in enumerate(curves.items()):
        colour = colours.get(name, (0, 0, 0))
        pts = [at(r["labels"], r["miou"]) for r in rows]
        d.line(pts, fill=colour, width=2)
        for px, py in pts:
            d.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        legend = H - bottom - 12 - 18 * (len(curves) - n)      # bottom right, below the curves
        d.line([W - 200, legend + 8, W - 180, legend + 8], fill=colour, width=2)
        d.text((W - 175, legend), f"{name}, mIoU", fill="black")
    img.save(path)


def latency(generator_dir: Path, out: Path, spec: LabelSpec, config: AnnotateConfig, annotator: Annotator,
            label_counts: list[int], truncation: float) -> list[dict]:
    """Seconds from a saved label to the suggestion of the interpreter trained on it (background thread)."""
    shutil.rmtree(out, ignore_errors=True)
    G = load_generator(generator_dir)
    n = max(label_counts) + 1
    samples = sample_to_folder(G, SampleConfig(seeds=f"0-{n - 1}", truncation=truncation), out / "samples",
                               generator_dir, quiet=True)
    stems = [f"{s:06d}" for s in range(n)]
    annotate_folder(annotator, samples / "images", stems, out / "truth")
    store = LabelStore(samples, out / "labels", spec, "segmentation")
    assistant = Assistant(store, config)
    assistant.sample_descriptors()
    assistant.start()
    rows = []
    try:
        for k in range(1, max(label_counts) + 1):
            start = time.monotonic()
            store.save(stems[k - 1], label_bytes(out / "truth" / f"{stems[k - 1]}.png"))
            assistant.notify()
            if k < config.min_labels:
                continue
            suggestion = assistant.suggest(stems[-1], timeout=3600)
            seconds = time.monotonic() - start
            assert suggestion.labelled == k
            if k in label_counts:
                rows.append({"resolution": G.img_resolution, "labels": k, "seconds": round(seconds, 2),
                             "train_seconds": assistant.last_seconds})
                print(f"    {G.img_resolution} px, label {k}: suggestion ready {seconds:.2f} s after the save "
                      f"(training {assistant.last_seconds:.2f} s)", flush=True)
            while assistant.status()["state"] == "training":
                time.sleep(0.05)
    finally:
        assistant.stop()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/annotate_assist"))
    ap.add_argument("--pool", type=int, default=200, help="samples to label from")
    ap.add_argument("--heldout", type=int, default=100, help="held-out samples the agreement is measured on")
    ap.add_argument("--checkpoints", default="2,4,8,12,16")
    ap.add_argument("--random-orders", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--latency-labels", default="2,8", help="suggestion latency after these many labels")
    ap.add_argument("--orders", default="random,next", help="label orders to compare: random, next, and "
                                                             "kcenter (next without the uncertainty scores)")
    ap.add_argument("--next-quantile", type=float, default=None,
                    help="next: AnnotateConfig.next_diverse_quantile (default: the tool's)")
    ap.add_argument("--skip-orders", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    checkpoints = [int(c) for c in args.checkpoints.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    spec = LabelSpec.from_dict(label_spec())
    annotator = Annotator.load(bundled("demo_annotator"))
    config = AnnotateConfig()
    if args.next_quantile is not None:
        config = replace(config, next_diverse_quantile=args.next_quantile)
    truncation = 0.7
    results: dict = {"config": {"pool": args.pool, "heldout": args.heldout, "threads": args.threads,
                                "next_diverse_quantile": config.next_diverse_quantile,
                                "interpreter": config_to_dict(config.interpreter),
                                "random_orders": args.random_orders}}

    if not args.skip_orders:
        G = load_generator(bundled("demo_generator"))
        samples = sample_to_folder(G, SampleConfig(seeds=f"0-{args.pool - 1}", truncation=truncation),
                                   args.out / "pool", bundled("demo_generator"), quiet=True)
        stems = [f"{s:06d}" for s in range(args.pool)]
        annotate_folder(annotator, samples / "images", stems, args.out / "pool_truth")
        held = HeldOut(G, list(range(500_000, 500_000 + args.heldout)), annotator, truncation)
        curves: dict[str, list[dict]] = {}
        runs = []
        orders = args.orders.split(",")
        for r in range(args.random_orders if "random" in orders else 0):
            order = random.Random(r).sample(stems, max(checkpoints))
            print(f"random order {r}:", flush=True)
            rows, _ = run_order(samples, args.out / "pool_truth", args.out / "labels", spec, config, held,
                                checkpoints, order)
            runs.append(rows)
        if runs:
            curves["random order"] = [
                {"labels": k, "miou": round(float(np.mean([run[i]["miou"] for run in runs])), 2),
                 "pixels": round(float(np.mean([run[i]["pixels"] for run in runs])), 2),
                 "miou_each": [run[i]["miou"] for run in runs]} for i, k in enumerate(checkpoints)]
        for name, uncertainty in (("next", True), ("kcenter", False)):
            if name not in orders:
                continue
            print(f"{name} order:", flush=True)
            rows, used = run_order(samples, args.out / "pool_truth", args.out / "labels", spec, config, held,
                                   checkpoints, None, uncertainty=uncertainty)
            curves[f"{name} order"] = rows
            results[f"{name}_order"] = used
        results["agreement"] = curves
        plot(curves, args.out / "agreement.png",
             f"interpreter vs annotator on {args.heldout} held-out samples (pool {args.pool})")
        print(f"plot: {args.out / 'agreement.png'}")

    if not args.skip_latency:
        counts = [int(c) for c in args.latency_labels.split(",")]
        rows = latency(bundled("demo_generator"), args.out / "latency64", spec, config, annotator, counts, truncation)
        big = args.out / "generator256"
        torch.manual_seed(0)
        Generator(GeneratorConfig(z_dim=128, w_dim=128, img_resolution=256, mapping_layers=2, channel_base=2048,
                                  channel_max=128)).eval().save_pretrained(big)
        rows += latency(big, args.out / "latency256", spec, config, annotator, counts, truncation)
        results["latency"] = rows

    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "config"}, indent=1))


if __name__ == "__main__":
    main()

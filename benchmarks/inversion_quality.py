"""How well `datasetgan invert` reconstructs images, side by side with a plain W+ pixel-MSE optimisation.

For each image set: mean PSNR (dB) and SSIM (``pytorch_msssim``, 11 px Gaussian window, on
the uint8 images) of the reconstructions, and seconds per image of the optimisation at
``--threads`` CPU threads (default 2; the machine's other load makes timings rough).
The plain optimisation is Adam on W+ from the mean w, pixel MSE alone, a cosine rate, the
generator's own noise, the same number of steps as ours.

Image sets (``--sets``):

- ``demo``: ``--faces`` held-out faces rendered by ``datasetgan.demo.render`` (seeds from
  3,000,000: never used for the demo's GAN training (0-29,999), test (1,000,000+) or
  validation (2,000,000+) faces), inverted into the bundled demo generator.
- ``utkface``: the first ``--faces`` photos (by name) of ``DATA/utkface/crop_part1``, prepared
  as `train-gan` does, inverted into the UTKFace fixture generator (``--utkface-generator``,
  default ``../shared/fixtures/utkface64/snapshot``, whose discriminator gives the perceptual
  term). It was trained on all of ``crop_part1``: these photos were seen.
- ``fasseg``: the 50 FASSEG V2 test faces cropped as ``benchmarks/fewshot_baseline.py`` crops
  them (never seen by that generator), into the same generator.

Methods (``--methods``): ``ours`` (``InversionConfig`` defaults; ``--set KEY=VALUE`` overrides
any of its fields), ``plain``, and the variants ``w`` (``--space w``), ``fixed-noise``
(``--no-optimise-noise``) and ``tuned`` (``--tune-generator``).

``--label-agreement N`` also measures what the labels are worth: N held-out rendered faces
(seeds from 3,100,000) with their exact masks go through ``invert`` (the ``ours`` settings),
``train-interpreter`` (the demo's settings) and ``synthesize`` (the demo's, ``--agreement-images``
seeds); the synthetic labels are scored against the demo annotator with
``benchmarks/demo_label_agreement.py``, side by side with the interpreter trained on the
bundled 16 annotator-labelled samples.

Writes ``WORK/results.json``, ``WORK/grid_<set>.png`` (rows of real | ours | plain) and
``WORK/index.html``.

    .venv/bin/python benchmarks/inversion_quality.py --work /tmp/inversion [--faces 50] [--steps N]
        [--sets demo,utkface,fasseg] [--methods ours,plain,w,fixed-noise,tuned] [--label-agreement 16]
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from pytorch_msssim import ssim

from datasetgan.core.config import build_config, config_to_dict
from datasetgan.core.images import grid, save_png
from datasetgan.gan_training.dataset import prepare_image
from datasetgan.generator import Generator, load_generator
from datasetgan.inversion.config import InversionConfig
from datasetgan.inversion.losses import psnr
from datasetgan.inversion.project import Inverted, invert_batch, w_statistics
from datasetgan.inversion.run import load_loss, render_one, resolve_source
from datasetgan.inversion.tune import tune_generator

REPO = Path(__file__).resolve().parents[1]
DEMO_GENERATOR = REPO / "src" / "datasetgan" / "assets" / "demo_generator"
UTKFACE_GENERATOR = REPO.parent / "shared" / "fixtures" / "utkface64" / "snapshot"
DEMO_SEEDS = 3_000_000
AGREEMENT_SEEDS = 3_100_000
PLAIN_LR = 0.1


def demo_faces(n: int) -> np.ndarray:
    from datasetgan.demo.render import render_batch
    return render_batch(list(range(DEMO_SEEDS, DEMO_SEEDS + n))).images


def utkface_photos(data: Path, n: int, resolution: int) -> np.ndarray:
    files = sorted((data / "utkface" / "crop_part1").iterdir())[:n]
    arrays = []
    for f in files:
        with Image.open(f) as image:
            arrays.append(prepare_image(image, resolution).transpose(1, 2, 0))
    return np.stack(arrays)


def fasseg_faces(data: Path, n: int, resolution: int) -> np.ndarray:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from fewshot_baseline import face_box
    from datasetgan.labels import load_label_spec, read_label_map

    spec = load_label_spec(REPO / "configs" / "labels" / "fasseg.yaml")
    root = data / "fasseg" / "V2"
    arrays = []
    for label_path in sorted((root / "Test_Labels").glob("*.png"))[:n]:
        box = face_box(read_label_map(label_path, spec))
        image = Image.open(root / "Test_RGB" / label_path.name).convert("RGB")
        arrays.append(np.asarray(image.resize((resolution, resolution), Image.BILINEAR, box=box)))
    return np.stack(arrays)


def to_model(images: np.ndarray) -> torch.Tensor:
    """``[N, H, W, 3]`` uint8 -> ``[N, 3, H, W]`` float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def plain_batch(G: Generator, images: torch.Tensor, steps: int, lr: float, w_avg: torch.Tensor) -> Inverted:
    """W+ from the mean w, pixel MSE, Adam with a cosine rate, the generator's own noise."""
    w = w_avg[None, None].repeat(images.shape[0], G.num_ws, 1).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = (G.synthesis(w, noise_mode="const") - images).square().flatten(1).mean(1).sum()
        (grad,) = torch.autograd.grad(loss, [w])
        w.grad = grad
        opt.step()
    return Inverted(w.detach(), {}, torch.zeros(images.shape[0]))


def run_method(method: str, G: Generator, images: np.ndarray, config: InversionConfig, source) -> dict:
    """Reconstruct ``images`` with ``method``; PSNR and SSIM per image, seconds per image."""
    device = torch.device("cpu")
    cfg = {"w": dataclasses.replace(config, space="w"),
           "fixed-noise": dataclasses.replace(config, optimise_noise=False),
           "tuned": dataclasses.replace(config, tune_generator=True)}.get(method, config)
    loss = load_loss(cfg, source, device)
    x = to_model(images)
    start = time.perf_counter()
    parts = []
    if method == "plain":
        stats = w_statistics(G, cfg, device)
        for i in range(0, len(x), cfg.batch_size):
            parts.append(plain_batch(G, x[i:i + cfg.batch_size], cfg.steps, PLAIN_LR, stats.mean))
    else:
        stats = w_statistics(G, cfg, device)
        for k, i in enumerate(range(0, len(x), cfg.batch_size)):
            parts.append(invert_batch(G, x[i:i + cfg.batch_size], loss, cfg, stats, seed=cfg.seed * 1_000_003 + k))
    ws = torch.cat([p.ws for p in parts])
    noise = {k: torch.cat([p.noise[k] for p in parts]) for k in parts[0].noise}
    final = G
    if cfg.tune_generator:
        final = tune_generator(G, ws, noise, x, loss, cfg)
    seconds = time.perf_counter() - start
    recon = np.stack([render_one(final, ws, noise, i, device) for i in range(len(images))])
    ssims = ssim(torch.from_numpy(recon).permute(0, 3, 1, 2).float(),
                 torch.from_numpy(images).permute(0, 3, 1, 2).float(), data_range=255, size_average=False)
    psnrs = [psnr(r, t) for r, t in zip(recon, images)]
    return {"psnr_mean": float(np.mean(psnrs)), "psnr_min": float(np.min(psnrs)), "psnr_max": float(np.max(psnrs)),
            "ssim_mean": float(ssims.mean()), "seconds_per_image": seconds / len(images),
            "perceptual": loss.name(G.img_resolution) if method != "plain" else "none",
            "psnr": [round(p, 3) for p in psnrs], "ssim": [round(float(s), 4) for s in ssims], "recon": recon}


def comparison_grid(images: np.ndarray, recons: list[np.ndarray], columns: int = 4) -> np.ndarray:
    """One tile per face: real | each method's reconstruction, side by side."""
    tiles = [np.concatenate([images[i]] + [r[i] for r in recons], axis=1) for i in range(len(images))]
    return grid(tiles, columns=columns)


def label_agreement(work: Path, n: int, images: int, config: InversionConfig, device: torch.device) -> dict:
    """Interpreter trained on ``n`` inverted rendered faces vs on the bundled annotator-labelled samples:
    the agreement of their synthetic labels with the demo annotator."""
    from datasetgan.demo.config import DemoConfig
    from datasetgan.demo.pipeline import bundled
    from datasetgan.demo.render import render_dataset
    from datasetgan.generator.samples import sample_to_folder
    from datasetgan.interpreter.artifact import Interpreter
    from datasetgan.interpreter.data import read_samples_folder
    from datasetgan.interpreter.run import train_interpreter
    from datasetgan.inversion.run import invert_folder
    from datasetgan.labels import load_label_spec
    from datasetgan.synthesis.run import synthesize

    demo = DemoConfig()
    work = work / "label_agreement"
    shutil.rmtree(work, ignore_errors=True)
    faces = render_dataset(work / "faces", n, AGREEMENT_SEEDS, show_progress=False)
    spec_path = faces / "spec.json"
    spec = load_label_spec(spec_path)
    masks = work / "faces_masks"
    masks.mkdir()
    for f in (faces / "labels").glob("*.png"):
        shutil.copy(f, masks / f.name)
    start = time.perf_counter()
    info = invert_folder(DEMO_GENERATOR, faces / "images", work / "inverted", config, device,
                         labels=masks, spec=spec, quiet=True)
    invert_seconds = time.perf_counter() - start
    sample_to_folder(load_generator(DEMO_GENERATOR), demo.labelled, work / "annotated", DEMO_GENERATOR, quiet=True)
    ann_masks = work / "annotated_masks"
    ann_masks.mkdir()
    for f in (bundled("demo_labels") / "labels").glob("*.png"):
        shutil.copy(f, ann_masks / f.name)
    rows = {}
    for name, samples, labels in (("inverted", work / "inverted", work / "inverted" / "labels"),
                                  ("annotated", work / "annotated", ann_masks)):
        interp_dir = work / f"interpreter_{name}"
        train_interpreter(samples, labels, spec, interp_dir, demo.interpreter, device, task="segmentation",
                          quiet=True)
        checkpoint = read_samples_folder(samples).checkpoint
        synth = work / f"synthetic_{name}"
        synthesize(load_generator(checkpoint, device=device), Interpreter.load(interp_dir, device=device), synth,
                   dataclasses.replace(demo.synthesis, num_images=images), device, generator_checkpoint=checkpoint,
                   interpreter_dir=str(interp_dir), quiet=True)
        out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "demo_label_agreement.py"), str(synth),
                              "--images", str(images)], capture_output=True, text=True, check=True).stdout
        miou = float(re.search(r"mIoU \(interpreter vs annotator\) ([\d.]+)", out).group(1))
        rows[name] = {"miou_vs_annotator": miou, "report": out.strip()}
    return {"faces": n, "synthetic_images": images, "invert_mean_psnr": info["mean_psnr"],
            "invert_seconds": invert_seconds, **rows}


def write_html(work: Path, results: dict) -> None:
    parts = ["<!doctype html><meta charset=utf-8><title>Inversion quality</title>",
             "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}</style>",
             f"<h1>Inversion quality</h1><p>{html.escape(results['command'])}</p>"]
    for name, data in results["sets"].items():
        parts.append(f"<h2>{html.escape(name)}: {data['images']} images, {data['steps']} steps, "
                     f"{results['threads']} threads</h2><table><tr><th>method<th>PSNR (dB)<th>min<th>max"
                     "<th>SSIM<th>s / image<th>perceptual</tr>")
        for method, m in data["methods"].items():
            parts.append(f"<tr><td>{method}<td>{m['psnr_mean']:.2f}<td>{m['psnr_min']:.2f}<td>{m['psnr_max']:.2f}"
                         f"<td>{m['ssim_mean']:.4f}<td>{m['seconds_per_image']:.2f}<td>{m['perceptual']}</tr>")
        parts.append(f"</table><p>real | {' | '.join(data['methods'])}</p>"
                     f"<img src='grid_{name}.png' style='image-rendering:pixelated;width:100%'>")
    if "label_agreement" in results:
        la = results["label_agreement"]
        parts.append(f"<h2>Labels</h2><p>mIoU of synthetic labels vs the annotator: inverted {la['faces']} faces "
                     f"{la['inverted']['miou_vs_annotator']:.1f}, bundled annotator-labelled samples "
                     f"{la['annotated']['miou_vs_annotator']:.1f}</p>")
    (work / "index.html").write_text("\n".join(parts), encoding="utf-8")


def parse_sets(values: list[str]) -> dict:
    """``["lr=0.05", "space=w"]`` -> ``{"lr": 0.05, "space": "w"}`` (values read as YAML)."""
    return {key: yaml.safe_load(value) for key, _, value in (item.partition("=") for item in values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="output folder (outside the repository)")
    ap.add_argument("--faces", type=int, default=50, help="images per set")
    ap.add_argument("--steps", type=int, default=None, help="default: InversionConfig's")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sets", default="demo")
    ap.add_argument("--methods", default="ours,plain")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an InversionConfig field")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--utkface-generator", type=Path, default=UTKFACE_GENERATOR)
    ap.add_argument("--label-agreement", type=int, default=0, metavar="N", help="faces to invert for it (0: skip)")
    ap.add_argument("--agreement-images", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = parse_sets(args.set)
    if args.steps is not None:
        overrides["steps"] = args.steps
    config = build_config(InversionConfig, overrides or None)
    args.work.mkdir(parents=True, exist_ok=True)
    results = {"command": " ".join(sys.argv), "threads": args.threads, "config": config_to_dict(config), "sets": {}}
    for set_name in args.sets.split(","):
        path = DEMO_GENERATOR if set_name == "demo" else args.utkface_generator
        source = resolve_source(path)
        G = load_generator(source.checkpoint)
        R = G.img_resolution
        images = {"demo": lambda: demo_faces(args.faces),
                  "utkface": lambda: utkface_photos(args.data, args.faces, R),
                  "fasseg": lambda: fasseg_faces(args.data, args.faces, R)}[set_name]()
        methods = {}
        for method in args.methods.split(","):
            methods[method] = run_method(method, G, images, config, source)
            m = methods[method]
            print(f"{set_name:8s} {method:12s} PSNR {m['psnr_mean']:6.2f} dB ({m['psnr_min']:.2f}-{m['psnr_max']:.2f})"
                  f"  SSIM {m['ssim_mean']:.4f}  {m['seconds_per_image']:6.2f} s/image  [{m['perceptual']}]",
                  flush=True)
        save_png(args.work / f"grid_{set_name}.png",
                 comparison_grid(images, [m.pop("recon") for m in methods.values()]))
        results["sets"][set_name] = {"images": len(images), "steps": config.steps, "generator": str(path),
                                     "methods": methods}
    if args.label_agreement:
        results["label_agreement"] = la = label_agreement(args.work, args.label_agreement, args.agreement_images,
                                                          config, torch.device("cpu"))
        print(f"labels: synthetic labels vs the annotator, mIoU: interpreter on {la['faces']} inverted faces "
              f"{la['inverted']['miou_vs_annotator']:.1f}, on the 16 annotator-labelled samples "
              f"{la['annotated']['miou_vs_annotator']:.1f}")
    (args.work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_html(args.work, results)
    print(f"wrote {args.work / 'results.json'}, {args.work / 'index.html'}")


if __name__ == "__main__":
    main()

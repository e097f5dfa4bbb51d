"""``datasetgan train-interpreter``: fit the ensemble of pixel MLPs to a few labels."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from datasetgan.core.config import build_config, config_to_dict, finite_float
from datasetgan.core.devices import resolve_device
from datasetgan.core.errors import UserError
from datasetgan.core.labels import load_label_spec
from datasetgan.interpreter.artifact import Interpreter
from datasetgan.interpreter.config import InterpreterConfig
from datasetgan.interpreter.data import build_training_data, detect_task, open_generator, read_samples_folder
from datasetgan.interpreter.train import Resume, train_ensemble


def _pixels(text: str) -> int | str:
    if text == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {text!r}") from None


STATE_FILE = ".training-state.safetensors"   # in --out while training; removed when the interpreter is saved
STATE_EVERY_SECONDS = 300.0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-interpreter", help="train the style interpreter (pixel MLP ensemble) on a few labels",
        description="Train an ensemble of pixel MLPs on generator features of labelled samples. The "
                    "training state is saved in --out every 5 minutes and on Ctrl-C or SIGTERM; the same "
                    "command started again resumes it and gives the same interpreter.")
    p.add_argument("--samples", required=True, metavar="DIR", help="folder written by `datasetgan sample`")
    p.add_argument("--labels", required=True, metavar="DIR",
                   help="LABELS/<stem>.png|.npy (masks) or LABELS/<stem>.json (keypoints)")
    p.add_argument("--spec", required=True, metavar="FILE", help="label spec (YAML/JSON: classes, palette, keypoints)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (config.json + model.safetensors)")
    p.add_argument("--config", metavar="FILE", help="preset (YAML/JSON) of InterpreterConfig keys")
    p.add_argument("--task", choices=["auto", "segmentation", "keypoints"], default="auto",
                   help="default: keypoints if LABELS holds .json files, else segmentation")
    p.add_argument("--generator", metavar="CKPT", help="generator checkpoint (default: the one the samples recorded)")
    p.add_argument("--members", type=int, help="ensemble size (default 10)")
    p.add_argument("--pixels-per-image", type=_pixels, metavar="N|all",
                   help="training pixels per labelled image (default all, as the reference)")
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--min-epochs", type=int, metavar="E",
                   help="no early stopping before epoch E (default 4, the reference's); with --max-epochs E, "
                        "every member trains exactly E epochs")
    p.add_argument("--batch-size", type=int, metavar="B", help="pixels per batch, per member (default 64)")
    p.add_argument("--lr", type=finite_float, help="Adam learning rate (default 1e-3)")
    p.add_argument("--min-class-pixels", type=int, metavar="N",
                   help="ignore a class in a mask where it covers fewer than N pixels (default: 20 per "
                        "512x512, scaled to the mask's area)")
    p.add_argument("--class-weight-power", type=finite_float, metavar="P",
                   help="segmentation: weight each class by its share of the training pixels ** -P "
                        "(default 0, the reference's plain cross-entropy; 0.5 helps parts of a few pixels)")
    p.add_argument("--max-steps", type=int, help="stop after this many batches (smoke runs, benchmarks)")
    p.add_argument("--layers", help="comma-separated feature taps or resolutions (default: all, every "
                                    "convolution as the reference); 'img' adds the generated image's own "
                                    "pixels, e.g. all,img")
    p.add_argument("--upsample", choices=["bilinear", "nearest"])
    p.add_argument("--feature-dtype", choices=["float16", "float32"])
    p.add_argument("--heatmap-sigma", type=finite_float, help="keypoints: Gaussian target sigma in pixels (default 2)")
    p.add_argument("--allow-unlabelled", action="store_true",
                   help="skip samples without a label file (default: that is an error naming them)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if present)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_train_interpreter)


def resolve_config(args: argparse.Namespace) -> InterpreterConfig:
    pixels = getattr(args, "pixels_per_image", None)
    overrides = {
        "members": args.members, "max_epochs": args.max_epochs, "max_steps": args.max_steps,
        "min_epochs": args.min_epochs, "batch_size": args.batch_size, "lr": args.lr,
        "layers": tuple(s.strip() for s in args.layers.split(",") if s.strip()) if args.layers else None,
        "upsample": args.upsample, "feature_dtype": args.feature_dtype,
        "heatmap_sigma": args.heatmap_sigma, "seed": args.seed, "min_class_pixels": args.min_class_pixels,
        "class_weight_power": args.class_weight_power,
        "pixels_per_image": None if pixels in (None, "all") else pixels,
    }
    config = build_config(InterpreterConfig, args.config, overrides)
    if pixels == "all" and config.pixels_per_image is not None:  # the flag beats the preset
        config = build_config(InterpreterConfig, {**config_to_dict(config), "pixels_per_image": None})
    return config


def run_train_interpreter(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    device = resolve_device(args.device)
    spec = load_label_spec(args.spec)
    samples = read_samples_folder(args.samples)
    task = detect_task(Path(args.labels), args.task)
    out = Path(args.out)
    if (out / "model.safetensors").exists() and not out.is_dir():
        raise UserError(f"--out {out}: not a folder")
    G, fingerprint = open_generator(samples, args.generator, device)
    start = time.time()
    data = build_training_data(G, samples, args.labels, spec, task, config, device, quiet=args.quiet,
                               allow_unlabelled=args.allow_unlabelled)
    del G
    num_outputs = spec.num_classes if task == "segmentation" else spec.num_keypoints
    # Resumable: an interrupted run started again with the same arguments continues (train.py).
    resume = Resume(out / STATE_FILE, every_seconds=STATE_EVERY_SECONDS,
                    key={"generator": fingerprint, "labelled": data.stems, "layers": data.selected.names,
                         "out_size": list(data.out_size)})
    model, stats = train_ensemble(data.bank, data.pixels, num_outputs, task, config, device, quiet=args.quiet,
                                  resume=resume)
    interpreter = Interpreter(
        model=model, task=task, spec=spec, layers=data.selected.names, upsample=config.upsample,
        out_size=data.out_size, generator_fingerprint=fingerprint,
        generator_checkpoint=str(args.generator or samples.checkpoint),
        visibility_threshold=config.visibility_threshold,
        training={"config": config_to_dict(config), "labelled": data.stems, "pixels": len(data.pixels),
                  "feature_width": data.bank.width, "feature_bank_bytes": data.bank.nbytes,
                  "steps": stats.steps, "epochs": stats.epochs, "member_stopped_at": stats.stopped_at,
                  "member_best_loss": stats.best_loss, "seconds": round(time.time() - start, 2)})
    interpreter.save(out)
    resume.path.unlink(missing_ok=True)
    print(f"trained {config.members} members on {len(data.pixels)} pixels of {len(data.stems)} labelled "
          f"images ({task}, feature width {data.bank.width}) in {stats.steps} steps; wrote {out}")
    return 0

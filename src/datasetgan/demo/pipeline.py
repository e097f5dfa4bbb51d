"""``datasetgan demo``: the whole method on the bundled face domain, on a CPU.

Thin glue over the stage commands, in the paper's order:

1. ``sample`` the labelled seeds from the demo generator;
2. their labels: the bundled ones (made by ``scripts/make_demo_labels.py``
   with the annotator) or, on request, the annotator run now;
3. ``train-interpreter`` on those few labelled samples;
4. ``synthesize`` a labelled data set, dropping the most uncertain images;
5. render test faces with exact labels;
6. ``train-segmenter`` on the synthetic set, and the same segmenter on the
   labelled samples alone (the few-shot baseline), side by side on a CPU;
7. ``evaluate`` both on the rendered faces; write the table, ``results.json``
   and ``report.html``.

Each stage is run through the ``datasetgan`` command itself, so the demo
exercises exactly what a user runs.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from datasetgan.core.config import config_to_dict
from datasetgan.core.errors import UserError
from datasetgan.core.fileio import read_json, write_json
from datasetgan.core.seeds import parse_seeds
from datasetgan.demo.config import DemoConfig
from datasetgan.demo.domain import label_spec
from datasetgan.demo.render import render_dataset

STAGES = ("generator", "sample", "labels", "train-interpreter", "synthesize", "render test set",
          "train-segmenters (DatasetGAN and baseline)", "fine-tune the DatasetGAN segmenter on the labelled samples",
          "evaluate", "report")
# What a demo run writes into its output folder (removed before a new run).
OUTPUTS = ("generator", "samples", "labels", "interpreter", "synthetic", "test", "baseline_data",
           "segmenter_datasetgan", "segmenter_baseline", "segmenter_finetuned", "eval_datasetgan",
           "eval_baseline", "eval_finetuned", "predictions",
           "uncertainty", "report", "report.html", "results.json", "demo_config.json", "spec.json")


def bundled(name: str) -> Path:
    """A path inside the package's ``assets`` folder."""
    return Path(str(resources.files("datasetgan") / "assets" / name))


@dataclass
class Timeline:
    """Stage headers with elapsed time, so a user sees where the minutes go."""

    quiet: bool = False
    start: float = field(default_factory=time.perf_counter)
    seconds: dict = field(default_factory=dict)
    _current: str | None = None
    _t0: float = 0.0

    def stage(self, name: str) -> None:
        self.done()
        self._current, self._t0 = name, time.perf_counter()
        if not self.quiet:
            index = STAGES.index(name) + 1 if name in STAGES else "-"
            print(f"[demo {index}/{len(STAGES)}] {name} ... (t = {self._t0 - self.start:.0f} s)",
                  file=sys.stderr, flush=True)

    def done(self) -> None:
        if self._current is not None:
            self.seconds[self._current] = round(time.perf_counter() - self._t0, 2)
            self._current = None

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start


def _stage_failed(what: str, code: int | None, argv: list[str]) -> UserError:
    return UserError(f"demo stage '{what}' failed (exit {code}): datasetgan {' '.join(argv)}")


def run_command(argv: list[str], what: str) -> None:
    """Run one ``datasetgan`` subcommand in-process; a failure stops the demo, naming the stage."""
    from datasetgan.cli import main

    code = main(argv)
    if code != 0:
        raise _stage_failed(what, code, argv)


def _run_with_threads(argv: list[str], threads: int) -> None:
    """A child process of ``run_side_by_side``: one subcommand on ``threads`` torch threads."""
    from datasetgan.cli import main

    torch.set_num_threads(threads)
    sys.exit(main(argv))


def run_side_by_side(jobs: list[tuple[list[str], str]], threads: int) -> None:
    """Run ``(argv, what)`` subcommands at once, each in its own process on ``threads`` torch threads.

    Two small training runs on one thread each use a 2-core CPU better than
    one after the other on two threads: the demo's segmenters train at about
    24 images/s each side by side against 35 images/s for one on both cores
    (a 2-core Xeon; 63 against 89 on a 2-core EPYC with AVX-512).
    A failure (or Ctrl-C) stops every job; the error names the stage.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")   # no forked copy of the parent's torch thread pools
    procs = [(ctx.Process(target=_run_with_threads, args=(argv, threads)), argv, what) for argv, what in jobs]
    try:
        for proc, _, _ in procs:
            proc.start()
        for proc, argv, what in procs:
            proc.join()
            if proc.exitcode != 0:
                raise _stage_failed(what, proc.exitcode, argv)
    finally:
        for proc, _, _ in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()


def tiny_random_generator(out: Path, seed: int = 0) -> Path:
    """A small untrained 64x64 generator for ``--quick`` runs and tests."""
    from datasetgan.generator import Generator, GeneratorConfig

    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(z_dim=32, w_dim=32, img_resolution=64, mapping_layers=2,
                                  channel_base=256, channel_max=32))
    G.save_pretrained(out)
    return out


def resolve_generator(cfg: DemoConfig, out: Path) -> Path:
    if cfg.generator == "random":
        return tiny_random_generator(out / "generator")
    path = Path(cfg.generator) if cfg.generator else bundled("demo_generator")
    if not path.exists():
        raise UserError(f"{path}: demo generator not found (set 'generator' in the demo config, or use --quick)")
    return path


def bundled_labels_fit(labels: Path, generator: Path, seeds: list[int], truncation: float) -> bool:
    """Whether bundled labels were made on exactly these samples: this generator's, at these seeds
    and this truncation (else the samples are labelled by the annotator instead)."""
    from datasetgan.generator import generator_fingerprint, load_generator

    provenance = labels / "provenance.json"
    if not (labels / "labels").is_dir() or not provenance.exists():
        return False
    made = read_json(provenance, "labels' provenance")
    mismatch = []
    if made.get("generator_fingerprint") != generator_fingerprint(load_generator(generator)):
        mismatch.append("another generator")
    if sorted(made.get("seeds", [])) != sorted(seeds):
        mismatch.append("other seeds")
    if float(made.get("truncation", -1)) != float(truncation):
        mismatch.append(f"truncation {made.get('truncation')}")
    if mismatch:
        print(f"demo: {labels} was made for {', '.join(mismatch)}; labelling the samples with the annotator",
              file=sys.stderr)
    return not mismatch


def make_labels(cfg: DemoConfig, samples: Path, out: Path, seeds: list[int]) -> Path:
    """The labels of the labelled samples: bundled, or the annotator's."""
    labels_dir = out / "labels"
    if cfg.labels not in ("", "annotate"):
        src = Path(cfg.labels)
        if not src.exists():
            raise UserError(f"{src}: labels folder not found (config key 'labels')")
        shutil.copytree(src, labels_dir, dirs_exist_ok=True)
        return labels_dir
    if cfg.labels == "" and cfg.generator == "" and bundled_labels_fit(bundled("demo_labels"), bundled("demo_generator"),
                                                                        seeds, cfg.truncation):
        shutil.copytree(bundled("demo_labels") / "labels", labels_dir, dirs_exist_ok=True)
        return labels_dir
    from datasetgan.demo.annotator import Annotator, AnnotatorConfig, annotate_folder, train_annotator

    ann_dir = Path(cfg.annotator) if cfg.annotator else bundled("demo_annotator")
    if (ann_dir / "config.json").exists():
        model = Annotator.load(ann_dir)
    else:
        # No trained annotator at hand (a checkout without assets): a tiny one, quickly.
        model = train_annotator(AnnotatorConfig(width=8, train_images=250, steps=20, batch_size=8),
                                show_progress=not cfg.quiet)
    return annotate_folder(model, samples / "images", [f"{s:06d}" for s in seeds], labels_dir)


def repeat_labelled(images: Path, labels: Path, seeds: list[int], repeats: int, out: Path) -> tuple[Path, Path]:
    """The labelled samples, each listed ``repeats`` times (hard links, copies where links fail),
    so that one epoch of the baseline takes as many steps as one epoch on the synthetic set.
    Every pass draws new random flips, crops and colour jitter."""
    dirs = (out / "images", out / "labels")
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    for seed in seeds:
        stem = f"{seed:06d}"
        for r in range(repeats):
            for src, dst in ((images / f"{stem}.png", dirs[0] / f"{stem}_r{r:04d}.png"),
                             (labels / f"{stem}.png", dirs[1] / f"{stem}_r{r:04d}.png")):
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copyfile(src, dst)
    return dirs


def run_demo(cfg: DemoConfig, out: str | Path) -> dict:
    """Run every stage into ``out``; return the results (also in ``out/results.json``)."""
    from datasetgan.demo.report import collect_results, print_table, write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Stages resume interrupted runs of their own; a new demo run starts from scratch instead.
    for name in OUTPUTS:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    tl = Timeline(quiet=cfg.quiet)
    torch.manual_seed(0)
    write_json(out / "demo_config.json", config_to_dict(cfg))
    spec_path = out / "spec.json"
    write_json(spec_path, label_spec())
    dev = ["--device", cfg.device]
    quiet = ["--quiet"] if cfg.quiet else []

    tl.stage("generator")
    generator = resolve_generator(cfg, out)

    tl.stage("sample")
    seeds = parse_seeds(cfg.labelled_seeds, flag="labelled_seeds")
    samples = out / "samples"
    run_command(["sample", "--checkpoint", str(generator), "--seeds", cfg.labelled_seeds,
                 "--truncation", str(cfg.truncation), "--out", str(samples), *dev], "sample")

    tl.stage("labels")
    labels = make_labels(cfg, samples, out, seeds)

    tl.stage("train-interpreter")
    interpreter = out / "interpreter"
    run_command(["train-interpreter", "--samples", str(samples), "--labels", str(labels), "--spec", str(spec_path),
                 "--out", str(interpreter), "--task", "segmentation", "--members", str(cfg.members),
                 "--pixels-per-image", cfg.pixels_per_image, "--class-weight-power", str(cfg.class_weight_power),
                 "--layers", cfg.interpreter_layers, "--min-epochs", str(cfg.interpreter_epochs),
                 "--max-epochs", str(cfg.interpreter_epochs), "--batch-size", str(cfg.interpreter_batch_size),
                 "--lr", str(cfg.interpreter_lr), *dev, *quiet], "train-interpreter")

    tl.stage("synthesize")
    synthetic = out / "synthetic"
    run_command(["synthesize", "--generator", str(generator), "--interpreter", str(interpreter),
                 "--n", str(cfg.synth_total), "--out", str(synthetic), "--seed-start", str(cfg.synth_seed_start),
                 "--truncation", str(cfg.synth_truncation), "--drop-uncertain", str(cfg.drop_uncertain),
                 "--batch-size", str(cfg.synth_batch_size), *dev,
                 *(["--ignore-pixels-above", str(cfg.synth_ignore_above)] if cfg.synth_ignore_above is not None else [])],
                "synthesize")

    tl.stage("render test set")
    test = render_dataset(out / "test", cfg.test_images, cfg.test_seed_start, show_progress=not cfg.quiet)

    seg = ["--arch", cfg.arch, "--batch-size", str(cfg.seg_batch_size), "--resolution", str(cfg.seg_resolution),
           "--decoder", cfg.seg_decoder, "--class-weight-power", str(cfg.seg_class_weight_power),
           "--zoom-out", str(cfg.seg_zoom_out), *dev]
    tl.stage("train-segmenters (DatasetGAN and baseline)")
    n_synth = len(list((synthetic / "images").glob("*.png")))
    repeats = max(1, round(n_synth / len(seeds))) if cfg.baseline_same_steps else 1
    base_images, base_labels = repeat_labelled(samples / "images", labels, seeds, repeats, out / "baseline_data")
    threads = torch.get_num_threads() // 2
    side_by_side = cfg.seg_side_by_side and cfg.device == "cpu" and threads >= 1
    dg_epochs, base_epochs = cfg.seg_epochs, cfg.baseline_seg_epochs

    def datasetgan_job(epochs: int, quiet_flags: list[str]) -> tuple[list[str], str]:
        return (["train-segmenter", "--data", str(synthetic), "--out", str(out / "segmenter_datasetgan"),
                 "--epochs", str(epochs), *seg, "--weight-decay", str(cfg.seg_weight_decay), *quiet_flags],
                "train-segmenter (DatasetGAN)")

    def labelled_job(run: str, epochs: int, quiet_flags: list[str], what: str,
                     extra: tuple[str, ...] = ()) -> tuple[list[str], str]:
        """train-segmenter on the labelled samples alone: the baseline, or the fine-tuning."""
        return (["train-segmenter", "--images", str(base_images), "--labels", str(base_labels),
                 "--spec", str(spec_path), "--out", str(out / run), "--epochs", str(epochs), *seg, *extra,
                 *quiet_flags], what)

    baseline_job = labelled_job("segmenter_baseline", base_epochs, ["--quiet"] if side_by_side else quiet,
                                "train-segmenter (baseline)", ("--weight-decay", str(cfg.baseline_weight_decay)))

    if side_by_side:
        # Both take the same steps per epoch, so only the DatasetGAN run shows a progress bar. Once the
        # baseline has its epochs, the DatasetGAN run resumes alone on every thread.
        run_side_by_side([datasetgan_job(base_epochs, quiet), baseline_job], threads)
        if dg_epochs > base_epochs:
            if not cfg.quiet:
                print(f"baseline done after {base_epochs} epochs; DatasetGAN segmenter goes on alone "
                      f"to {dg_epochs} epochs on {torch.get_num_threads()} threads", flush=True)
            run_command(*datasetgan_job(dg_epochs, quiet))
    else:
        run_command(*datasetgan_job(dg_epochs, quiet))
        run_command(*baseline_job)

    models = ["datasetgan", "baseline"]
    if cfg.finetune_epochs:
        # The DatasetGAN segmenter goes on for a short while on the 16 labelled samples (the baseline's data):
        # their labels are a person's (here the annotator's), crisper than the interpreter's. Its BatchNorm
        # statistics, from 2,000 synthetic images, stay: 16 images estimate them poorly (--freeze-bn).
        tl.stage("fine-tune the DatasetGAN segmenter on the labelled samples")
        run_command(*labelled_job("segmenter_finetuned", cfg.finetune_epochs, quiet,
                                  "fine-tune (the DatasetGAN segmenter)",
                                  ("--init", str(out / "segmenter_datasetgan"), "--lr", str(cfg.finetune_lr),
                                   "--freeze-bn")))
        models.append("finetuned")

    tl.stage("evaluate")
    for name in models:
        run_command(["evaluate", "--model", str(out / f"segmenter_{name}"), "--images", str(test / "images"),
                     "--labels", str(test / "labels"), "--spec", str(test / "spec.json"),
                     "--out", str(out / f"eval_{name}"), "--save-predictions", str(out / "predictions" / name),
                     *dev, *quiet], f"evaluate ({name})")

    tl.stage("report")
    from datasetgan.demo.uncertainty import pick_seeds, write_uncertainty_maps

    precision = read_json(synthetic / "dataset.json").get("first_layer_precision", "float32")  # as synthesize's
    write_uncertainty_maps(generator, interpreter, pick_seeds(synthetic / "manifest.jsonl"), cfg.synth_truncation,
                           out / "uncertainty", precision=precision)
    results = collect_results(cfg, out, n_synth=n_synth, baseline_repeats=repeats)
    tl.done()
    results["seconds"] = {**tl.seconds, "total": round(tl.total, 1)}
    write_json(out / "results.json", results)
    write_report(out, results)
    print_table(results)
    return results

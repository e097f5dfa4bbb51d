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

Each stage is called as a Python function with its own config section of
``DemoConfig``: the same functions and checks as the stage commands.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Callable

import torch

from datasetgan.core.config import config_to_dict
from datasetgan.core.devices import resolve_device
from datasetgan.core.errors import UserError
from datasetgan.core.fileio import read_json, write_json
from datasetgan.demo.config import DemoConfig
from datasetgan.demo.domain import label_spec
from datasetgan.demo.render import render_dataset
from datasetgan.generator import load_generator
from datasetgan.generator.samples import sample_to_folder
from datasetgan.interpreter.artifact import Interpreter
from datasetgan.interpreter.run import train_interpreter
from datasetgan.labels import load_label_spec
from datasetgan.segmenter.config import SegmenterTrainingConfig
from datasetgan.synthesis.run import synthesize

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


def _stage_failed(what: str, code: int | None) -> UserError:
    return UserError(f"demo stage '{what}' failed (exit {code}); its error is printed above")


def train_segmenter(config: SegmenterTrainingConfig, run: Path, device: str, quiet: bool,
                    data: Path | None = None, images: Path | None = None, labels: Path | None = None,
                    spec: Path | None = None) -> Path:
    """``train-segmenter`` from Python: a synthesised data set (``data``) or labelled images."""
    from datasetgan.segmenter.data import collect_items
    from datasetgan.segmenter.train import train

    items, label_spec = collect_items("segmentation", data=data, images=images, labels=labels, spec=spec)
    source = {k: str(Path(v).resolve()) for k, v in
              {"data": data, "images": images, "labels": labels, "spec": spec}.items() if v is not None}
    return train(items, label_spec, "segmentation", config, run, resolve_device(device), source=source, quiet=quiet)


def _job_in_child(job: Job, threads: int) -> None:
    """A child process of ``run_side_by_side``: one job on ``threads`` torch threads."""
    torch.set_num_threads(threads)
    try:
        job.run()
    except UserError as exc:
        print(f"datasetgan demo ({job.what}): error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(0)


@dataclass(frozen=True)
class Job:
    """A stage that ``run_side_by_side`` can run in a child process: a picklable call."""

    what: str
    function: Callable[..., object]
    kwargs: dict

    def run(self) -> object:
        return self.function(**self.kwargs)


def run_side_by_side(jobs: list[Job], threads: int) -> None:
    """Run jobs at once, each in its own process on ``threads`` torch threads.

    Two small training runs on one thread each use a 2-core CPU better than
    one after the other on two threads (docs/DEMO.md has the speeds).
    A failure (or Ctrl-C) stops every job; the error names the stage.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")   # no forked copy of the parent's torch thread pools
    procs = [(ctx.Process(target=_job_in_child, args=(job, threads)), job) for job in jobs]
    try:
        for proc, _ in procs:
            proc.start()
        for proc, job in procs:
            proc.join()
            if proc.exitcode != 0:
                raise _stage_failed(job.what, proc.exitcode)
    finally:
        for proc, _ in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()


def evaluate_run(run: Path, test: Path, out: Path, predictions: Path, device: torch.device, quiet: bool) -> dict:
    """``evaluate`` from Python: a segmenter run's last checkpoint on the rendered test faces."""
    from datasetgan.evaluation.evaluate import evaluate, save_predictions
    from datasetgan.evaluation.report import write_outputs
    from datasetgan.segmenter.data import collect_items

    items, spec = collect_items("segmentation", images=test / "images", labels=test / "labels",
                                spec=test / "spec.json")
    ev = evaluate(run, items, spec, device, quiet=quiet)
    write_outputs(out, ev, items, spec, title=f"Evaluation of {run.name}")
    save_predictions(predictions, ev, items, spec)
    return ev.metrics


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
                                                                        seeds, cfg.labelled.truncation):
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
    device = resolve_device(cfg.device)

    tl.stage("generator")
    generator = resolve_generator(cfg, out)

    tl.stage("sample")
    seeds = cfg.labelled.seed_list
    samples = out / "samples"
    sample_to_folder(load_generator(generator, device=device), cfg.labelled, samples, generator, quiet=cfg.quiet)

    tl.stage("labels")
    labels = make_labels(cfg, samples, out, seeds)

    tl.stage("train-interpreter")
    interpreter = out / "interpreter"
    train_interpreter(samples, labels, load_label_spec(spec_path), interpreter, cfg.interpreter, device,
                      task="segmentation", quiet=cfg.quiet)

    tl.stage("synthesize")
    synthetic = out / "synthetic"
    synthesize(load_generator(generator, device=device), Interpreter.load(interpreter, device=device), synthetic,
               cfg.synthesis_run, device, generator_checkpoint=str(generator), interpreter_dir=str(interpreter),
               quiet=cfg.quiet)

    tl.stage("render test set")
    test = render_dataset(out / "test", cfg.test_images, cfg.test_seed_start, show_progress=not cfg.quiet)

    tl.stage("train-segmenters (DatasetGAN and baseline)")
    n_synth = len(list((synthetic / "images").glob("*.png")))
    repeats = max(1, round(n_synth / len(seeds))) if cfg.baseline_same_steps else 1
    base_images, base_labels = repeat_labelled(samples / "images", labels, seeds, repeats, out / "baseline_data")
    threads = torch.get_num_threads() // 2
    side_by_side = cfg.seg_side_by_side and cfg.device == "cpu" and threads >= 1
    baseline = cfg.baseline_run
    labelled = {"images": base_images, "labels": base_labels, "spec": spec_path}

    def datasetgan_job(epochs: int) -> Job:
        return Job("train-segmenter (DatasetGAN)", train_segmenter,
                   dict(config=replace(cfg.segmenter, epochs=epochs),
                        run=out / "segmenter_datasetgan", device=cfg.device, quiet=cfg.quiet, data=synthetic))

    baseline_job = Job("train-segmenter (baseline)", train_segmenter,
                       dict(config=baseline, run=out / "segmenter_baseline", device=cfg.device,
                            quiet=cfg.quiet or side_by_side, **labelled))
    if side_by_side:
        # Both take the same steps per epoch, so only the DatasetGAN run shows a progress bar. Once the
        # baseline has its epochs, the DatasetGAN run resumes alone on every thread.
        run_side_by_side([datasetgan_job(baseline.epochs), baseline_job], threads)
        if cfg.segmenter.epochs > baseline.epochs:
            if not cfg.quiet:
                print(f"baseline done after {baseline.epochs} epochs; DatasetGAN segmenter goes on alone "
                      f"to {cfg.segmenter.epochs} epochs on {torch.get_num_threads()} threads", flush=True)
            datasetgan_job(cfg.segmenter.epochs).run()
    else:
        datasetgan_job(cfg.segmenter.epochs).run()
        baseline_job.run()

    models = ["datasetgan", "baseline"]
    if cfg.finetune_epochs:
        # The DatasetGAN segmenter goes on for a short while on the labelled samples (the baseline's data):
        # their labels are a person's (here the annotator's), crisper than the interpreter's. Its BatchNorm
        # statistics, from the synthetic set, stay: a few images estimate them poorly.
        tl.stage("fine-tune the DatasetGAN segmenter on the labelled samples")
        finetune = replace(cfg.segmenter, epochs=cfg.finetune_epochs, lr=cfg.finetune_lr, weight_decay=0.0,
                           init=str(out / "segmenter_datasetgan"), freeze_bn=True)
        train_segmenter(finetune, out / "segmenter_finetuned", cfg.device, cfg.quiet, **labelled)
        models.append("finetuned")

    tl.stage("evaluate")
    for name in models:
        evaluate_run(out / f"segmenter_{name}", test, out / f"eval_{name}", out / "predictions" / name,
                     device, cfg.quiet)

    tl.stage("report")
    from datasetgan.demo.uncertainty import pick_seeds, write_uncertainty_maps

    precision = read_json(synthetic / "dataset.json").get("first_layer_precision", "float32")  # as synthesize's
    write_uncertainty_maps(generator, interpreter, pick_seeds(synthetic / "manifest.jsonl"), cfg.synthesis.truncation,
                           out / "uncertainty", precision=precision)
    results = collect_results(cfg, out, n_synth=n_synth, baseline_repeats=repeats)
    tl.done()
    results["seconds"] = {**tl.seconds, "total": round(tl.total, 1)}
    write_json(out / "results.json", results)
    write_report(out, results)
    print_table(results)
    return results

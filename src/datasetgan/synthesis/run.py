"""Labelled data set generation, resumable and independent of the batch size.

Seeds are rendered ``--batch-size`` at a time with each sample computed as
if alone (``render.py``), and labelled image by image (``predict``), so a
seed's files are byte-identical whatever the batch size and whichever seeds
an interrupted run had already done (on the same machine and thread count).

Layout while running (``OUT/.staging/``): ``run.json`` (the arguments that
define the data set) and, per seed, the image, the label and last a record
``<seed:06d>.json`` (uncertainty score, class counts or keypoints). A seed
counts as done when its record exists, and every file is written atomically,
so an interrupted run restarted with the same arguments renders only the
missing seeds. When all ``N`` candidates exist, the most uncertain are
dropped (ties broken by seed), the kept files are linked to their final
names, and ``dataset.json`` is written last: its presence means the data set
is complete.

Several processes can render one data set, and the result equals a single
run's (the run key does not include how the work was split):

- under ``torchrun`` (``dist``), rank ``r`` of ``w`` renders every ``w``-th
  seed from the ``r``-th on its own device; after a barrier, rank 0
  finishes. A rank that fails makes the others fail at the barrier (torchrun
  stops them anyway); the staged seeds stay, so the same command resumes;
- started by hand with ``shard=(i, n)`` (``--shard i/n``; one machine, or
  several sharing the folder), a process renders every ``n``-th seed from
  the ``i``-th. The one that ends with every seed of the run staged finishes;
  a run without a shard renders whatever is missing, then finishes.

Finishing is claimed first (``claim.py``: an exclusive-create file), so two
processes that end at once cannot both finish. A process that comes late,
after another finished and removed ``.staging/``, stops before its next batch
and removes the staging folder it recreated; ``dataset.json``, written
before ``.staging/`` is removed, is what every process checks.

``config.format``: ``png`` places the kept files under ``images/`` and
``labels/``; ``webdataset`` writes them into tar shards (``shards.py``).

Beyond the reference, which only drops whole images, ``ignore_pixels_above``
also leaves a kept image's most uncertain pixels unlabelled (its
``ignore_index`` in the label file and in ``dataset.json``): they are mostly
part borders and small parts the ensemble disagrees on, and a segmenter
learns more from no label there than from a wrong one.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from datasetgan.core.distributed import DistInfo, barrier
from datasetgan.core.errors import UserError
from datasetgan.core.fileio import read_json, read_jsonl, write_json
from datasetgan.core.images import save_png, to_uint8
from datasetgan.core.progress import progress
from datasetgan.core.signals import Interrupted, StopFlag
from datasetgan.generator import Generator, generator_fingerprint
from datasetgan.interpreter.artifact import Interpreter
from datasetgan.interpreter.predict import Workspace, first_layer_precision
from datasetgan.labels import write_label_map
from datasetgan.synthesis import claim
from datasetgan.synthesis.config import SynthesisConfig
from datasetgan.synthesis.finish import finalise, unlabelled_id
from datasetgan.synthesis.render import padded_batch_size, render_batch

STAGING = ".staging"
# How long a rank that has staged its share waits at the barrier for the slowest one.
FINISH_TIMEOUT = timedelta(days=7)


def run_key(config: SynthesisConfig, generator_fp: str, interpreter_fp: str,
            first_layer_dtype: torch.dtype = torch.float32) -> dict:
    """Everything that determines the data set (not the batch size or device;
    the first layer's matmul dtype, which ``auto`` picks by device, is in it). ``n`` is
    ``num_images`` under its earlier name, so that data sets of earlier versions resume."""
    return {"generator": generator_fp, "interpreter": interpreter_fp, "seed_start": config.seed_start,
            "n": config.num_images, "truncation": config.truncation, "truncation_cutoff": config.truncation_cutoff,
            "drop_uncertain": config.drop_uncertain, "class_idx": config.class_idx,
            # only when set, so that the data sets of earlier versions keep their keys
            **({"ignore_pixels_above": config.ignore_pixels_above} if config.ignore_pixels_above is not None else {}),
            **({"first_layer": "bfloat16"} if first_layer_dtype == torch.bfloat16 else {}),
            **({"format": config.format, "shard_size": config.shard_size} if config.format != "png" else {})}


def _record_path(staging: Path, seed: int) -> Path:
    return staging / f"{seed:06d}.json"


def _write_candidate(staging: Path, seed: int, image: np.ndarray, pred, i: int, interp: Interpreter,
                     ignore_above: float | None) -> None:
    """One seed's staged files; the record goes last and marks the seed done."""
    record: dict = {"seed": seed, "uncertainty": float(pred.scores[i])}
    save_png(staging / f"{seed:06d}.image.png", image)
    if interp.task == "segmentation":
        labels = pred.labels[i].numpy().astype(np.uint8)
        counts = np.bincount(labels.reshape(-1), minlength=interp.spec.num_classes)
        if ignore_above is not None:
            unsure = pred.uncertainty[i].numpy() > ignore_above
            counts -= np.bincount(labels[unsure], minlength=interp.spec.num_classes)
            labels[unsure] = unlabelled_id(interp.spec)
            record["unlabelled_pixels"] = int(unsure.sum())
        write_label_map(staging / f"{seed:06d}.label.png", labels, interp.spec)
        record["class_pixels"] = {name: int(c) for name, c in zip(interp.spec.classes, counts)}
    else:
        record["keypoints"] = [[round(float(x), 3), round(float(y), 3), int(v)]
                               for x, y, v in pred.keypoints[i].tolist()]
    write_json(_record_path(staging, seed), record)


def _unstaged(staging: Path, seeds: list[int]) -> list[int]:
    """``seeds`` whose record (the mark of a finished seed) is not in ``staging``."""
    return [s for s in seeds if not _record_path(staging, s).exists()]


def _read_object(path: Path) -> dict:
    """A JSON object this module wrote; a damaged one is a ``UserError`` naming it."""
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a JSON object; remove the file (or the folder) and run again")
    return obj


def _check_run(out: Path, key: dict) -> bool:
    """True when ``out`` already holds this exact data set; errors for a different one."""
    done = out / "dataset.json"
    if done.exists():
        old = _read_object(done).get("run")
        if old != key:
            raise UserError(f"--out {out}: already holds a different data set ({done}); choose another folder")
        return True
    staged = out / STAGING / "run.json"
    if staged.exists():
        try:
            old = _read_object(staged)
        except UserError:
            if done.exists():  # finished (and .staging/ removed) by another process meanwhile
                return _check_run(out, key)
            raise
        if old != key:
            diff = sorted(k for k in {**old, **key} if key.get(k) != old.get(k))
            raise UserError(f"--out {out}: holds an unfinished run with different settings "
                            f"({'; '.join(_setting_change(k, old, key) for k in diff)}); restart it with "
                            "the same arguments or use another folder")
    return False


# Run-key entries whose flag is not named after them: (flag, what the entry's absence means).
_KEY_FLAGS = {"first_layer": ("--precision", "float32"),  # what --precision resolved to
              "n": ("--num-images", "not set"), "format": ("--format", "png"),
              "shard_size": ("--shard-size", "not set")}


def _setting_change(name: str, old: dict, new: dict) -> str:
    """One run-key entry that differs, as the flag that sets it and both values."""
    if name in ("generator", "interpreter"):  # fingerprints: the flag says enough
        return f"{name}: --{name} is another one"
    flag, unset = _KEY_FLAGS.get(name, ("--" + name.replace("_", "-"), "not set"))
    return f"{name}: {flag} {old.get(name, unset)} there, {new.get(name, unset)} now"


@torch.no_grad()
def render_candidates(G: Generator, interp: Interpreter, config: SynthesisConfig, staging: Path,
                      device: torch.device, quiet: bool = False,
                      first_layer_dtype: torch.dtype = torch.float32, seeds: Sequence[int] | None = None,
                      desc: str = "synthesize", finished: Callable[[], bool] = lambda: False) -> None:
    """Render and label every seed of ``seeds`` (default: the shard's) whose record is missing.

    Before each batch: returns early when ``finished()`` (another process has
    finished the data set), and SIGINT or SIGTERM stops the run (``Interrupted``)
    with the seeds staged so far kept.
    """
    interp.bind(G)
    mine = list(config.shard_seeds if seeds is None else seeds)
    todo = _unstaged(staging, mine)
    c = None
    if G.c_dim:
        if config.class_idx is None or not 0 <= config.class_idx < G.c_dim:
            raise UserError(f"--class-idx: this generator is conditional; give a class in [0, {G.c_dim})")
        c = torch.zeros(G.c_dim)
        c[config.class_idx] = 1
    interp.model.to(device)
    bar = progress(desc=desc, total=len(mine), initial=len(mine) - len(todo), unit="img", disable=quiet)
    # Every call renders a fixed number of samples (the last batch padded), each
    # sample computed as if alone (render.py); the interpreter labels each image
    # on its own. So a seed's files do not depend on --batch-size, on which
    # seeds an interrupted run had already done, or on the shard or rank (the
    # padded size comes from the whole run's number of seeds).
    size = padded_batch_size(config.batch_size, config.num_images)
    workspace = Workspace()

    def write(batch: list[int], images: np.ndarray, pred) -> None:
        for i, seed in enumerate(batch):
            _write_candidate(staging, seed, images[i], pred, i, interp, config.ignore_pixels_above)
            bar.update(1)

    # A batch's files are written (PNG encoding releases the GIL) while the next
    # batch renders; at most one batch is in flight, and its errors (or an
    # interruption) surface before another batch is handed over.
    with StopFlag() as stop, ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        for start in range(0, len(todo), size):
            if stop.signum is not None:
                if pending is not None:
                    pending.result()
                bar.close()
                raise Interrupted(stop.name)
            if finished():
                break
            batch = todo[start:start + size]
            img, maps = render_batch(G, batch, size, config.truncation, config.truncation_cutoff, c=c)
            pred = interp.predict(maps, img, workspace=workspace, first_layer_dtype=first_layer_dtype)
            pred = type(pred)(**{k: (v.cpu() if isinstance(v, torch.Tensor) else v)
                                 for k, v in vars(pred).items()})
            if pending is not None:
                pending.result()
            pending = writer.submit(write, batch, to_uint8(img), pred)
        if pending is not None:
            pending.result()
    bar.close()


def synthesize(G: Generator, interp: Interpreter, out: str | Path, config: SynthesisConfig,
               device: torch.device, generator_checkpoint: str = "", interpreter_dir: str = "",
               quiet: bool = False, dist: DistInfo = DistInfo(), group=None) -> dict | None:
    """Make (or finish) the data set in ``out``; returns the ``dataset.json`` content.

    Returns None where this process does not finish it: with ``config.shard``
    while seeds of other shards are missing (see ``missing_seeds``), on ranks
    other than 0 under ``torchrun`` (``dist``; every rank calls this, and
    ``group`` is the process group of the barrier), and while another process
    holds the finishing claim (``claim.read_claim``).
    """
    out = Path(out)
    if config.ignore_pixels_above is not None and interp.task != "segmentation":
        raise UserError("--ignore-pixels-above: only for segmentation interpreters (this one predicts keypoints)")
    interp.selected_features(G, source=interpreter_dir or "--interpreter")  # fingerprint check
    first_layer_dtype = first_layer_precision(device, config.precision)
    key = run_key(config, generator_fingerprint(G), interp.fingerprint(), first_layer_dtype)
    done = out / "dataset.json"
    if not _check_run(out, key):
        staging = out / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        write_json(staging / "run.json", key)
        desc = "synthesize" + "".join(
            [f" (shard {config.shard[0]}/{config.shard[1]})" if config.shard is not None else "",
             f" (rank {dist.rank}/{dist.world_size})" if dist.enabled else ""])
        try:
            render_candidates(G, interp, config, staging, device, quiet or not dist.is_main, first_layer_dtype,
                              seeds=config.shard_seeds[dist.rank::dist.world_size], desc=desc,
                              finished=done.exists)
        except FileNotFoundError:  # .staging/ removed under this process by one that finished the data set
            if not done.exists():
                raise
    if dist.enabled:
        _wait_for_ranks(dist, group, out)
    if not dist.is_main:
        return None
    return _finish(out, interp, config, key, generator_checkpoint, interpreter_dir)


def _wait_for_ranks(dist: DistInfo, group, out: Path) -> None:
    """The barrier after which rank 0 finishes; a rank that died makes it fail at once (gloo).

    torchrun stops the other ranks (SIGTERM) when one fails: the signal is held until the
    barrier has failed too, so that this rank says what happened."""
    failed: Exception | None = None
    with StopFlag() as stop:
        try:
            barrier(dist, group)
        except RuntimeError as exc:  # torch's DistBackendError: a peer closed its connection
            failed = exc
    if failed is not None:
        raise UserError(f"rank {dist.rank} of {dist.world_size}: another rank ended before staging its share of "
                        f"the seeds (torchrun's report names it; {type(failed).__name__}). The seeds staged so far "
                        f"are kept in {out / STAGING}: run the same command again to resume") from None
    if stop.signum is not None:   # every seed staged, but asked to stop: the next run finishes
        raise Interrupted(stop.name)


def _finish(out: Path, interp: Interpreter, config: SynthesisConfig, key: dict, generator_checkpoint: str,
            interpreter_dir: str) -> dict | None:
    """Finish the data set if every seed is staged and no other process is finishing it."""
    done = out / "dataset.json"
    if not done.exists():
        if missing_seeds(out, config):
            return None
        if claim.acquire(out) is not None:
            return None
        try:
            if not done.exists():   # (or another process finished between the check and the claim)
                staging = out / STAGING
                records = [_read_object(_record_path(staging, s)) for s in config.seeds]
                return finalise(out, staging, records, interp, config, key, generator_checkpoint,
                                interpreter_dir)
        finally:
            claim.release(out)
    # Finished before: a process that came late may have recreated .staging/.
    shutil.rmtree(out / STAGING, ignore_errors=True)
    return _read_object(done)


def missing_seeds(out: str | Path, config: SynthesisConfig) -> list[int]:
    """The seeds of the whole run whose staged record does not exist yet."""
    return _unstaged(Path(out) / STAGING, config.seeds)


def read_manifest(out: str | Path) -> list[dict]:
    return read_jsonl(Path(out) / "manifest.jsonl")

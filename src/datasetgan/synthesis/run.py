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

import json
import math
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from datasetgan.core.distributed import DistInfo, barrier
from datasetgan.core.errors import UserError
from datasetgan.core.fileio import atomic_path, read_json, read_jsonl, write_json
from datasetgan.core.images import save_png, to_uint8
from datasetgan.core.progress import progress
from datasetgan.core.signals import Interrupted, StopFlag
from datasetgan.generator import Generator, generator_fingerprint
from datasetgan.interpreter.artifact import Interpreter
from datasetgan.interpreter.predict import Workspace, first_layer_precision
from datasetgan.labels import IGNORE, LabelSpec, write_keypoints, write_label_map
from datasetgan.synthesis import claim
from datasetgan.synthesis.config import SynthesisConfig
from datasetgan.synthesis.render import padded_batch_size, render_batch
from datasetgan.synthesis.outputs import write_coco_keypoints, write_contact_sheet
from datasetgan.synthesis.shards import SHARD_DIR, SHARD_PATTERN, sample_json, shard_count, shard_path, write_shard

FORMAT = "datasetgan-dataset"
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


def unlabelled_id(spec: LabelSpec) -> int:
    """The id that unlabelled pixels carry in the label files: the spec's ``ignore_index``, else ``IGNORE``."""
    return IGNORE if spec.ignore_index is None else spec.ignore_index


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
                print(f"synthesize: stopped by {stop.name} with {len(mine) - len(_unstaged(staging, mine))} of "
                      f"this process's {len(mine)} seeds staged ({staging}); run the same command again to "
                      "resume", file=sys.stderr, flush=True)
                raise Interrupted(str(staging))
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


def select(records: list[dict], keep: int) -> tuple[list[dict], list[dict]]:
    """Drop the most uncertain: sort by (score, seed), keep the first ``keep``.
    Returns ``(kept, dropped)``, each in seed order."""
    ranked = sorted(records, key=lambda r: (r["uncertainty"], r["seed"]))
    kept = sorted(ranked[:keep], key=lambda r: r["seed"])
    dropped = sorted(ranked[keep:], key=lambda r: r["seed"])
    return kept, dropped


def _place(src: Path, dst: Path) -> None:
    """Put a staged file under its final name atomically: a hard link under a
    temporary name renamed onto ``dst`` (a copy where links are not possible)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and os.path.samefile(src, dst):  # placed by an interrupted finalise
        return
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.link")
    try:
        os.link(src, tmp)
    except FileExistsError:  # left by an interrupted run of this process id
        tmp.unlink()
        os.link(src, tmp)
    except OSError:
        with atomic_path(dst) as copy:
            shutil.copyfile(src, copy)
        return
    os.replace(tmp, dst)
    if tmp.exists():  # rename() between two links of one file does nothing
        tmp.unlink()


def _write_shards(out: Path, staging: Path, manifest: list[dict], shard_size: int, task: str) -> None:
    """The kept samples as tar shards, ``shard_size`` each; a shard that exists (written
    whole, under a temporary name first) was written by an interrupted finishing step."""
    for index in range(shard_count(len(manifest), shard_size)):
        path = out / shard_path(index)
        if path.exists():
            continue
        members: list[tuple[str, Path | bytes]] = []
        for entry in manifest[index * shard_size:(index + 1) * shard_size]:
            key = entry["key"]
            members.append((f"{key}.png", staging / f"{key}.image.png"))
            if task == "segmentation":
                members.append((f"{key}.label.png", staging / f"{key}.label.png"))
            members.append((f"{key}.json", sample_json(entry)))
        write_shard(path, members)


def finalise(out: Path, interp: Interpreter, config: SynthesisConfig, key: dict,
             generator_checkpoint: str, interpreter_dir: str) -> dict:
    """Write the final files from the staged ones (every seed staged), ``dataset.json`` last,
    then remove ``.staging/``. Started again after an interruption, it writes the same files."""
    staging = out / STAGING
    records = [_read_object(_record_path(staging, s)) for s in config.seeds]
    kept, dropped = select(records, config.keep_count)
    webdataset = config.format == "webdataset"
    manifest = []
    for i, r in enumerate(kept):
        stem = f"{r['seed']:06d}"
        entry = {"seed": r["seed"], "uncertainty": r["uncertainty"]}
        if webdataset:   # the files go into the shards below
            entry["shard"], entry["key"] = shard_path(i // config.shard_size), stem
        else:
            entry["image"] = f"images/{stem}.png"
            _place(staging / f"{stem}.image.png", out / entry["image"])
        if interp.task == "segmentation":
            if not webdataset:
                entry["label"] = f"labels/{stem}.png"
            entry["class_pixels"] = r["class_pixels"]
            if "unlabelled_pixels" in r:
                entry["unlabelled_pixels"] = r["unlabelled_pixels"]
            if not webdataset:
                _place(staging / f"{stem}.label.png", out / entry["label"])
        else:
            if not webdataset:
                entry["label"] = f"labels/{stem}.json"
            entry["keypoints"] = r["keypoints"]
            if not webdataset:
                write_keypoints(out / entry["label"], r["keypoints"], interp.spec)
        manifest.append(entry)
    if webdataset:
        _write_shards(out, staging, manifest, config.shard_size, interp.task)
    with atomic_path(out / "manifest.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(e) + "\n" for e in manifest), encoding="utf-8")
    if interp.task == "keypoints":
        write_coco_keypoints(out / "keypoints_coco.json", manifest, interp.spec, interp.out_size)

    def staged_files(entry: dict) -> tuple[Path, Path | None]:
        stem = entry["key"]
        return staging / f"{stem}.image.png", staging / f"{stem}.label.png" if interp.task == "segmentation" else None
    write_contact_sheet(out, manifest, interp.spec, interp.task, [r["seed"] for r in dropped],
                        files=staged_files if webdataset else None)
    unlabelled = {}
    if config.ignore_pixels_above is not None or interp.spec.ignore_index is not None:
        unlabelled["ignore_index"] = unlabelled_id(interp.spec)
    if config.ignore_pixels_above is not None:
        unlabelled["unlabelled"] = {
            "above_js": config.ignore_pixels_above,
            "pixel_fraction": round(sum(e["unlabelled_pixels"] for e in manifest)
                                    / max(1, len(manifest) * math.prod(interp.out_size)), 6)}
    info = {
        "format": FORMAT, "version": 1, "task": interp.task,
        "classes": list(interp.spec.classes), "palette": [list(c) for c in interp.spec.palette],
        "keypoints": list(interp.spec.keypoints or []), **unlabelled,
        "keypoint_convention": "pixels; (0, 0) is the centre of the top-left pixel",
        "generator": {"checkpoint": generator_checkpoint, "fingerprint": key["generator"]},
        "interpreter": {"path": interpreter_dir, "fingerprint": key["interpreter"]},
        "seeds": {"start": config.seed_start, "n": config.num_images}, "kept": len(kept),
        "dropped_seeds": [r["seed"] for r in dropped],
        "truncation": config.truncation, "truncation_cutoff": config.truncation_cutoff,
        "drop_uncertain": config.drop_uncertain, "first_layer_precision": key.get("first_layer", "float32"),
        "uncertainty": "mean of the top 10% per-pixel "
        + ("Jensen-Shannon divergence of the ensemble" if interp.task == "segmentation"
           else "ensemble variance of the heatmaps"),
        "files": {"manifest": "manifest.jsonl", "contact_sheet": "contact_sheet.png", "report": "index.html",
                  **({"coco_keypoints": "keypoints_coco.json"} if interp.task == "keypoints" else {}),
                  **({"shards": SHARD_DIR + "/"} if webdataset else {})},
        **({"layout": "webdataset",
            "shards": {"pattern": f"{SHARD_DIR}/{SHARD_PATTERN}", "count": shard_count(len(kept), config.shard_size),
                       "samples_per_shard": config.shard_size}} if webdataset else {}),
        "run": key,
    }
    write_json(out / "dataset.json", info)  # last: marks the data set complete
    shutil.rmtree(staging, ignore_errors=True)
    return info


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
    """The barrier after which rank 0 finishes; a rank that died makes it fail at once (gloo)."""
    try:
        barrier(dist, group)
    except RuntimeError as exc:  # torch's DistBackendError: a peer closed its connection
        raise UserError(f"rank {dist.rank} of {dist.world_size}: another rank ended before staging its share of "
                        f"the seeds (torchrun's report names it; {type(exc).__name__}). The seeds staged so far are "
                        f"kept in {out / STAGING}: run the same command again to resume") from None


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
                return finalise(out, interp, config, key, generator_checkpoint, interpreter_dir)
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

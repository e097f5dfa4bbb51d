"""Run folders and resumable snapshots in the project's own format (no pickles).

A run folder (``train-gan --out RUN``) holds ``training_options.json``,
``stats.jsonl``, sample grids and ``snapshots/kimg-000012.288/``. (Earlier
releases numbered run folders under a parent, ``RUNS/00003-<name>/``; the
deprecated ``--outdir RUNS`` still does.) A snapshot is

- ``G_ema/``, ``G/``: ``config.json`` + ``model.safetensors`` (``Generator.save_pretrained``);
  ``load_generator(snapshot)`` reads ``G_ema``.
- ``D/``: the discriminator, same layout.
- ``optim.safetensors``: both Adam states (``G.<i>.exp_avg``, ...), ``state.json``: counters,
  data position, augment ``p``, ADA/path-length accumulators, optimiser hyper-parameters and
  the run's options.
- ``rng-rank<r>.safetensors``: every process's CPU and CUDA RNG states and its own
  accumulators (ADA sign sums, path-length mean).

It is written to a hidden temporary folder and renamed into place, so a
snapshot folder is complete or absent.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Mapping

import torch

from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.fileio import write_json
from datasetgan.core.training_state import (atomic_dir, load_optimizer, load_state, optimizer_tensors, prefixed,
                                            restore_rng, rng_tensors, save_state, unprefixed)

FORMAT = "datasetgan.train-gan-snapshot"
FORMAT_VERSION = 1
_RUN_RE = re.compile(r"^(\d{5})-")
_SNAP_RE = re.compile(r"^kimg-(\d+\.\d+)$")


def snapshot_name(nimg: int) -> str:
    """``kimg-000012.288``: fixed width, so names sort like the image counts."""
    return f"kimg-{nimg / 1000:010.3f}"


def new_run_dir(out: str | Path, name: str) -> Path:
    """Create ``out/<next id>-<name>`` (ids one above the highest present): the layout of ``--outdir``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = [int(m.group(1)) for p in out.iterdir() if p.is_dir() and (m := _RUN_RE.match(p.name))]
    run_id = max(ids, default=-1) + 1
    while True:
        path = out / f"{run_id:05d}-{name}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            run_id += 1


def list_snapshots(run_dir: Path) -> list[Path]:
    """Complete snapshots of a run, oldest first."""
    snaps = run_dir / "snapshots"
    if not snaps.is_dir():
        return []
    found = [p for p in snaps.iterdir() if p.is_dir() and _SNAP_RE.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: float(_SNAP_RE.match(p.name).group(1)))


def numbered_runs(parent: str | Path) -> list[Path]:
    """Run folders ``<5 digits>-<name>`` in ``parent`` (the layout of ``--outdir``), newest first."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    runs = [p for p in parent.iterdir() if p.is_dir() and _RUN_RE.match(p.name)
            and ((p / "training_options.json").is_file() or (p / "snapshots").is_dir())]
    return sorted(runs, key=lambda p: int(_RUN_RE.match(p.name).group(1)), reverse=True)


def holds_old_layout(folder: str | Path) -> bool:
    """``folder`` is no run itself but the parent of numbered run folders (``--out`` of earlier releases)."""
    folder = Path(folder)
    return (not (folder / "training_options.json").is_file() and not (folder / "snapshots").is_dir()
            and bool(numbered_runs(folder)))


def old_layout_hint(folder: str | Path) -> str:
    """For errors about ``--out folder``: what to give instead when it holds numbered run folders."""
    if not holds_old_layout(folder):
        return ""
    newest = numbered_runs(folder)[0]
    return (f"; it holds numbered run folders, as --out did before it became the run folder itself: "
            f"--out {newest} continues the newest, --outdir {folder} (deprecated) keeps the old layout")


def find_resume(spec: str, run: str | Path | None) -> Path:
    """``latest`` -> the newest snapshot of the run folder ``run`` (``--out``);
    a run folder -> its newest snapshot; a snapshot folder -> itself."""
    if spec == "latest":
        if run is None:
            raise UserError("--resume latest: needs --out RUN, the run folder to continue")
        snaps = list_snapshots(Path(run))
        if snaps:
            return snaps[-1]
        raise UserError(f"--resume latest: no snapshot in {run}{old_layout_hint(run)}")
    path = Path(spec)
    if not path.exists():
        raise UserError(f"--resume {spec}: not found")
    if (path / "state.json").is_file():
        return path
    if path.is_dir():
        snaps = list_snapshots(path)
        if snaps:
            return snaps[-1]
    raise UserError(f"--resume {spec}: not a train-gan snapshot (no state.json) nor a run folder with snapshots"
                    f"{old_layout_hint(path)}")


def newest_in_runs(parent: str | Path) -> Path:
    """The newest snapshot of the newest numbered run in ``parent`` that has one (``--outdir PARENT
    --resume latest``, deprecated)."""
    for run in numbered_runs(parent):
        snaps = list_snapshots(run)
        if snaps:
            return snaps[-1]
    raise UserError(f"--resume latest: no run with a snapshot in {parent}")


def read_state(snapshot: Path) -> dict:
    """``state.json`` of a snapshot, checked for the format marker."""
    path = snapshot / "state.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(path, f"not readable ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(path, f"not a train-gan snapshot (missing \"format\": \"{FORMAT}\")")
    if not isinstance(state.get("version"), int) or state["version"] > FORMAT_VERSION:
        raise CheckpointError(path, f"snapshot version {state.get('version')!r} is not supported")
    return state


def optimizers_to_tensors(opts: Mapping[str, torch.optim.Optimizer]) -> tuple[dict[str, torch.Tensor], dict]:
    """Every optimiser's state as tensors ``<name>.<i>.<state>`` and its param groups by name
    (``state.json``'s ``optim``)."""
    tensors, meta = {}, {}
    for name, opt in opts.items():
        tensors_of, meta[name] = optimizer_tensors(name, opt)
        tensors.update(tensors_of)
    return tensors, meta


def load_optimizers(opts: Mapping[str, torch.optim.Optimizer], tensors: Mapping[str, torch.Tensor],
                    meta: Mapping[str, dict], snapshot: Path) -> None:
    """Put back what ``optimizers_to_tensors`` gave."""
    for name, opt in opts.items():
        load_optimizer(opt, name, tensors, meta[name], snapshot)


def write_snapshot(run_dir: Path, name: str, nets: dict[str, torch.nn.Module], opt_tensors: dict[str, torch.Tensor],
                   state: dict, rng_files: dict[int, dict[str, torch.Tensor]] | None = None,
                   tmp: Path | None = None) -> Path:
    """Write ``run_dir/snapshots/<name>/`` atomically and return its path.

    ``nets`` maps ``G_ema``, ``G``, ``D`` to modules with ``save_pretrained``. With
    several processes, the other ranks have already put their ``rng-rank<r>`` files in ``tmp``.
    """
    final = run_dir / "snapshots" / name
    # Resumed from an older snapshot and reached the same count again: it is replaced.
    with atomic_dir(final, tmp or temp_snapshot_dir(run_dir, name)) as tmp:
        for key, net in nets.items():
            net.save_pretrained(tmp / key)
        save_state(tmp / "optim.safetensors", opt_tensors)
        for rank, tensors in (rng_files or {}).items():
            save_state(tmp / f"rng-rank{rank}.safetensors", tensors)
        write_json(tmp / "state.json", {"format": FORMAT, "version": FORMAT_VERSION, **state})
    return final


def temp_snapshot_dir(run_dir: Path, name: str) -> Path:
    return run_dir / "snapshots" / f".tmp-{name}"


def rank_rng(device: torch.device, local: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """This process's RNG states as uint8 tensors, plus its ``local`` accumulators (``local.<name>``)."""
    local = {k: v.detach().cpu().reshape(-1) for k, v in (local or {}).items()}
    return {**rng_tensors(device), **prefixed("local.", local)}


def save_rank_rng(path: Path, device: torch.device, local: dict[str, torch.Tensor] | None = None) -> None:
    """``rank_rng`` to ``path`` (``rng-rank<r>.safetensors``)."""
    save_state(path, rank_rng(device, local))


def restore_rank_rng(snapshot: Path, rank: int, device: torch.device) -> dict[str, torch.Tensor] | None:
    """Restore this rank's RNG and return its local accumulators; ``None`` when the snapshot
    has no file for this rank (it was written by another number of processes)."""
    path = snapshot / f"rng-rank{rank}.safetensors"
    if not path.is_file():
        return None
    tensors, _ = load_state(path)
    restore_rng(tensors, device)
    return unprefixed("local.", tensors)


def prune_snapshots(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` snapshots (``keep <= 0``: keep all)."""
    if keep <= 0:
        return
    for old in list_snapshots(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)

"""Run folders and resumable snapshots in the project's own format (no pickles).

A run folder ``RUNS/00003-<name>/`` holds ``training_options.json``,
``stats.jsonl``, sample grids and ``snapshots/kimg-000012.288/``. A snapshot is

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
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.fileio import atomic_path, write_json
from datasetgan.core.weights import read_weights

FORMAT = "datasetgan.train-gan-snapshot"
FORMAT_VERSION = 1
_RUN_RE = re.compile(r"^(\d{5})-")
_SNAP_RE = re.compile(r"^kimg-(\d+\.\d+)$")


def snapshot_name(nimg: int) -> str:
    """``kimg-000012.288``: fixed width, so names sort like the image counts."""
    return f"kimg-{nimg / 1000:010.3f}"


def new_run_dir(out: str | Path, name: str) -> Path:
    """Create ``out/<next id>-<name>`` (ids one above the highest present)."""
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


def find_resume(spec: str, out: str | Path) -> Path:
    """``latest`` -> the newest snapshot of the newest run in ``out`` that has one;
    a run folder -> its newest snapshot; a snapshot folder -> itself."""
    if spec == "latest":
        out = Path(out)
        runs = sorted((p for p in out.iterdir() if p.is_dir() and _RUN_RE.match(p.name)),
                      key=lambda p: int(_RUN_RE.match(p.name).group(1)), reverse=True) if out.is_dir() else []
        for run in runs:
            snaps = list_snapshots(run)
            if snaps:
                return snaps[-1]
        raise UserError(f"--resume latest: no run with a snapshot in {out}")
    path = Path(spec)
    if not path.exists():
        raise UserError(f"--resume {spec}: not found")
    if (path / "state.json").is_file():
        return path
    if path.is_dir():
        snaps = list_snapshots(path)
        if snaps:
            return snaps[-1]
    raise UserError(f"--resume {spec}: not a train-gan snapshot (no state.json) nor a run folder with snapshots")


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


def optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Adam state as flat tensors ``<prefix>.<i>.<name>`` plus its JSON-ready param groups."""
    sd = opt.state_dict()
    tensors = {}
    for i, st in sd["state"].items():
        for k, v in st.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"{prefix}.{i}.{k}"] = t.detach().cpu().contiguous()
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor],
                   meta: dict, source: Path) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        if not key.startswith(prefix + "."):
            continue
        _, i, name = key.split(".", 2)
        state.setdefault(int(i), {})[name] = t
    groups = meta["param_groups"]
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(source, f"optimiser state {prefix!r} does not fit ({exc})") from None
    # Saved moments are contiguous; a channels-last parameter (D on CUDA) needs its moments in its
    # own layout, or the fused Adam kernel refuses the step.
    for group in opt.param_groups:
        for param in group["params"]:
            moments = opt.state.get(param, {})
            for name, value in moments.items():
                if value.shape == param.shape and value.stride() != param.stride():
                    moments[name] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def write_snapshot(run_dir: Path, name: str, nets: dict[str, torch.nn.Module], opt_tensors: dict[str, torch.Tensor],
                   state: dict, rng_files: dict[int, dict[str, torch.Tensor]] | None = None,
                   tmp: Path | None = None) -> Path:
    """Write ``run_dir/snapshots/<name>/`` atomically and return its path.

    ``nets`` maps ``G_ema``, ``G``, ``D`` to modules with ``save_pretrained``. With
    several processes, the other ranks have already put their ``rng-rank<r>`` files in ``tmp``.
    """
    final = run_dir / "snapshots" / name
    tmp = tmp or temp_snapshot_dir(run_dir, name)
    tmp.mkdir(parents=True, exist_ok=True)
    for key, net in nets.items():
        net.save_pretrained(tmp / key)
    save_file(opt_tensors, str(tmp / "optim.safetensors"))
    for rank, tensors in (rng_files or {}).items():
        save_file(tensors, str(tmp / f"rng-rank{rank}.safetensors"))
    write_json(tmp / "state.json", {"format": FORMAT, "version": FORMAT_VERSION, **state})
    if final.exists():
        # Resumed from an older snapshot and reached the same count again: replace it.
        old = final.with_name(f".old-{name}-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    return final


def temp_snapshot_dir(run_dir: Path, name: str) -> Path:
    return run_dir / "snapshots" / f".tmp-{name}"


def rng_state(device: torch.device, local: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """This process's RNG states as uint8 tensors, plus its ``local`` accumulators (``local.<name>``)."""
    out = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    for k, v in (local or {}).items():
        out[f"local.{k}"] = v.detach().cpu().reshape(-1).contiguous()
    return out


def save_rng(path: Path, device: torch.device, local: dict[str, torch.Tensor] | None = None) -> None:
    with atomic_path(path) as tmp:
        save_file(rng_state(device, local), str(tmp))


def restore_rng(snapshot: Path, rank: int, device: torch.device) -> dict[str, torch.Tensor] | None:
    """Restore this rank's RNG and return its local accumulators; ``None`` when the snapshot
    has no file for this rank (it was written by another number of processes)."""
    path = snapshot / f"rng-rank{rank}.safetensors"
    if not path.is_file():
        return None
    tensors = read_weights(path)
    torch.set_rng_state(tensors["cpu"])
    if device.type == "cuda" and "cuda" in tensors:
        torch.cuda.set_rng_state(tensors["cuda"], device)
    return {k.removeprefix("local."): v for k, v in tensors.items() if k.startswith("local.")}


def prune_snapshots(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` snapshots (``keep <= 0``: keep all)."""
    if keep <= 0:
        return
    for old in list_snapshots(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)

"""The training loop: ``train(cfg) -> run folder``.

One step = NVIDIA's four phases on one global batch: ``Gmain``, ``Greg`` (every
``pl_interval`` steps, if ``pl_weight > 0``), ``Dmain``, ``Dreg`` (R1 every
``r1_interval`` steps), then the G_ema update and, every ``ada_interval``
steps, the ADA ``p`` update. Nothing in a step waits for the GPU: losses stay
on the device until the end of a tick (one sync per tick).
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datasetgan.core.config import config_to_dict
from datasetgan.core.devices import adam_kwargs, resolve_device
from datasetgan.core.errors import UserError
from datasetgan.core.fileio import append_jsonl, write_json
from datasetgan.core.images import grid, save_png, to_uint8
from datasetgan.core.signals import Interrupted, StopFlag
from datasetgan.core.weights import read_weights
from datasetgan.gan_training import checkpoint as ckpt
from datasetgan.gan_training import distributed as ddp
from datasetgan.gan_training.augment import AdaController, AdaptiveAugment, build_augment
from datasetgan.gan_training.config import (GanTrainingConfig, check_architecture, check_world_size,
                                            discriminator_config, generator_config, resolve)
from datasetgan.gan_training.dataset import BatchSource, DataOrder, ImageDataset, load_dataset
from datasetgan.gan_training.discriminator import Discriminator
from datasetgan.gan_training.losses import LossContext
from datasetgan.gan_training.step import StepParts, train_step
from datasetgan.generator import Generator, z_from_seeds


class TrainingInterrupted(Interrupted):
    """Raised after SIGINT/SIGTERM once a resumable snapshot has been written."""


def make_optimizer(module: torch.nn.Module, cfg: GanTrainingConfig, reg_interval: int | None,
                   device: torch.device) -> torch.optim.Adam:
    """Adam with NVIDIA's lazy-regularisation compensation of lr and betas."""
    lr, b1, b2 = cfg.lr, cfg.beta1, cfg.beta2
    if reg_interval:
        ratio = reg_interval / (reg_interval + 1)
        lr, b1, b2 = lr * ratio, b1 ** ratio, b2 ** ratio
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(b1, b2), eps=cfg.eps, **adam_kwargs(device))


def _autocast_dtype(cfg: GanTrainingConfig, device: torch.device) -> torch.dtype | None:
    if cfg.precision == "bfloat16" or (cfg.precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def build_networks(cfg: GanTrainingConfig, device: torch.device) -> tuple[Generator, Generator, Discriminator]:
    """Fresh G, G_ema (a frozen copy) and D, seeded by ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    G = Generator(generator_config(cfg)).train().requires_grad_(False).to(device)
    D = Discriminator(discriminator_config(cfg)).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval()
    return G, G_ema, D


@dataclass
class _State:
    """What a snapshot holds besides the config: networks, optimisers, augmentation and its
    controller, the path-length mean, the data position and the progress counters."""

    G: Generator
    G_ema: Generator
    D: Discriminator
    opt_G: torch.optim.Adam
    opt_D: torch.optim.Adam
    augment: torch.nn.Module | None
    ada: AdaController | None
    pl_mean: torch.Tensor
    order: DataOrder
    cur_nimg: int = 0
    step: int = 0
    tick: int = 0


def _build_state(cfg: GanTrainingConfig, device: torch.device, num_images: int) -> _State:
    """Fresh networks, optimisers and augmentation, at kimg 0."""
    G, G_ema, D = build_networks(cfg, device)
    if cfg.channels_last and device.type == "cuda":
        D = D.to(memory_format=torch.channels_last)
    opt_G = make_optimizer(G, cfg, cfg.pl_interval if cfg.pl_weight > 0 else None, device)
    opt_D = make_optimizer(D, cfg, cfg.r1_interval if cfg.gamma > 0 else None, device)
    augment = build_augment(cfg.aug, cfg.aug_p)
    if augment is not None:
        augment = augment.to(device)
    ada = AdaController(augment, cfg.ada_target, cfg.ada_interval, cfg.ada_kimg) \
        if isinstance(augment, AdaptiveAugment) and cfg.ada_target > 0 else None
    return _State(G=G, G_ema=G_ema, D=D, opt_G=opt_G, opt_D=opt_D, augment=augment, ada=ada,
                  pl_mean=torch.zeros([], device=device), order=DataOrder(num_images, cfg.seed, cfg.flip))


def save_grid(G_ema: Generator, z: torch.Tensor, path: Path, batch: int = 32) -> None:
    """Render ``z [N, z_dim]`` with G_ema (constant noise) into one contact sheet."""
    with torch.no_grad():
        imgs = [to_uint8(G_ema(zb, noise_mode="const")) for zb in z.split(batch)]
    save_png(path, grid(list(np.concatenate(imgs)), columns=min(8, z.shape[0])))


def default_run_name(cfg: GanTrainingConfig) -> str:
    """``<data name>-<resolution>``: the name of a numbered run folder (deprecated ``--outdir``)."""
    stem = Path(cfg.data.rstrip("/")).stem or "data"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem)[:40]
    return f"{safe}-{cfg.resolution}"


def train(cfg: GanTrainingConfig, out: str | Path, resume: Path | None = None, quiet: bool = False,
          dataset: ImageDataset | None = None, *, numbered: str | None = None) -> Path:
    """Train a StyleGAN2 as ``cfg`` says in the run folder ``out``; return the run folder.

    A run folder that holds snapshots is continued from its newest; ``resume``
    (a snapshot folder, see ``checkpoint.find_resume``) names another one to continue
    from. Either way the snapshot must have ``cfg``'s architecture. ``numbered``
    keeps the layout of earlier releases (``--outdir``, deprecated): ``out`` is a
    parent folder, and process 0 creates a new run folder ``out/<next id>-<numbered>``
    in it. Raises ``TrainingInterrupted`` after writing a snapshot when SIGINT/SIGTERM
    arrives.
    """
    info = ddp.init_distributed(cfg.device)
    try:
        with StopFlag() as stop:
            return _train(cfg, Path(out), resume, numbered, quiet, dataset, info, stop)
    finally:
        ddp.shutdown(info)


def _train(cfg: GanTrainingConfig, out: Path, resume: Path | None, numbered: str | None, quiet: bool,
           dataset: ImageDataset | None, info: ddp.DistInfo, stop: StopFlag) -> Path:
    check_world_size(cfg, info.world_size)
    cfg = resolve(cfg)
    if resume is None and numbered is None:
        snapshots = ckpt.list_snapshots(out)
        resume = snapshots[-1] if snapshots else None
    if resume is None and numbered is None and ckpt.holds_old_layout(out):
        raise UserError(f"--out {out}: not a run folder{ckpt.old_layout_hint(out)}")
    device = resolve_device(cfg.device) if not info.enabled or cfg.device == "cpu" else (
        torch.device("cuda", info.local_rank) if torch.cuda.is_available() else torch.device("cpu"))
    # ``warn`` is printed even with ``quiet`` (skipped files, interruption); only by rank 0.
    warn = (lambda *a: print(*a, file=sys.stderr, flush=True)) if info.is_main else (lambda *a: None)
    log = (lambda *a: None) if quiet else warn
    quiet = quiet or not info.is_main

    if device.type == "cuda":
        # Autotuned conv algorithms; TF32 for the float32 parts (R1, path length).
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
    state = ckpt.read_state(resume) if resume is not None else None
    if state is not None:
        check_architecture(cfg, state.get("options", {}), resume)
    dataset = _open_dataset(cfg, dataset, quiet, warn, log)

    # Process 0 creates the run folder (and picks its number under ``--outdir``).
    if info.is_main:
        run_dir = ckpt.new_run_dir(out, numbered) if numbered is not None else out
        run_dir.mkdir(parents=True, exist_ok=True)
        if state is None:
            (run_dir / "stats.jsonl").unlink(missing_ok=True)   # of a start that wrote no snapshot
    else:
        run_dir = None
    run_dir = Path(ddp.broadcast_object(str(run_dir) if run_dir else None, info))
    options = {**config_to_dict(cfg), "world_size": info.world_size,
               "num_images": len(dataset), "skipped_files": len(dataset.skipped)}
    if info.is_main:
        write_json(run_dir / "training_options.json", options)

    # Networks, optimisers, augmentation; a resumed run loads them and its position.
    st = _build_state(cfg, device, len(dataset))
    if state is not None:
        _load_snapshot(resume, state, st, info, device)
        log(f"train-gan: resumed from {resume} at kimg {st.cur_nimg / 1000:.3f} (step {st.step})")
        before = state.get("options", {}).get("num_images")
        if before is not None and before != len(dataset):
            warn(f"train-gan: the data set changed since the snapshot ({before} -> {len(dataset)} images); "
                 "training continues, but not in the original data order")
    else:
        ddp.broadcast_module(st.G, info)
        ddp.broadcast_module(st.D, info)
        st.G_ema.load_state_dict(st.G.state_dict())
        # Per-process training randomness (z, noise, augmentation), distinct per rank.
        torch.manual_seed(cfg.seed * 1000 + 1 + info.rank)
    G, G_ema, D = st.G, st.G_ema, st.D
    ctx = LossContext(G=G, D=torch.compile(D) if cfg.compile else D, D_eager=D, augment=st.augment, ada=st.ada,
                      r1_gamma=cfg.gamma, style_mixing=cfg.style_mixing, pl_weight=cfg.pl_weight,
                      pl_batch_shrink=cfg.pl_batch_shrink, pl_decay=cfg.pl_decay,
                      autocast_dtype=_autocast_dtype(cfg, device),
                      channels_last=cfg.channels_last and device.type == "cuda", pl_mean=st.pl_mean,
                      synthesis=torch.compile(G.synthesis) if cfg.compile else None)
    source = BatchSource(dataset, device)
    per_rank = cfg.batch_size // info.world_size
    chunk = cfg.batch_gpu or per_rank
    grid_z = z_from_seeds(list(range(cfg.grid_size)), G.z_dim).to(device)

    if info.is_main and state is None:
        reals = source(DataOrder(len(dataset), cfg.seed + 1).next(min(cfg.grid_size, len(dataset))))
        save_png(run_dir / "reals.png", grid(list(to_uint8(reals)), columns=min(8, cfg.grid_size)))
        save_grid(G_ema, grid_z, run_dir / f"fakes-kimg{st.cur_nimg / 1000:010.3f}.png")

    total_nimg = int(round(cfg.kimg * 1000))
    tick_nimg = max(int(cfg.tick_kimg * 1000), 1)
    tick_start_nimg, tick_start_time = st.cur_nimg, time.time()
    last_snap_time = tick_start_time
    stats: dict[str, list[torch.Tensor]] = {}
    parts = StepParts(cfg=cfg, ctx=ctx, G=G, G_ema=G_ema, D=D, opt_G=st.opt_G, opt_D=st.opt_D, ada=st.ada,
                      info=info, chunk=chunk)
    check_stop_every = 4 if info.enabled else 1
    log(f"train-gan: run folder {run_dir}; training to {cfg.kimg:g} kimg, batch {cfg.batch_size}, device {device}")
    if st.cur_nimg >= total_nimg:
        warn(f"train-gan: already at {st.cur_nimg / 1000:g} kimg >= --kimg {cfg.kimg:g}; nothing to do")

    def add(name: str, value: torch.Tensor) -> None:
        stats.setdefault(name, []).append(value)

    while st.cur_nimg < total_nimg:
        # ---- one step --------------------------------------------------------------------
        idx = st.order.next(cfg.batch_size)[info.rank * per_rank:(info.rank + 1) * per_rank]
        real = source(idx, channels_last=ctx.channels_last)
        st.cur_nimg = train_step(parts, real, st.step, st.cur_nimg, add)
        st.step += 1

        # ---- bookkeeping -----------------------------------------------------------------
        done = st.cur_nimg >= total_nimg
        stopping = time_tick = time_snap = False
        if st.step % check_stop_every == 0 or done:
            # Signal from any process; time limits (slow CPU runs) as rank 0 sees them.
            now = time.time()
            flags = torch.tensor([stop.signum is not None,
                                  info.is_main and now - tick_start_time >= cfg.tick_minutes * 60,
                                  info.is_main and now - last_snap_time >= cfg.snap_minutes * 60],
                                 dtype=torch.float32)
            stopping, time_tick, time_snap = (bool(f > 0) for f in ddp.all_reduce_sum(flags, info).tolist())
        if not (done or stopping or time_tick or st.cur_nimg >= tick_start_nimg + tick_nimg):
            continue
        st.tick += 1
        now = time.time()
        record = _tick_record(stats, st, now - tick_start_time, st.cur_nimg - tick_start_nimg, info)
        stats.clear()
        tick_start_nimg, tick_start_time = st.cur_nimg, now
        if info.is_main:
            append_jsonl(run_dir / "stats.jsonl", record)
            log(_format_tick(record))
        if info.is_main and (done or stopping or st.tick % cfg.image_ticks == 0):
            save_grid(G_ema, grid_z, run_dir / f"fakes-kimg{st.cur_nimg / 1000:010.3f}.png")
        if done or stopping or time_snap or st.tick % cfg.snap_ticks == 0:
            path = _save_snapshot(run_dir, st, options, info, device,
                                  "signal" if stopping else "end" if done else "periodic")
            last_snap_time = time.time()
            if info.is_main:
                log(f"train-gan: snapshot {path}")
                ckpt.prune_snapshots(run_dir, cfg.keep_snapshots)
            if done and info.is_main and cfg.metrics != "none":
                from datasetgan.gan_training.metrics import report_metrics
                report_metrics(cfg, G_ema, dataset, run_dir, path, device, log)
        if stopping:
            warn(f"train-gan: stopped by {stop.name}; resumable checkpoint {path} "
                 f"(train-gan --out {run_dir} continues from its newest snapshot)")
            raise TrainingInterrupted(str(path))
        # Tick timing should not include snapshot and grid writing.
        tick_start_time = time.time()
    return run_dir


def _open_dataset(cfg: GanTrainingConfig, dataset: ImageDataset | None, quiet: bool, warn, log) -> ImageDataset:
    """``cfg.data`` (unless a data set is given), checked against ``cfg.resolution``; skipped files reported."""
    if dataset is None:
        dataset = load_dataset(cfg.data, cfg.resolution, workers=cfg.workers, quiet=quiet)
    if dataset.resolution != cfg.resolution:
        raise UserError(f"--data: images are {dataset.resolution}px, expected {cfg.resolution}px")
    if dataset.skipped:
        warn(f"train-gan: skipped {len(dataset.skipped)} unreadable file(s) in {cfg.data}, "
             f"e.g. {', '.join(dataset.skipped[:3])}")
    log(f"train-gan: {len(dataset)} images from {cfg.data}" + (" (x2 with flipped copies)" if cfg.flip else ""))
    return dataset


def _tick_record(stats, st: _State, seconds, nimg, info) -> dict:
    """Means of this tick's device scalars, synced once (and averaged over processes)."""
    names = sorted(stats)
    means = torch.stack([torch.stack([v.float() for v in stats[n]]).mean() for n in names]) if names else None
    if means is not None:
        means = means.cpu()
        if info.enabled:
            ddp.all_reduce_sum(means, info)
            means /= info.world_size
    augment = st.augment
    record = {"tick": st.tick, "kimg": round(st.cur_nimg / 1000, 3), "step": st.step,
              "sec_per_tick": round(seconds, 3),
              "sec_per_kimg": round(seconds / max(nimg / 1000, 1e-9), 4),
              "img_per_sec": round(nimg / max(seconds, 1e-9), 1),
              "augment_p": round(float(augment.p) if isinstance(augment, AdaptiveAugment) else 0.0, 5),
              "time": time.time()}
    if means is not None:
        record.update({n: round(float(m), 5) for n, m in zip(names, means)})
    if torch.cuda.is_available():
        record["gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
    return record


def _format_tick(r: dict) -> str:
    losses = " ".join(f"{k.split('/', 1)[1]} {v:.3f}" for k, v in r.items() if k.startswith("Loss/"))
    return (f"tick {r['tick']:<4d} kimg {r['kimg']:<9.3f} {r['sec_per_kimg']:.2f} s/kimg "
            f"{r['img_per_sec']:.1f} img/s  p {r['augment_p']:.3f}  {losses}")


def _save_snapshot(run_dir: Path, st: _State, options: dict, info: ddp.DistInfo, device: torch.device,
                   reason: str) -> Path:
    G, G_ema, D, augment, ada, pl_mean = st.G, st.G_ema, st.D, st.augment, st.ada, st.pl_mean
    name = ckpt.snapshot_name(st.cur_nimg)
    if info.enabled:
        _check_in_sync([G, D], info)
    tmp = ckpt.temp_snapshot_dir(run_dir, name)
    if info.is_main:
        tmp.mkdir(parents=True, exist_ok=True)
    local = {"pl_mean": pl_mean}
    if ada is not None:
        local.update(ada_sign_sum=ada.sign_sum, ada_count=ada.count)
    ddp.barrier(info)
    if not info.is_main:
        ckpt.save_rank_rng(tmp / f"rng-rank{info.rank}.safetensors", device, local)
    ddp.barrier(info)
    path = run_dir / "snapshots" / name
    if info.is_main:
        opt_tensors, opt_meta = ckpt.optimizers_to_tensors({"G": st.opt_G, "D": st.opt_D})
        tensors = {**opt_tensors, "pl_mean": pl_mean.detach().cpu().reshape(1)}
        if ada is not None:
            tensors["ada_sign_sum"] = ada.sign_sum.detach().cpu().reshape(1)
            tensors["ada_count"] = ada.count.detach().cpu().reshape(1)
        if isinstance(augment, AdaptiveAugment):
            tensors["augment_p"] = augment.p.detach().cpu().reshape(1)
        state = {"cur_nimg": st.cur_nimg, "kimg": st.cur_nimg / 1000, "step": st.step, "tick": st.tick,
                 "data_order": st.order.state(), "reason": reason, "world_size": info.world_size,
                 "augment_p": float(augment.p) if isinstance(augment, AdaptiveAugment) else None,
                 "optim": opt_meta, "options": options,
                 "torch_version": torch.__version__}
        ckpt.write_snapshot(run_dir, name, {"G_ema": G_ema, "G": G, "D": D}, tensors, state,
                            rng_files={0: ckpt.rank_rng(device, local)}, tmp=tmp)
    ddp.barrier(info)
    return path


def _check_in_sync(modules: list[torch.nn.Module], info: ddp.DistInfo) -> None:
    """All processes must hold the same weights (cheap checksum, compared across ranks)."""
    with torch.no_grad():
        local = torch.stack([torch.stack([p.double().sum() for p in m.parameters()]).sum() for m in modules]).cpu()
    low, high = local.clone(), local.clone()
    ddp.all_reduce_sum(low, info, op=torch.distributed.ReduceOp.MIN)
    ddp.all_reduce_sum(high, info, op=torch.distributed.ReduceOp.MAX)
    if not torch.allclose(low, high, rtol=1e-9, atol=0):
        raise RuntimeError(f"processes diverged: weight checksums range {low.tolist()} .. {high.tolist()}")


def _load_snapshot(snapshot: Path, state: dict, st: _State, info: ddp.DistInfo, device: torch.device) -> None:
    """Load ``snapshot`` (its ``state.json`` already read as ``state``) into ``st``, counters included."""
    from datasetgan.core.errors import CheckpointError

    G, G_ema, D, augment, ada, pl_mean, order = st.G, st.G_ema, st.D, st.augment, st.ada, st.pl_mean, st.order
    for key, net in (("G", G), ("G_ema", G_ema)):
        tensors = read_weights(snapshot / key / "model.safetensors")
        _load_checked(net, tensors, snapshot / key)
    d_tensors = read_weights(snapshot / "D" / "model.safetensors")
    _load_checked(D, d_tensors, snapshot / "D")
    opt = read_weights(snapshot / "optim.safetensors", device)
    ckpt.load_optimizers({"G": st.opt_G, "D": st.opt_D}, opt, state["optim"], snapshot)
    pl_mean.copy_(opt["pl_mean"].reshape([]))
    if isinstance(augment, AdaptiveAugment) and "augment_p" in opt:
        augment.p.copy_(opt["augment_p"].reshape([]))
    if ada is not None and "ada_sign_sum" in opt:
        ada.sign_sum.copy_(opt["ada_sign_sum"].reshape([]))
        ada.count.copy_(opt["ada_count"].reshape([]))
    pos = state["data_order"]
    order.__init__(order.num_images, order.seed, order.flip, epoch=pos["epoch"], offset=pos["offset"])
    if order.offset > order.size:
        raise CheckpointError(snapshot, "data position beyond the data set: was the data set changed?")
    local = ckpt.restore_rank_rng(snapshot, info.rank, device)
    if local is None:
        torch.manual_seed(state["step"] * 7919 + info.rank)  # other process count: not bit-exact
    else:
        # Per-process accumulators (rank 0's copies above are for older snapshots).
        if "pl_mean" in local:
            pl_mean.copy_(local["pl_mean"].reshape([]))
        if ada is not None and "ada_sign_sum" in local:
            ada.sign_sum.copy_(local["ada_sign_sum"].reshape([]))
            ada.count.copy_(local["ada_count"].reshape([]))
    st.cur_nimg, st.step, st.tick = int(state["cur_nimg"]), int(state["step"]), int(state["tick"])


def _load_checked(net: torch.nn.Module, tensors: dict, source: Path) -> None:
    from datasetgan.core.errors import CheckpointError

    expected = net.state_dict()
    bad = [k for k in expected if k not in tensors or tuple(tensors[k].shape) != tuple(expected[k].shape)]
    extra = [k for k in tensors if k not in expected]
    if bad or extra:
        raise CheckpointError(source, f"weights do not fit this architecture "
                                      f"(mismatched: {', '.join((bad + extra)[:4])})")
    net.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})

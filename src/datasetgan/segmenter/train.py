"""Training loop for the downstream networks: a plain function of (items, spec, config).

Run folder layout::

    RUN/run.json                  resolved SegmenterTrainingConfig, model config, spec, data source
    RUN/epoch_001/                config.json + model.safetensors, one per `checkpoint_every` epochs
    RUN/stats.jsonl               one line per epoch: epoch, loss, seconds
    RUN/state/                    resumable state: model + optimizer tensors (safetensors) and state.json

Started again with the same settings, an interrupted run continues after the
last finished epoch. SIGINT or SIGTERM stops it after the current batch
instead, with the state of that batch saved (the batch position, the epoch's
running loss and the random state of dropout), so that the resumed run
repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from datasetgan.core.config import config_to_dict
from datasetgan.core.devices import Precision, adam_kwargs
from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.fileio import append_jsonl, read_json, read_jsonl, write_json
from datasetgan.core.progress import progress
from datasetgan.core.signals import Interrupted, StopFlag
from datasetgan.core.training_state import (atomic_dir, load_optimizer, load_state, optimizer_tensors, prefixed,
                                            restore_rng, rng_tensors, save_state, unprefixed)
from datasetgan.labels import IGNORE, Item, LabelSpec, frequency_weights_from_counts, read_label_map
from datasetgan.segmenter.data import Augment, LabelledImages
from datasetgan.segmenter.config import SegmenterTrainingConfig
from datasetgan.segmenter.keypoints import keypoint_loss
from datasetgan.segmenter.streaming import StreamingImages, WebDatasetSource, batch_sizes
from datasetgan.segmenter.models import (Segmenter, SegmenterConfig, load_backbone_weights, load_checkpoint,
                                         save_checkpoint)


def lr_at(config: SegmenterTrainingConfig, step: int, total: int) -> float:
    """Learning rate for optimisation step ``step`` (0-based) of ``total``."""
    if config.lr_schedule == "cosine":
        return 0.5 * config.lr * (1.0 + np.cos(np.pi * min(step, total) / max(total, 1)))
    return config.lr


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The dtype ``train`` autocasts the forward pass to on ``device``, None for float32 throughout:
    ``auto`` is float16 (with loss scaling) on CUDA, ``bfloat16`` bfloat16 on CUDA; a CPU trains in float32."""
    if device.type != "cuda" or precision == "float32":
        return None
    return torch.bfloat16 if precision == "bfloat16" else torch.float16


def _same_run(old: dict, new: dict) -> bool:
    """Whether a run.json describes the same run (``epochs`` may grow; keys added since default to their defaults)."""
    train_defaults = config_to_dict(SegmenterTrainingConfig())
    model_defaults = config_to_dict(SegmenterConfig())
    if old.get("model", {}).get("task") == "keypoints":
        model_defaults["keypoint_head"] = train_defaults["keypoint_head"] = "heatmap"   # runs from before it existed
    old_train = dict(old.get("train", {}))
    if "amp" in old_train:   # runs from before --precision: amp on is auto's mixed precision, off is float32
        old_train.setdefault("precision", "auto" if old_train.pop("amp") else "float32")
    old = {**old, "train": {**train_defaults, **old_train},
           "model": {**model_defaults, **old.get("model", {})}}
    drop = {"epochs"}
    return ({k: old.get(k) for k in new if k != "train"} == {k: v for k, v in new.items() if k != "train"}
            and {k: v for k, v in old["train"].items() if k not in drop}
            == {k: v for k, v in new["train"].items() if k not in drop})


def frequency_weights(items: list[Item], spec: LabelSpec, power: float, quiet: bool = False,
                      data: LabelledImages | StreamingImages | None = None) -> torch.Tensor:
    """Cross-entropy weights ``[C]``: ``freq_c ** -power`` over the items' label maps
    (``frequency_weights_from_counts``). With ``data`` (over the same items) the maps
    are read through its cache, so that the first epoch does not decode them again;
    a streamed data set is read once for them."""
    if isinstance(data, StreamingImages):
        return torch.tensor(frequency_weights_from_counts(data.label_counts(quiet), power), dtype=torch.float32)
    counts = np.zeros(spec.num_classes, np.float64)
    for i, item in enumerate(progress(items, desc="class frequencies", unit="img", disable=quiet or None)):
        labels = data.decoded(i)[1] if data is not None else read_label_map(item.label, spec)
        counts += np.bincount(labels.ravel(), minlength=spec.num_classes)[:spec.num_classes]  # not IGNORE
    return torch.tensor(frequency_weights_from_counts(counts, power), dtype=torch.float32)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                      has_ignore: bool) -> torch.Tensor:
    """Weighted cross-entropy of ``logits [N, C, H, W]`` against ``target [N, H, W]``; with
    ``has_ignore``, pixels labelled ``IGNORE`` do not count (a batch of them alone gives 0)."""
    if not has_ignore:
        return F.cross_entropy(logits.float(), target, weight=weight)
    if bool((target == IGNORE).all()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=IGNORE)


def epoch_dir(run: Path, epoch: int) -> Path:
    return run / f"epoch_{epoch:03d}"


def list_epochs(run: str | Path) -> list[Path]:
    """The run's epoch checkpoint folders, oldest first."""
    run = Path(run)
    return sorted(p for p in run.glob("epoch_[0-9][0-9][0-9]") if (p / "model.safetensors").exists())


def read_init(path: str | Path, config: SegmenterConfig, spec: LabelSpec) -> tuple[dict[str, torch.Tensor], Path]:
    """The weights ``--init`` starts a run from, and the checkpoint they came from. ``path`` is a
    checkpoint folder or a run folder (its last epoch); its network settings must be ``config`` and
    its classes (keypoints, for a keypoint network) ``spec``'s."""
    path = Path(path)
    if not (path / "config.json").exists():
        if not path.is_dir():
            raise UserError(f"--init {path}: folder not found")
        epochs = list_epochs(path)
        if not epochs:
            raise CheckpointError(path, "--init: neither a segmenter checkpoint nor a run folder with epoch_*/")
        path = epochs[-1]
    source, source_spec, _ = load_checkpoint(path)
    if source.config != config:
        theirs, ours = config_to_dict(source.config), config_to_dict(config)
        diff = ", ".join(f"{k} {theirs[k]!r} (this run: {ours[k]!r})" for k in ours if theirs.get(k) != ours[k])
        raise UserError(f"--init {path}: a different network: {diff}")
    names = "keypoints" if config.task == "keypoints" else "classes"
    theirs, ours = getattr(source_spec, names), getattr(spec, names)
    if list(theirs or ()) != list(ours or ()):
        raise UserError(f"--init {path}: trained for {names} {list(theirs or ())}; this run's spec names "
                        f"{list(ours or ())}")
    return source.state_dict(), path


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    chunks = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    # BatchNorm (ASPP pooling branch) cannot train on a single sample: fold a lone last one into its neighbour.
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] = np.concatenate([chunks[-1], last])
    return chunks


def _batchnorms(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """Put every BatchNorm of ``model`` in eval mode: it normalises with, and no longer updates, its
    running statistics (its scale and shift still train)."""
    for m in _batchnorms(model):
        m.eval()


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, data: LabelledImages | StreamingImages, device: torch.device,
                          max_images: int, batch_size: int, seed: int = 0) -> None:
    """Recompute every BatchNorm's running mean/var as a plain average over ``max_images`` un-augmented images
    (of a streamed data set: the first ones of its shards in an order drawn from ``seed``)."""
    bns = _batchnorms(model)
    if not bns or max_images <= 0:
        return
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None                # cumulative average over the batches below
    if isinstance(data, StreamingImages):
        streamed = data.clean_images(max_images, seed)
        idx = np.arange(len(streamed))

        def image(i: int) -> torch.Tensor:
            return streamed[i]
    else:
        clean = LabelledImages(data.items, data.spec, data.resolution, augment=None, seed=data.seed)
        rng = np.random.default_rng((seed, 7))
        idx = np.sort(rng.permutation(len(clean))[:max_images])

        def image(i: int) -> torch.Tensor:
            return clean[i]["image"]
    was_training = model.training
    model.train()
    for chunk in _batches(len(idx), batch_size, np.random.default_rng(0)):
        x = torch.stack([image(int(i)) for i in idx[np.sort(chunk)]]).to(device)
        model(x)
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    model.train(was_training)


@dataclass
class _Resumed:
    """Where a saved state stands: ``epoch`` finished epochs, then ``batch``
    batches of the next one with their summed ``loss`` over ``count`` images,
    and the global random state after them (None at an epoch boundary)."""

    epoch: int = 0
    batch: int = 0
    loss: float = 0.0
    count: int = 0
    rng: dict[str, torch.Tensor] | None = None


def _save_state(run: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, scaler, at: _Resumed) -> None:
    """Model + Adam tensors (and the random state, mid-epoch) to safetensors, the rest to JSON (no pickles):
    ``state/state.safetensors`` and ``state/state.json``, the folder replaced as a whole."""
    opt_tensors, opt_meta = optimizer_tensors("opt", opt)
    tensors = {**prefixed("model.", model.state_dict()), **opt_tensors, **prefixed("rng.", at.rng or {})}
    meta = {"epoch": at.epoch, "batch": at.batch, "loss": at.loss, "count": at.count, **opt_meta,
            "scaler": scaler.state_dict() if scaler is not None else None}
    with atomic_dir(run / "state") as tmp:
        save_state(tmp / "state.safetensors", tensors)
        write_json(tmp / "state.json", meta)


def _load_state(run: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, scaler) -> _Resumed:
    """Restore what ``_save_state`` wrote; returns where it stands."""
    meta = read_json(run / "state" / "state.json", "resumable state")
    try:
        tensors, _ = load_state(run / "state" / "state.safetensors")
        model.load_state_dict(unprefixed("model.", tensors))
        load_optimizer(opt, "opt", tensors, meta, run / "state")
        if scaler is not None and meta.get("scaler"):
            scaler.load_state_dict(meta["scaler"])
        at = _Resumed(epoch=int(meta["epoch"]), batch=int(meta.get("batch", 0)),  # states of earlier versions:
                      loss=float(meta.get("loss", 0.0)), count=int(meta.get("count", 0)))  # epoch boundaries
        if at.batch:
            at.rng = unprefixed("rng.", tensors)
            if "cpu" not in at.rng:
                raise KeyError("rng.cpu")
        return at
    except (CheckpointError, OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:  # damaged or foreign
        raise CheckpointError(run / "state", f"cannot resume from it ({type(exc).__name__}: {exc}); remove this "
                                             "folder to start over (the epoch checkpoints stay)") from None


def train(items: list[Item] | WebDatasetSource, spec: LabelSpec, task: Literal["segmentation", "keypoints"],
          config: SegmenterTrainingConfig, run: str | Path, device: torch.device, source: dict | None = None,
          quiet: bool = False) -> Path:
    """Train DeepLabV3 on ``items`` (labelled images, or WebDataset shards streamed: see
    ``segmenter.streaming`` for their order and what resuming repeats); writes the run folder and returns it.

    Segmentation: cross-entropy over ``spec.num_classes`` classes. Keypoints:
    ``spec.num_keypoints`` channels trained by ``keypoint_loss`` with
    ``config.keypoint_head``, invisible keypoints masked out.
    """
    run = Path(run)
    if len(items) < 2:
        raise UserError(f"need at least 2 labelled images to train, got {len(items)}")
    num_outputs = spec.num_classes if task == "segmentation" else spec.num_keypoints
    mconfig = SegmenterConfig(arch=config.arch, task=task, num_outputs=num_outputs, resolution=config.resolution,
                              heatmap_sigma=config.heatmap_sigma, output_stride=config.output_stride,
                              keypoint_head=config.keypoint_head, decoder=config.decoder)
    record = {"train": config_to_dict(config), "model": config_to_dict(mconfig), "spec": spec.to_dict(),
              "source": source or {}, "num_images": len(items)}
    resuming = (run / "state" / "state.json").exists()
    # Checked before the run folder is written; a resumed run takes its weights from its own state.
    init = read_init(config.init, mconfig, spec)[0] if config.init and not resuming else None
    run_json = run / "run.json"
    if run_json.exists():
        old = read_json(run_json, "run description")
        if not _same_run(old, json.loads(json.dumps(record))):
            raise UserError(f"--out {run}: holds a run with different settings or data; choose a new folder")
        if config.epochs > old.get("train", {}).get("epochs", 0):   # continued to more epochs: say how many
            write_json(run_json, record)
    else:
        run.mkdir(parents=True, exist_ok=True)
        write_json(run_json, record)

    torch.manual_seed(config.seed)
    model = Segmenter(mconfig)
    if config.backbone_weights:
        load_backbone_weights(model, config.backbone_weights)
    if init is not None:
        model.load_state_dict(init)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                           **adam_kwargs(device))
    amp_dtype = autocast_dtype(config.precision, device)
    # float16 needs loss scaling against underflowing gradients; bfloat16 has float32's range.
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    resumed = _Resumed()
    if resuming:
        resumed = _load_state(run, model, opt, scaler)
        if not quiet:
            within = f", batch {resumed.batch} of epoch {resumed.epoch + 1}" if resumed.batch else ""
            print(f"resuming {run} after epoch {resumed.epoch}{within}")

    augment = Augment(flip=config.flip, crop_min=config.crop_min, zoom_out=config.zoom_out, jitter=config.jitter)
    streamed = isinstance(items, WebDatasetSource)
    data = (StreamingImages(items, spec, task, config.resolution, augment=augment, seed=config.seed) if streamed
            else LabelledImages(items, spec, config.resolution, augment=augment, seed=config.seed))
    loader_kw = dict(num_workers=config.workers, pin_memory=device.type == "cuda")
    steps_per_epoch = len(_batches(len(items), config.batch_size, np.random.default_rng(0)))
    class_weights = None
    if task == "segmentation" and config.class_weight_power > 0:
        class_weights = frequency_weights(items, spec, config.class_weight_power, quiet, data).to(device)
    total_steps = steps_per_epoch * config.epochs
    with StopFlag() as signals:
        for epoch in range(resumed.epoch + 1, config.epochs + 1):
            t0 = time.time()
            data.set_epoch(epoch)
            torch.manual_seed(config.seed * 100_003 + epoch)   # dropout in the ASPP head
            skip = resumed.batch if epoch == resumed.epoch + 1 else 0
            if streamed:
                batches = batch_sizes(len(items), config.batch_size)
                loader = data.batches(batches, skip, **loader_kw)
            else:
                batches = _batches(len(data), config.batch_size, np.random.default_rng((config.seed, epoch)))
                loader = torch.utils.data.DataLoader(data, batch_sampler=batches[skip:], **loader_kw)
            model.train()
            if config.freeze_bn:
                freeze_batchnorm(model)
            total, count = (resumed.loss, resumed.count) if skip else (0.0, 0)
            bar = progress(loader, desc=f"epoch {epoch}/{config.epochs}", total=len(batches), initial=skip,
                           unit="batch", disable=quiet or None)
            for i, batch in enumerate(bar, start=skip):
                if skip and i == skip:  # the loader has drawn its seeds: dropout goes on where it stopped
                    restore_rng(resumed.rng, device)
                for group in opt.param_groups:
                    group["lr"] = lr_at(config, (epoch - 1) * steps_per_epoch + i, total_steps)
                x = batch["image"].to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    out = model(x)
                if task == "segmentation":
                    loss = segmentation_loss(out, batch["target"].to(device), class_weights, spec.has_ignore)
                else:
                    loss = keypoint_loss(out, batch["keypoints"].to(device), config.keypoint_head,
                                         config.heatmap_sigma, config.keypoint_reg)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
                total += float(loss.detach()) * len(x)
                count += len(x)
                bar.set_postfix(loss=f"{total / count:.4f}")
                if signals.signum is not None:
                    bar.close()
                    _save_state(run, model, opt, scaler, _Resumed(epoch - 1, i + 1, total, count, rng_tensors(device)))
                    print(f"train-segmenter: stopped by {signals.name} after batch {i + 1} of epoch {epoch}; "
                          f"run the same command again to resume ({run / 'state'})", flush=True)
                    raise Interrupted(str(run / "state"))
            bar.close()
            stats = {"epoch": epoch, "loss": total / max(count, 1), "lr": opt.param_groups[0]["lr"]}
            if epoch % config.checkpoint_every == 0 or epoch == config.epochs:
                if config.bn_recalibrate > 0 and not config.freeze_bn:
                    recalibrate_batchnorm(model, data, device, config.bn_recalibrate, config.batch_size, config.seed)
                save_checkpoint(epoch_dir(run, epoch), model, spec, extra={"epoch": epoch})
                # Resuming restarts after the last saved state, so state is written with each checkpoint.
                _save_state(run, model, opt, scaler, _Resumed(epoch))
            stats["seconds"] = round(time.time() - t0, 2)
            if all(r.get("epoch") != epoch for r in read_jsonl(run / "stats.jsonl")):
                append_jsonl(run / "stats.jsonl", stats)
            if not quiet and (epoch % config.checkpoint_every == 0 or epoch == config.epochs):
                print(f"epoch {epoch}: loss {stats['loss']:.4f} ({stats['seconds']} s)", flush=True)
    return run

"""Training the ensemble: all members at once, each with its own batches and
its own early stopping, on pixels gathered from a ``FeatureBank``.

The reference trains each member separately on the full in-memory feature
table. Here every step gathers ``members x batch`` pixels from the
native-size maps, runs one batched forward/backward, and an Adam step that
leaves stopped members untouched.

With ``resume`` (``train-interpreter`` always gives one), the whole training
state (weights, BatchNorm statistics, Adam moments, early-stopping counters,
the random generator as it was at the start of the epoch, and the position
in it) is written to one safetensors file every few minutes and when
SIGINT/SIGTERM arrives. A run started again with the same settings and data
continues from there and ends with the same bits as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from datasetgan.core.config import config_to_dict
from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.progress import progress
from datasetgan.core.signals import Interrupted, StopFlag
from datasetgan.core.training_state import load_state, prefixed, save_state, unprefixed
from datasetgan.features import FeatureBank
from datasetgan.interpreter.config import InterpreterConfig
from datasetgan.interpreter.keypoints import gaussian_targets
from datasetgan.interpreter.model import EnsembleConfig, EnsembleMLP, reference_hidden
from datasetgan.labels import frequency_weights_from_counts


@dataclass
class PixelSet:
    """Training pixels: ``image_index, ys, xs`` ``[P]`` into the bank's images
    (any integer dtype; kept narrow, as there can be millions).
    Segmentation: ``labels [P]`` class ids. Keypoints: per image ``keypoints
    [N_img, K, 2]`` (x, y) and ``visible [N_img, K]`` bool."""

    image_index: torch.Tensor
    ys: torch.Tensor
    xs: torch.Tensor
    labels: torch.Tensor | None = None
    keypoints: torch.Tensor | None = None
    visible: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.image_index.shape[0])


@dataclass
class TrainStats:
    steps: int = 0
    epochs: int = 0
    stopped_at: list[int | None] = field(default_factory=list)  # step at which each member stopped
    best_loss: list[float] = field(default_factory=list)
    last_loss: list[float] = field(default_factory=list)


STATE_FORMAT = "datasetgan-interpreter-training"


@dataclass
class Resume:
    """Where ``train_ensemble`` keeps its resumable state: one safetensors file
    (tensors, and the rest as JSON in its metadata), written every
    ``every_seconds`` and on SIGINT/SIGTERM. ``key`` identifies the run beyond
    the settings and pixels that ``train_ensemble`` adds (e.g. the generator's
    fingerprint and the labelled stems)."""

    path: Path
    key: dict = field(default_factory=dict)
    every_seconds: float = 300.0


def pixel_digest(pixels: PixelSet) -> str:
    """sha256 of every tensor of ``pixels`` (which pixels, and their labels)."""
    h = hashlib.sha256()
    for name in ("image_index", "ys", "xs", "labels", "keypoints", "visible"):
        t = getattr(pixels, name)
        if t is not None:
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


class MaskedAdam:
    """Adam (PyTorch's defaults) over ``[M, ...]`` parameters, stepping only active members."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = torch.zeros(self.params[0].shape[0], device=self.params[0].device)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"steps": self.steps, **{f"exp_avg.{i}": t for i, t in enumerate(self.exp_avg)},
                **{f"exp_avg_sq.{i}": t for i, t in enumerate(self.exp_avg_sq)}}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, t in self.state_tensors().items():
            t.copy_(tensors[name])

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        """One Adam step for the members where ``active [M]`` is true, in place. While
        every member is active (and so at the same step count), each parameter is
        updated whole; afterwards member by member (the same operations on slices)."""
        self.steps += active.float().to(self.steps.device)
        if bool(active.all()) and bool((self.steps == self.steps[0]).all()):
            self._update(slice(None), float(self.steps[0]))
            return
        for i in torch.nonzero(active).flatten().tolist():
            self._update(i, float(self.steps[i]))

    def _update(self, members: int | slice, step: float) -> None:
        """Adam's update of ``members`` (an index or all of them) of every parameter, at ``step``."""
        b1, b2 = self.betas
        bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            g, m, v = p.grad[members], m[members], v[members]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p[members].addcdiv_(m, v.sqrt().div_(bc2 ** 0.5).add_(self.eps), value=-self.lr / bc1)


@dataclass
class _Progress:
    """The loop's state besides the model and the optimiser."""

    active: torch.Tensor                # [M] bool: members still training
    best: torch.Tensor                  # [M] best batch loss since min_epochs
    since: torch.Tensor                 # [M] batches since that best
    last: torch.Tensor                  # [M] the last batch loss
    epoch: int = 0
    step_in_epoch: int = 0              # the next batch of that epoch
    epoch_rng: torch.Tensor | None = None  # the generator's state before the epoch's shuffles

    TENSORS = ("active", "best", "since", "last")


def _save_state(resume: Resume, key: dict, model: EnsembleMLP, opt: MaskedAdam, prog: _Progress,
                stats: TrainStats) -> None:
    tensors = {**prefixed("model.", model.state_dict()), **prefixed("adam.", opt.state_tensors()),
               **prefixed("progress.", {k: getattr(prog, k) for k in _Progress.TENSORS}),
               "progress.epoch_rng": prog.epoch_rng}
    meta = {"format": STATE_FORMAT, "key": key, "epoch": prog.epoch, "step_in_epoch": prog.step_in_epoch,
            "stats": asdict(stats)}
    save_state(resume.path, tensors, meta)


def _load_state(resume: Resume, key: dict, model: EnsembleMLP, opt: MaskedAdam, prog: _Progress,
                stats: TrainStats) -> None:
    """Restore a saved state in place; one of another run, or damaged, is a ``UserError``."""
    path = resume.path
    try:
        tensors, meta = load_state(path, STATE_FORMAT)
        if not isinstance(meta.get("key"), dict):
            raise CheckpointError(path, "no run key in its metadata")
    except CheckpointError as exc:
        raise CheckpointError(path, f"{exc.message}; delete it to start over") from None
    if meta["key"] != key:
        diff = sorted(k for k in {**meta["key"], **key} if meta["key"].get(k) != key.get(k))
        raise UserError(f"{path}: an unfinished training with other settings or data ({', '.join(diff)}); "
                        "run with the same arguments to finish it, or delete the file to start over")
    try:
        model.load_state_dict(unprefixed("model.", tensors))
        opt.load_state_tensors(unprefixed("adam.", tensors))
        for name in _Progress.TENSORS:
            getattr(prog, name).copy_(tensors[f"progress.{name}"])
        prog.epoch_rng = tensors["progress.epoch_rng"]
        prog.epoch, prog.step_in_epoch = int(meta["epoch"]), int(meta["step_in_epoch"])
        for name in ("steps", "epochs", "stopped_at"):  # the rest is filled in at the end
            setattr(stats, name, meta["stats"][name])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(path, f"damaged train-interpreter state ({type(exc).__name__}: {exc}); "
                                    "delete it to start over") from None


def train_ensemble(bank: FeatureBank, pixels: PixelSet, num_outputs: int,
                   task: Literal["segmentation", "keypoints"], config: InterpreterConfig,
                   device: torch.device | str = "cpu", quiet: bool = False, resume: Resume | None = None
                   ) -> tuple[EnsembleMLP, TrainStats]:
    """Train ``config.members`` MLPs on ``pixels``; returns the model (eval mode) and stats.

    Batches of ``batch_size`` pixels per member, each member with its own
    shuffle. A member stops after ``patience`` batches without a new best
    batch loss, counted from epoch ``min_epochs`` on (the reference's rule).
    With ``resume``, continues a saved state and keeps one (see the module's
    docstring), raising ``Interrupted`` after saving on SIGINT/SIGTERM; the
    caller removes ``resume.path`` once the result is saved.
    """
    n_pix = len(pixels)
    if n_pix < 2:
        raise ValueError("need at least 2 training pixels")
    M, B = config.members, min(config.batch_size, n_pix)
    gen = torch.Generator().manual_seed(config.seed)
    model = EnsembleMLP(EnsembleConfig(bank.width, num_outputs, M, reference_hidden(num_outputs)),
                        generator=gen).to(device)
    model.train()
    opt = MaskedAdam(model.parameters(), config.lr)
    prog = _Progress(active=torch.ones(M, dtype=torch.bool, device=device),
                     best=torch.full((M,), float("inf"), device=device),
                     since=torch.zeros(M, dtype=torch.long, device=device), last=torch.zeros(M, device=device))
    stats = TrainStats(stopped_at=[None] * M)
    key = {}
    if resume is not None:
        key = {**resume.key, "config": config_to_dict(config), "task": task, "num_outputs": num_outputs,
               "feature_width": bank.width, "pixels": pixel_digest(pixels)}
        key = json.loads(json.dumps(key))  # as it reads back (tuples become lists)
        if resume.path.exists():
            _load_state(resume, key, model, opt, prog, stats)
            gen.set_state(prog.epoch_rng)  # the shuffles of the epoch it stopped in, again
            print(f"train-interpreter: resuming {resume.path} at step {stats.steps} (epoch {prog.epoch + 1})")
    steps_per_epoch = n_pix // B  # drop the ragged last batch (BatchNorm needs >= 2 pixels)
    class_weight = None
    if task == "segmentation" and config.class_weight_power > 0:
        counts = torch.bincount(pixels.labels.long(), minlength=num_outputs).numpy()
        class_weight = torch.tensor(frequency_weights_from_counts(counts, config.class_weight_power),
                                    dtype=torch.float32, device=device)
    kp = pixels.keypoints.to(device) if pixels.keypoints is not None else None
    vis = pixels.visible.to(device).float() if pixels.visible is not None else None
    bar = progress(desc="train-interpreter", unit="batch", disable=quiet, initial=stats.steps,
                   total=config.max_steps or steps_per_epoch * config.max_epochs)
    order = torch.empty(M, n_pix, dtype=torch.int32)
    saved_at = time.monotonic()

    def finished() -> bool:
        return not bool(prog.active.any()) or bool(config.max_steps and stats.steps >= config.max_steps)

    # Without a state to save, SIGINT stays a plain KeyboardInterrupt.
    with StopFlag() if resume is not None else contextlib.nullcontext() as signals:
        for epoch in range(prog.epoch, config.max_epochs):
            if epoch != prog.epoch or prog.epoch_rng is None:
                prog.epoch, prog.step_in_epoch, prog.epoch_rng = epoch, 0, gen.get_state()
            for m in range(M):  # each member its own shuffle, filled in place (no [M, P] int64 copy)
                order[m] = torch.randperm(n_pix, generator=gen, dtype=torch.int32)
            for s in range(prog.step_in_epoch, steps_per_epoch):
                idx = order[:, s * B:(s + 1) * B].reshape(-1).long()
                img, ys, xs = pixels.image_index[idx], pixels.ys[idx], pixels.xs[idx]
                x = bank.gather(img, ys, xs).to(device).view(M, B, bank.width)
                out = model(x, prog.active)
                if task == "segmentation":
                    target = pixels.labels[idx].to(device).long()
                    loss_m = F.cross_entropy(out.reshape(M * B, -1), target, weight=class_weight,
                                             reduction="none").view(M, B).mean(1)
                else:
                    img_d = img.to(device)
                    target = gaussian_targets(kp[img_d], ys.to(device), xs.to(device), config.heatmap_sigma)
                    weight = vis[img_d].view(M, B, -1)
                    sq = (out - target.view(M, B, -1)) ** 2 * weight
                    loss_m = sq.sum(dim=(1, 2)) / weight.sum(dim=(1, 2)).clamp_min(1.0)
                opt.zero_grad()
                (loss_m * prog.active.float()).sum().backward()
                opt.step(prog.active)
                stats.steps += 1
                bar.update(1)
                prog.last = loss_m.detach()
                if epoch >= config.min_epochs:
                    _early_stopping(prog, stats, config.patience)
                prog.step_in_epoch = s + 1
                if finished():
                    break
                if resume is not None and (signals.signum is not None
                                           or time.monotonic() - saved_at >= resume.every_seconds):
                    _save_state(resume, key, model, opt, prog, stats)
                    saved_at = time.monotonic()
                    if signals.signum is not None:
                        bar.close()
                        print(f"train-interpreter: stopped by {signals.name} at step {stats.steps}; "
                              f"run the same command again to resume from {resume.path}", flush=True)
                        raise Interrupted(str(resume.path))
            stats.epochs = epoch + 1
            if finished():
                break
    bar.close()
    stats.best_loss = [float(v) for v in prog.best.cpu()]
    stats.last_loss = [float(v) for v in prog.last.cpu()]
    return model.eval(), stats


def _early_stopping(prog: _Progress, stats: TrainStats, patience: int) -> None:
    """After a batch: new best losses, batches since, and the members that stop now."""
    improved = prog.last < prog.best
    prog.best = torch.where(improved & prog.active, prog.last, prog.best)
    prog.since = torch.where(improved, torch.zeros_like(prog.since), prog.since + 1)
    stop = prog.active & (prog.since > patience)
    for m in torch.nonzero(stop).flatten().tolist():
        stats.stopped_at[m] = stats.steps
    prog.active &= ~stop

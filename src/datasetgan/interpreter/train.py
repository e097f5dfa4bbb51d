"""Training the ensemble: all members at once, each with its own batches and
its own early stopping, on pixels gathered from a ``FeatureBank``.

The reference trains each member separately on the full in-memory feature
table. Here every step gathers ``members x batch`` pixels from the
native-size maps, runs one batched forward/backward, and an Adam step that
leaves stopped members untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from datasetgan.core.labels import frequency_weights_from_counts
from datasetgan.core.progress import progress
from datasetgan.features import FeatureBank
from datasetgan.interpreter.config import InterpreterConfig
from datasetgan.interpreter.keypoints import gaussian_targets
from datasetgan.interpreter.model import EnsembleConfig, EnsembleMLP, reference_hidden


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


def train_ensemble(bank: FeatureBank, pixels: PixelSet, num_outputs: int,
                   task: Literal["segmentation", "keypoints"], config: InterpreterConfig,
                   device: torch.device | str = "cpu", quiet: bool = False
                   ) -> tuple[EnsembleMLP, TrainStats]:
    """Train ``config.members`` MLPs on ``pixels``; returns the model (eval mode) and stats.

    Batches of ``batch_size`` pixels per member, each member with its own
    shuffle. A member stops after ``patience`` batches without a new best
    batch loss, counted from epoch ``min_epochs`` on (the reference's rule).
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
    active = torch.ones(M, dtype=torch.bool, device=device)
    best = torch.full((M,), float("inf"), device=device)
    since = torch.zeros(M, dtype=torch.long, device=device)
    stats = TrainStats(stopped_at=[None] * M)
    steps_per_epoch = n_pix // B  # drop the ragged last batch (BatchNorm needs >= 2 pixels)
    class_weight = None
    if task == "segmentation" and config.class_weight_power > 0:
        counts = torch.bincount(pixels.labels.long(), minlength=num_outputs).numpy()
        class_weight = torch.tensor(frequency_weights_from_counts(counts, config.class_weight_power),
                                    dtype=torch.float32, device=device)
    kp = pixels.keypoints.to(device) if pixels.keypoints is not None else None
    vis = pixels.visible.to(device).float() if pixels.visible is not None else None
    bar = progress(desc="train-interpreter", unit="batch", disable=quiet,
                   total=config.max_steps or steps_per_epoch * config.max_epochs)
    last = torch.zeros(M)
    order = torch.empty(M, n_pix, dtype=torch.int32)
    for epoch in range(config.max_epochs):
        for m in range(M):  # each member its own shuffle, filled in place (no [M, P] int64 copy)
            order[m] = torch.randperm(n_pix, generator=gen, dtype=torch.int32)
        for s in range(steps_per_epoch):
            idx = order[:, s * B:(s + 1) * B].reshape(-1).long()
            img, ys, xs = pixels.image_index[idx], pixels.ys[idx], pixels.xs[idx]
            x = bank.gather(img, ys, xs).to(device).view(M, B, bank.width)
            out = model(x, active)
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
            (loss_m * active.float()).sum().backward()
            opt.step(active)
            stats.steps += 1
            bar.update(1)
            last = loss_m.detach()
            if epoch >= config.min_epochs:
                improved = last < best
                best = torch.where(improved & active, last, best)
                since = torch.where(improved, torch.zeros_like(since), since + 1)
                stop = active & (since > config.patience)
                for m in torch.nonzero(stop).flatten().tolist():
                    stats.stopped_at[m] = stats.steps
                active &= ~stop
            if not bool(active.any()) or (config.max_steps and stats.steps >= config.max_steps):
                break
        stats.epochs = epoch + 1
        if not bool(active.any()) or (config.max_steps and stats.steps >= config.max_steps):
            break
    bar.close()
    stats.best_loss = [float(v) for v in best.cpu()]
    stats.last_loss = [float(v) for v in last.cpu()]
    return model.eval(), stats

"""Whole-image predictions of a trained ensemble: labels or heatmaps, and uncertainty.

``predict`` is the fast path: each member's first Linear layer is applied to
every feature map at its own resolution and only the narrow result is
upsampled (see ``features.projected``); the rest of each member runs on
``[h1]``-wide pixels with its BatchNorms folded into the next Linear. The
straightforward path (upsample every map, concatenate, run the MLPs per
pixel) is ``predict_straightforward``, kept as the yardstick for tests and
benchmarks.

Segmentation, as the reference: labels are the per-pixel majority vote of the
members (ties go to the lower class id); uncertainty is the Jensen-Shannon
divergence ``H(mean_m p_m) - mean_m H(p_m)``; an image's score is the mean of
its top 10% pixels. Keypoints: the members' mean heatmap gives the keypoints;
uncertainty is the members' variance, averaged over keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from datasetgan.features import project_first_layer, upsample_concat
from datasetgan.features.config import UpsampleMode
from datasetgan.interpreter.keypoints import decode_heatmaps
from datasetgan.interpreter.model import EnsembleMLP

Task = Literal["segmentation", "keypoints"]


@dataclass
class Prediction:
    """labels: ``[N, H, W]`` int64 (segmentation) or None; heatmaps: ``[N, K, H, W]``
    mean heatmaps (keypoints) or None; keypoints: ``[N, K, 3]`` (x, y, visible)
    or None; uncertainty: ``[N, H, W]``; scores: ``[N]`` mean of the top 10%."""

    uncertainty: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor | None = None
    heatmaps: torch.Tensor | None = None
    keypoints: torch.Tensor | None = None


def top_fraction_mean(values: torch.Tensor, fraction: float = 0.1) -> torch.Tensor:
    """``[N, ...]`` -> ``[N]``: mean of each row's largest ``fraction`` of entries."""
    flat = values.reshape(values.shape[0], -1)
    k = max(1, int(flat.shape[1] * fraction))
    return flat.topk(k, dim=1).values.mean(dim=1)


class _Accumulator:
    """Running per-pixel statistics over members, so no ``[M, N, C, H, W]`` tensor exists."""

    def __init__(self, task: Task, members: int, visibility_threshold: float):
        self.task, self.members, self.threshold = task, members, visibility_threshold
        self.sum = self.sq_or_ent = self.votes = None

    def add(self, out: torch.Tensor) -> None:
        """One member's output ``[N, C, HW]`` (logits or heatmaps)."""
        out = out.float()
        if self.sum is None:
            n, c, hw = out.shape
            self.sum = torch.zeros(n, c, hw, device=out.device)
            if self.task == "segmentation":  # summed entropies [N, HW] and votes
                self.sq_or_ent = torch.zeros(n, hw, device=out.device)
                self.votes = torch.zeros(n, c, hw, device=out.device)
            else:  # summed squares [N, K, HW]
                self.sq_or_ent = torch.zeros(n, c, hw, device=out.device)
        if self.task == "segmentation":
            logp = torch.log_softmax(out, dim=1)
            p = logp.exp()
            self.sum += p
            self.sq_or_ent -= (p * logp).sum(dim=1)
            self.votes.scatter_add_(1, out.argmax(dim=1, keepdim=True),
                                    torch.ones_like(out[:, :1]))
        else:
            self.sum += out
            self.sq_or_ent += out * out

    def finish(self, size: tuple[int, int]) -> Prediction:
        n, c, _ = self.sum.shape
        h, w = size
        mean = self.sum / self.members
        if self.task == "segmentation":
            entropy_of_mean = -torch.special.xlogy(mean, mean).sum(dim=1)
            js = (entropy_of_mean - self.sq_or_ent / self.members).clamp_min(0).view(n, h, w)
            labels = self.votes.argmax(dim=1).view(n, h, w)
            return Prediction(uncertainty=js, scores=top_fraction_mean(js), labels=labels)
        var = (self.sq_or_ent / self.members - mean * mean).clamp_min(0).mean(dim=1).view(n, h, w)
        heat = mean.view(n, c, h, w)
        return Prediction(uncertainty=var, scores=top_fraction_mean(var), heatmaps=heat,
                          keypoints=decode_heatmaps(heat, self.threshold))


@torch.no_grad()
def predict(model: EnsembleMLP, feature_maps: Sequence[torch.Tensor], out_size: int | tuple[int, int],
            mode: UpsampleMode = "bilinear", task: Task = "segmentation",
            visibility_threshold: float = 0.5, max_chunk_bytes: int = 1 << 29) -> Prediction:
    """Fast path. feature_maps: the selected ``[N, C_i, R_i, R_i]`` maps (in the
    order of the model's input features). Returns a ``Prediction`` at ``out_size``."""
    model.eval()
    size = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
    n, hw = feature_maps[0].shape[0], size[0] * size[1]
    members, h1 = model.config.members, model.config.hidden[0]
    w2, b2, w3, b3 = model.folded_tail()
    # Members per chunk: bounds the [N, chunk * h1, H, W] first-layer tensor.
    chunk = max(1, min(members, max_chunk_bytes // max(1, n * h1 * hw * 4)))
    acc = _Accumulator(task, members, visibility_threshold)
    for start in range(0, members, chunk):
        group = list(range(start, min(members, start + chunk)))
        weight = model.w1[group].permute(1, 0, 2).reshape(model.w1.shape[1], -1)  # [D, g*h1]
        bias = model.b1[group].reshape(-1)
        first = project_first_layer(feature_maps, weight, size, mode, bias=bias)
        first = torch.relu_(first).view(n, len(group), h1, hw)
        for j, m in enumerate(group):
            h = torch.relu_(torch.matmul(w2[m].t(), first[:, j]) + b2[m].view(1, -1, 1))
            acc.add(torch.matmul(w3[m].t(), h) + b3[m].view(1, -1, 1))
        del first
    return acc.finish(size)


@torch.no_grad()
def predict_straightforward(model: EnsembleMLP, feature_maps: Sequence[torch.Tensor],
                            out_size: int | tuple[int, int], mode: UpsampleMode = "bilinear",
                            task: Task = "segmentation", visibility_threshold: float = 0.5,
                            pixel_chunk: int = 16384) -> Prediction:
    """The reference's way: full upsampled ``[N, D, H, W]`` tensor, then every
    member's full MLP on every pixel. Same statistics as ``predict``."""
    model.eval()
    size = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
    full = upsample_concat(feature_maps, size, mode)
    n, d = full.shape[:2]
    pixels = full.permute(0, 2, 3, 1).reshape(-1, d)
    members = model.config.members
    outs = torch.cat([model(pixels[i:i + pixel_chunk].unsqueeze(0).expand(members, -1, -1))
                      for i in range(0, pixels.shape[0], pixel_chunk)], dim=1)  # [M, N*HW, C]
    acc = _Accumulator(task, members, visibility_threshold)
    for m in range(members):
        acc.add(outs[m].view(n, size[0] * size[1], -1).permute(0, 2, 1))
    return acc.finish(size)

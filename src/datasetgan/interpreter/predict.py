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
import torch.nn.functional as F

from datasetgan.features import interp_taps, project_first_layer, upsample_concat
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

    def start(self, n: int, c: int, hw: int, device: torch.device) -> None:
        self.sum = torch.zeros(n, c, hw, device=device)
        if self.task == "segmentation":  # summed entropies [N, HW] and votes [N, C, HW]
            self.sq_or_ent = torch.zeros(n, hw, device=device)
            self.votes = torch.zeros(n, c, hw, device=device)
        else:  # summed squares [N, K, HW]
            self.sq_or_ent = torch.zeros(n, c, hw, device=device)

    def add(self, out: torch.Tensor, cols: slice = slice(None)) -> None:
        """One member's output ``[N, C, P]`` (logits or heatmaps) for pixels ``cols`` of HW."""
        out = out.float()
        if self.sum is None:
            self.start(out.shape[0], out.shape[1], out.shape[2], out.device)
        if self.task == "segmentation":
            logp = torch.log_softmax(out, dim=1)
            p = logp.exp()
            self.sum[..., cols] += p
            self.sq_or_ent[..., cols] -= (p * logp).sum(dim=1)
            self.votes[..., cols].scatter_add_(1, out.argmax(dim=1, keepdim=True),
                                               torch.ones_like(out[:, :1]))
        else:
            self.sum[..., cols] += out
            self.sq_or_ent[..., cols] += out * out

    def add_members(self, out: torch.Tensor, image: int, cols: slice) -> None:
        """All members' outputs ``[M, C, P]`` for image ``image`` and pixels ``cols``
        at once (few large ops instead of many small ones)."""
        out = out.float()
        if self.task == "segmentation":
            logp = torch.log_softmax(out, dim=1)
            p = logp.exp()
            self.sum[image, :, cols] += p.sum(dim=0)
            self.sq_or_ent[image, cols] -= (p * logp).sum(dim=(0, 1))
            self.votes[image, :, cols].scatter_add_(0, out.argmax(dim=1), torch.ones_like(out[:, 0]))
        else:
            self.sum[image, :, cols] += out.sum(dim=0)
            self.sq_or_ent[image, :, cols] += (out * out).sum(dim=0)

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
            visibility_threshold: float = 0.5, max_chunk_bytes: int = 1 << 29,
            tile_rows: int | None = -1) -> Prediction:
    """Fast path. feature_maps: the selected ``[N, C_i, R_i, R_i]`` maps (in the
    order of the model's input features). Returns a ``Prediction`` at ``out_size``.

    ``tile_rows``: process the output in bands of this many rows, so that the
    ``[members * h1]``-wide first-layer activations stay in cache (the CPU
    default, 16); ``None`` works on whole frames (the GPU default)."""
    model.eval()
    size = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
    if tile_rows == -1:
        tile_rows = 16 if feature_maps[0].device.type == "cpu" else None
    if tile_rows:
        return _predict_tiled(model, feature_maps, size, mode, task, visibility_threshold, tile_rows)
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


def _predict_tiled(model: EnsembleMLP, feature_maps: Sequence[torch.Tensor], size: tuple[int, int],
                   mode: UpsampleMode, task: Task, visibility_threshold: float, tile_rows: int) -> Prediction:
    """``predict`` in bands of output rows. Maps below the output resolution are
    projected once at their own size, then each band is bilinearly interpolated
    from them (``F.interpolate`` across, once per map at its own height; then
    each band mixes the 2 source rows of each of its rows with the same taps as
    ``F.interpolate``, as a small matmul); maps at
    the output resolution are projected band by band."""
    H, W = size
    n = feature_maps[0].shape[0]
    members, h1 = model.config.members, model.config.hidden[0]
    out_width = members * h1
    w1 = model.w1.permute(1, 0, 2).reshape(model.w1.shape[1], out_width)  # [D, M*h1]
    b1 = model.b1.reshape(out_width, 1)
    w2, b2, w3, b3 = model.folded_tail()
    w2t, w3t = w2.transpose(1, 2).contiguous(), w3.transpose(1, 2).contiguous()  # [M, h2, h1], [M, C, h2]
    device = feature_maps[0].device
    # Rows of w1 per resolution, in map order.
    groups: dict[tuple[int, int], list[tuple[int, torch.Tensor]]] = {}
    start = 0
    for index, fmap in enumerate(feature_maps):
        c = fmap.shape[1]
        groups.setdefault(tuple(fmap.shape[-2:]), []).append((index, w1[start:start + c]))
        start += c
    acc = _Accumulator(task, members, visibility_threshold)
    acc.start(n, model.config.num_outputs, H * W, device)
    up_kwargs = {"align_corners": False} if mode == "bilinear" else {}
    for i in range(n):
        full, low = [], []
        for (h, w), items in groups.items():
            if (h, w) == (H, W):  # kept row-major [H, C, W]: a band is a contiguous slice
                full += [(wk.t().contiguous(), feature_maps[k][i].float().permute(1, 0, 2).contiguous())
                         for k, wk in items]
                continue
            proj = None
            for k, wk in items:  # maps sharing a resolution: one summed projection [M*h1, h*w]
                fmap = feature_maps[k][i].reshape(-1, h * w).float()
                proj = torch.mm(wk.t(), fmap) if proj is None else proj.addmm_(wk.t(), fmap)
            # Rows outermost ([h, M*h1, w]), so that a band's source rows are one slice.
            proj = proj.view(out_width, h, w).permute(1, 0, 2).contiguous()
            # Across once per level at the level's own height: rows are the batch
            # dimension, so the result is already [h, M*h1 * W].
            across = F.interpolate(proj.view(h, out_width, 1, w), size=(1, W), mode=mode, **up_kwargs)
            low.append((across.view(h, -1), _row_mixers(h, H, mode, tile_rows, device)))
        for b, r0 in enumerate(range(0, H, tile_rows)):
            r1 = min(H, r0 + tile_rows)
            t = r1 - r0
            # band [t, M*h1, W]: full-resolution maps projected row by row (one bmm)...
            band = torch.matmul(full[0][0], full[0][1][r0:r1]) if full else \
                torch.zeros(t, out_width, W, device=device)
            for weight, maps in full[1:]:
                band += torch.matmul(weight, maps[r0:r1])
            band += b1.view(1, out_width, 1)
            flat = band.view(t, -1)
            for rows, mixers in low:  # ...plus every lower level, mixed down from its source rows
                first, mix = mixers[b]
                flat.addmm_(mix, rows[first:first + mix.shape[1]])
            band = band.view(t, members, h1, W).relu_()
            hidden = torch.matmul(w2t, band).add_(b2.view(1, members, -1, 1)).relu_()  # [t, M, h2, W]
            logits = torch.matmul(w3t, hidden).add_(b3.view(1, members, -1, 1))        # [t, M, C, W]
            logits = logits.permute(1, 2, 0, 3).reshape(members, logits.shape[2], t * W)
            cols = slice(r0 * W, r1 * W)
            acc.add_members(logits, i, cols)
    return acc.finish(size)


def _row_mixers(in_rows: int, out_rows: int, mode: UpsampleMode, tile_rows: int,
                device: torch.device) -> list[tuple[int, torch.Tensor]]:
    """Per band of output rows: the first source row it reads and the ``[t, s]``
    matrix that mixes the ``s`` source rows into its ``t`` rows (the 2-tap
    weights of ``F.interpolate``)."""
    y0, y1, wy = interp_taps(in_rows, out_rows, mode, device)
    out = []
    for r0 in range(0, out_rows, tile_rows):
        r1 = min(out_rows, r0 + tile_rows)
        first, last = int(y0[r0:r1].min()), int(y1[r0:r1].max())
        mix = torch.zeros(r1 - r0, last - first + 1, device=device)
        t = torch.arange(r1 - r0, device=device)
        mix.index_put_((t, y0[r0:r1] - first), 1 - wy[r0:r1], accumulate=True)
        mix.index_put_((t, y1[r0:r1] - first), wy[r0:r1], accumulate=True)
        out.append((first, mix))
    return out


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

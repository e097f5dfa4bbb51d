"""Whole-image predictions of a trained ensemble: labels or heatmaps, and uncertainty.

``predict`` is the fast path. Upsampling is linear, so every member's first
Linear layer is applied to each feature map at its own resolution (one
matmul per resolution, all taps of that resolution at once, all members at
once) and only the projected ``[M * h1]``-wide maps are upsampled and summed
(see ``datasetgan.features.projected``). The output is produced in bands of
rows, pixel-major (``[pixels, M * h1]``), so that a band's activations stay in
cache: each lower resolution is interpolated across once at its own height,
and a band mixes the 2 source rows of each of its rows in (a small matmul
per resolution); maps at the output resolution are projected band by band.
The rest of each member runs on the band with its BatchNorms folded into the
next Linear, and the band's statistics (vote, Jensen-Shannon divergence or
heatmap mean and variance) are reduced over the members on the spot, so no
``[M, ...]`` full-image tensor exists. Large buffers are allocated once per
call and reused for every image and band (a fresh large tensor costs page
faults that cost more than the arithmetic).

The first layer's matmuls (nearly all of the arithmetic) can run on
bfloat16 operands (``first_layer_dtype``), accumulated in float32 by the
matmul, rounded to bfloat16 on output (PyTorch's CPU ``mm`` has no float32
output for them), then summed and carried on in float32. On a CPU with AMX
or AVX512-BF16 they run several times faster than float32, and only pixels
where the members' votes nearly tie change their label (docs/PERFORMANCE.md).
``first_layer_precision`` picks that where it pays.

Every image is computed on its own with the same shapes, so an image's
result does not depend on the other images in the batch (nor on the batch
size). The straightforward path (upsample every map, concatenate, run the
MLPs per pixel) is ``predict_straightforward``, kept as the yardstick for
tests and benchmarks.

Segmentation, as the reference: labels are the per-pixel majority vote of the
members (ties go to the lower class id); uncertainty is the Jensen-Shannon
divergence ``H(mean_m p_m) - mean_m H(p_m)``; an image's score is the mean of
its top 10% pixels. Keypoints: the members' mean heatmap gives the keypoints;
uncertainty is the members' variance, averaged over keypoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from datasetgan.features import interp_taps, upsample_concat
from datasetgan.features.config import UpsampleMode
from datasetgan.interpreter.keypoints import decode_heatmaps
from datasetgan.interpreter.model import EnsembleMLP

Task = Literal["segmentation", "keypoints"]

# Pixels per band: on a CPU, ~2k pixels keep a band's [pixels, M * h1]
# activations within the last-level cache while the band's matmuls stay
# efficient, and wider bands make the row mixing read fewer source rows per
# output row (docs/PERFORMANCE.md); on a GPU bands only bound the memory.
CPU_BAND_PIXELS = 2048
GPU_BAND_BYTES = 1 << 27
# Consecutive bands whose outputs are reduced over the members together (fewer, larger ops).
STATS_PIXELS = 4096
# Maps at most this wide are interpolated across by a dense [W, w] matmul.
DENSE_ACROSS_MAX = 8


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


def js_and_votes(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Members' logits ``[..., M, C, P]`` -> (Jensen-Shannon divergence ``[..., P]``,
    majority-vote labels ``[..., P]`` int64, ties to the lower class id)."""
    members, classes = logits.shape[-3:-1]
    logp = torch.log_softmax(logits, dim=-2)
    p = logp.exp()
    neg_entropies = (p * logp).sum(dim=(-3, -2))                # sum_m sum_c p log p
    mean = p.sum(dim=-3).div_(members)                          # [..., C, P]
    js = torch.special.xlogy(mean, mean).sum(dim=-2).neg_().add_(neg_entropies, alpha=1.0 / members)
    choice = logits.max(dim=-2).indices                         # [..., M, P] (first maximum)
    votes = logits.new_zeros(*logits.shape[:-3], classes, logits.shape[-1])
    votes.scatter_add_(-2, choice, torch.ones_like(choice, dtype=votes.dtype))
    return js.clamp_min_(0), votes.max(dim=-2).indices


class _Accumulator:
    """Running per-pixel statistics over members (the straightforward path's)."""

    def __init__(self, task: Task, members: int, visibility_threshold: float):
        self.task, self.members, self.threshold = task, members, visibility_threshold
        self.sum = self.second = self.votes = None

    def add(self, out: torch.Tensor) -> None:
        """One member's output ``[N, C, P]`` (logits or heatmaps)."""
        out = out.float()
        if self.sum is None:
            self.sum = torch.zeros_like(out)
            # summed entropies [N, P] and votes [N, C, P]; or summed squares [N, C, P]
            self.second = torch.zeros_like(out[:, 0] if self.task == "segmentation" else out)
            self.votes = torch.zeros_like(out)
        if self.task == "segmentation":
            logp = torch.log_softmax(out, dim=1)
            p = logp.exp()
            self.sum += p
            self.second -= (p * logp).sum(dim=1)
            self.votes.scatter_add_(1, out.argmax(dim=1, keepdim=True), torch.ones_like(out[:, :1]))
        else:
            self.sum += out
            self.second += out * out

    def finish(self, size: tuple[int, int]) -> Prediction:
        n, c, _ = self.sum.shape
        h, w = size
        mean = self.sum / self.members
        if self.task == "segmentation":
            entropy_of_mean = -torch.special.xlogy(mean, mean).sum(dim=1)
            js = (entropy_of_mean - self.second / self.members).clamp_min(0).view(n, h, w)
            labels = self.votes.argmax(dim=1).view(n, h, w)
            return Prediction(uncertainty=js, scores=top_fraction_mean(js), labels=labels)
        var = (self.second / self.members - mean * mean).clamp_min(0).mean(dim=1).view(n, h, w)
        heat = mean.view(n, c, h, w)
        return Prediction(uncertainty=var, scores=top_fraction_mean(var), heatmaps=heat,
                          keypoints=decode_heatmaps(heat, self.threshold))


@dataclass
class _Level:
    """The selected taps of one resolution: their map indices, their rows of
    the stacked first-layer weight ``[K, M * h1]``, and (below the output
    size) how to interpolate their projection."""

    size: tuple[int, int]
    indices: list[int]
    weight: torch.Tensor
    across: list[tuple[int, int, int, int, int, float]] | torch.Tensor | None = None  # plan or dense taps
    mixers: list[tuple[int, torch.Tensor]] | None = None


class Workspace:
    """Buffers reused across images, bands and calls (``predict(..., workspace=)``):
    a fresh large tensor per image costs more in page faults than its arithmetic."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: Sequence[int], device: torch.device,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
        numel = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < numel or buf.device != device or buf.dtype != dtype:
            buf = self._buffers[name] = torch.empty(numel, device=device, dtype=dtype)
        return buf[:numel].view(*shape)


def _across_plan(w: int, out_w: int, mode: UpsampleMode) -> list[tuple[int, int, int, int, int, float]]:
    """Interpolation along the width as few slice operations: runs of output
    columns ``start::step`` (``count`` of them) that read source columns
    ``a, a + 1, ...`` and ``b, b + 1, ...`` with one weight ``lam``. For an
    integer ratio ``f`` each phase ``j mod f`` is one run, plus its edge column."""
    x0, x1, wx = (t.tolist() for t in interp_taps(w, out_w, mode))
    step = out_w // w if out_w % w == 0 else 1
    runs: list[tuple[int, int, int, int, int, float]] = []
    for phase in range(step):
        run = None
        for j in range(phase, out_w, step):
            a, b, lam = x0[j], x1[j], wx[j]
            if (run is not None and lam == run[5] and a == run[3] + run[2] and b == run[4] + run[2]):
                run[2] += 1
            else:
                if run is not None:
                    runs.append(tuple(run))
                run = [j, step, 1, a, b, lam]
        runs.append(tuple(run))
    return runs  # (start, step, count, a, b, lam)


def _across(proj: torch.Tensor, plan, out: torch.Tensor) -> None:
    """``proj [h, w, c]`` -> ``out [h, W, c]`` along the width (bilinear or nearest)."""
    for start, step, count, a, b, lam in plan:
        dst = out[:, start:start + step * (count - 1) + 1:step]
        if lam == 0.0 or a == b:
            dst.copy_(proj[:, a:a + count])
        else:
            torch.lerp(proj[:, a:a + count], proj[:, b:b + count], lam, out=dst)


def _dense_taps(in_size: int, out_size: int, mode: UpsampleMode, device: torch.device) -> torch.Tensor:
    """``[out, in]``: row ``j`` holds the 2-tap weights of output ``j`` (``F.interpolate``'s)."""
    i0, i1, w1 = interp_taps(in_size, out_size, mode, device)
    taps = torch.zeros(out_size, in_size, device=device)
    rows = torch.arange(out_size, device=device)
    taps.index_put_((rows, i0), 1 - w1, accumulate=True)
    taps.index_put_((rows, i1), w1, accumulate=True)
    return taps


def _row_mixers(in_rows: int, out_rows: int, mode: UpsampleMode, bands: Sequence[tuple[int, int]],
                device: torch.device) -> list[tuple[int, torch.Tensor]]:
    """Per band of output rows: the first source row it reads and the ``[t, s]``
    matrix that mixes the ``s`` source rows into its ``t`` rows (the 2-tap
    weights of ``F.interpolate``)."""
    y0, y1, wy = interp_taps(in_rows, out_rows, mode, device)
    out = []
    for r0, r1 in bands:
        first, last = int(y0[r0:r1].min()), int(y1[r0:r1].max())
        mix = torch.zeros(r1 - r0, last - first + 1, device=device)
        t = torch.arange(r1 - r0, device=device)
        mix.index_put_((t, y0[r0:r1] - first), 1 - wy[r0:r1], accumulate=True)
        mix.index_put_((t, y1[r0:r1] - first), wy[r0:r1], accumulate=True)
        out.append((first, mix))
    return out


def _band_rows(tile_rows: int | None, size: tuple[int, int], width: int, device: torch.device) -> int:
    H, W = size
    if tile_rows is None:
        return H
    if tile_rows == -1:
        if device.type == "cpu":
            return max(1, min(H, CPU_BAND_PIXELS // W))
        return max(1, min(H, GPU_BAND_BYTES // (4 * W * width)))
    if tile_rows < 1:
        raise ValueError(f"tile_rows must be >= 1, -1 (auto) or None, got {tile_rows}")
    return min(H, tile_rows)


@dataclass
class _Plan:
    """What ``predict`` works out once per call: the ensemble as stacked
    weights, the taps grouped by resolution, and the bands of output rows
    (grouped into chunks whose statistics are reduced together)."""

    size: tuple[int, int]
    members: int
    hidden: int                         # h1, each member's first-layer width
    outputs: int
    b1: torch.Tensor                    # [M * h1]
    w2: torch.Tensor                    # [M, h1, h2], BatchNorm folded in
    b2: torch.Tensor                    # [M, 1, h2]
    w3t: torch.Tensor                   # [M, C, h2]
    b3: torch.Tensor                    # [M, C, 1]
    native: _Level | None               # the taps at the output size
    low: list[_Level]                   # the others, coarsest first
    chunks: list[list[tuple[int, tuple[int, int]]]]  # [(band index, (first row, end row))]
    first_layer_dtype: torch.dtype      # the first layer's matmul operands (float32 or bfloat16)

    @property
    def width(self) -> int:
        return self.members * self.hidden


def _plan(model: EnsembleMLP, feature_maps: Sequence[torch.Tensor], size: tuple[int, int],
          mode: UpsampleMode, tile_rows: int | None, first_layer_dtype: torch.dtype) -> _Plan:
    H, W = size
    device = feature_maps[0].device
    members, h1 = model.config.members, model.config.hidden[0]
    width = members * h1
    # First layer of all members side by side: column m * h1 + j is member m's unit j.
    w1 = model.w1.float().permute(1, 0, 2).reshape(model.w1.shape[1], width)
    w2, b2, w3, b3 = model.folded_tail()
    rows = _band_rows(tile_rows, size, width, device)
    bands = [(r0, min(H, r0 + rows)) for r0 in range(0, H, rows)]
    per_chunk = max(1, STATS_PIXELS // (rows * W))
    chunks = [list(enumerate(bands))[k:k + per_chunk] for k in range(0, len(bands), per_chunk)]
    if len(chunks[-1]) > 1 and chunks[-1][-1][1][1] - chunks[-1][-1][1][0] != rows:  # a short last band alone
        chunks[-1:] = [chunks[-1][:-1], chunks[-1][-1:]]

    levels: dict[tuple[int, int], _Level] = {}
    start = 0
    for index, fmap in enumerate(feature_maps):
        c, level_size = fmap.shape[1], (int(fmap.shape[2]), int(fmap.shape[3]))
        level = levels.setdefault(level_size, _Level(level_size, [], w1.new_zeros(0, width)))
        level.indices.append(index)
        level.weight = torch.cat([level.weight, w1[start:start + c]])
        start += c
    for level in levels.values():
        if level.size != size:
            h, w = level.size
            if w == W:
                level.across = None
            elif w <= DENSE_ACROSS_MAX and W >= 4 * w:  # tiny maps, many phases: one small matmul
                level.across = _dense_taps(w, W, mode, device)
            else:
                level.across = _across_plan(w, W, mode)
            level.mixers = _row_mixers(h, H, mode, bands, device)
    for level in levels.values():
        level.weight = level.weight.to(first_layer_dtype)
    native = levels.pop(size, None)
    return _Plan(size, members, h1, model.config.num_outputs, model.b1.float().reshape(width),
                 w2, b2.unsqueeze(1), w3.transpose(1, 2).contiguous(), b3.unsqueeze(2), native,
                 sorted(levels.values(), key=lambda lv: lv.size), chunks, first_layer_dtype)


def _lower_sources(plan: _Plan, feature_maps: Sequence[torch.Tensor], image: int,
                   ws: Workspace) -> list[torch.Tensor]:
    """One image's taps below the output size, projected by the first layer and
    interpolated across to the output width: per level ``[h, W * M * h1]``."""
    W, width, device = plan.size[1], plan.width, feature_maps[0].device
    sources = []
    for k, level in enumerate(plan.low):
        h, w = level.size
        packed = _pack(feature_maps, level, image, ws, f"pack{k}", plan.first_layer_dtype)  # [K, h * w]
        if plan.first_layer_dtype == torch.float32:
            proj = torch.mm(packed.t(), level.weight, out=ws.get(f"proj{k}", (h * w, width), device))
        else:
            low = torch.mm(packed.t(), level.weight,
                           out=ws.get(f"proj{k}_low", (h * w, width), device, plan.first_layer_dtype))
            proj = ws.get(f"proj{k}", (h * w, width), device).copy_(low)
        if level.across is None:
            sources.append(proj.view(h, W * width))
            continue
        across = ws.get(f"across{k}", (h, W, width), device)
        if isinstance(level.across, torch.Tensor):
            torch.matmul(level.across, proj.view(h, w, width), out=across)
        else:
            _across(proj.view(h, w, width), level.across, across)
        sources.append(across.view(h, W * width))
    return sources


def _chunk_outputs(plan: _Plan, chunk: list[tuple[int, tuple[int, int]]], packed: torch.Tensor | None,
                   sources: list[torch.Tensor], ws: Workspace) -> torch.Tensor:
    """Every member's outputs on a chunk of bands: ``[bands, M, C, rows * W]``.
    A band's first layer is its output-size taps (``packed``, projected here)
    plus every lower level mixed down from its source rows."""
    W, width, device = plan.size[1], plan.width, plan.b1.device
    t = chunk[0][1][1] - chunk[0][1][0]
    outs = ws.get("logits", (len(chunk), plan.members, plan.outputs, t * W), device)
    for j, (b, (r0, r1)) in enumerate(chunk):
        acc = ws.get("band", (t * W, width), device)
        if packed is not None and plan.first_layer_dtype == torch.float32:  # bias included
            torch.addmm(plan.b1, packed[:, r0 * W:r1 * W].t(), plan.native.weight, out=acc)
        elif packed is not None:
            low = torch.mm(packed[:, r0 * W:r1 * W].t(), plan.native.weight,
                           out=ws.get("band_low", (t * W, width), device, plan.first_layer_dtype))
            torch.add(low, plan.b1, out=acc)
        else:
            acc.copy_(plan.b1.expand(t * W, width))
        flat = acc.view(t, W * width)
        for level, src in zip(plan.low, sources):
            first, mix = level.mixers[b]
            flat.addmm_(mix, src[first:first + mix.shape[1]])
        hidden = acc.relu_().view(t * W, plan.members, plan.hidden).transpose(0, 1)
        hidden = torch.baddbmm(plan.b2, hidden, plan.w2).relu_()
        torch.baddbmm(plan.b3, plan.w3t, hidden.transpose(1, 2), out=outs[j])      # [M, C, t * W]
    return outs


@torch.no_grad()
def predict(model: EnsembleMLP, feature_maps: Sequence[torch.Tensor], out_size: int | tuple[int, int],
            mode: UpsampleMode = "bilinear", task: Task = "segmentation",
            visibility_threshold: float = 0.5, tile_rows: int | None = -1,
            workspace: Workspace | None = None,
            first_layer_dtype: torch.dtype = torch.float32) -> Prediction:
    """Fast path. feature_maps: the selected ``[N, C_i, R_i, R_i']`` maps (in the
    order of the model's input features). Returns a ``Prediction`` at ``out_size``.

    ``tile_rows``: rows per band (``-1``: about 2k pixels on a CPU, bounded
    memory on a GPU; ``None``: whole frames). ``workspace``: reuse the buffers
    of earlier calls (as ``synthesize`` does for every batch).
    ``first_layer_dtype``: ``torch.float32`` or ``torch.bfloat16`` operands for
    the first layer's matmuls (see the module's docstring).
    """
    if first_layer_dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"first_layer_dtype must be torch.float32 or torch.bfloat16, got {first_layer_dtype}")
    model.eval()
    H, W = (out_size, out_size) if isinstance(out_size, int) else (int(out_size[0]), int(out_size[1]))
    n, device = feature_maps[0].shape[0], feature_maps[0].device
    ws = workspace if workspace is not None else Workspace()
    plan = _plan(model, feature_maps, (H, W), mode, tile_rows, first_layer_dtype)
    outputs = plan.outputs

    uncertainty = torch.empty(n, H * W, device=device)
    labels = torch.empty(n, H * W, dtype=torch.long, device=device) if task == "segmentation" else None
    heat = torch.empty(n, outputs, H * W, device=device) if task == "keypoints" else None
    for i in range(n):
        sources = _lower_sources(plan, feature_maps, i, ws)
        packed = (_pack(feature_maps, plan.native, i, ws, "native", plan.first_layer_dtype)
                  if plan.native is not None else None)
        for chunk in plan.chunks:
            outs = _chunk_outputs(plan, chunk, packed, sources, ws)
            cols = slice(chunk[0][1][0] * W, chunk[-1][1][1] * W)
            if task == "segmentation":
                js, votes = js_and_votes(outs)
                uncertainty[i, cols], labels[i, cols] = js.view(-1), votes.view(-1)
            else:
                mean = outs.mean(dim=1)                                             # [k, K, t * W]
                heat[i, :, cols] = mean.transpose(0, 1).reshape(outputs, -1)
                var = (outs * outs).mean(dim=1).sub_(mean * mean).clamp_min_(0).mean(dim=1)
                uncertainty[i, cols] = var.view(-1)
    uncertainty = uncertainty.view(n, H, W)
    scores = top_fraction_mean(uncertainty)
    if task == "segmentation":
        return Prediction(uncertainty=uncertainty, scores=scores, labels=labels.view(n, H, W))
    heat = heat.view(n, outputs, H, W)
    return Prediction(uncertainty=uncertainty, scores=scores, heatmaps=heat,
                      keypoints=decode_heatmaps(heat, visibility_threshold))


def first_layer_precision(device: torch.device, requested: str = "auto") -> torch.dtype:
    """The first layer's matmul dtype for ``--precision``: ``float32``,
    ``bfloat16``, or ``auto``: bfloat16 on a CPU with native bfloat16 dot
    products (AMX tiles or AVX512-BF16, where its matmuls run several times faster),
    float32 elsewhere (a GPU's float32 labelling is already a small share of
    the generator's time, and a CPU without them emulates bfloat16 slowly)."""
    if requested == "float32":
        return torch.float32
    if requested == "bfloat16":
        return torch.bfloat16
    if requested != "auto":
        raise ValueError(f"precision must be auto, float32 or bfloat16, got {requested!r}")
    return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bfloat16() else torch.float32


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX tiles or AVX512-BF16)."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, so looked up softly
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def _pack(feature_maps: Sequence[torch.Tensor], level: _Level, image: int, ws: Workspace,
          name: str, dtype: torch.dtype) -> torch.Tensor:
    """One image's taps of a level stacked as ``[K, h * w]`` ``dtype`` (one matmul operand)."""
    h, w = level.size
    if len(level.indices) == 1:
        fmap = feature_maps[level.indices[0]][image]
        return fmap.reshape(-1, h * w).to(dtype)
    total = sum(feature_maps[k].shape[1] for k in level.indices)
    packed = ws.get(name, (total, h * w), feature_maps[0].device, dtype)
    start = 0
    for k in level.indices:
        c = feature_maps[k].shape[1]
        packed[start:start + c].copy_(feature_maps[k][image].reshape(c, h * w))
        start += c
    return packed


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

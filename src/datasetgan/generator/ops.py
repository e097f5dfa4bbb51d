"""The low-level operations of NVIDIA's StyleGAN2, in plain PyTorch.

Each function reproduces the *reference* (non-CUDA-plugin) path of NVIDIA's
``torch_utils/ops`` (``upfirdn2d``, ``conv2d_resample``, ``bias_act``) and
``modulated_conv2d`` from ``training/networks.py``, down to the order of
operations, so that a checkpoint gives the same numbers here as there. The
custom CUDA kernels NVIDIA uses compute the same functions; they differ from
the reference only by float rounding.

Filters follow NVIDIA's conventions: ``setup_filter([1, 3, 3, 1])`` gives the
4x4 outer product normalised to sum 1, stored as a float32 buffer.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

Padding = int | Sequence[int]

LRELU_ALPHA = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps the activations' second moment (He-style)


def setup_filter(taps: Sequence[float] | torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """1D taps -> normalised FIR filter, ``[k, k]`` (outer product) or ``[k]``.

    As NVIDIA: fewer than 8 taps give a full 2D filter, 8 or more a separable 1D one.
    """
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim == 1 and f.numel() < 8:
        f = torch.outer(f, f)
    f = f / f.sum()
    return f * (gain ** (f.ndim / 2))


def _padding4(padding: Padding) -> tuple[int, int, int, int]:
    """int, [x, y] or [x0, x1, y0, y1] -> (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    x0, x1, y0, y1 = padding
    return x0, x1, y0, y1


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1,
              padding: Padding = 0, gain: float = 1.0) -> torch.Tensor:
    """Upsample (zero insertion), pad, FIR-filter, downsample: ``[N, C, H, W]`` -> ``[N, C, H', W']``.

    Negative padding crops. The filter is flipped (true convolution), which
    matters only for asymmetric filters. ``f`` must be a float32 filter from
    ``setup_filter``; it is cast to ``x``'s dtype as NVIDIA does.
    """
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    px0, px1, py0, py1 = _padding4(padding)
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype).flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
    else:
        weight = f[None, None].repeat(c, 1, 1)
        x = F.conv2d(x, weight.unsqueeze(2), groups=c)
        x = F.conv2d(x, weight.unsqueeze(3), groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """FIR upsampling ``[N, C, H, W]`` -> ``[N, C, up*H, up*W]`` (gain up**2 keeps the mean)."""
    fw, fh = _filter_size(f)
    p = [(fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=p, gain=up * up)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2) -> torch.Tensor:
    """FIR downsampling ``[N, C, H, W]`` -> ``[N, C, H/down, W/down]``."""
    fw, fh = _filter_size(f)
    p = [(fw - down + 1) // 2, (fw - down) // 2, (fh - down + 1) // 2, (fh - down) // 2]
    return upfirdn2d(x, f, down=down, padding=p)


def _conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: Padding = 0, groups: int = 1,
          transpose: bool = False, flip_weight: bool = True) -> torch.Tensor:
    # F.conv2d is a correlation; flip_weight=False asks for a true convolution.
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1,
                    down: int = 1, padding: Padding = 0, groups: int = 1,
                    flip_weight: bool = True) -> torch.Tensor:
    """2D convolution with optional FIR up/downsampling, as NVIDIA's ``conv2d_resample``.

    ``x [N, I, H, W]``, ``w [O, I/groups, kh, kw]`` -> ``[N, O, H*up/down, W*up/down]``
    (with ``padding = kh // 2``). Upsampling runs as a stride-2 transposed
    convolution followed by the FIR filter; downsampling filters first and
    then runs a strided convolution. ``padding`` is relative to the upsampled image.
    """
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1])
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1])
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True,
                  flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2)
        if down > 1:
            x = upfirdn2d(x, f, down=down)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1])
    return _conv(x, w, groups=groups, flip_weight=flip_weight)


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, act: str = "linear",
             gain: float | None = None, clamp: float | None = None,
             overwrite_input: bool = False) -> torch.Tensor:
    """Add a per-channel bias (dim 1), apply ``act``, scale by ``gain``, clamp to +-``clamp``.

    ``act`` is ``"linear"`` (default gain 1) or ``"lrelu"`` (slope 0.2, default
    gain sqrt(2)), NVIDIA's two activations in StyleGAN2.

    ``overwrite_input``: the caller will not use ``x`` again, so where no
    gradient is recorded the steps run in place in ``x``'s memory (the same
    numbers, bit for bit, without allocating and page-faulting a new tensor
    per step). With autograd on, they always run out of place.
    """
    if act not in ("linear", "lrelu", "relu"):
        raise ValueError(f"bias_act: unknown activation {act!r}")
    if act != "linear":
        gain = LRELU_GAIN if gain is None else gain
    gain = 1.0 if gain is None else float(gain)
    clamp = clamp if clamp is not None and clamp >= 0 else None
    records_grad = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))
    if overwrite_input and not records_grad:
        if b is not None:
            x.add_(b.reshape([-1 if i == 1 else 1 for i in range(x.ndim)]))
        if act == "lrelu":
            F.leaky_relu_(x, LRELU_ALPHA)
        elif act == "relu":
            x.relu_()
        if gain != 1:
            x.mul_(gain)
        if clamp is not None:
            x.clamp_(-clamp, clamp)
        return x
    if b is not None:
        x = x + b.reshape([-1 if i == 1 else 1 for i in range(x.ndim)])
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_ALPHA)
    elif act == "relu":
        x = F.relu(x)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each vector to unit root-mean-square along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     noise: torch.Tensor | None = None, up: int = 1, padding: int = 0,
                     resample_filter: torch.Tensor | None = None, demodulate: bool = True,
                     flip_weight: bool = True, fused_modconv: bool = True) -> torch.Tensor:
    """StyleGAN2's style-modulated convolution.

    ``x [N, I, H, W]``, ``weight [O, I, k, k]``, ``styles [N, I]`` -> ``[N, O, H*up, W*up]``.
    Each sample's weights are scaled per input channel by its style, then (with
    ``demodulate``) per output channel to unit norm. ``fused_modconv`` runs it as
    one grouped convolution with per-sample weights; otherwise the styles scale
    the activations before and the demodulation coefficients after a shared
    convolution (mathematically equal; NVIDIA uses it for training and fp16).
    ``noise`` (broadcastable to the output) is added after demodulation.
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape

    # Pre-normalise to avoid fp16 overflow (a no-op for the result, thanks to demodulation).
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(in_channels * kh * kw)
                           / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, padding=padding,
                            flip_weight=flip_weight)
        if demodulate and noise is not None:
            x = torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1))
        elif demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        elif noise is not None:
            x = x.add_(noise.to(x.dtype))
        return x

    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, padding=padding,
                        groups=batch_size, flip_weight=flip_weight)
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x.add_(noise)
    return x

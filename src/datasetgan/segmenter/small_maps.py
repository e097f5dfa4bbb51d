"""Exact shortcuts for convolutions on the tiny maps of small images.

At 64x64 a MobileNetV3 DeepLabV3 runs its last stages on 8x8 and 4x4 maps,
where torch's CPU kernels spend far more time on bookkeeping than on
arithmetic. Two swaps (same parameters, same state-dict keys, same outputs
and gradients up to float rounding) remove that cost:

- ``AtrousConv2d``: with dilation ``d`` and "same" padding, every off-centre
  tap of a pixel lies at least ``d`` pixels away; on a map no wider or taller
  than ``d`` all of them read zeros, and the convolution equals a 1x1
  convolution with the centre taps. DeepLabV3's ASPP uses rates 12, 24 and 36
  on the stride-16 map, which is 4x4 at 64 px and 8x8 at 128 px: there the
  shortcut removes about 40% of a MobileNetV3 DeepLabV3+'s training arithmetic.
- ``DenseDepthwiseConv2d``: a depthwise convolution maps each channel's
  ``P = h * w`` pixels linearly onto its ``P'`` output pixels, so on a map of
  at most ``DENSE_MAX_PIXELS`` pixels it runs as one batched matmul with a
  ``[C, P', P]`` matrix per call, built from the weights and fixed 0/1 tap
  matrices (one matmul too). torch's depthwise kernels on such maps,
  especially dilated ones and their backward, are several times slower
  (``benchmarks/segmenter_speed.py``).
- ``conv_of_upsampled``: DeepLabV3+'s decoder upsamples the 256-channel ASPP
  map 4x and convolves it (3x3) with the low-level features. Upsampling and
  convolution are both linear, so each 3x3 tap's channel mixing can run at
  the small map's own size, followed by one fixed ``[9 h w, H W]`` matrix that
  upsamples and shifts: on a 4x4 map 8x less arithmetic than the convolution
  at 16x16, a large share of a 64 px training step. ``PlusDecoder`` uses
  it while its ``fold_upsampling`` is on and the matrix is small.

They only change how the result is computed; larger maps and other devices
take torch's own path.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional as F

# Largest input map (h * w pixels) a depthwise convolution runs on as a dense matmul (8x8).
DENSE_MAX_PIXELS = 64
# Largest ``[k * k * h * w, H * W]`` matrix ``conv_of_upsampled`` builds (8x8 -> 32x32 at 128 px); beyond it
# the dense matrix costs as much as the convolution it replaces.
FOLD_MAX_ENTRIES = 1 << 20


class AtrousConv2d(nn.Conv2d):
    """A dilated ("atrous") convolution that skips taps which can only read padding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        if x.shape[-2] <= dh and x.shape[-1] <= dw:
            centre = self.weight[:, :, kh // 2:kh // 2 + 1, kw // 2:kw // 2 + 1]
            return F.conv2d(x, centre, self.bias, 1, 0, 1, self.groups)
        return super().forward(x)


def _output_size(kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                 dilation: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                 for n, p, d, k, s in zip(size, padding, dilation, kernel, stride))


@functools.lru_cache(maxsize=128)
def tap_matrices(kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                 dilation: tuple[int, int], size: tuple[int, int], device: str,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[kh * kw, P', P]`` 0/1 matrices: entry ``(t, p', p)`` is 1 when output pixel ``p'``
    reads input pixel ``p`` through tap ``t`` (zero padding reads nothing)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (h, w) = kernel, stride, padding, dilation, size
    oh, ow = _output_size(kernel, stride, padding, dilation, size)
    taps = torch.zeros(kh * kw, oh * ow, h * w)
    for ti in range(kh):
        for tj in range(kw):
            for oy in range(oh):
                y = oy * sh - ph + ti * dh
                if not 0 <= y < h:
                    continue
                for ox in range(ow):
                    x = ox * sw - pw + tj * dw
                    if 0 <= x < w:
                        taps[ti * kw + tj, oy * ow + ox, y * w + x] = 1.0
    return taps.to(device, dtype)


class DenseDepthwiseConv2d(nn.Conv2d):
    """A depthwise convolution that runs on tiny maps as one batched matmul."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if x.device.type != "cpu" or h * w > DENSE_MAX_PIXELS or x.dtype != self.weight.dtype:
            return super().forward(x)
        geometry = (self.kernel_size, self.stride, self.padding, self.dilation, (h, w))
        oh, ow = _output_size(*geometry)
        taps = tap_matrices(*geometry, str(x.device), x.dtype)
        mixer = torch.mm(self.weight.reshape(c, -1), taps.view(taps.shape[0], -1)).view(c, oh * ow, h * w)
        y = torch.bmm(x.reshape(n, c, h * w).transpose(0, 1), mixer.transpose(1, 2))      # [C, N, P']
        y = y.transpose(0, 1).reshape(n, c, oh, ow)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


@functools.lru_cache(maxsize=32)
def upsampled_tap_matrix(size: tuple[int, int], out_size: tuple[int, int], kernel: int, device: str,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[k * k * h * w, H * W]``: row ``t * h * w + p`` is what input pixel ``p`` adds to every output
    pixel through tap ``t`` of a ``k x k`` zero-padded "same" convolution of the bilinear upsampling
    (``align_corners=False``) of the input from ``size`` to ``out_size``."""
    (h, w), (H, W), pad = size, out_size, kernel // 2
    basis = torch.eye(h * w, dtype=torch.float64).view(h * w, 1, h, w)
    up = F.interpolate(basis, size=out_size, mode="bilinear", align_corners=False)[:, 0]   # [h w, H, W]
    up = F.pad(up, (pad, pad, pad, pad))
    rows = [up[:, ty:ty + H, tx:tx + W].reshape(h * w, H * W) for ty in range(kernel) for tx in range(kernel)]
    return torch.cat(rows).to(device, dtype)


def fold_fits(size: tuple[int, int], out_size: tuple[int, int], kernel: int = 3) -> bool:
    """Whether ``conv_of_upsampled`` takes its shortcut for these sizes."""
    return kernel * kernel * size[0] * size[1] * out_size[0] * out_size[1] <= FOLD_MAX_ENTRIES


def conv_of_upsampled(x: torch.Tensor, weight: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """``conv2d(interpolate(x, out_size, bilinear), weight, padding=k // 2)`` (no bias) for
    ``x [N, A, h, w]`` and ``weight [O, A, k, k]``, each tap's channel mixing done at ``h x w``."""
    n, a, h, w = x.shape
    o, k = weight.shape[0], weight.shape[-1]
    taps = upsampled_tap_matrix((h, w), tuple(out_size), k, str(x.device), x.dtype)
    per_tap = torch.matmul(weight.permute(2, 3, 0, 1).reshape(k * k * o, a), x.reshape(n, a, h * w))
    per_tap = per_tap.view(n, k * k, o, h * w).transpose(1, 2).reshape(n, o, k * k * h * w)
    return torch.matmul(per_tap, taps).view(n, o, *out_size)


def _same_padding(m: nn.Conv2d) -> bool:
    return isinstance(m.padding, tuple) and all(
        k % 2 == 1 and p == d * (k // 2) for k, p, d in zip(m.kernel_size, m.padding, m.dilation))


def install_shortcuts(net: nn.Module) -> None:
    """Swap the class of every convolution of ``net`` that a shortcut applies to:
    depthwise ones (any stride, dilation and padding, zero-padded) become
    ``DenseDepthwiseConv2d``; other dilated, stride-1, "same"-padded ones
    become ``AtrousConv2d``; a module with a ``fold_upsampling`` switch (``PlusDecoder``) has it
    turned on. Parameters and state-dict keys stay as they were."""
    for m in net.modules():
        if hasattr(m, "fold_upsampling"):
            m.fold_upsampling = True
        if type(m) is not nn.Conv2d or m.padding_mode != "zeros" or isinstance(m.padding, str):
            continue
        if m.groups == m.in_channels == m.out_channels and m.groups > 1:
            m.__class__ = DenseDepthwiseConv2d
        elif _same_padding(m) and m.stride == (1, 1) and max(m.dilation) > 1:
            m.__class__ = AtrousConv2d


def remove_shortcuts(net: nn.Module) -> None:
    """Undo ``install_shortcuts``: torch's own convolutions everywhere (the yardstick)."""
    for m in net.modules():
        if isinstance(m, (AtrousConv2d, DenseDepthwiseConv2d)):
            m.__class__ = nn.Conv2d
        if hasattr(m, "fold_upsampling"):
            m.fold_upsampling = False

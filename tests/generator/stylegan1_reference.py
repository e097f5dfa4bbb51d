"""An independent re-implementation of the DatasetGAN release's StyleGAN1 port, for tests only.

Written from the structure of nv-tlabs/datasetGAN_release ``models/stylegan1.py``
(no code copied), with its module names, so that ``release_g_all(...).state_dict()``
has exactly the keys of the release's ``*.for_g_all.pt`` files: an
``nn.Sequential`` of ``g_mapping``, ``truncation`` (no tensors) and
``g_synthesis``. It deliberately shares nothing with
``datasetgan.generator.stylegan1``: the layer order, gains and the two
upsampling paths are spelled out here as the release does them, so that a
test comparing the two checks the production module against the release.

Noise: each ``NoiseLayer`` draws fresh noise unless its ``noise`` attribute
is set (the release's hook for fixed noise); ``set_noise(g_all, 0.0)`` turns it
off (adds zeros).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


class MyLinear(nn.Module):
    """Equalised-lr dense layer: weight stored as randn / lrmul, scaled by gain * lrmul / sqrt(in)."""

    def __init__(self, n_in: int, n_out: int, gain: float = SQRT2, lrmul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in) / lrmul)
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.w_mul = gain / math.sqrt(n_in) * lrmul
        self.b_mul = lrmul

    def forward(self, x):
        return F.linear(x, self.weight * self.w_mul, self.bias * self.b_mul)


class BlurLayer(nn.Module):
    def __init__(self, taps=(1, 2, 1)):
        super().__init__()
        t = torch.tensor(taps, dtype=torch.float32)
        k = t[:, None] * t[None, :]
        self.register_buffer("kernel", (k / k.sum())[None, None])

    def forward(self, x):
        c = x.size(1)
        return F.conv2d(x, self.kernel.expand(c, 1, -1, -1), padding=self.kernel.size(-1) // 2, groups=c)


class MyConv2d(nn.Module):
    """Equalised-lr conv; with ``upscale``: nearest x2 + conv below 128 px output, the fused
    transposed conv from 128 px; ``intermediate`` (a blur) runs before the bias."""

    def __init__(self, n_in: int, n_out: int, k: int, gain: float = SQRT2, upscale: bool = False,
                 intermediate: nn.Module | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in, k, k))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.w_mul = gain / math.sqrt(n_in * k * k)
        self.k = k
        self.upscale = upscale
        self.intermediate = intermediate

    def forward(self, x):
        w = self.weight * self.w_mul
        if self.upscale and 2 * min(x.shape[2:]) >= 128:
            wt = w.permute(1, 0, 2, 3)
            wt = F.pad(wt, (1, 1, 1, 1))
            wt = wt[:, :, :-1, :-1] + wt[:, :, 1:, :-1] + wt[:, :, :-1, 1:] + wt[:, :, 1:, 1:]
            x = F.conv_transpose2d(x, wt, stride=2, padding=1)
        else:
            if self.upscale:
                n, c, h, ww = x.shape
                x = x[:, :, :, None, :, None].expand(n, c, h, 2, ww, 2).reshape(n, c, 2 * h, 2 * ww)
            if self.intermediate is None:
                return F.conv2d(x, w, self.bias, padding=self.k // 2)
            x = F.conv2d(x, w, None, padding=self.k // 2)
        if self.intermediate is not None:
            x = self.intermediate(x)
        return x + self.bias[None, :, None, None]


class NoiseLayer(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels))
        self.noise = None   # a tensor (or 0.0) fixes the noise; None draws fresh noise

    def forward(self, x):
        noise = self.noise
        if noise is None:
            noise = torch.randn(x.size(0), 1, x.size(2), x.size(3), device=x.device, dtype=x.dtype)
        return x + self.weight[None, :, None, None] * noise


class StyleMod(nn.Module):
    def __init__(self, w_dim: int, channels: int):
        super().__init__()
        self.lin = MyLinear(w_dim, 2 * channels, gain=1.0)

    def forward(self, x, w):
        s = self.lin(w).view(-1, 2, x.size(1), 1, 1)
        return x * (s[:, 0] + 1.0) + s[:, 1]


class LayerEpilogue(nn.Module):
    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.top_epi = nn.Sequential(OrderedDict([
            ("noise", NoiseLayer(channels)),
            ("activation", nn.LeakyReLU(0.2)),
            ("instance_norm", nn.InstanceNorm2d(channels)),
        ]))
        self.style_mod = StyleMod(w_dim, channels)

    def forward(self, x, w):
        return self.style_mod(self.top_epi(x), w)


class InputBlock(nn.Module):
    def __init__(self, nf: int, w_dim: int, const_input: bool = True):
        super().__init__()
        self.nf, self.const_input = nf, const_input
        if const_input:
            self.const = nn.Parameter(torch.ones(1, nf, 4, 4))
            self.bias = nn.Parameter(torch.ones(nf))
        else:
            self.dense = MyLinear(w_dim, nf * 16, gain=SQRT2 / 4)
        self.epi1 = LayerEpilogue(nf, w_dim)
        self.conv = MyConv2d(nf, nf, 3)
        self.epi2 = LayerEpilogue(nf, w_dim)

    def forward(self, ws):
        n = ws.size(0)
        if self.const_input:
            x = self.const.expand(n, -1, -1, -1) + self.bias[None, :, None, None]
        else:
            x = self.dense(ws[:, 0]).view(n, self.nf, 4, 4)
        x = self.conv(self.epi1(x, ws[:, 0]))
        return self.epi2(x, ws[:, 1]), x


class GSynthesisBlock(nn.Module):
    def __init__(self, n_in: int, n_out: int, w_dim: int):
        super().__init__()
        self.conv0_up = MyConv2d(n_in, n_out, 3, upscale=True, intermediate=BlurLayer())
        self.epi1 = LayerEpilogue(n_out, w_dim)
        self.conv1 = MyConv2d(n_out, n_out, 3)
        self.epi2 = LayerEpilogue(n_out, w_dim)

    def forward(self, x, ws):
        x = self.conv1(self.epi1(self.conv0_up(x), ws[:, 0]))
        return self.epi2(x, ws[:, 1]), x


class G_synthesis(nn.Module):
    def __init__(self, resolution: int, w_dim: int = 512, fmap_base: int = 8192, fmap_max: int = 512,
                 const_input: bool = True):
        super().__init__()
        nf = lambda stage: min(int(fmap_base / 2.0 ** stage), fmap_max)  # noqa: E731
        blocks, last = [], None
        for lg in range(2, int(math.log2(resolution)) + 1):
            c = nf(lg - 1)
            name = f"{2 ** lg}x{2 ** lg}"
            blocks.append((name, InputBlock(c, w_dim, const_input) if lg == 2 else GSynthesisBlock(last, c, w_dim)))
            last = c
        self.blocks = nn.ModuleDict(OrderedDict(blocks))
        self.torgb = MyConv2d(last, 3, 1, gain=1.0)

    def forward(self, ws):
        """-> ``(rgb, affine_layers)``: two maps per resolution, the block output then the conv output."""
        taps = []
        x = None
        for i, block in enumerate(self.blocks.values()):
            pair = ws[:, 2 * i:2 * i + 2]
            x, conv_out = block(pair) if i == 0 else block(x, pair)
            taps += [x, conv_out]
        return self.torgb(x), taps


class G_mapping(nn.Sequential):
    def __init__(self, dim: int = 512, layers: int = 8):
        items = [("pixel_norm", PixelNorm())]
        for i in range(layers):
            items += [(f"dense{i}", MyLinear(dim, dim, gain=SQRT2, lrmul=0.01)), (f"dense{i}_act", nn.LeakyReLU(0.2))]
        super().__init__(OrderedDict(items))

    def forward(self, z):
        return super().forward(z).unsqueeze(1).expand(-1, 18, -1)


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


class Truncation(nn.Module):
    """No tensors in the state dict (the release keeps ``avg_latent`` as a plain attribute)."""

    def __init__(self, avg_latent: torch.Tensor, max_layer: int = 8, threshold: float = 0.7):
        super().__init__()
        self.avg_latent, self.max_layer, self.threshold = avg_latent, max_layer, threshold

    def forward(self, ws):
        mixed = torch.lerp(self.avg_latent, ws, self.threshold)
        keep = (torch.arange(ws.size(1)) < self.max_layer).view(1, -1, 1)
        return torch.where(keep, mixed, ws)


def release_g_all(resolution: int, fmap_base: int = 8192, fmap_max: int = 512, const_input: bool = True,
                  avg_latent: torch.Tensor | None = None, max_layer: int = 8) -> nn.Sequential:
    avg = torch.zeros(512) if avg_latent is None else avg_latent
    return nn.Sequential(OrderedDict([
        ("g_mapping", G_mapping()),
        ("truncation", Truncation(avg, max_layer=max_layer)),
        ("g_synthesis", G_synthesis(resolution, fmap_base=fmap_base, fmap_max=fmap_max, const_input=const_input)),
    ])).eval()


@torch.no_grad()
def randomize(g_all: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter random (noise strengths and biases too), at each kind's usual scale."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in g_all.named_parameters():
        r = torch.randn(p.shape, generator=gen)
        if name.startswith("g_mapping") and name.endswith("weight"):
            p.copy_(r * 100.0)          # stored as randn / lrmul
        elif name.startswith("g_mapping"):
            p.copy_(r * 10.0)           # bias * 0.01
        elif name == "g_synthesis.torgb.weight":
            p.copy_(r * 0.1)            # images mostly inside [-1, 1], so uint8 levels are compared
        elif name.endswith("noise.weight") or name.endswith("bias"):
            p.copy_(r * 0.2)
        else:
            p.copy_(r)
    return g_all


def set_noise(g_all: nn.Module, noise) -> None:
    """Fix every noise layer's noise (``0.0``: off; ``None``: fresh noise each call)."""
    for m in g_all.modules():
        if isinstance(m, NoiseLayer):
            m.noise = noise


def release_uint8(img: torch.Tensor) -> np.ndarray:
    """The release's ``process_image`` then ``[N, H, W, C]`` uint8 (``utils/utils.py``)."""
    x = img.detach().cpu().numpy() * 127.5 + 128.0
    x = np.clip(x.astype(int), 0, 255)
    return np.transpose(x, (0, 2, 3, 1)).astype(np.uint8)

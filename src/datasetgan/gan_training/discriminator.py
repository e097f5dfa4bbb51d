"""StyleGAN2 residual discriminator (NVIDIA stylegan2-ada-pytorch layout).

Parameter and buffer names match ``training/networks.py`` of NVIDIA's release
(``b64.fromrgb.weight``, ``b64.conv0.weight``, ``b4.fc.weight``, ...), so an
NVIDIA ``D`` state dict loads without renaming. Only torch ops are used: the
FIR down-sampling of ``upfirdn2d`` is a depthwise convolution with the
separable [1, 3, 3, 1] filter, ``bias_act`` is a bias add, leaky ReLU, gain and
optional clamp.

Equalised learning rate: weights are stored ~N(0, 1) and multiplied by
``1 / sqrt(fan_in)`` at run time, so Adam sees the same scale in every layer.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from datasetgan.core.errors import CheckpointError
from datasetgan.core.fileio import atomic_path, write_json
from datasetgan.core.weights import read_weights

_LRELU_GAIN = math.sqrt(2.0)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Constructor arguments; names follow NVIDIA's ``Discriminator`` kwargs."""

    img_resolution: int
    img_channels: int = 3
    c_dim: int = 0
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 0       # blocks at the highest resolutions run in fp16 (CUDA only)
    conv_clamp: float | None = None  # clamp pre-activations (needed with fp16 blocks)
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1


def setup_filter(taps: tuple[float, ...] = (1, 3, 3, 1)) -> torch.Tensor:
    """Separable FIR taps -> normalised 2-D filter ``[k, k]`` (sum 1)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = f[:, None] * f[None, :]
    return f / f.sum()


def bias_act(x: torch.Tensor, b: torch.Tensor | None, act: str, gain: float,
             clamp: float | None, dim: int = 1) -> torch.Tensor:
    """Bias + (leaky ReLU 0.2 | linear) + gain + optional symmetric clamp."""
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.to(x.dtype).reshape(shape)
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def fir_downsample_pad(x: torch.Tensor, f: torch.Tensor, pad: int, down: int = 1) -> torch.Tensor:
    """``upfirdn2d`` with up=1: zero-pad by ``pad``, blur with ``f`` ``[k, k]``, keep every ``down``-th pixel.

    ``[N, C, H, W]`` -> ``[N, C, (H + 2 pad - k) // down + 1, ...]``. The filter is
    symmetric, so NVIDIA's flip does not matter.
    """
    c = x.shape[1]
    w = f.to(x.dtype)[None, None].expand(c, 1, *f.shape)
    return F.conv2d(F.pad(x, [pad] * 4), w, stride=down, groups=c)


class Conv2dLayer(torch.nn.Module):
    """Equalised-LR conv with optional FIR down-sampling by 2 (NVIDIA ``Conv2dLayer``, no up)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", down: int = 1, conv_clamp: float | None = None,
                 channels_last: bool = False):
        super().__init__()
        self.activation, self.down, self.conv_clamp = activation, down, conv_clamp
        self.register_buffer("resample_filter", setup_filter())
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = _LRELU_GAIN if activation == "lrelu" else 1.0
        mf = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=mf))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """``[N, Cin, H, W]`` -> ``[N, Cout, H / down, W / down]``."""
        w = (self.weight * self.weight_gain).to(x.dtype)
        k = w.shape[-1]
        if self.down == 1:
            x = F.conv2d(x, w, padding=self.padding)
        elif k == 1:
            # 1x1: blur-and-decimate first (cheaper), then the 1x1 conv.
            x = fir_downsample_pad(x, self.resample_filter, pad=1, down=2)
            x = F.conv2d(x, w)
        else:
            # kxk: blur with padding p + 1, then strided conv (NVIDIA's fast path).
            x = fir_downsample_pad(x, self.resample_filter, pad=self.padding + 1)
            x = F.conv2d(x, w, stride=2)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, self.activation, self.act_gain * gain, clamp)


class FullyConnectedLayer(torch.nn.Module):
    """Equalised-LR linear layer (NVIDIA ``FullyConnectedLayer``)."""

    def __init__(self, in_features: int, out_features: int, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, in]`` -> ``[N, out]``."""
        w = (self.weight * self.weight_gain).to(x.dtype)
        b = (self.bias * self.bias_gain).to(x.dtype)
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, self.activation, _LRELU_GAIN, None)


class DiscriminatorBlock(torch.nn.Module):
    """Residual block: (fromrgb) -> conv0 -> conv1 (down 2), plus a 1x1 down-sampled skip."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int,
                 img_channels: int, use_fp16: bool, conv_clamp: float | None):
        super().__init__()
        self.in_channels, self.resolution, self.use_fp16 = in_channels, resolution, use_fp16
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        """``img [N, C_img, R, R]`` (first block) or ``x [N, Cin, R, R]`` -> ``[N, Cout, R/2, R/2]``."""
        dtype = torch.float16 if (self.use_fp16 and img.device.type == "cuda") else None
        if self.in_channels == 0:
            x = self.fromrgb(img.to(dtype) if dtype else img)
        elif dtype is not None:
            x = x.to(dtype)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=math.sqrt(0.5))
        return y + x


class MinibatchStdLayer(torch.nn.Module):
    """Append the std. deviation over groups of ``group_size`` samples as extra channels."""

    def __init__(self, group_size: int, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W]`` -> ``[N, C + num_channels, H, W]``; N must be a multiple of the group size."""
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        f = self.num_channels
        y = x.float().reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])       # [n/g, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(torch.nn.Module):
    """4x4 head: minibatch std -> conv -> fc -> out (one logit per image)."""

    def __init__(self, in_channels: int, img_channels: int, cmap_dim: int, mbstd_group_size: int,
                 mbstd_num_channels: int, conv_clamp: float | None):
        super().__init__()
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels)
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * 16, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)
        self.cmap_dim = cmap_dim

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None = None) -> torch.Tensor:
        """``[N, C, 4, 4]`` -> ``[N, 1]``."""
        x = self.mbstd(x.float())
        x = self.conv(x)
        x = self.out(self.fc(x.flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x


class Discriminator(torch.nn.Module):
    """StyleGAN2 ``resnet`` discriminator. ``D(img [N, C, R, R] in [-1, 1]) -> logits [N, 1]``."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        r = config.img_resolution
        if r < 8 or r & (r - 1):
            raise ValueError(f"img_resolution must be a power of two >= 8, got {r}")
        if config.c_dim:
            raise NotImplementedError("conditional discriminators are not supported yet")
        self.config = config
        log2 = int(math.log2(r))
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        ch = {res: min(config.channel_base // res, config.channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (log2 + 1 - config.num_fp16_res), 8)
        for res in self.block_resolutions:
            in_ch = ch[res] if res < r else 0
            block = DiscriminatorBlock(in_ch, ch[res], ch[res // 2], res, config.img_channels,
                                       use_fp16=config.num_fp16_res > 0 and res >= fp16_resolution,
                                       conv_clamp=config.conv_clamp)
            setattr(self, f"b{res}", block)
        self.b4 = DiscriminatorEpilogue(ch[4], config.img_channels, 0, config.mbstd_group_size,
                                        config.mbstd_num_channels, config.conv_clamp)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
        return self.b4(x)

    # --- own format: config.json + model.safetensors -------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_json(directory / "config.json", {"class": "Discriminator", **dataclasses.asdict(self.config)})
        state = {k: v.detach().float().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_path(directory / "model.safetensors") as tmp:
            save_file(state, str(tmp))

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "Discriminator":
        directory = Path(directory)
        try:
            raw = json.loads((directory / "config.json").read_text())
            raw.pop("class", None)
            config = DiscriminatorConfig(**raw)
            state = read_weights(directory / "model.safetensors", device)
        except (OSError, TypeError, ValueError) as exc:
            raise CheckpointError(directory, f"not a discriminator folder ({exc})") from None
        model = cls(config).to(device)
        model.load_state_dict(state)
        return model

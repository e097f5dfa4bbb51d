"""StyleGAN1 generator, as in the DatasetGAN release: ``mapping(z) -> ws``, ``synthesis(ws) -> image``.

The network of NVIDIA's TensorFlow StyleGAN as the release ports it to PyTorch
(``models/stylegan1.py`` of nv-tlabs/datasetGAN_release), with the interface of
this project's StyleGAN2 ``Generator``, so that every later stage takes either.
``stylegan1_release.py`` reads the release's ``*.for_g_all.pt`` files into it.

- Mapping: pixel norm, then ``mapping_layers`` equalised-lr dense layers (He gain
  sqrt(2), lr multiplier 0.01) each followed by a leaky ReLU (slope 0.2, no gain).
- Synthesis, per resolution: [upsampling conv, blur,] + bias, then an "AdaIN"
  epilogue (noise, leaky ReLU, instance norm, style scale and shift), a 3x3 conv,
  a second epilogue. The 4x4 block starts from a learned constant plus a bias
  (or, ``const_input=False``, a dense layer of the first w). One 1x1 toRGB conv
  at the final resolution only; the image is not summed over resolutions.
- Upsampling, as the release: below 128 px nearest-neighbour x2 then a 3x3 conv;
  at 128 px and up one stride-2 transposed conv whose 4x4 kernel is the 3x3
  kernel summed over a 2x2 box (TF StyleGAN's fused upscale). Both then blur.
- Feature taps: per resolution, the second epilogue's output (``b{R}.adain1``,
  the block's output) and the second conv's output before that epilogue
  (``b{R}.conv1``): the two maps per resolution, in that order, that the
  release's ``G_synthesis`` returns as ``affine_layers``, so its feature widths
  (``dim`` in its experiment files) come out.
- ``noise_mode``: ``"random"`` draws fresh noise per call, as the release always
  does; ``"none"`` adds no noise; ``"const"`` adds a fixed noise map per layer,
  stored as the buffer ``noise_const``. The release stores no noise, so a loaded
  release checkpoint gets ``const_noise(config)``: maps drawn from
  ``torch.Generator().manual_seed(NOISE_SEED)``, the same for every checkpoint of
  that architecture; the own format then stores them with the weights.

Inference only: ``mapping`` does not track ``w_avg`` (the release's truncation
uses an average latent computed once, which the reader stores as ``w_avg``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from datasetgan.core.errors import CheckpointError
from datasetgan.generator.config import StyleGAN1Config
from datasetgan.generator.features import IMAGE_TAP, FeatureMap, FeatureSpec
from datasetgan.generator.layers import NOISE_MODES, FullyConnectedLayer
from datasetgan.generator.networks import load_checked
from datasetgan.generator.ops import normalize_2nd_moment
from datasetgan.generator.own_format import WEIGHTS_NAME, read_pretrained, save_pretrained

__all__ = ["StyleGAN1Generator", "StyleGAN1Mapping", "StyleGAN1Synthesis", "build_stylegan1", "const_noise",
           "NOISE_SEED"]

NOISE_SEED = 0          # the seed of the "const" noise maps (see the module docstring)
LRELU_SLOPE = 0.2
IN_EPS = 1e-5           # nn.InstanceNorm2d's, which the release uses
FUSED_UPSCALE_FROM = 128  # output resolutions from which the upsampling conv is a transposed conv


def _dense(in_features: int, out_features: int, gain: float, lr_multiplier: float = 1.0) -> FullyConnectedLayer:
    """An equalised-lr dense layer with He gain ``gain``: ``y = x @ (W * gain * lr / sqrt(in)).T + b * lr``.
    A ``FullyConnectedLayer`` (linear), so that ``synthesis.render``'s per-row products apply to it."""
    layer = FullyConnectedLayer(in_features, out_features, lr_multiplier=lr_multiplier)
    layer.weight_gain = gain * lr_multiplier / math.sqrt(in_features)
    return layer


class StyleGAN1Mapping(nn.Module):
    """``z [N, z_dim]`` -> ``ws [N, num_ws, w_dim]`` (every row the same w, then truncation)."""

    def __init__(self, config: StyleGAN1Config, num_ws: int):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = config.z_dim, 0, config.w_dim, num_ws
        self.num_layers = config.mapping_layers
        for idx in range(self.num_layers):
            in_features = config.z_dim if idx == 0 else config.w_dim
            setattr(self, f"fc{idx}", _dense(in_features, config.w_dim, math.sqrt(2),
                                             config.mapping_lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([config.w_dim]))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool | None = None) -> torch.Tensor:
        """``truncation_psi`` pulls the first ``truncation_cutoff`` ws (all: ``None``) towards
        ``w_avg``, as the release's ``Truncation(threshold=psi, max_layer=cutoff)``.
        ``c`` must be ``None``; ``update_w_avg`` is accepted and ignored (inference only)."""
        if c is not None:
            raise ValueError("mapping: this StyleGAN1 generator is unconditional; c must be None")
        if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"mapping: expected z of shape [N, {self.z_dim}], "
                             f"got {None if z is None else list(z.shape)}")
        x = normalize_2nd_moment(z.to(torch.float32))
        for idx in range(self.num_layers):
            x = F.leaky_relu(getattr(self, f"fc{idx}")(x), LRELU_SLOPE)
        x = x.float().unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x[:, :cut] = self.w_avg.lerp(x[:, :cut], truncation_psi)
        return x


class StyleGAN1Conv(nn.Module):
    """Equalised-lr conv ``[N, I, H, W] -> [N, O, H*up, W*up]``, bias added last.

    ``up``: x2 upsampling, nearest-neighbour before the conv, or (``fused``) a
    stride-2 transposed conv with the 3x3 kernel summed over a 2x2 box; then the
    ``blur`` filter (normalised, separable taps; ``()`` = none), then the bias.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float = math.sqrt(2),
                 up: bool = False, fused: bool = False, blur: tuple[int, ...] = ()):
        super().__init__()
        self.up, self.fused, self.padding = up, fused and up, kernel_size // 2
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = gain / math.sqrt(in_channels * kernel_size ** 2)
        self.has_blur = up and len(blur) > 0
        if self.has_blur:
            taps = torch.tensor(blur, dtype=torch.float32)
            kernel = torch.outer(taps, taps)
            self.register_buffer("blur_kernel", (kernel / kernel.sum())[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if not self.up:
            return F.conv2d(x, w, self.bias, padding=self.padding)
        if self.fused:
            # [O, I, 3, 3] -> [I, O, 4, 4]: the kernel of upsample-by-2-then-conv, as one transposed conv.
            w = F.pad(w.transpose(0, 1), [1, 1, 1, 1])
            w = sum(w[:, :, dy:dy + w.shape[2] - 1, dx:dx + w.shape[3] - 1] for dy in (1, 0) for dx in (1, 0))
            x = F.conv_transpose2d(x, w, stride=2, padding=(w.shape[-1] - 1) // 2)
        else:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = F.conv2d(x, w, padding=self.padding)
        if self.has_blur:
            k = self.blur_kernel.to(x.dtype).expand(x.shape[1], -1, -1, -1)
            x = F.conv2d(x, k, padding=(k.shape[-1] - 1) // 2, groups=x.shape[1])
        return x + self.bias.view(1, -1, 1, 1)


class AdaIN(nn.Module):
    """The epilogue of every conv: noise, leaky ReLU, instance norm, then the style's scale and shift.

    ``x [N, C, R, R]``, ``w [N, w_dim]`` -> ``[N, C, R, R]``; the style is
    ``affine(w) = [scale - 1, shift]`` (``[N, 2C]``).
    """

    def __init__(self, channels: int, w_dim: int, resolution: int, use_noise: bool, noise: torch.Tensor | None = None):
        super().__init__()
        self.channels, self.resolution, self.use_noise = channels, resolution, use_noise
        if use_noise:
            self.noise_strength = nn.Parameter(torch.zeros([channels]))
            self.register_buffer("noise_const", noise if noise is not None else torch.zeros([resolution] * 2))
        self.affine = _dense(w_dim, 2 * channels, gain=1.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const",
                noise_generator: torch.Generator | None = None, noise_input: torch.Tensor | None = None,
                ) -> torch.Tensor:
        """``noise_input [N, R, R]`` replaces ``noise_const`` in ``"const"`` mode."""
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device,
                                    dtype=x.dtype, generator=noise_generator)
            elif noise_input is not None:
                noise = noise_input.to(x.dtype).unsqueeze(1)
            else:
                noise = self.noise_const.to(x.dtype)
            x = x + self.noise_strength.to(x.dtype).view(1, -1, 1, 1) * noise
        x = F.leaky_relu(x, LRELU_SLOPE)
        x = x - x.mean(dim=(2, 3), keepdim=True)
        x = x * (x.square().mean(dim=(2, 3), keepdim=True) + IN_EPS).rsqrt()
        style = self.affine(w.to(x.dtype))
        scale, shift = style[:, :self.channels], style[:, self.channels:]
        return x * (scale + 1)[:, :, None, None] + shift[:, :, None, None]


class StyleGAN1Block(nn.Module):
    """One resolution: ``x [N, I, R/2, R/2]`` (none at 4x4), ``ws [N, 2, w_dim]`` -> ``[N, O, R, R]``
    and its two taps (``adain1``'s output, ``conv1``'s output)."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int, config: StyleGAN1Config,
                 noise: Mapping[str, torch.Tensor]):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        self.const_input = config.const_input
        w_dim = config.w_dim
        if resolution == 4:
            if config.const_input:
                self.const = nn.Parameter(torch.ones([out_channels, 4, 4]))
                self.const_bias = nn.Parameter(torch.ones([out_channels]))
            else:
                self.dense = _dense(w_dim, out_channels * 16, gain=math.sqrt(2) / 4)
        else:
            self.conv0 = StyleGAN1Conv(in_channels, out_channels, 3, up=True,
                                       fused=resolution >= FUSED_UPSCALE_FROM, blur=config.blur_filter)
        b = f"b{resolution}"
        self.adain0 = AdaIN(out_channels, w_dim, resolution, config.use_noise, noise.get(f"{b}.adain0"))
        self.conv1 = StyleGAN1Conv(out_channels, out_channels, 3)
        self.adain1 = AdaIN(out_channels, w_dim, resolution, config.use_noise, noise.get(f"{b}.adain1"))

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, noise: Mapping[str, torch.Tensor] | None = None,
                **noise_kwargs) -> tuple[torch.Tensor, list[torch.Tensor]]:
        n = ws.shape[0]
        if self.resolution == 4:
            if self.const_input:
                x = (self.const + self.const_bias.view(-1, 1, 1)).unsqueeze(0).repeat([n, 1, 1, 1])
            else:
                x = self.dense(ws[:, 0]).view(n, self.out_channels, 4, 4)
        else:
            x = self.conv0(x)
        noise = noise or {}
        x = self.adain0(x, ws[:, 0], noise_input=noise.get("adain0"), **noise_kwargs)
        y = self.conv1(x)
        x = self.adain1(y, ws[:, 1], noise_input=noise.get("adain1"), **noise_kwargs)
        return x, [x, y]


def const_noise(config: StyleGAN1Config, seed: int = NOISE_SEED) -> dict[str, torch.Tensor]:
    """The ``"const"`` noise maps: ``{layer name: [R, R]}`` in layer order, drawn from
    ``torch.Generator().manual_seed(seed)`` (empty without noise)."""
    if not config.use_noise:
        return {}
    gen = torch.Generator().manual_seed(seed)
    return {f"b{res}.adain{i}": torch.randn([res, res], generator=gen)
            for res in config.block_resolutions for i in (0, 1)}


class StyleGAN1Synthesis(nn.Module):
    """``ws [N, num_ws, w_dim]`` -> image ``[N, img_channels, R, R]`` (roughly in [-1, 1])."""

    def __init__(self, config: StyleGAN1Config):
        super().__init__()
        self.config = config
        self.w_dim, self.img_resolution, self.img_channels = config.w_dim, config.img_resolution, config.img_channels
        self.block_resolutions = list(config.block_resolutions)
        self.num_ws = config.num_ws
        noise = const_noise(config)
        for res in self.block_resolutions:
            in_channels = config.channels_at(res // 2) if res > 4 else 0
            setattr(self, f"b{res}", StyleGAN1Block(in_channels, config.channels_at(res), res, config, noise))
        self.torgb = StyleGAN1Conv(config.channels_at(config.img_resolution), config.img_channels, 1, gain=1.0)

    @property
    def feature_spec(self) -> FeatureSpec:
        """Per resolution ``b{R}.adain1`` then ``b{R}.conv1`` (the release's ``affine_layers``), and the image."""
        maps = [FeatureMap(f"b{res}.{name}", res, self.config.channels_at(res))
                for res in self.block_resolutions for name in ("adain1", "conv1")]
        return FeatureSpec(tuple(maps), image=FeatureMap(IMAGE_TAP, self.img_resolution, self.img_channels))

    @property
    def noise_layers(self) -> tuple[tuple[str, int], ...]:
        """``(name, resolution)`` of every layer with a noise input (``b8.adain0``, ...)."""
        if not self.config.use_noise:
            return ()
        return tuple((f"b{res}.adain{i}", res) for res in self.block_resolutions for i in (0, 1))

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", return_features: bool = False,
                noise_generator: torch.Generator | None = None, noise: Mapping[str, torch.Tensor] | None = None,
                force_fp32: bool | None = None, fused_modconv: bool | None = None,
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Render ``ws [N, num_ws, w_dim]``: ``img [N, C, R, R]`` (float32), or with
        ``return_features`` ``(img, features)``, one ``[N, C_i, R_i, R_i]`` map per entry of
        ``feature_spec``. ``noise_mode``: ``"const"``, ``"random"`` (from ``noise_generator``
        if given) or ``"none"``; ``noise`` maps ``noise_layers`` names to ``[N, R, R]`` maps
        that replace the stored ones in ``"const"`` mode. ``force_fp32`` and
        ``fused_modconv`` are StyleGAN2's and have no effect here (all float32, no
        modulated convs)."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"synthesis: expected ws of shape [N, {self.num_ws}, {self.w_dim}], "
                             f"got {list(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"synthesis: noise_mode {noise_mode!r}; expected one of {NOISE_MODES}")
        if noise:
            known = {name for name, _ in self.noise_layers}
            if set(noise) - known:
                raise ValueError(f"synthesis: noise for unknown layer(s) {sorted(set(noise) - known)}; "
                                 f"layers with noise: {sorted(known)}")
            if noise_mode != "const":
                raise ValueError(f"synthesis: per-sample noise needs noise_mode 'const', got {noise_mode!r}")
        ws = ws.to(torch.float32)
        x = None
        features: list[torch.Tensor] = []
        for i, res in enumerate(self.block_resolutions):
            prefix = f"b{res}."
            block_noise = {k[len(prefix):]: v for k, v in (noise or {}).items() if k.startswith(prefix)}
            x, taps = getattr(self, f"b{res}")(x, ws[:, 2 * i:2 * i + 2], noise=block_noise,
                                                noise_mode=noise_mode, noise_generator=noise_generator)
            if return_features:
                features.extend(taps)
        img = self.torgb(x).float()
        return (img, features) if return_features else img


class StyleGAN1Generator(nn.Module):
    """StyleGAN1 with the interface of ``Generator``: ``mapping``, ``synthesis``, ``feature_spec``, own format."""

    def __init__(self, config: StyleGAN1Config):
        super().__init__()
        self.config = config
        self.z_dim, self.c_dim, self.w_dim = config.z_dim, 0, config.w_dim
        self.img_resolution, self.img_channels = config.img_resolution, config.img_channels
        self.synthesis = StyleGAN1Synthesis(config)
        self.num_ws = self.synthesis.num_ws
        self.mapping = StyleGAN1Mapping(config, self.num_ws)

    @property
    def feature_spec(self) -> FeatureSpec:
        return self.synthesis.feature_spec

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const", **synthesis_kwargs) -> torch.Tensor:
        """``z [N, z_dim]`` -> image ``[N, C, R, R]``; extra kwargs go to ``synthesis``."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, **synthesis_kwargs)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``directory/config.json`` (with ``"model": "stylegan1"``) and ``model.safetensors``."""
        save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "StyleGAN1Generator":
        config, tensors = read_pretrained(directory)
        return build_stylegan1(config, tensors, source=Path(directory) / WEIGHTS_NAME, device=device)


def build_stylegan1(config: StyleGAN1Config, tensors: Mapping[str, torch.Tensor], source: str | Path,
                    device: str | torch.device = "cpu") -> StyleGAN1Generator:
    """``StyleGAN1Generator(config)`` with ``tensors`` loaded (checked), in eval mode, no grads, on ``device``."""
    if not isinstance(config, StyleGAN1Config):
        raise CheckpointError(source, f"holds a {type(config).__name__}, not a StyleGAN1 generator; "
                                      "load it with load_generator")
    return load_checked(StyleGAN1Generator(config), tensors, source, device)

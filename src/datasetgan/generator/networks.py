"""StyleGAN2 generator: ``mapping(z) -> ws`` and ``synthesis(ws) -> image``.

Architecturally identical to NVIDIA's stylegan2-ada-pytorch Generator (and
the stylegan3 repository's ``networks_stylegan2.py``): the ``state_dict`` keys,
shapes, init order and forward numerics are NVIDIA's, so their weights load
without renaming. Departures, all deliberate:

- ``noise_mode`` defaults to ``"const"`` (NVIDIA: ``"random"``), so the same
  w always gives the same image. Training code must pass ``noise_mode="random"``.
- fp16 blocks run in fp16 only on CUDA unless ``force_fp32`` says otherwise
  (fp16 convolutions on a CPU are slow and not what a checkpoint's author ran).
- ``synthesis(..., return_features=True)`` also returns every style-modulated
  conv's output, for the pixel interpreter.
- The mapping output is float32 even under autocast, so truncation and the
  ``w_avg`` update stay in float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from datasetgan.core.errors import CheckpointError
from datasetgan.generator.config import GeneratorConfig
from datasetgan.generator.features import IMAGE_TAP, FeatureMap, FeatureSpec
from datasetgan.generator.layers import Conv2dLayer, FullyConnectedLayer, SynthesisLayer, ToRGBLayer
from datasetgan.generator.ops import normalize_2nd_moment, setup_filter, upsample2d
from datasetgan.generator.own_format import WEIGHTS_NAME, read_pretrained, save_pretrained


class MappingNetwork(nn.Module):
    """``z [N, z_dim]`` (+ ``c [N, c_dim]``) -> ``ws [N, num_ws, w_dim]``."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None,
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = w_dim if embed_features is None else embed_features
        if c_dim == 0:
            embed_features = 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu",
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None,
                truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                update_w_avg: bool | None = None) -> torch.Tensor:
        """``update_w_avg=None`` tracks the mean w in training mode only (as NVIDIA)."""
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"mapping: expected z of shape [N, {self.z_dim}], "
                                 f"got {None if z is None else list(z.shape)}")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"mapping: expected c of shape [N, {self.c_dim}], "
                                 f"got {None if c is None else list(c.shape)}")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        x = x.float()

        if update_w_avg is None:
            update_w_avg = self.training
        if update_w_avg and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("mapping: truncation needs w_avg, but w_avg_beta is None")
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


class SynthesisBlock(nn.Module):
    """One resolution: [2x up conv0], conv1, toRGB; the image path is upsampled and summed."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 img_channels: int, is_last: bool, architecture: str = "skip",
                 resample_filter: tuple[int, ...] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 use_fp16: bool = False, use_noise: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.w_dim, self.resolution, self.img_channels = w_dim, resolution, img_channels
        self.is_last, self.architecture, self.use_fp16 = is_last, architecture, use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        layer_kwargs = dict(w_dim=w_dim, resolution=resolution, resample_filter=resample_filter,
                            conv_clamp=conv_clamp, use_noise=use_noise)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        if in_channels != 0:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                force_fp32: bool = False, fused_modconv: bool | None = None,
                noise_mode: str = "const", noise_generator: torch.Generator | None = None,
                noise: Mapping[str, torch.Tensor] | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``ws [N, num_conv + num_torgb, w_dim]`` -> ``(x, img, taps)``; taps are conv outputs.
        ``noise`` maps ``"conv0"``/``"conv1"`` to that layer's ``noise_input [N, R, R]``."""
        w_iter = iter(ws.unbind(dim=1))
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        if fused_modconv is None:
            # NVIDIA's rule. (On a CPU neither form is consistently faster: measured per layer,
            # fused wins at high resolution, unfused for the upsampling convs at low resolution.)
            fused_modconv = (not self.training) and (dtype == torch.float32 or int(ws.shape[0]) == 1)
        kw = dict(fused_modconv=fused_modconv, noise_mode=noise_mode, noise_generator=noise_generator)
        noise = noise or {}

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = x.to(dtype=dtype)

        taps = []
        n0, n1 = noise.get("conv0"), noise.get("conv1")
        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), noise_input=n1, **kw)
            taps.append(x)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), noise_input=n0, **kw)
            taps.append(x)
            x = self.conv1(x, next(w_iter), gain=np.sqrt(0.5), noise_input=n1, **kw)
            x = y.add_(x)
            taps.append(x)
        else:
            x = self.conv0(x, next(w_iter), noise_input=n0, **kw)
            taps.append(x)
            x = self.conv1(x, next(w_iter), noise_input=n1, **kw)
            taps.append(x)

        if img is not None:
            # The image path stays float32 (as NVIDIA asserts), also under autocast.
            with torch.autocast(img.device.type, enabled=False):
                img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img.add_(y) if img is not None else y
        return x, img, taps


class SynthesisNetwork(nn.Module):
    """``ws [N, num_ws, w_dim]`` -> image ``[N, img_channels, R, R]`` (roughly in [-1, 1])."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.w_dim = config.w_dim
        self.img_resolution = config.img_resolution
        self.img_channels = config.img_channels
        self.block_resolutions = list(config.block_resolutions)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = config.channels_at(res // 2) if res > 4 else 0
            is_last = res == config.img_resolution
            block = SynthesisBlock(in_channels, config.channels_at(res), w_dim=config.w_dim,
                                   resolution=res, img_channels=config.img_channels, is_last=is_last,
                                   architecture=config.architecture,
                                   resample_filter=tuple(config.resample_filter),
                                   conv_clamp=config.conv_clamp,
                                   use_fp16=res >= config.fp16_resolution,
                                   use_noise=config.use_noise)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)
        assert self.num_ws == config.num_ws

    @property
    def feature_spec(self) -> FeatureSpec:
        """One ``FeatureMap`` per style-modulated conv, in forward order, and the image (``"img"``)."""
        maps = []
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            for name in ("conv0", "conv1"):
                if hasattr(block, name):
                    maps.append(FeatureMap(f"b{res}.{name}", res, block.out_channels))
        return FeatureSpec(tuple(maps), image=FeatureMap(IMAGE_TAP, self.img_resolution, self.img_channels))

    @property
    def noise_layers(self) -> tuple[tuple[str, int], ...]:
        """``(name, resolution)`` of every layer with a noise input (``b8.conv0``, as the feature taps)."""
        layers = []
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            for name in ("conv0", "conv1"):
                if hasattr(block, name) and getattr(block, name).use_noise:
                    layers.append((f"b{res}.{name}", res))
        return tuple(layers)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", return_features: bool = False,
                force_fp32: bool | None = None, fused_modconv: bool | None = None,
                noise_generator: torch.Generator | None = None,
                noise: Mapping[str, torch.Tensor] | None = None,
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Render ``ws [N, num_ws, w_dim]``.

        Returns ``img [N, C, R, R]`` (float32), or with ``return_features``
        ``(img, features)``: one ``[N, C_i, R_i, R_i]`` map per entry of
        ``feature_spec``, each a conv's output after bias, activation and clamp
        (float32, or the autocast dtype under autocast).
        ``noise_mode``: ``"const"`` (the stored noise), ``"random"`` (fresh,
        drawn from ``noise_generator`` if given) or ``"none"``. ``noise`` maps layer names
        (``noise_layers``) to per-sample maps ``[N, R, R]`` that replace those layers' stored
        noise in ``"const"`` mode.
        ``force_fp32=None``: fp16 blocks run in fp16 on CUDA only.
        ``fused_modconv=None``: NVIDIA's choice (fused in eval mode unless fp16 with N > 1).
        """
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"synthesis: expected ws of shape [N, {self.num_ws}, {self.w_dim}], "
                             f"got {list(ws.shape)}")
        if force_fp32 is None:
            force_fp32 = ws.device.type != "cuda"
        if noise:
            known = {name for name, _ in self.noise_layers}
            if set(noise) - known:
                raise ValueError(f"synthesis: noise for unknown layer(s) {sorted(set(noise) - known)}; "
                                 f"layers with noise: {sorted(known)}")
            if noise_mode != "const":
                raise ValueError(f"synthesis: per-sample noise needs noise_mode 'const', got {noise_mode!r}")
        ws = ws.to(torch.float32)
        x = img = None
        features: list[torch.Tensor] = []
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            block_noise = {name.split(".")[1]: v for name, v in (noise or {}).items()
                           if name.split(".")[0] == f"b{res}"}
            x, img, taps = block(x, img, block_ws, force_fp32=force_fp32, fused_modconv=fused_modconv,
                                 noise_mode=noise_mode, noise_generator=noise_generator, noise=block_noise)
            if return_features:
                features.extend(t.float() if t.dtype == torch.float16 else t for t in taps)
        return (img, features) if return_features else img


class Generator(nn.Module):
    """StyleGAN2 generator with NVIDIA's module layout (``mapping``, ``synthesis``)."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.z_dim, self.c_dim, self.w_dim = config.z_dim, config.c_dim, config.w_dim
        self.img_resolution, self.img_channels = config.img_resolution, config.img_channels
        # Synthesis first, then mapping: NVIDIA's order (state_dict order and init RNG use).
        self.synthesis = SynthesisNetwork(config)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(config.z_dim, config.c_dim, config.w_dim, self.num_ws,
                                      num_layers=config.mapping_layers,
                                      embed_features=config.embed_features,
                                      layer_features=config.layer_features,
                                      lr_multiplier=config.mapping_lr_multiplier,
                                      w_avg_beta=config.w_avg_beta)

    @property
    def feature_spec(self) -> FeatureSpec:
        return self.synthesis.feature_spec

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const",
                **synthesis_kwargs) -> torch.Tensor:
        """``z [N, z_dim]`` -> image ``[N, C, R, R]``; extra kwargs go to ``synthesis``."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, **synthesis_kwargs)

    # Own format (config.json + model.safetensors) -----------------------

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``directory/config.json`` and ``directory/model.safetensors`` atomically."""
        save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "Generator":
        """Rebuild a generator saved by ``save_pretrained`` (eval mode, on ``device``)."""
        config, tensors = read_pretrained(directory)
        return build_generator(config, tensors, source=Path(directory) / WEIGHTS_NAME, device=device)


# Weights from a checkpoint: checked against the architecture -----------------

def _key_list(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{k}'" for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_state_dict(G: Generator, tensors: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Raise ``CheckpointError`` unless ``tensors`` has exactly ``G``'s keys and shapes."""
    expected = G.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing:
        raise CheckpointError(source, f"missing key(s) {_key_list(missing)} for a generator with "
                                      f"{G.img_resolution}x{G.img_resolution} output")
    if unexpected:
        raise CheckpointError(source, f"unexpected key(s) {_key_list(unexpected)}")
    for key, ref in expected.items():
        t = tensors[key]
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(source, f"key '{key}': expected a tensor, got {type(t).__name__}")
        if tuple(t.shape) != tuple(ref.shape):
            raise CheckpointError(source, f"key '{key}': expected shape {list(ref.shape)}, "
                                          f"got {list(t.shape)}")
        if not (t.is_floating_point()):
            raise CheckpointError(source, f"key '{key}': expected floating-point values, got {t.dtype}")


def build_generator(config: GeneratorConfig, tensors: Mapping[str, torch.Tensor], source: str | Path,
                    device: str | torch.device = "cpu") -> Generator:
    """``Generator(config)`` with ``tensors`` loaded (checked), in eval mode, no grads, on ``device``."""
    if not isinstance(config, GeneratorConfig):
        raise CheckpointError(source, f"holds a {type(config).__name__} generator, not a StyleGAN2 one; "
                                      "load it with load_generator")
    return load_checked(Generator(config), tensors, source, device)


def load_checked(G: nn.Module, tensors: Mapping[str, torch.Tensor], source: str | Path,
                 device: str | torch.device = "cpu") -> nn.Module:
    """``G`` with ``tensors`` loaded after ``check_state_dict``, in eval mode, no grads, on ``device``."""
    check_state_dict(G, tensors, source)
    G.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()}, strict=True)
    return G.eval().requires_grad_(False).to(device)

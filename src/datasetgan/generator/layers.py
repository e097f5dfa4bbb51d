"""StyleGAN2's layers with NVIDIA's parameter names, init and gains.

Weights are stored unscaled (``randn``) and multiplied by a constant gain in
``forward`` ("equalised learning rate"), so Adam sees every layer at the same
scale. Module and parameter names match NVIDIA's ``training/networks.py``, and
parameters are created in NVIDIA's order, so ``torch.manual_seed(s)`` before
construction gives NVIDIA's initial weights too.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from datasetgan.generator.ops import (LRELU_GAIN, bias_act, conv2d_resample, modulated_conv2d,
                                      setup_filter)

NOISE_MODES = ("random", "const", "none")


class FullyConnectedLayer(nn.Module):
    """``[N, in] -> [N, out]`` with equalised LR: ``weight * lr_multiplier / sqrt(in)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 activation: str = "linear", lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation, overwrite_input=True)


class Conv2dLayer(nn.Module):
    """Plain (unmodulated) conv with optional FIR up/down, bias, activation and clamp.

    Used by the ``resnet`` architecture's skip path, and by discriminators.
    ``x [N, I, H, W] -> [N, O, H*up/down, W*up/down]``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter: Sequence[int] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 trainable: bool = True):
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = LRELU_GAIN if activation in ("lrelu", "relu") else 1.0
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        b = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(b) if b is not None else None
        else:
            self.register_buffer("weight", weight)
            if b is not None:
                self.register_buffer("bias", b)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=act_clamp,
                        overwrite_input=True)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (+ optional 2x FIR upsampling), noise, bias, lrelu, clamp.

    ``x [N, I, R/up, R/up]``, ``w [N, w_dim]`` -> ``[N, O, R, R]``.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 kernel_size: int = 3, up: int = 1, use_noise: bool = True,
                 activation: str = "lrelu", resample_filter: Sequence[int] = (1, 3, 3, 1),
                 conv_clamp: float | None = None):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = LRELU_GAIN if activation in ("lrelu", "relu") else 1.0
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random",
                fused_modconv: bool = True, gain: float = 1.0,
                noise_generator: torch.Generator | None = None,
                noise_input: torch.Tensor | None = None) -> torch.Tensor:
        """``noise_input [N, R, R]`` (one map per sample, e.g. found by ``invert``) replaces
        ``noise_const`` in ``"const"`` mode."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        expected = self.resolution // self.up
        if x.shape[1:] != (self.in_channels, expected, expected):
            raise ValueError(f"SynthesisLayer@{self.resolution}: expected input [N, {self.in_channels}, "
                             f"{expected}, {expected}], got {list(x.shape)}")
        styles = self.affine(w)

        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device,
                                generator=noise_generator) * self.noise_strength
        if self.use_noise and noise_mode == "const":
            if noise_input is None:
                noise = self.noise_const * self.noise_strength
            else:
                if noise_input.shape != (x.shape[0], self.resolution, self.resolution):
                    raise ValueError(f"SynthesisLayer@{self.resolution}: expected noise_input [{x.shape[0]}, "
                                     f"{self.resolution}, {self.resolution}], got {list(noise_input.shape)}")
                noise = noise_input.unsqueeze(1) * self.noise_strength

        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain,
                        clamp=act_clamp, overwrite_input=True)


class ToRGBLayer(nn.Module):
    """Modulated (not demodulated) 1x1 conv to image channels: ``[N, I, R, R] -> [N, C, R, R]``."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp, overwrite_input=True)

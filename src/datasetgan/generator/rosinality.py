"""Read rosinality/stylegan2-pytorch ``.pt`` checkpoints onto NVIDIA's layout.

The file is ``torch.save({'g_ema': state_dict, 'latent_avg'?, 'args'?, 'g', 'd',
'g_optim', ...})``. It is read with ``torch.load(weights_only=True)``, which
refuses code (``argparse.Namespace``, the type of ``args``, is the one extra
class allowed: it is plain data).

The architecture is inferred from tensor shapes: resolution from the number of
``to_rgbs``, ``style_dim`` and mapping depth from ``style.*``, channels per
resolution from the conv weights (rosinality's ``channel_multiplier`` c gives
``min(16384 * c // res, 512)`` channels: NVIDIA's ``channel_base = 16384 * c``,
``channel_max = 512``). Every tensor then maps onto NVIDIA's key, and the two
networks compute the same function:

- ``EqualLinear`` (weight * lr_mul / sqrt(in), bias * lr_mul) is NVIDIA's
  ``FullyConnectedLayer``; ``PixelNorm`` is ``normalize_2nd_moment``.
- ``ModulatedConv2d`` multiplies the weight by ``1/sqrt(fan_in)`` *before*
  modulation and demodulation; NVIDIA's ``SynthesisLayer`` uses the raw weight,
  so the converted weight is ``scale * weight`` (then both demodulate the same
  tensor, epsilon included). The toRGB conv is not demodulated and NVIDIA
  scales its styles instead, so that weight is copied as is.
- Upsampling conv: rosinality's stride-2 ``conv_transpose2d`` (unflipped
  weight, I/O swapped per group) followed by ``Blur([1,3,3,1] * 4, pad=(1, 1))``
  is exactly NVIDIA's ``conv2d_resample(up=2)`` (transposed conv with padding 0,
  then ``upfirdn2d`` with padding 1 on each side and gain 4): same weight,
  no flip, no shift.
- ``NoiseInjection.weight [1]`` -> ``noise_strength []``; ``FusedLeakyReLU.bias``
  -> the layer's ``bias`` (both: ``lrelu(x + noise + b, 0.2) * sqrt(2)``);
  ``noises.noise_i [1,1,r,r]`` -> ``noise_const [r, r]`` in layer order.
- ``ToRGB`` upsamples the skip image with ``Upsample([1,3,3,1])``, which is
  NVIDIA's ``upsample2d``; ``latent_avg`` -> ``mapping.w_avg``.
"""

from __future__ import annotations

import argparse
import math
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from datasetgan.core.errors import CheckpointError
from datasetgan.generator.config import GeneratorConfig

__all__ = ["load_rosinality", "read_torch_checkpoint", "rosinality_from_checkpoint", "rosinality_to_nvidia", "nvidia_to_rosinality", "estimate_w_avg"]

BLUR = (1, 3, 3, 1)
W_AVG_SAMPLES = 4096  # rosinality's generate.py uses mean_latent(4096) for truncation
W_AVG_SEED = 0


def _filter_2d(taps=BLUR) -> torch.Tensor:
    f = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def read_torch_checkpoint(path: Path) -> dict:
    """A ``.pt`` file's dict, read with ``torch.load(weights_only=True)``: tensors, containers
    and numbers only (and ``argparse.Namespace``, rosinality's ``args``); anything else is
    refused with a ``CheckpointError`` naming the file and what it references."""
    return _read(path)


def _read(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(path, "file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "file is empty")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refusals land here; name the global, drop torch's advice to
        # retry with weights_only=False (which would run the file's code).
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        opcode = re.search(r"Unsupported operand (\d+)", str(exc))
        if opcode and not found:  # not a pickle at all, most likely
            raise CheckpointError(path, f"not a readable torch checkpoint (truncated or corrupt?): pickle opcode "
                                        f"{opcode.group(1)} is not one a weights-only load reads") from None
        what = f"pickle references '{found.group(1)}'" if found else "the pickle holds more than tensors and plain data"
        raise CheckpointError(path, f"refusing to load: {what}, which a checkpoint may not contain "
                                    "(only tensors, containers and numbers are read; no code from the file is run)") from None
    except Exception as exc:  # noqa: BLE001 - a damaged pickle surfaces as many exception types (KeyError, ...)
        raise CheckpointError(path, f"not a readable torch checkpoint (truncated or corrupt?): "
                                    f"{type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(path, f"expected a dict with 'g_ema', got a {type(data).__name__}")
    return data


def _get_tensor(sd: dict, key: str, path: Path, ndim: int | None = None) -> torch.Tensor:
    t = sd.get(key)
    if not isinstance(t, torch.Tensor):
        raise CheckpointError(path, f"g_ema: missing tensor '{key}'")
    if ndim is not None and t.ndim != ndim:
        raise CheckpointError(path, f"g_ema: key '{key}' has shape {list(t.shape)}, expected {ndim} dimensions")
    return t.detach().float()


def _infer_config(sd: dict, path: Path, args: Any) -> GeneratorConfig:
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in sd:
        n_mlp += 1
    if n_mlp == 0:
        raise CheckpointError(path, "g_ema: no mapping layers 'style.1.weight'...; not a rosinality StyleGAN2")
    style_dim = _get_tensor(sd, "style.1.weight", path, 2).shape[0]
    n_blocks = 0
    while f"to_rgbs.{n_blocks}.conv.weight" in sd:
        n_blocks += 1
    resolution = 4 * 2 ** n_blocks
    channels = {4: _get_tensor(sd, "input.input", path, 4).shape[1]}
    for k in range(n_blocks):
        channels[8 * 2 ** k] = _get_tensor(sd, f"convs.{2 * k}.conv.weight", path, 5).shape[1]

    # NVIDIA's channel rule: min(channel_base // res, channel_max).
    channel_max = max(channels.values())
    below = [r for r in sorted(channels) if channels[r] < channel_max]
    # All blocks at channel_max: any base >= channel_max * resolution fits; prefer
    # NVIDIA's default 32768 (rosinality's channel_multiplier=2) when it does.
    channel_base = channels[below[0]] * below[0] if below else max(32768, channel_max * resolution)
    if any(min(channel_base // r, channel_max) != c for r, c in channels.items()):
        detail = ", ".join(f"{r}: {c}" for r, c in sorted(channels.items()))
        raise CheckpointError(path, f"g_ema: channels per resolution ({detail}) do not follow "
                                    "min(channel_base // res, channel_max); this channel_multiplier cannot "
                                    "be represented")
    lr_mlp = getattr(args, "lr_mlp", 0.01) if args is not None else 0.01
    for name, expected in (("size", resolution), ("latent", style_dim), ("n_mlp", n_mlp)):
        got = getattr(args, name, None) if args is not None else None
        if got is not None and got != expected:
            raise CheckpointError(path, f"args.{name} is {got} but the g_ema tensors say {expected}")
    return GeneratorConfig(z_dim=style_dim, c_dim=0, w_dim=style_dim, img_resolution=resolution, img_channels=3,
                           mapping_layers=n_mlp, channel_base=channel_base, channel_max=channel_max,
                           num_fp16_res=0, conv_clamp=None, architecture="skip",
                           mapping_lr_multiplier=float(lr_mlp), use_noise=True, resample_filter=BLUR)


def rosinality_to_nvidia(sd: dict[str, torch.Tensor], config: GeneratorConfig, path: str | Path = "<state dict>",
                         latent_avg: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Rename/reshape a rosinality ``g_ema`` state dict to NVIDIA's keys (fp32).

    ``latent_avg [w_dim]`` (or ``[1, w_dim]``) becomes ``mapping.w_avg``; without
    it, ``w_avg`` is estimated from ``W_AVG_SAMPLES`` seeded z (see ``estimate_w_avg``).
    Kernels other than [1,3,3,1] and missing tensors raise ``CheckpointError``.
    """
    path = Path(path)
    out: dict[str, torch.Tensor] = {}
    f2 = _filter_2d()
    used: set[str] = set()

    def _get(sd: dict, key: str, path: Path, ndim: int | None = None) -> torch.Tensor:
        used.add(key)
        return _get_tensor(sd, key, path, ndim)

    def _check_kernel(sd: dict, key: str, expected: torch.Tensor, path: Path) -> None:
        used.add(key)
        _check_kernel_tensor(sd, key, expected, path)

    def layer(src: str, dst: str, noise_idx: int, up: bool) -> None:
        w = _get(sd, f"{src}.conv.weight", path, 5)[0]
        fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        out[f"{dst}.resample_filter"] = f2.clone()
        out[f"{dst}.affine.weight"] = _get(sd, f"{src}.conv.modulation.weight", path, 2)
        out[f"{dst}.affine.bias"] = _get(sd, f"{src}.conv.modulation.bias", path, 1)
        out[f"{dst}.weight"] = w * (1 / math.sqrt(fan_in))  # rosinality's scale, applied up front
        used.add(f"noises.noise_{noise_idx}")
        out[f"{dst}.noise_const"] = _noise(sd.get(f"noises.noise_{noise_idx}"), noise_idx, path)
        out[f"{dst}.noise_strength"] = _get(sd, f"{src}.noise.weight", path, 1).reshape([])
        out[f"{dst}.bias"] = _get(sd, f"{src}.activate.bias", path, 1)
        if up:
            _check_kernel(sd, f"{src}.conv.blur.kernel", f2 * 4, path)

    def torgb(src: str, dst: str, up: bool) -> None:
        out[f"{dst}.affine.weight"] = _get(sd, f"{src}.conv.modulation.weight", path, 2)
        out[f"{dst}.affine.bias"] = _get(sd, f"{src}.conv.modulation.bias", path, 1)
        out[f"{dst}.weight"] = _get(sd, f"{src}.conv.weight", path, 5)[0]
        out[f"{dst}.bias"] = _get(sd, f"{src}.bias", path, 4).reshape(-1)
        if up:
            _check_kernel(sd, f"{src}.upsample.kernel", f2 * 4, path)

    for res in config.block_resolutions:
        b = f"synthesis.b{res}"
        out[f"{b}.resample_filter"] = f2.clone()
        if res == 4:
            out[f"{b}.const"] = _get(sd, "input.input", path, 4)[0]
            layer("conv1", f"{b}.conv1", 0, up=False)
            torgb("to_rgb1", f"{b}.torgb", up=False)
        else:
            k = int(math.log2(res)) - 3
            layer(f"convs.{2 * k}", f"{b}.conv0", 2 * k + 1, up=True)
            layer(f"convs.{2 * k + 1}", f"{b}.conv1", 2 * k + 2, up=False)
            torgb(f"to_rgbs.{k}", f"{b}.torgb", up=True)
    for i in range(config.mapping_layers):
        out[f"mapping.fc{i}.weight"] = _get(sd, f"style.{i + 1}.weight", path, 2)
        out[f"mapping.fc{i}.bias"] = _get(sd, f"style.{i + 1}.bias", path, 1)
    unknown = sorted(k for k in sd if k not in used)
    if unknown:
        shown = ", ".join(repr(k) for k in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise CheckpointError(path, f"g_ema: unexpected key(s) {shown}; not rosinality's StyleGAN2 generator "
                                    "(a fork with other layers?)")
    if latent_avg is not None:
        if not isinstance(latent_avg, torch.Tensor) or latent_avg.numel() != config.w_dim:
            raise CheckpointError(path, f"'latent_avg' must hold {config.w_dim} values")
        out["mapping.w_avg"] = latent_avg.detach().float().reshape(-1).clone()
    else:
        out["mapping.w_avg"] = estimate_w_avg(out, config)
    return out


def _noise(t: Any, idx: int, path: Path) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.shape[:2] != (1, 1):
        raise CheckpointError(path, f"g_ema: missing tensor 'noises.noise_{idx}' of shape [1, 1, r, r]")
    return t.detach().float()[0, 0].clone()


def _check_kernel_tensor(sd: dict, key: str, expected: torch.Tensor, path: Path) -> None:
    k = sd.get(key)
    if k is None:  # non-persistent in some forks: nothing to check
        return
    if not isinstance(k, torch.Tensor) or k.shape != expected.shape or not torch.allclose(k.float(), expected):
        raise CheckpointError(path, f"g_ema: key '{key}' is not the [1,3,3,1] blur kernel; only that "
                                    "kernel is supported")


def estimate_w_avg(tensors: dict[str, torch.Tensor], config: GeneratorConfig,
                   n: int = W_AVG_SAMPLES, seed: int = W_AVG_SEED) -> torch.Tensor:
    """Mean of the mapping output over ``n`` z drawn from ``torch.Generator().manual_seed(seed)``.

    ``[w_dim]``; used when a rosinality file has no ``latent_avg`` (its own
    ``generate.py`` likewise averages 4096 random w for truncation).
    """
    z = torch.randn([n, config.z_dim], generator=torch.Generator().manual_seed(seed))
    x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
    lr = config.mapping_lr_multiplier
    for i in range(config.mapping_layers):
        w, b = tensors[f"mapping.fc{i}.weight"], tensors[f"mapping.fc{i}.bias"]
        x = torch.nn.functional.leaky_relu(x @ (w * (lr / math.sqrt(w.shape[1]))).t() + b * lr, 0.2) * math.sqrt(2)
    return x.mean(dim=0)


def nvidia_to_rosinality(tensors: dict[str, torch.Tensor], config: GeneratorConfig) -> dict[str, torch.Tensor]:
    """The inverse mapping: NVIDIA-keyed tensors -> a rosinality ``g_ema`` state dict.

    Only for configs rosinality can express (skip, no clamp, lrelu, [1,3,3,1],
    channel_max 512-style rule); blur/upsample kernels are included.
    """
    sd: dict[str, torch.Tensor] = {}
    f4 = _filter_2d() * 4
    noise_idx = 0

    def layer(src: str, dst: str, up: bool) -> None:
        nonlocal noise_idx
        w = tensors[f"{src}.weight"]
        fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        sd[f"{dst}.conv.weight"] = (w * math.sqrt(fan_in)).unsqueeze(0)
        sd[f"{dst}.conv.modulation.weight"] = tensors[f"{src}.affine.weight"].clone()
        sd[f"{dst}.conv.modulation.bias"] = tensors[f"{src}.affine.bias"].clone()
        sd[f"{dst}.noise.weight"] = tensors[f"{src}.noise_strength"].reshape(1).clone()
        sd[f"{dst}.activate.bias"] = tensors[f"{src}.bias"].clone()
        if up:
            sd[f"{dst}.conv.blur.kernel"] = f4.clone()
        sd[f"noises.noise_{noise_idx}"] = tensors[f"{src}.noise_const"][None, None].clone()
        noise_idx += 1

    def torgb(src: str, dst: str, up: bool) -> None:
        sd[f"{dst}.conv.weight"] = tensors[f"{src}.weight"].unsqueeze(0).clone()
        sd[f"{dst}.conv.modulation.weight"] = tensors[f"{src}.affine.weight"].clone()
        sd[f"{dst}.conv.modulation.bias"] = tensors[f"{src}.affine.bias"].clone()
        sd[f"{dst}.bias"] = tensors[f"{src}.bias"].reshape(1, -1, 1, 1).clone()
        if up:
            sd[f"{dst}.upsample.kernel"] = f4.clone()

    for i in range(config.mapping_layers):
        sd[f"style.{i + 1}.weight"] = tensors[f"mapping.fc{i}.weight"].clone()
        sd[f"style.{i + 1}.bias"] = tensors[f"mapping.fc{i}.bias"].clone()
    for res in config.block_resolutions:
        b = f"synthesis.b{res}"
        if res == 4:
            sd["input.input"] = tensors[f"{b}.const"].unsqueeze(0).clone()
            layer(f"{b}.conv1", "conv1", up=False)
            torgb(f"{b}.torgb", "to_rgb1", up=False)
        else:
            k = int(math.log2(res)) - 3
            layer(f"{b}.conv0", f"convs.{2 * k}", up=True)
            layer(f"{b}.conv1", f"convs.{2 * k + 1}", up=False)
            torgb(f"{b}.torgb", f"to_rgbs.{k}", up=True)
    return sd


def load_rosinality(path: str | Path) -> tuple[GeneratorConfig, dict[str, torch.Tensor]]:
    """Read ``g_ema`` of a rosinality checkpoint: ``(GeneratorConfig, NVIDIA-keyed fp32 tensors)``.

    A bare ``g_ema`` state dict (no wrapping dict) is accepted too.
    """
    path = Path(path)
    return rosinality_from_checkpoint(_read(path), path)


def rosinality_from_checkpoint(data: dict, path: Path) -> tuple[GeneratorConfig, dict[str, torch.Tensor]]:
    """``load_rosinality`` of a checkpoint already read by ``read_torch_checkpoint``."""
    if "g_ema" in data:
        sd = data["g_ema"]
    elif "style.1.weight" in data:
        sd = data
    else:
        keys = ", ".join(repr(k) for k in list(data)[:8] if isinstance(k, str)) or "none"
        raise CheckpointError(path, f"no 'g_ema' in the checkpoint (keys: {keys})")
    if not isinstance(sd, dict):
        raise CheckpointError(path, f"'g_ema' is a {type(sd).__name__}, expected a state dict")
    args = data.get("args")
    config = _infer_config(sd, path, args if isinstance(args, argparse.Namespace) else None)
    latent_avg = data.get("latent_avg")
    return config, rosinality_to_nvidia(sd, config, path, latent_avg=latent_avg)

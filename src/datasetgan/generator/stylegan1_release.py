"""Reading the DatasetGAN release's StyleGAN1 checkpoints (``*.for_g_all.pt``).

Such a file is the ``state_dict`` of the release's
``nn.Sequential(g_mapping=G_mapping(), truncation=Truncation(...), g_synthesis=G_synthesis(R))``
(its ``train_interpreter.py``), read here with ``torch.load(weights_only=True)``
(``rosinality.read_torch_checkpoint``), so nothing in it runs. It is told apart
from a rosinality file by its keys (``g_mapping.dense0.weight``,
``g_synthesis.blocks.4x4...``), and the architecture, resolution included, is
derived from the tensors' shapes.

Key mapping (release -> ``StyleGAN1Generator``):

- ``g_mapping.dense{i}.*`` -> ``mapping.fc{i}.*``
- ``g_synthesis.blocks.4x4.const [1, C, 4, 4]`` -> ``synthesis.b4.const [C, 4, 4]``;
  ``.bias`` -> ``.const_bias``; or ``.dense.*`` (the dense input) -> ``.dense.*``;
  ``.conv.*`` -> ``.conv1.*``
- ``blocks.RxR.conv0_up.*`` -> ``bR.conv0.*`` (``.intermediate.kernel``: must be the
  normalised [1, 2, 1] blur, which the network derives from its config); ``.conv1.*``
  -> ``bR.conv1.*``
- ``blocks.RxR.epi1`` / ``epi2`` -> ``bR.adain0`` / ``adain1``: ``top_epi.noise.weight``
  -> ``noise_strength``, ``style_mod.lin.*`` -> ``affine.*``
- ``g_synthesis.torgb.*`` -> ``synthesis.torgb.*``

The release keeps no truncation average in the file (``Truncation.avg_latent`` is a
plain attribute, loaded from ``avg_latent_stylegan1.npy``) and no noise. So
``mapping.w_avg`` is the mean w of ``W_AVG_SAMPLES`` seeded z unless ``avg_latent`` is
given, and the ``"const"`` noise maps are ``stylegan1.const_noise``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from datasetgan.core.errors import CheckpointError
from datasetgan.generator.config import StyleGAN1Config
from datasetgan.generator.rosinality import read_torch_checkpoint
from datasetgan.generator.stylegan1 import StyleGAN1Mapping, const_noise

__all__ = ["is_release_stylegan1", "load_release_stylegan1", "release_to_stylegan1", "estimate_w_avg"]

W_AVG_SAMPLES = 4096
W_AVG_SEED = 0
RELEASE_BLUR = (1, 2, 1)
_BLOCK = re.compile(r"^g_synthesis\.blocks\.(\d+)x(\d+)\.")


def is_release_stylegan1(data: Mapping[Any, Any]) -> bool:
    """True for a dict whose keys are those of the release's ``g_all`` state dict."""
    return "g_mapping.dense0.weight" in data or any(isinstance(k, str) and k.startswith("g_synthesis.blocks.")
                                                    for k in data)


def _tensor(sd: Mapping, key: str, path: Path, ndim: int | None = None) -> torch.Tensor:
    t = sd.get(key)
    if not isinstance(t, torch.Tensor):
        raise CheckpointError(path, f"missing tensor '{key}' (not a complete DatasetGAN-release StyleGAN1 "
                                    "g_all state dict)")
    if ndim is not None and t.ndim != ndim:
        raise CheckpointError(path, f"key '{key}' has shape {list(t.shape)}, expected {ndim} dimensions")
    if not t.is_floating_point():
        raise CheckpointError(path, f"key '{key}': expected floating-point values, got {t.dtype}")
    return t.detach().float()


def _infer_config(sd: Mapping, path: Path) -> StyleGAN1Config:
    layers = 0
    while f"g_mapping.dense{layers}.weight" in sd:
        layers += 1
    if layers == 0:
        raise CheckpointError(path, "no mapping layers 'g_mapping.dense0.weight'...; not a DatasetGAN-release "
                                    "StyleGAN1 g_all state dict")
    w_dim, z_dim = _tensor(sd, "g_mapping.dense0.weight", path, 2).shape
    sizes = set()
    for key in sd:
        m = _BLOCK.match(key) if isinstance(key, str) else None
        if m:
            if m.group(1) != m.group(2):
                raise CheckpointError(path, f"key '{key}': blocks must be square (RxR)")
            sizes.add(int(m.group(1)))
    resolution = max(sizes, default=0)
    expected = {2 ** i for i in range(2, int(math.log2(resolution)) + 1)} if resolution >= 4 else {4}
    if sizes != expected:
        raise CheckpointError(path, f"synthesis blocks {sorted(sizes)}: expected every resolution 4, 8, ..., "
                                    f"{max(resolution, 4)}")
    channels = {4: _tensor(sd, "g_synthesis.blocks.4x4.conv.weight", path, 4).shape[0]}
    for res in sorted(expected - {4}):
        channels[res] = _tensor(sd, f"g_synthesis.blocks.{res}x{res}.conv1.weight", path, 4).shape[0]
    fmap_max = max(channels.values())
    below = [r for r in sorted(channels) if channels[r] < fmap_max]
    fmap_base = channels[below[0]] * below[0] // 2 if below else max(8192, fmap_max * resolution // 2)
    if any(min(fmap_base * 2 // r, fmap_max) != c for r, c in channels.items()):
        detail = ", ".join(f"{r}: {c}" for r, c in sorted(channels.items()))
        raise CheckpointError(path, f"channels per resolution ({detail}) do not follow the release's "
                                    "min(2 * fmap_base // res, fmap_max)")
    blur_keys = [k for k in sd if isinstance(k, str) and k.endswith(".conv0_up.intermediate.kernel")]
    if blur_keys and len(blur_keys) != len(expected) - 1:
        raise CheckpointError(path, "some upsampling convs have a blur kernel and some do not")
    return StyleGAN1Config(
        z_dim=int(z_dim), w_dim=int(w_dim), img_resolution=resolution,
        img_channels=int(_tensor(sd, "g_synthesis.torgb.weight", path, 4).shape[0]), mapping_layers=layers,
        fmap_base=int(fmap_base), fmap_max=int(fmap_max),
        const_input="g_synthesis.blocks.4x4.const" in sd,
        use_noise="g_synthesis.blocks.4x4.epi1.top_epi.noise.weight" in sd,
        blur_filter=RELEASE_BLUR if blur_keys else ())


def _blur_reference() -> torch.Tensor:
    taps = torch.tensor(RELEASE_BLUR, dtype=torch.float32)
    k = torch.outer(taps, taps)
    return (k / k.sum())[None, None]


def release_to_stylegan1(sd: Mapping[str, Any], path: str | Path = "<state dict>",
                         avg_latent: torch.Tensor | None = None) -> tuple[StyleGAN1Config, dict[str, torch.Tensor]]:
    """The release's ``g_all`` state dict -> ``(StyleGAN1Config, StyleGAN1Generator-keyed fp32 tensors)``.

    ``avg_latent`` (``[w_dim]``, or rows that are all the same w, e.g. ``[1, 18, w_dim]``)
    becomes ``mapping.w_avg``; without it, ``estimate_w_avg``. Missing, unexpected or
    misshapen tensors raise ``CheckpointError`` naming the key.
    """
    path = Path(path)
    config = _infer_config(sd, path)
    used: set[str] = set()
    out: dict[str, torch.Tensor] = {}

    def take(src: str, dst: str, ndim: int | None = None) -> torch.Tensor:
        used.add(src)
        out[dst] = _tensor(sd, src, path, ndim)
        return out[dst]

    for i in range(config.mapping_layers):
        take(f"g_mapping.dense{i}.weight", f"mapping.fc{i}.weight", 2)
        take(f"g_mapping.dense{i}.bias", f"mapping.fc{i}.bias", 1)
    for res in config.block_resolutions:
        src, dst = f"g_synthesis.blocks.{res}x{res}", f"synthesis.b{res}"
        if res == 4:
            if config.const_input:
                const = take(f"{src}.const", f"{dst}.const", 4)
                if const.shape[0] != 1:
                    raise CheckpointError(path, f"key '{src}.const' has shape {list(const.shape)}, "
                                                "expected [1, C, 4, 4]")
                out[f"{dst}.const"] = const[0]
                take(f"{src}.bias", f"{dst}.const_bias", 1)
            else:
                take(f"{src}.dense.weight", f"{dst}.dense.weight", 2)
                take(f"{src}.dense.bias", f"{dst}.dense.bias", 1)
            take(f"{src}.conv.weight", f"{dst}.conv1.weight", 4)
            take(f"{src}.conv.bias", f"{dst}.conv1.bias", 1)
        else:
            for a, b in (("conv0_up", "conv0"), ("conv1", "conv1")):
                take(f"{src}.{a}.weight", f"{dst}.{b}.weight", 4)
                take(f"{src}.{a}.bias", f"{dst}.{b}.bias", 1)
            key = f"{src}.conv0_up.intermediate.kernel"
            if config.blur_filter:
                used.add(key)
                k = _tensor(sd, key, path)
                if k.shape != (1, 1, 3, 3) or not torch.allclose(k, _blur_reference()):
                    raise CheckpointError(path, f"key '{key}' is not the release's normalised [1, 2, 1] blur; "
                                                "only that filter is supported")
        for a, b in (("epi1", "adain0"), ("epi2", "adain1")):
            if config.use_noise:
                take(f"{src}.{a}.top_epi.noise.weight", f"{dst}.{b}.noise_strength", 1)
            take(f"{src}.{a}.style_mod.lin.weight", f"{dst}.{b}.affine.weight", 2)
            take(f"{src}.{a}.style_mod.lin.bias", f"{dst}.{b}.affine.bias", 1)
    take("g_synthesis.torgb.weight", "synthesis.torgb.weight", 4)
    take("g_synthesis.torgb.bias", "synthesis.torgb.bias", 1)
    unknown = sorted(str(k) for k in sd if k not in used)
    if unknown:
        shown = ", ".join(repr(k) for k in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise CheckpointError(path, f"unexpected key(s) {shown}; not the DatasetGAN release's StyleGAN1 "
                                    "(a seg_branch or another fork?)")
    for name, noise in const_noise(config).items():
        out[f"synthesis.{name}.noise_const"] = noise
    out["mapping.w_avg"] = (estimate_w_avg(out, config) if avg_latent is None
                            else w_avg_from_latent(avg_latent, config.w_dim, path))
    return config, out


def w_avg_from_latent(avg_latent: Any, w_dim: int, source: str | Path) -> torch.Tensor:
    """``[w_dim]`` from the release's average latent: ``[w_dim]``, or ``[..., w_dim]`` rows that
    are all the same w (``G_mapping.make_mean_latent`` broadcasts one mean to 18 rows)."""
    t = torch.as_tensor(avg_latent).detach().float()
    if t.ndim == 0 or t.shape[-1] != w_dim:
        raise CheckpointError(source, f"average latent of shape {list(t.shape)}: expected [..., {w_dim}]")
    rows = t.reshape(-1, w_dim)
    if not torch.equal(rows, rows[:1].expand_as(rows)):
        raise CheckpointError(source, "average latent: its rows differ; expected one mean w (repeated)")
    return rows[0].clone()


@torch.no_grad()
def estimate_w_avg(tensors: Mapping[str, torch.Tensor], config: StyleGAN1Config,
                   n: int = W_AVG_SAMPLES, seed: int = W_AVG_SEED) -> torch.Tensor:
    """``[w_dim]``: the mean mapping output over ``n`` z from ``torch.Generator().manual_seed(seed)``."""
    mapping = StyleGAN1Mapping(config, num_ws=1)
    state = {k[len("mapping."):]: v for k, v in tensors.items() if k.startswith("mapping.fc")}
    mapping.load_state_dict({**state, "w_avg": torch.zeros([config.w_dim])}, strict=True)
    z = torch.randn([n, config.z_dim], generator=torch.Generator().manual_seed(seed))
    return mapping(z)[:, 0].mean(dim=0)


def load_release_stylegan1(path: str | Path, data: Mapping | None = None,
                           avg_latent: torch.Tensor | None = None) -> tuple[StyleGAN1Config, dict[str, torch.Tensor]]:
    """Read a release ``*.for_g_all.pt`` (``data``: its dict, when already read)."""
    path = Path(path)
    if data is None:
        data = read_torch_checkpoint(path)
    if not is_release_stylegan1(data):
        raise CheckpointError(path, "not a DatasetGAN-release StyleGAN1 state dict (no 'g_mapping.dense0.weight')")
    return release_to_stylegan1(data, path, avg_latent=avg_latent)

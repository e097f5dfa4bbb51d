"""Read NVIDIA StyleGAN2 ``.pkl`` snapshots without running their code.

A snapshot (stylegan2-ada-pytorch ``training_loop.py``, or the stylegan3
repository with ``--cfg stylegan2``) is a pickled dict ``{G, D, G_ema,
augment_pipe, training_set_kwargs, ...}``. Each network is an object of a
class decorated with ``torch_utils.persistence.persistent_class``; it pickles
as ``_reconstruct_persistent_obj(meta)`` with::

    meta = {type: 'class', version: 6, module_src: <source of the module>,
            class_name: 'Generator', state: <the module's __dict__>}

NVIDIA's loader ``exec``s ``module_src``. Here the hook resolves to a stand-in
that keeps ``meta`` as an inert ``PersistentObject``; the source text is never
imported or executed. Every sub-module (``SynthesisBlock``, ``SynthesisLayer``,
``FullyConnectedLayer``, ...) is itself persistent, so ``state['_modules']``
holds more ``PersistentObject``s, and ``state['_parameters']`` /
``state['_buffers']`` hold the tensors, exactly as ``nn.Module.__dict__`` does.
Flattening that tree with dotted names gives NVIDIA's ``state_dict()`` keys.

The architecture comes from the generator's init kwargs, checked against the
attributes the sub-modules recorded at construction time (``conv_clamp``,
``use_fp16``, ``architecture``, ...), which also settles defaults that differ
between the two repositories (stylegan3's blocks default to
``conv_clamp=256``, stylegan2-ada's to ``None``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from datasetgan.core.errors import CheckpointError
from datasetgan.generator.config import GeneratorConfig
from datasetgan.generator.safe_pickle import safe_load

__all__ = ["PersistentObject", "read_nvidia_snapshot", "load_nvidia_pickle", "flatten_module_state"]

PERSISTENCE_VERSION = 6


@dataclass(eq=False)
class PersistentObject:
    """An NVIDIA persistent object as data: its class name and pickled ``__dict__``."""

    class_name: str
    state: dict
    version: int = PERSISTENCE_VERSION
    module_src_len: int = 0  # the source itself is dropped: it is never used
    extra: dict = field(default_factory=dict)

    def attr(self, name: str, default: Any = None) -> Any:
        return self.state.get(name, default)

    def child(self, name: str) -> "PersistentObject | None":
        modules = self.state.get("_modules") or {}
        value = modules.get(name)
        return value if isinstance(value, PersistentObject) else None


class _BadMeta(Exception):
    pass


def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    """Stand-in for ``torch_utils.persistence._reconstruct_persistent_obj``."""
    if not isinstance(meta, dict):
        raise _BadMeta(f"persistent object meta is a {type(meta).__name__}, expected a dict")
    if meta.get("type") != "class":
        raise _BadMeta(f"persistent object of type {meta.get('type')!r}; only 'class' is known")
    class_name, state, src = meta.get("class_name"), meta.get("state"), meta.get("module_src")
    if not isinstance(class_name, str) or not isinstance(src, str):
        raise _BadMeta("persistent object without a class name or module source")
    if state is None:
        state = {}
    if not isinstance(state, dict):
        raise _BadMeta(f"persistent object '{class_name}' has a {type(state).__name__} state, expected a dict")
    version = meta.get("version")
    return PersistentObject(class_name=class_name, state=dict(state),
                            version=version if isinstance(version, int) else -1, module_src_len=len(src))


def _checked_reconstruct(path: Path):
    def hook(meta: Any) -> PersistentObject:
        try:
            return _reconstruct_persistent_obj(meta)
        except _BadMeta as exc:
            raise CheckpointError(path, f"refusing to load: {exc}") from None
    return hook


def read_nvidia_snapshot(path: str | Path) -> Any:
    """Unpickle an NVIDIA snapshot safely; networks come back as ``PersistentObject``s."""
    path = Path(path)
    return safe_load(path, {("torch_utils.persistence", "_reconstruct_persistent_obj"): _checked_reconstruct(path)})


def flatten_module_state(obj: PersistentObject, path: str | Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """The ``state_dict()`` of a pickled module tree: parameters, then persistent
    buffers, then children, with dotted names (``nn.Module.state_dict`` order)."""
    out: dict[str, torch.Tensor] = {}
    st = obj.state
    skip = st.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        entries = st.get(group) or {}
        if not isinstance(entries, dict):
            raise CheckpointError(path, f"'{prefix}{group}' is a {type(entries).__name__}, expected a dict")
        for name, value in entries.items():
            if value is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(path, f"'{prefix}{name}' is a {type(value).__name__}, expected a tensor")
            out[prefix + name] = value
    for name, child in (st.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentObject):
            raise CheckpointError(path, f"sub-module '{prefix}{name}' is a {type(child).__name__}, "
                                        "expected an NVIDIA persistent module")
        out.update(flatten_module_state(child, path, prefix=f"{prefix}{name}."))
    return out


# Init kwargs that change nothing in inference output (memory layout, training
# schedule): accepted and ignored.
_IGNORED_KWARGS = {"fp16_channels_last", "fused_modconv_default", "freeze_layers", "freeze_embed",
                   "channels_last", "w_avg_beta"}
_GENERATOR_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs")


def _generator_kwargs(G: PersistentObject, path: Path, which: str) -> dict[str, Any]:
    args = G.attr("_init_args") or ()
    kwargs = dict(G.attr("_init_kwargs") or {})
    if not isinstance(args, (tuple, list)):
        raise CheckpointError(path, f"{which}: '_init_args' is not a tuple")
    for name, value in zip(_GENERATOR_ARGS, args):
        kwargs.setdefault(name, value)
    for name in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
        if name not in kwargs:
            if isinstance(G.attr(name), int):
                kwargs[name] = G.attr(name)
            else:
                raise CheckpointError(path, f"{which}: init kwarg '{name}' not found")
    return kwargs


def _derive_config(G: PersistentObject, path: Path, which: str = "G_ema") -> GeneratorConfig:
    if G.class_name != "Generator":
        raise CheckpointError(path, f"expected a 'Generator', found a '{G.class_name}'")
    synthesis, mapping = G.child("synthesis"), G.child("mapping")
    if synthesis is None or mapping is None:
        raise CheckpointError(path, f"{which} has no 'synthesis'/'mapping' sub-modules; not a StyleGAN2 generator")
    if synthesis.child("b4") is None:
        kind = "a StyleGAN3 (alias-free) generator" if synthesis.child("input") is not None else "an unknown generator"
        raise CheckpointError(path, f"{which} is {kind}; only StyleGAN2 generators (stylegan2-ada-pytorch "
                                    "'training.networks', stylegan3 'training.networks_stylegan2') are supported")

    kwargs = _generator_kwargs(G, path, which)
    mapping_kwargs = dict(kwargs.pop("mapping_kwargs", None) or {})
    # stylegan2-ada nests synthesis kwargs; stylegan3's networks_stylegan2 passes them flat.
    synthesis_kwargs = dict(kwargs.pop("synthesis_kwargs", None) or {})
    top = {k: kwargs.pop(k) for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")}
    synthesis_kwargs.update(kwargs)

    res = top["img_resolution"]
    if not isinstance(res, int) or res < 4 or res & (res - 1):
        raise CheckpointError(path, f"{which}: img_resolution {res!r} is not a power of two >= 4")
    block_res = [2 ** i for i in range(2, int(math.log2(res)) + 1)]
    blocks = {r: synthesis.child(f"b{r}") for r in block_res}
    missing = [f"synthesis.b{r}" for r, b in blocks.items() if b is None]
    if missing:
        raise CheckpointError(path, f"{which}: missing sub-module(s) {', '.join(missing)}")

    # Values the modules recorded when they were built are the ground truth.
    layer = blocks[4].child("conv1")
    if layer is None:
        raise CheckpointError(path, f"{which}: missing sub-module synthesis.b4.conv1")
    conv_clamp = layer.attr("conv_clamp", synthesis_kwargs.get("conv_clamp"))
    use_noise = bool(layer.attr("use_noise", synthesis_kwargs.get("use_noise", True)))
    activation = layer.attr("activation", synthesis_kwargs.get("activation", "lrelu"))
    architecture = blocks[4].attr("architecture", synthesis_kwargs.get("architecture", "skip"))
    fp16 = [r for r in block_res if blocks[r].attr("use_fp16", False)]
    num_fp16_res = 0 if not fp16 else int(math.log2(res)) + 1 - int(math.log2(min(fp16)))
    if fp16 != [r for r in block_res if fp16 and r >= min(fp16)]:
        raise CheckpointError(path, f"{which}: fp16 blocks {fp16} are not the highest resolutions; "
                                    "not something num_fp16_res can express")
    if activation != "lrelu":
        raise CheckpointError(path, f"{which}: synthesis activation '{activation}' is not supported (only 'lrelu')")
    mapping_activation = mapping_kwargs.get("activation", "lrelu")
    if mapping_activation != "lrelu":
        raise CheckpointError(path, f"{which}: mapping activation '{mapping_activation}' is not supported (only 'lrelu')")
    kernel_size = synthesis_kwargs.get("kernel_size", 3)
    if kernel_size != 3:
        raise CheckpointError(path, f"{which}: kernel_size {kernel_size} is not supported (only 3)")

    known = {"channel_base", "channel_max", "num_fp16_res", "conv_clamp", "architecture", "resample_filter",
             "use_noise", "activation", "kernel_size"}
    unknown = sorted(k for k in synthesis_kwargs if k not in known and k not in _IGNORED_KWARGS)
    if unknown:
        raise CheckpointError(path, f"{which}: init kwarg(s) {', '.join(map(repr, unknown))} are not part of "
                                    "NVIDIA's StyleGAN2 generator; refusing to guess what they change")
    unknown = sorted(k for k in mapping_kwargs if k not in
                     {"num_layers", "embed_features", "layer_features", "activation", "lr_multiplier"} | _IGNORED_KWARGS)
    if unknown:
        raise CheckpointError(path, f"{which}: mapping kwarg(s) {', '.join(map(repr, unknown))} are not supported")

    resample_filter = synthesis_kwargs.get("resample_filter", [1, 3, 3, 1])
    w_avg_beta = mapping.attr("w_avg_beta", mapping_kwargs.get("w_avg_beta", 0.995))
    # FullyConnectedLayer records lr_multiplier as bias_gain: the value actually used.
    fc0 = mapping.child("fc0")
    lr_multiplier = fc0.attr("bias_gain") if fc0 is not None else None
    if not isinstance(lr_multiplier, (int, float)) or isinstance(lr_multiplier, bool):
        lr_multiplier = mapping_kwargs.get("lr_multiplier", 0.01)
    values = dict(
        **top,
        mapping_layers=mapping.attr("num_layers", mapping_kwargs.get("num_layers", 8)),
        channel_base=synthesis_kwargs.get("channel_base", 32768),
        channel_max=synthesis_kwargs.get("channel_max", 512),
        num_fp16_res=num_fp16_res,
        conv_clamp=None if conv_clamp is None else float(conv_clamp),
        architecture=architecture,
        embed_features=mapping_kwargs.get("embed_features"),
        layer_features=mapping_kwargs.get("layer_features"),
        mapping_lr_multiplier=float(lr_multiplier),
        w_avg_beta=None if w_avg_beta is None else float(w_avg_beta),
        use_noise=use_noise,
        resample_filter=tuple(int(v) for v in resample_filter),
    )
    try:
        return GeneratorConfig.from_dict(values, source=f"{path} ({which} init kwargs)")
    except Exception as exc:
        raise CheckpointError(path, f"{which}: cannot represent this generator: {exc}") from None


def load_nvidia_pickle(path: str | Path, which: str = "G_ema") -> tuple[GeneratorConfig, dict[str, torch.Tensor]]:
    """Read network ``which`` (default ``G_ema``) of an NVIDIA snapshot.

    Returns the ``GeneratorConfig`` and the tensors keyed by NVIDIA's
    ``state_dict()`` names (fp32/fp16 as stored). Nothing in the file is
    executed; ``CheckpointError`` names the path for anything unexpected.
    """
    path = Path(path)
    data = read_nvidia_snapshot(path)
    if isinstance(data, PersistentObject):  # a bare pickled network, not a snapshot dict
        data = {which: data}
    if not isinstance(data, dict):
        raise CheckpointError(path, f"expected a snapshot dict with '{which}', got a {type(data).__name__}")
    if which not in data:
        keys = ", ".join(repr(k) for k in data.keys() if isinstance(k, str)) or "none"
        raise CheckpointError(path, f"no '{which}' in the snapshot (keys: {keys})")
    G = data[which]
    if not isinstance(G, PersistentObject):
        raise CheckpointError(path, f"'{which}' is a {type(G).__name__}, expected a pickled NVIDIA network")
    config = _derive_config(G, path, which)
    tensors = {k: v.detach().clone().contiguous() for k, v in flatten_module_state(G, path).items()}
    _check_filter(config, tensors, path, which)
    return config, tensors


def _check_filter(config: GeneratorConfig, tensors: dict[str, torch.Tensor], path: Path, which: str) -> None:
    # The resample filter is a buffer in the file and a field in the config; they must agree.
    # (NVIDIA's upfirdn2d.setup_filter: 2-D outer product below 8 taps, else kept separable.)
    f = torch.as_tensor(config.resample_filter, dtype=torch.float32)
    expected = torch.outer(f, f) / f.sum() ** 2 if f.numel() < 8 else f / f.sum()
    got = tensors.get("synthesis.b4.resample_filter")
    if got is not None and (got.shape != expected.shape or not torch.allclose(got.float(), expected, atol=1e-6)):
        raise CheckpointError(path, f"{which}: key 'synthesis.b4.resample_filter' does not match the "
                                    f"filter {list(config.resample_filter)} from the init kwargs")

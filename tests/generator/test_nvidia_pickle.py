"""NVIDIA .pkl snapshots: read without NVIDIA's code, compared bit-exactly.

The pickles are written here in NVIDIA's persistence format: every network
module pickles as ``torch_utils.persistence._reconstruct_persistent_obj(meta)``
with ``meta = {type, version, module_src, class_name, state}`` and ``state``
the module's ``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, plain
attributes, and on each object ``_init_args``/``_init_kwargs``). Module names
and attributes come from our own ``Generator``, whose layout is NVIDIA's.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from datasetgan.core.errors import CheckpointError
from datasetgan.generator import Generator, GeneratorConfig, load_generator
from datasetgan.generator.nvidia_pickle import load_nvidia_pickle

# A module source with a side effect: it must never run.
SIDE_EFFECT_SRC = "import pathlib\npathlib.Path({marker!r}).write_text('executed')\nclass Generator: pass\n"
PLAIN_SRC = "# training/networks.py stand-in; never executed by the reader\nclass Generator: pass\n"


@contextlib.contextmanager
def fake_nvidia_modules():
    """Put ``torch_utils.persistence`` and ``dnnlib.util`` in ``sys.modules`` while
    pickling, so the pickle names them exactly as NVIDIA's files do."""
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # never called: the reader has its own
        raise AssertionError("NVIDIA's reconstruct hook must not be used")

    class EasyDict(dict):
        pass

    _reconstruct_persistent_obj.__module__ = persistence.__name__
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    EasyDict.__module__, EasyDict.__qualname__ = util.__name__, "EasyDict"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util.EasyDict = EasyDict
    mods = {"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
            "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util}
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        yield persistence, util
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def nvidia_init_kwargs(cfg: GeneratorConfig, EasyDict, flat: bool = False) -> dict:
    """The Generator init kwargs NVIDIA's train.py records (``flat``: stylegan3's style)."""
    synthesis = dict(channel_base=cfg.channel_base, channel_max=cfg.channel_max,
                     num_fp16_res=cfg.num_fp16_res, conv_clamp=cfg.conv_clamp, architecture=cfg.architecture)
    kwargs = dict(z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, img_resolution=cfg.img_resolution,
                  img_channels=cfg.img_channels, mapping_kwargs=EasyDict(num_layers=cfg.mapping_layers))
    if flat:
        kwargs.update(synthesis, fused_modconv_default="inference_only")
    else:
        kwargs["synthesis_kwargs"] = EasyDict(synthesis)
    return EasyDict(kwargs)


_SIMPLE = (bool, int, float, str, type(None), np.floating)


class PersistencePickler(pickle.Pickler):
    """Pickles every ``nn.Module`` as NVIDIA's persistence does."""

    def __init__(self, file, hook, module_src: str, root_kwargs: dict, class_names: dict | None = None,
                 protocol: int = 4):
        super().__init__(file, protocol=protocol)
        self.hook, self.module_src, self.root_kwargs = hook, module_src, root_kwargs
        self.class_names = class_names or {}

    def reducer_override(self, obj):
        if not isinstance(obj, nn.Module):
            return NotImplemented
        state = {}
        for key, value in obj.__dict__.items():
            if key in ("_parameters", "_buffers", "_modules") or key.endswith("hooks"):
                state[key] = value
            elif key == "_non_persistent_buffers_set":
                state[key] = set(value)
            elif isinstance(value, _SIMPLE):
                state[key] = value
        # NVIDIA's weight gains are numpy float64 (lr / np.sqrt(n)).
        if "weight_gain" in state:
            state["weight_gain"] = np.float64(state["weight_gain"])
        state["_init_args"] = ()
        state["_init_kwargs"] = self.root_kwargs if obj is self.root else {}
        name = self.class_names.get(type(obj).__name__, type(obj).__name__)
        meta = dict(type="class", version=6, module_src=self.module_src, class_name=name, state=state)
        return self.hook, (meta,)

    def dump_snapshot(self, snapshot: dict, root: nn.Module):
        self.root = root
        self.dump(snapshot)


def write_nvidia_pickle(path: Path, G: Generator, *, flat: bool = False, module_src: str = PLAIN_SRC,
                        extra: dict | None = None, drop: tuple[str, ...] = (), class_names=None,
                        protocol: int = 4) -> None:
    with fake_nvidia_modules() as (persistence, util):
        kwargs = nvidia_init_kwargs(G.config, util.EasyDict, flat=flat)
        snapshot = dict(G=G, D=None, G_ema=G, augment_pipe=None,
                        training_set_kwargs=util.EasyDict(path="/data/ffhq.zip", xflip=True))
        snapshot.update(extra or {})
        for key in drop:
            snapshot.pop(key)
        buf = io.BytesIO()
        PersistencePickler(buf, persistence._reconstruct_persistent_obj, module_src, kwargs,
                           class_names, protocol=protocol).dump_snapshot(snapshot, G)
    path.write_bytes(buf.getvalue())


def tiny_config(**over) -> GeneratorConfig:
    base = dict(z_dim=16, w_dim=16, img_resolution=32, img_channels=3, mapping_layers=2,
                channel_base=256, channel_max=32, num_fp16_res=2, conv_clamp=256.0)
    base.update(over)
    return GeneratorConfig(**base)


def random_generator(cfg: GeneratorConfig, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    G = Generator(cfg).eval().requires_grad_(False)
    with torch.no_grad():  # non-trivial values everywhere (NVIDIA inits some to zero)
        for key, t in G.state_dict().items():
            if not key.endswith("resample_filter"):
                t.add_(torch.randn_like(t) * 0.1)
    return G


@pytest.fixture
def tiny_G() -> Generator:
    return random_generator(tiny_config())


def _render(G: Generator, seed: int = 1) -> torch.Tensor:
    z = torch.randn([2, G.z_dim], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G(z, truncation_psi=0.7, noise_mode="const")


@pytest.mark.parametrize("flat", [False, True], ids=["stylegan2-ada", "stylegan3-networks_stylegan2"])
def test_roundtrip_is_bit_exact(tmp_path, tiny_G, flat):
    path = tmp_path / "network-snapshot-000100.pkl"
    write_nvidia_pickle(path, tiny_G, flat=flat)
    config, tensors = load_nvidia_pickle(path)
    assert config == tiny_G.config
    expected = tiny_G.state_dict()
    assert list(tensors) == list(expected)  # NVIDIA's keys, NVIDIA's order
    for key, value in expected.items():
        assert torch.equal(tensors[key], value), key
    G2 = load_generator(path)
    assert torch.equal(_render(G2), _render(tiny_G))


def test_conditional_generator(tmp_path):
    G = random_generator(tiny_config(c_dim=3, num_fp16_res=0, conv_clamp=None))
    path = tmp_path / "cond.pkl"
    write_nvidia_pickle(path, G)
    G2 = load_generator(path)
    assert G2.config == G.config and "mapping.embed.weight" in G2.state_dict()
    z = torch.randn([2, 16], generator=torch.Generator().manual_seed(0))
    c = torch.eye(3)[:2]
    with torch.no_grad():
        assert torch.equal(G2(z, c), G(z, c))


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_older_and_newer_pickle_protocols(tmp_path, tiny_G, protocol):
    # Python 3.7-era snapshots use protocol 3 (GLOBAL opcodes, sets via REDUCE);
    # protocol 2 spells bytes as _codecs.encode(...).
    path = tmp_path / f"p{protocol}.pkl"
    write_nvidia_pickle(path, tiny_G, protocol=protocol)
    config, tensors = load_nvidia_pickle(path)
    assert config == tiny_G.config
    assert all(torch.equal(tensors[k], v) for k, v in tiny_G.state_dict().items())


def test_config_comes_from_module_attributes(tmp_path):
    # No conv_clamp / num_fp16_res in the kwargs: stylegan3's defaults differ from
    # stylegan2-ada's, so the values recorded on the modules must decide.
    G = random_generator(tiny_config(num_fp16_res=1, conv_clamp=None))
    path = tmp_path / "g.pkl"
    with fake_nvidia_modules() as (persistence, util):
        kwargs = util.EasyDict(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
                               mapping_kwargs=util.EasyDict(num_layers=2),
                               synthesis_kwargs=util.EasyDict(channel_base=256, channel_max=32))
        buf = io.BytesIO()
        PersistencePickler(buf, persistence._reconstruct_persistent_obj, PLAIN_SRC, kwargs).dump_snapshot(
            {"G_ema": G}, G)
    path.write_bytes(buf.getvalue())
    config, _ = load_nvidia_pickle(path)
    assert config.num_fp16_res == 1 and config.conv_clamp is None
    assert config == G.config


def test_which_selects_another_network(tmp_path, tiny_G):
    other = random_generator(tiny_G.config, seed=5)
    path = tmp_path / "s.pkl"
    write_nvidia_pickle(path, tiny_G, extra={"G": other})
    _, tensors = load_nvidia_pickle(path, which="G")
    assert torch.equal(tensors["synthesis.b4.const"], other.state_dict()["synthesis.b4.const"])


def test_module_source_is_never_executed(tmp_path, tiny_G):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "side_effect.pkl"
    write_nvidia_pickle(path, tiny_G, module_src=SIDE_EFFECT_SRC.format(marker=str(marker)))
    G2 = load_generator(path)
    assert not marker.exists()
    assert torch.equal(_render(G2), _render(tiny_G))
    assert "_imported_module_" not in " ".join(sys.modules)


def test_missing_g_ema(tmp_path, tiny_G):
    path = tmp_path / "noema.pkl"
    write_nvidia_pickle(path, tiny_G, drop=("G_ema",))
    with pytest.raises(CheckpointError, match="no 'G_ema'") as info:
        load_generator(path)
    assert str(path) in str(info.value)


def test_shapes_that_do_not_fit_name_the_key(tmp_path, tiny_G):
    path = tmp_path / "bad_shape.pkl"
    with torch.no_grad():
        tiny_G.synthesis.b8.conv0.weight = nn.Parameter(torch.zeros(3, 3, 3, 3))
    write_nvidia_pickle(path, tiny_G)
    with pytest.raises(CheckpointError, match="synthesis.b8.conv0.weight") as info:
        load_generator(path)
    assert str(path) in str(info.value)


def test_stylegan3_generator_is_refused(tmp_path):
    # Build a minimal alias-free-looking tree: synthesis has 'input' and no 'b4'.
    class SynthesisInput(nn.Module):
        def __init__(self):
            super().__init__()
            self.freqs = nn.Parameter(torch.zeros(4, 2))

    class Synth(nn.Module):
        def __init__(self):
            super().__init__()
            self.input = SynthesisInput()

    class Gen(nn.Module):
        def __init__(self):
            super().__init__()
            self.synthesis = Synth()
            self.mapping = nn.Linear(2, 2)

    G = Gen()
    path = tmp_path / "sg3.pkl"
    with fake_nvidia_modules() as (persistence, util):
        buf = io.BytesIO()
        PersistencePickler(buf, persistence._reconstruct_persistent_obj, PLAIN_SRC,
                           util.EasyDict(z_dim=2, c_dim=0, w_dim=2, img_resolution=16, img_channels=3),
                           class_names={"Gen": "Generator", "Synth": "SynthesisNetwork"}).dump_snapshot(
            {"G_ema": G}, G)
    path.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="StyleGAN3"):
        load_nvidia_pickle(path)


def test_unknown_init_kwarg_is_refused(tmp_path, tiny_G):
    path = tmp_path / "odd.pkl"
    with fake_nvidia_modules() as (persistence, util):
        kwargs = nvidia_init_kwargs(tiny_G.config, util.EasyDict)
        kwargs["synthesis_kwargs"]["kernel_mode"] = "odd"
        buf = io.BytesIO()
        PersistencePickler(buf, persistence._reconstruct_persistent_obj, PLAIN_SRC, kwargs).dump_snapshot(
            {"G_ema": tiny_G}, tiny_G)
    path.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="kernel_mode"):
        load_nvidia_pickle(path)


def test_non_persistent_submodule_is_refused(tmp_path, tiny_G):
    # A plain torch module inside the tree pickles with its class as a global: refused.
    tiny_G.synthesis.extra = nn.Identity()
    path = tmp_path / "plain_module.pkl"

    class Pickler(PersistencePickler):
        def reducer_override(self, obj):
            if isinstance(obj, nn.Identity):
                return NotImplemented
            return super().reducer_override(obj)

    with fake_nvidia_modules() as (persistence, util):
        buf = io.BytesIO()
        Pickler(buf, persistence._reconstruct_persistent_obj, PLAIN_SRC,
                nvidia_init_kwargs(tiny_G.config, util.EasyDict)).dump_snapshot({"G_ema": tiny_G}, tiny_G)
    path.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="refusing to load: pickle references 'torch.nn"):
        load_nvidia_pickle(path)

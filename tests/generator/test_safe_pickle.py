"""The restricted unpickler: hostile and damaged files are refused, nothing runs."""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
import subprocess

import numpy as np
import pytest
import torch

from datasetgan.core.errors import CheckpointError
from datasetgan.generator import load_generator
from datasetgan.generator.nvidia_pickle import load_nvidia_pickle
from datasetgan.generator.safe_pickle import PlainDict, safe_load


class _Reduce:
    """Pickles as ``func(*args)``: what a hostile file does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _write(path, obj, protocol=4):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 4])
def test_os_system_is_refused_and_not_run(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "evil.pkl", {"G_ema": _Reduce(os.system, f"touch {marker}")}, protocol)
    with pytest.raises(CheckpointError, match=r"refusing to load: pickle references '(posix|nt|os)\.system'") as info:
        load_generator(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("func, arg", [
    (builtins.exec, "import pathlib; pathlib.Path('{marker}').touch()"),
    (builtins.eval, "__import__('pathlib').Path('{marker}').touch()"),
    (subprocess.Popen, ["touch", "{marker}"]),
    (getattr, None),
    (__import__, "os"),
], ids=["exec", "eval", "Popen", "getattr", "__import__"])
def test_code_running_globals_are_refused(tmp_path, func, arg):
    marker = tmp_path / "pwned"
    if isinstance(arg, str):
        arg = arg.format(marker=marker)
    elif isinstance(arg, list):
        arg = [a.format(marker=marker) for a in arg]
    obj = _Reduce(func, arg) if arg is not None else _Reduce(func, [], "append")
    path = _write(tmp_path / "evil.pkl", {"G_ema": obj})
    with pytest.raises(CheckpointError, match="refusing to load") as info:
        load_nvidia_pickle(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_hostile_object_nested_deep_inside_tensors(tmp_path):
    # A legitimate-looking tensor dict with one hostile value far inside.
    marker = tmp_path / "pwned"
    payload = {"a": torch.zeros(2), "b": [collections.OrderedDict(x=_Reduce(os.system, f"touch {marker}"))]}
    path = _write(tmp_path / "nested.pkl", payload)
    with pytest.raises(CheckpointError, match="system"):
        safe_load(path)
    assert not marker.exists()


def test_storage_bytes_are_loaded_weights_only(tmp_path):
    # torch.storage._load_from_bytes(b) with b a torch.save() that holds code:
    # the stand-in's torch.load(weights_only=True) must refuse it.
    marker = tmp_path / "pwned"
    inner = io.BytesIO()
    torch.save(_Reduce(os.system, f"touch {marker}"), inner, _use_new_zipfile_serialization=False)
    _load_from_bytes = torch.storage._load_from_bytes
    path = _write(tmp_path / "storage.pkl", _Reduce(_load_from_bytes, inner.getvalue()))
    with pytest.raises(CheckpointError):
        safe_load(path)
    assert not marker.exists()


def test_plain_values_and_tensors_load(tmp_path):
    value = {
        "t": torch.arange(6, dtype=torch.float32).reshape(2, 3)[:, 1:],  # a strided view
        "p": torch.nn.Parameter(torch.ones(3, dtype=torch.float16)),
        "od": collections.OrderedDict(a=1, b=(2.5, None, "x")),
        "s": {1, 2}, "np": np.float64(0.25), "arr": np.arange(4, dtype=np.int32),
    }
    path = _write(tmp_path / "ok.pkl", value)
    out = safe_load(path)
    assert torch.equal(out["t"], value["t"])
    assert out["p"].dtype == torch.float16 and not isinstance(out["p"], torch.nn.Parameter)
    assert out["od"] == value["od"] and out["s"] == {1, 2}
    assert out["np"] == 0.25 and np.array_equal(out["arr"], value["arr"])


def test_easydict_becomes_plain_dict(tmp_path):
    # Hand-written opcodes: NEWOBJ of dnnlib.util.EasyDict, then SETITEMS {'a': 1}.
    raw = (b"\x80\x04" b"\x8c\x0bdnnlib.util\x94\x8c\x08EasyDict\x94\x93\x94)\x81\x94"
           b"\x8c\x01a\x94K\x01s.")
    path = tmp_path / "easydict.pkl"
    path.write_bytes(raw)
    out = safe_load(path)
    assert isinstance(out, PlainDict) and out == {"a": 1}


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, cut):
    full = pickle.dumps({"G_ema": {"w": torch.randn(64, 64)}}, protocol=4)
    path = tmp_path / "cut.pkl"
    path.write_bytes(full[: int(len(full) * cut)])
    with pytest.raises(CheckpointError) as info:
        safe_load(path)
    assert str(path) in str(info.value)


def test_empty_and_missing_and_garbage(tmp_path):
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        safe_load(empty)
    with pytest.raises(CheckpointError, match="not found"):
        safe_load(tmp_path / "nope.pkl")
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError):
        load_generator(garbage)


def test_persistent_ids_are_refused(tmp_path):
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "x" if isinstance(obj, str) and obj == "ref" else None

    buf = io.BytesIO()
    P(buf, protocol=4).dump({"a": "ref"})
    path = tmp_path / "pid.pkl"
    path.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="persistent ids"):
        safe_load(path)


def test_bad_persistent_meta_is_refused(tmp_path):
    # The persistence hook with a meta that is not a class description.
    raw = (b"\x80\x04\x8c\x17torch_utils.persistence\x94\x8c\x1b_reconstruct_persistent_obj\x94\x93\x94"
           b"}\x94\x8c\x04type\x94\x8c\x08function\x94s\x85\x94R\x94.")
    path = tmp_path / "meta.pkl"
    path.write_bytes(raw)
    with pytest.raises(CheckpointError, match="only 'class'"):
        load_nvidia_pickle(path)

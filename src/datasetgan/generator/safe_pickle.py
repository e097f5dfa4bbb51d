"""A pickle reader that runs no code from the file.

A pickle is a small program: its ``GLOBAL``/``STACK_GLOBAL`` opcodes name any
importable callable (``os.system``, ``builtins.exec``, ...) and ``REDUCE``
calls it with arguments from the file. ``SafeUnpickler`` resolves every such
name through an explicit allowlist of *stand-ins* written here, and refuses
anything else with a ``CheckpointError`` before it is called. The stand-ins
check their arguments and build only inert values: tensors, dicts, lists,
numbers, numpy scalars and arrays.

Tensors inside a plain (non-``torch.save``) pickle arrive as
``torch.storage._load_from_bytes(b)``, whose real version calls
``torch.load(..., weights_only=False)``; the stand-in here calls
``torch.load(..., weights_only=True)``, which itself refuses code.

Callers add their own stand-ins (``extra_allowed``), e.g. NVIDIA's
``torch_utils.persistence._reconstruct_persistent_obj`` in ``nvidia_pickle``.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from datasetgan.core.errors import CheckpointError

__all__ = ["PlainDict", "SafeUnpickler", "safe_load", "BASE_ALLOWED"]


class PlainDict(dict):
    """Stands in for ``dnnlib.util.EasyDict``: a dict without attribute magic.

    A subclass (not ``dict`` itself) because the pickle fills it with
    ``NEWOBJ`` + ``SETITEMS`` and may ``BUILD`` an (empty) ``__dict__`` on it.
    """


class _UnsafeArgument(Exception):
    """A stand-in was called with arguments it does not accept."""


def _load_storage_from_bytes(data: bytes) -> Any:
    # Replaces torch.storage._load_from_bytes: the bytes are a torch.save()
    # of one storage (legacy format); weights_only=True refuses code in them.
    if not isinstance(data, (bytes, bytearray)):
        raise _UnsafeArgument(f"torch.storage._load_from_bytes expects bytes, got {type(data).__name__}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage deprecation noise
        storage = torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise _UnsafeArgument(f"torch.storage._load_from_bytes gave a {type(storage).__name__}, expected a storage")
    return storage


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None) -> torch.Tensor:
    # Same layout logic as torch._utils._rebuild_tensor_v2; hooks and python
    # metadata are dropped (hooks are never serialised by torch anyway).
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise _UnsafeArgument(f"_rebuild_tensor_v2 expects a storage, got {type(storage).__name__}")
    if not (isinstance(storage_offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)
            and all(isinstance(v, int) for v in (*size, *stride))):
        raise _UnsafeArgument("_rebuild_tensor_v2: offset, size and stride must be integers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, False, collections.OrderedDict())


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None) -> torch.Tensor:
    # Parameters come back as plain tensors: the reader only needs the values.
    if not isinstance(data, torch.Tensor):
        raise _UnsafeArgument(f"_rebuild_parameter expects a tensor, got {type(data).__name__}")
    return data.detach()


def _ordered_dict(*args) -> collections.OrderedDict:
    # REDUCE(OrderedDict, ()) then SETITEMS; an argument would be a list of pairs.
    return collections.OrderedDict(*args)


def _np_dtype(spec, align=False, copy=False) -> np.dtype:
    if not isinstance(spec, str):
        raise _UnsafeArgument(f"numpy.dtype expects a type code, got {type(spec).__name__}")
    dtype = np.dtype(spec)
    if dtype.kind not in "biufcSUV":  # no object dtype
        raise _UnsafeArgument(f"numpy dtype {spec!r} is not allowed")
    return dtype


def _np_scalar(dtype, data=None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(data, (bytes, bytearray)):
        raise _UnsafeArgument("numpy scalar: expected a numeric dtype and its bytes")
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]


class _NdarrayToken:
    """What the name ``numpy.ndarray`` resolves to: usable only as the first
    argument of ``_np_reconstruct``, never callable with file data."""


def _np_reconstruct(cls, shape, dtype_code) -> np.ndarray:
    if cls is not _NdarrayToken:
        raise _UnsafeArgument("numpy _reconstruct: only numpy.ndarray is allowed")
    # The array's contents follow as BUILD -> ndarray.__setstate__ (numpy's C code,
    # which takes raw bytes or, for object arrays, already-unpickled values).
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


def _codecs_encode(text, encoding="utf-8") -> bytes:
    # Protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise _UnsafeArgument("_codecs.encode: expected a str and a latin1/utf-8 encoding")
    return text.encode(encoding)


# (module, name) as written in the pickle -> the stand-in it resolves to.
BASE_ALLOWED: dict[tuple[str, str], Callable | type] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): _codecs_encode,
    ("dnnlib.util", "EasyDict"): PlainDict,
    ("dnnlib", "EasyDict"): PlainDict,
}
for _np_mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    BASE_ALLOWED[(_np_mod, "scalar")] = _np_scalar
    BASE_ALLOWED[(_np_mod, "_reconstruct")] = _np_reconstruct
BASE_ALLOWED[("numpy", "dtype")] = _np_dtype
BASE_ALLOWED[("numpy", "ndarray")] = _NdarrayToken


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come only from an allowlist.

    Any other global, any persistent id, and any stand-in called with
    arguments it does not accept raise ``CheckpointError(path, ...)``.
    """

    def __init__(self, file: io.BufferedIOBase, path: str | Path,
                 allowed: Mapping[tuple[str, str], Callable | type]):
        super().__init__(file)
        self._path = str(path)
        self._allowed = dict(allowed)

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 0-2 pickles carry Python 2 names ('__builtin__.set'); map them as
        # pickle.Unpickler.find_class does (fix_imports), then look them up.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        target = self._allowed.get((module, name))
        if target is None:
            raise CheckpointError(
                self._path,
                f"refusing to load: pickle references '{module}.{name}', which a checkpoint may not "
                "contain (only tensors, containers and numbers are read; no code from the file is run)",
            )
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(self._path, "refusing to load: pickle uses persistent ids, which a plain "
                                          "checkpoint pickle never contains")


def safe_load(path: str | Path, extra_allowed: Mapping[tuple[str, str], Callable | type] | None = None) -> Any:
    """Unpickle ``path`` with ``SafeUnpickler`` (``BASE_ALLOWED`` plus ``extra_allowed``).

    Raises ``CheckpointError`` naming ``path`` for a missing, empty, truncated
    or corrupt file and for anything outside the allowlist.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "file is empty")
    allowed = dict(BASE_ALLOWED)
    allowed.update(extra_allowed or {})
    with open(path, "rb") as f:
        try:
            return SafeUnpickler(f, path, allowed).load()
        except CheckpointError:
            raise
        except _UnsafeArgument as exc:
            raise CheckpointError(path, f"refusing to load: {exc}") from None
        except (EOFError, pickle.UnpicklingError) as exc:
            raise CheckpointError(path, f"not a complete pickle (truncated or corrupt?): {exc or type(exc).__name__}") from None
        except Exception as exc:  # malformed opcodes surface as many exception types
            raise CheckpointError(path, f"cannot read pickle: {type(exc).__name__}: {exc}") from None

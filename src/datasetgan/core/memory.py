"""Keeping freed host memory for reuse, so that large CPU tensors do not cost page faults.

glibc's ``malloc`` serves every request above its mmap threshold (at most
32 MiB, however it adapts) with a fresh ``mmap``, and hands it back to the
kernel on ``free``. The next tensor of that size then faults in every page
again, zero-filled by the kernel, which costs more than the arithmetic that
writes it; a 256x256 StyleGAN2, whose batch-2 activations are tens of MiB
each, renders markedly faster once such blocks are kept (docs/PERFORMANCE.md).

``keep_freed_memory`` raises the mmap threshold, so that blocks up to
``MMAP_THRESHOLD`` come from the heap and are reused, and raises the trim
threshold, so that up to ``TRIM_THRESHOLD`` of free memory at the top of the
heap stays with the process. It changes allocation only, never a result. It
is process-wide, so the ``datasetgan`` command calls it and the library does
not; elsewhere than glibc (macOS, musl, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt(3) parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 1 << 30   # blocks up to 1 GiB are served from the heap...
TRIM_THRESHOLD = 1 << 30   # ...and up to 1 GiB of free heap top is kept


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep and reuse large freed blocks. Returns
    whether it took effect (False where the C library is not glibc)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # glibc only; musl and others have no mallopt thresholds
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # A glibc that caps the threshold (at 32 MiB) refuses it; its adaptive one then stays.
    kept = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and kept

"""One progress bar style for every long loop."""

from __future__ import annotations

import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, *, desc: str, total: int | None = None,
             unit: str = "it", disable: bool | None = None, **kwargs) -> tqdm:
    """A tqdm bar on stderr; pass ``disable=True`` to silence it (tests)."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr,
                dynamic_ncols=True, disable=disable, leave=False, **kwargs)

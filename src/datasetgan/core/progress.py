"""One progress bar style for every long loop."""

from __future__ import annotations

import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, *, desc: str, total: int | None = None,
             unit: str = "it", disable: bool | None = None, **kwargs) -> tqdm:
    """A tqdm bar on stderr; pass ``disable=True`` to silence it (tests).

    Into a log file or pipe (stderr not a terminal) it redraws every 10 s instead of 10
    times a second, so that a logged run stays readable."""
    kwargs.setdefault("mininterval", 0.1 if _is_terminal(sys.stderr) else 10.0)
    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr,
                dynamic_ncols=True, disable=disable, leave=False, **kwargs)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):      # replaced or closed streams
        return False

"""Seed lists as users write them: ``0-31``, ``1,5,9``, ``0-3,10``."""

from __future__ import annotations

import re

from datasetgan.core.errors import UserError

_PART = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """``"0-3,10"`` -> ``[0, 1, 2, 3, 10]``; ranges are inclusive, seeds in [0, 2**32)."""
    seeds: list[int] = []
    for part in text.split(","):
        match = _PART.match(part.strip())
        if match is None:
            raise UserError(f"{flag} {text!r}: expected seeds like '0-31' or '1,5,9'")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if hi < lo:
            raise UserError(f"{flag} {text!r}: range {part.strip()!r} runs backwards")
        seeds.extend(range(lo, hi + 1))
    if max(seeds) >= 2**32:
        raise UserError(f"{flag} {text!r}: seeds must be below 2**32")
    return seeds

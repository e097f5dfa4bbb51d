"""Seed lists as users write them: ``0-31``, ``1,5,9``, ``0-3,10``."""

from __future__ import annotations

from datasetgan.core.errors import UserError


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                seeds.extend(range(lo_i, hi_i + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise UserError(f"{flag} {text!r}: expected seeds like '0-31' or '1,5,9'") from None
    if not seeds:
        raise UserError(f"{flag} {text!r}: no seeds given")
    if any(s < 0 or s >= 2**32 for s in seeds):
        raise UserError(f"{flag} {text!r}: seeds must lie in [0, 2**32)")
    return seeds

"""``SynthesisConfig``: what defines a synthesised data set (and how it is rendered)."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Literal

from datasetgan.core.devices import PRECISIONS, Precision
from datasetgan.core.errors import UserError
from datasetgan.core.options import setting


def shard_arg(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)``; the range is checked by ``SynthesisConfig``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected I/N, e.g. 0/4") from None
    return index, count


FORMATS: tuple[str, ...] = ("png", "webdataset")


@dataclass(frozen=True)
class SynthesisConfig:
    """Seeds ``seed_start .. seed_start + num_images - 1`` rendered, labelled and filtered."""

    # Not `--n`: under torchrun, whose own parser sees every flag, `--n` is an ambiguous
    # abbreviation of its `--nnodes` and `--nproc-per-node` (the old name stays an alias).
    num_images: int = setting(10_000, "number of candidate seeds (the paper's data sets: 10,000)", metavar="N",
                              aliases=("n",))
    seed_start: int = setting(0, "first seed (seeds mean what they mean in `sample`)")
    truncation: float = setting(0.7, "truncation psi (1.0 = none)", metavar="PSI")
    truncation_cutoff: int | None = setting(None, "truncate only the first N ws", metavar="N",
                                            default_text="all, as `sample`")
    drop_uncertain: float = setting(0.1, "fraction of the most uncertain samples to drop", metavar="FRACTION")
    # The data set never depends on the batch size: each sample is computed as if alone (render.py).
    batch_size: int = setting(8, "seeds per generator call (padded to at least 2); the data set is the same "
                                 "whatever the batch size", metavar="B")
    class_idx: int | None = setting(None, "class for conditional generators")
    # Pixels whose Jensen-Shannon divergence exceeds this are written as unlabelled (the spec's
    # ignore_index, else IGNORE), so that a segmenter trained on the set skips them.
    ignore_pixels_above: float | None = setting(
        None, "segmentation: write pixels whose ensemble Jensen-Shannon divergence exceeds JS (nats, at most "
              "ln(members)) as unlabelled, so that train-segmenter skips them. The demo uses 0.15",
        metavar="JS", default_text="every pixel keeps its vote")
    # (index, count): stage only the seeds ``seed_start + index + k * count``, and do not finalise.
    shard: tuple[int, int] | None = setting(
        None, "render only every N-th seed from the I-th (0 <= I < N) into --out, for processes started by hand "
              "(one machine or several sharing the folder; under torchrun the ranks share the seeds without it). "
              "The shard that ends with every seed staged finishes the data set; a run without --shard renders "
              "whatever is missing, then finishes it", metavar="I/N", parse=shard_arg)
    # The resolved dtype is part of the run key (see interpreter/predict.py for what it trades).
    precision: Precision = setting(
        "auto", "the interpreter's first-layer matmuls: auto = bfloat16 on a CPU with AMX or AVX512-BF16 "
                "(several times faster matmuls; labels equal float32's on all but near-tied pixels), else "
                "float32 (exact)")
    # The layout of the finished data set; the staged files are the same for both.
    format: Literal["png", "webdataset"] = setting(
        "png", "png: images/ and labels/ folders of PNG files; webdataset: tar shards "
               "shards/synth-NNNNNN.tar of <seed>.png, <seed>.label.png and <seed>.json (for streaming readers; "
               "train-segmenter --data reads both)")
    shard_size: int = setting(1000, "webdataset: samples per tar shard", metavar="K")

    def __post_init__(self) -> None:
        if self.num_images < 1:
            raise UserError(f"--num-images {self.num_images}: must be >= 1")
        if self.seed_start < 0 or self.seed_start + self.num_images > 2 ** 32:
            raise UserError(f"--seed-start {self.seed_start}: seeds must lie in [0, 2**32)")
        if not 0 <= self.drop_uncertain < 1:
            raise UserError(f"--drop-uncertain {self.drop_uncertain}: must lie in [0, 1)")
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size}: must be >= 1")
        if self.ignore_pixels_above is not None and not self.ignore_pixels_above > 0:
            raise UserError(f"--ignore-pixels-above {self.ignore_pixels_above}: must be > 0")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision {self.precision}: expected one of {', '.join(PRECISIONS)}")
        if self.truncation_cutoff is not None and self.truncation_cutoff < 0:
            raise UserError(f"--truncation-cutoff {self.truncation_cutoff}: must be >= 0")
        if self.format not in FORMATS:
            raise UserError(f"--format {self.format}: expected one of {', '.join(FORMATS)}")
        if self.shard_size < 1:
            raise UserError(f"--shard-size {self.shard_size}: must be >= 1")
        if self.shard is not None:
            index, count = self.shard
            if not 0 <= index < count:
                raise UserError(f"--shard {index}/{count}: expected I/N with 0 <= I < N, e.g. 0/4 to 3/4")

    @property
    def seeds(self) -> list[int]:
        return list(range(self.seed_start, self.seed_start + self.num_images))

    @property
    def shard_seeds(self) -> list[int]:
        """The seeds this run renders: all of them, or every ``count``-th from the shard's index."""
        if self.shard is None:
            return self.seeds
        index, count = self.shard
        return self.seeds[index::count]

    @property
    def keep_count(self) -> int:
        return kept_of(self.num_images, self.drop_uncertain)


def kept_of(n: int, drop: float) -> int:
    """Samples kept of ``n`` when the most uncertain ``drop`` are dropped: ``n - round(n * drop)``,
    rounding half up (not Python's half to even)."""
    return n - int(math.floor(n * drop + 0.5))


def seeds_to_keep(keep: int, drop: float) -> int:
    """The fewest candidate seeds of which ``kept_of`` leaves at least ``keep``."""
    n = max(keep, math.floor(keep / (1 - drop)) - 2)
    while kept_of(n, drop) < keep:
        n += 1
    return n

"""Class-frequency weighting of a cross-entropy loss (the interpreter's and the segmenter's)."""

from __future__ import annotations

import numpy as np


def frequency_weights_from_counts(counts: np.ndarray, power: float) -> np.ndarray:
    """Cross-entropy weights ``[C]`` from per-class pixel counts ``[C]``: ``freq_c ** -power``,
    scaled so that the weighted mean over all counted pixels is 1 (a loss keeps its unweighted
    scale). Absent classes get the rarest present class's weight. ``power`` 0 gives all ones."""
    counts = np.asarray(counts, dtype=np.float64)
    freq = counts / max(counts.sum(), 1.0)
    present = freq > 0
    if not present.any():
        return np.ones_like(freq)
    weights = np.zeros_like(freq)
    weights[present] = freq[present] ** -power
    weights[~present] = weights[present].max()
    return weights / (freq * weights).sum()

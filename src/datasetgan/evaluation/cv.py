"""k-fold cross-validation over a run's checkpoints, as in the DatasetGAN reference.

The test images are split into ``k`` folds. For each fold, that fold (1/k of
the images) picks the best checkpoint, and the other k-1 folds score it. The
result is the mean and standard deviation of the k scores, so the choice of
checkpoint never sees the images that score it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from datasetgan.core.errors import UserError


def kfold_splits(n: int, k: int, seed: int = 0) -> list[np.ndarray]:
    """A seeded permutation of ``range(n)`` cut into ``k`` folds of near-equal size."""
    if k < 2:
        raise UserError(f"--cv-folds {k}: needs at least 2 folds")
    if n < k:
        raise UserError(f"--cv-folds {k}: only {n} test images; need at least one per fold")
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(f) for f in np.array_split(order, k)]


@dataclass(frozen=True)
class FoldResult:
    fold: int
    chosen: int          # index into the candidate list
    select_score: float  # the chosen candidate's score on the selecting fold
    score: float         # its score on the other k-1 folds


def cross_validate(num_candidates: int, folds: Sequence[np.ndarray],
                   score: Callable[[int, np.ndarray], float]) -> list[FoldResult]:
    """``score(candidate, image_indices) -> float`` (higher is better); one result per fold.

    Ties in selection go to the later candidate (the longer-trained checkpoint).
    """
    n = sum(len(f) for f in folds)
    results = []
    for i, fold in enumerate(folds):
        rest = np.setdiff1d(np.arange(n), fold)
        sel = [score(c, fold) for c in range(num_candidates)]
        best = max(range(num_candidates), key=lambda c: (sel[c], c))
        results.append(FoldResult(fold=i, chosen=best, select_score=sel[best], score=score(best, rest)))
    return results


def summarize(results: Sequence[FoldResult]) -> tuple[float, float]:
    """Mean and (population) standard deviation of the fold scores."""
    scores = np.array([r.score for r in results])
    return float(scores.mean()), float(scores.std())


def most_chosen(results: Sequence[FoldResult]) -> int:
    """The candidate chosen by most folds (later candidate on ties)."""
    counts: dict[int, int] = {}
    for r in results:
        counts[r.chosen] = counts.get(r.chosen, 0) + 1
    return max(counts, key=lambda c: (counts[c], c))

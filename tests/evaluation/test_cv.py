"""k-fold cross-validation over checkpoints: 1/k selects, the rest scores."""

from __future__ import annotations

import numpy as np
import pytest

from datasetgan.core.errors import UserError
from datasetgan.evaluation.cv import cross_validate, kfold_splits, most_chosen, summarize


def test_kfold_splits_partition_and_seed():
    folds = kfold_splits(11, 5, seed=3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(11))
    assert sorted(len(f) for f in folds) == [2, 2, 2, 2, 3]
    assert all(np.array_equal(a, b) for a, b in zip(folds, kfold_splits(11, 5, seed=3)))
    with pytest.raises(UserError, match="at least 2 folds"):
        kfold_splits(10, 1)
    with pytest.raises(UserError, match="only 3 test images"):
        kfold_splits(3, 5)


def test_cross_validate_selects_on_fold_and_scores_on_rest():
    # Per-image scores of 3 checkpoints on 4 images; a checkpoint's score on a set = mean over its images.
    table = np.array([[0.9, 0.9, 0.1, 0.1],
                      [0.2, 0.2, 0.8, 0.8],
                      [0.5, 0.5, 0.5, 0.5]])
    folds = [np.array([0, 1]), np.array([2, 3])]
    seen = []

    def score(c, idx):
        seen.append((c, tuple(idx)))
        return float(table[c, idx].mean())

    res = cross_validate(3, folds, score)
    assert [r.chosen for r in res] == [0, 1]
    assert [r.score for r in res] == pytest.approx([0.1, 0.2])     # scored only on the other fold
    assert summarize(res) == pytest.approx((0.15, 0.05))
    assert (0, (2, 3)) in seen and (1, (0, 1)) in seen
    assert most_chosen(res) == 1                                   # tie -> later checkpoint


def test_ties_in_selection_go_to_the_later_checkpoint():
    res = cross_validate(3, [np.array([0]), np.array([1])], lambda c, idx: 1.0)
    assert all(r.chosen == 2 for r in res)

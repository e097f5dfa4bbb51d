"""``EvaluationConfig``: how ``evaluate`` scores a run's checkpoints."""

from __future__ import annotations

from dataclasses import dataclass

from datasetgan.core.errors import UserError
from datasetgan.core.options import setting


@dataclass(frozen=True)
class EvaluationConfig:
    """Without ``cv_folds`` the last checkpoint is scored on every image; with it, k-fold
    selection over the checkpoints (``evaluation.cv``)."""

    cv_folds: int | None = setting(None, "k-fold CV: 1/k picks the checkpoint, the other k-1/k score it",
                                   metavar="K", default_text="off: the last epoch, scored on every image")
    cv_seed: int = setting(0, "seed of the fold split", metavar="SEED")
    checkpoint_every: int = setting(1, "with --cv-folds: consider every N-th epoch checkpoint, counted back from "
                                       "the last", metavar="N")
    batch_size: int = setting(8, "test images per forward pass", metavar="B")

    def __post_init__(self) -> None:   # cv_folds 0 means off, as None does
        if self.cv_folds is not None and self.cv_folds != 0 and self.cv_folds < 2:
            raise UserError(f"--cv-folds {self.cv_folds}: needs at least 2 folds")
        if self.checkpoint_every < 1:
            raise UserError(f"--checkpoint-every {self.checkpoint_every}: must be at least 1")
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size}: must be at least 1")

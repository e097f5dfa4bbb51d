"""One labelled image, as the stages after synthesis hand it around."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Item:
    """One labelled image: a mask file (segmentation) or a ``[K, 3]`` keypoint array."""

    stem: str
    image: Path
    label: Path | None = None
    keypoints: np.ndarray | None = None

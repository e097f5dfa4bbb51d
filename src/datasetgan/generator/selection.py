"""Which samples are worth labelling: diverse ones, in the generator's own feature space.

A sample's *descriptor* is every synthesis feature map average-pooled to a
coarse ``POOL x POOL`` grid, each map scaled to unit norm (so a map with many
channels weighs no more than one with few), concatenated. Two samples are
close when the generator built them alike: the same pose, hair and layout,
whatever their colours. ``k_center_greedy`` then picks the samples that cover
that space best (Sener and Savarese, "Active Learning for Convolutional Neural
Networks: A Core-Set Approach", 2018): each next sample is the one farthest
from every sample picked so far.

``datasetgan sample --select K`` and the annotator's "next" use it.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from datasetgan.generator.networks import Generator
from datasetgan.generator.sampling import render_seeds

POOL = 4


def descriptors(feature_maps: Sequence[torch.Tensor], pool: int = POOL) -> torch.Tensor:
    """Feature maps ``[N, C_i, R_i, R_i]`` -> descriptors ``[N, D]`` float32 (each row of unit norm).

    Each map is pooled to ``min(R_i, pool)`` squared cells and scaled to norm
    ``1 / sqrt(#maps)`` per sample, so every map counts alike and a descriptor
    depends on its own sample only.
    """
    parts = []
    for fmap in feature_maps:
        fmap = fmap.detach().float()
        cells = F.adaptive_avg_pool2d(fmap, min(int(fmap.shape[-1]), pool)).flatten(1)
        parts.append(F.normalize(cells, dim=1))
    return torch.cat(parts, dim=1).cpu() / math.sqrt(len(parts))


def k_center_greedy(points: torch.Tensor, k: int, chosen: Sequence[int] = ()) -> list[int]:
    """Pick ``k`` rows of ``points [N, D]`` that cover them best, after the rows ``chosen``.

    Each pick is the row whose nearest chosen row is farthest; with nothing
    chosen, the first pick is the row nearest the mean (a typical sample).
    Ties go to the lower index. Returns the picked indices in pick order
    (fewer than ``k`` when the rows run out).
    """
    n = points.shape[0]
    points = points.double()
    nearest = torch.full((n,), float("inf"), dtype=torch.float64)
    taken = torch.zeros(n, dtype=torch.bool)
    for i in chosen:
        nearest = torch.minimum(nearest, (points - points[i]).norm(dim=1))
        taken[i] = True
    picks: list[int] = []
    while len(picks) < k and not bool(taken.all()):
        if bool(torch.isinf(nearest).all()):
            score = -(points - points.mean(dim=0)).norm(dim=1)
        else:
            score = nearest.clone()
        score[taken] = -float("inf")
        best = int(score.argmax())
        picks.append(best)
        taken[best] = True
        nearest = torch.minimum(nearest, (points - points[best]).norm(dim=1))
    return picks


@torch.no_grad()
def seed_descriptors(G: Generator, seeds: Sequence[int], truncation_psi: float, truncation_cutoff: int | None,
                     noise_mode: str, batch_size: int, c: torch.Tensor | None = None) -> torch.Tensor:
    """``[len(seeds), D]``: the descriptor of each seed's sample (rendered in batches)."""
    out = []
    for _, _, _, _, maps in render_seeds(G, seeds, truncation_psi, truncation_cutoff, noise_mode, batch_size,
                                         c=c, return_features=True):
        out.append(descriptors(maps))
    return torch.cat(out) if out else torch.zeros(0, 0)


def select_seeds(G: Generator, seeds: Sequence[int], k: int, truncation_psi: float,
                 truncation_cutoff: int | None, noise_mode: str, batch_size: int,
                 c: torch.Tensor | None = None) -> list[int]:
    """The ``k`` most diverse of ``seeds`` (``k_center_greedy`` on their descriptors), in pick order."""
    points = seed_descriptors(G, seeds, truncation_psi, truncation_cutoff, noise_mode, batch_size, c)
    return [int(seeds[i]) for i in k_center_greedy(points, k)]

"""The style interpreter: an ensemble of pixel MLPs held as batched weights.

Each member is the reference's ``pixel_classifier``:
``Linear(D, h1) - ReLU - BatchNorm - Linear(h1, h2) - ReLU - BatchNorm - Linear(h2, C)``
with ``(h1, h2) = (128, 32)`` below 32 outputs and ``(256, 128)`` from 32 on,
Linear weights ~ N(0, 0.02), biases 0, BatchNorm weight 1 / bias 0. All
members live in ``[M, ...]`` tensors so that one ``bmm`` runs them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

BN_EPS = 1e-5
BN_MOMENTUM = 0.1


def reference_hidden(num_outputs: int) -> tuple[int, int]:
    """The reference's hidden widths for a given number of classes."""
    return (128, 32) if num_outputs < 32 else (256, 128)


@dataclass(frozen=True)
class EnsembleConfig:
    in_features: int
    num_outputs: int
    members: int = 10
    hidden: tuple[int, int] = (128, 32)


class EnsembleMLP(nn.Module):
    """``M`` independent MLPs; ``forward(x [M, B, D]) -> [M, B, C]``."""

    def __init__(self, config: EnsembleConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        m, d, c = config.members, config.in_features, config.num_outputs
        h1, h2 = config.hidden
        dims = [(d, h1), (h1, h2), (h2, c)]
        for i, (fan_in, fan_out) in enumerate(dims, start=1):
            w = torch.empty(m, fan_in, fan_out)
            w.normal_(0.0, 0.02, generator=generator)
            self.register_parameter(f"w{i}", nn.Parameter(w))
            self.register_parameter(f"b{i}", nn.Parameter(torch.zeros(m, fan_out)))
        for i, width in ((1, h1), (2, h2)):
            self.register_parameter(f"bn{i}_weight", nn.Parameter(torch.ones(m, width)))
            self.register_parameter(f"bn{i}_bias", nn.Parameter(torch.zeros(m, width)))
            self.register_buffer(f"bn{i}_mean", torch.zeros(m, width))
            self.register_buffer(f"bn{i}_var", torch.ones(m, width))

    def first_linear(self, x: torch.Tensor) -> torch.Tensor:
        """``[M, B, D] -> [M, B, h1]`` (the layer the projected path replaces)."""
        return torch.baddbmm(self.b1.unsqueeze(1), x, self.w1)

    def _bn(self, h: torch.Tensor, i: int, active: torch.Tensor | None) -> torch.Tensor:
        weight, bias = getattr(self, f"bn{i}_weight"), getattr(self, f"bn{i}_bias")
        running_mean, running_var = getattr(self, f"bn{i}_mean"), getattr(self, f"bn{i}_var")
        if self.training:
            mean = h.mean(dim=1)
            var = h.var(dim=1, unbiased=False)
            with torch.no_grad():
                n = h.shape[1]
                unbiased = var * (n / max(n - 1, 1))
                new_mean = torch.lerp(running_mean, mean, BN_MOMENTUM)
                new_var = torch.lerp(running_var, unbiased, BN_MOMENTUM)
                if active is not None:  # stopped members keep their statistics
                    keep = active.view(-1, 1)
                    new_mean = torch.where(keep, new_mean, running_mean)
                    new_var = torch.where(keep, new_var, running_var)
                running_mean.copy_(new_mean)
                running_var.copy_(new_var)
        else:
            mean, var = running_mean, running_var
        scale = weight / torch.sqrt(var + BN_EPS)
        return (h - mean.unsqueeze(1)) * scale.unsqueeze(1) + bias.unsqueeze(1)

    def rest(self, h1: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """Everything after the first Linear: ``[M, B, h1] -> [M, B, C]``.
        ``active [M]`` bool: only those members update BatchNorm statistics."""
        h = self._bn(torch.relu(h1), 1, active)
        h = torch.baddbmm(self.b2.unsqueeze(1), h, self.w2)
        h = self._bn(torch.relu(h), 2, active)
        return torch.baddbmm(self.b3.unsqueeze(1), h, self.w3)

    def forward(self, x: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        return self.rest(self.first_linear(x), active)

    @torch.no_grad()
    def folded_tail(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eval-mode layers 2 and 3 with each BatchNorm folded into the Linear
        after it (BN follows ReLU, so it is an affine map into that Linear).

        Returns ``(w2 [M, h1, h2], b2 [M, h2], w3 [M, h2, C], b3 [M, C])`` such that
        ``rest(h) == relu(relu(h) @ w2 + b2) @ w3 + b3`` in eval mode.
        """
        def fold(i: int, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            scale = getattr(self, f"bn{i}_weight") / torch.sqrt(getattr(self, f"bn{i}_var") + BN_EPS)
            shift = getattr(self, f"bn{i}_bias") - getattr(self, f"bn{i}_mean") * scale
            return w * scale.unsqueeze(2), b + torch.bmm(shift.unsqueeze(1), w).squeeze(1)
        w2, b2 = fold(1, self.w2, self.b2)
        w3, b3 = fold(2, self.w3, self.b3)
        return w2, b2, w3, b3

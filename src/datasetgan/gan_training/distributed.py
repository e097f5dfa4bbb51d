"""Multi-process training under ``torchrun``: gradient all-reduce and weight broadcast.

Gradients are averaged by hand (one flattened all-reduce per phase, as NVIDIA's
trainer does) instead of wrapping the networks in ``DistributedDataParallel``:
the phases call the networks several times per step and differentiate twice
(R1, path length), which DDP's hooks do not handle.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

# The generic helpers (process group, barriers) live in core, shared with `synthesize`;
# the loop reaches them through this module.
from datasetgan.core.distributed import (DistInfo, all_reduce_sum, barrier, broadcast_object,  # noqa: F401
                                         init_distributed, shutdown)


def all_reduce_grads(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Average the gradients of ``params`` over processes (params without a grad count as zero)."""
    if not info.enabled or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p)
        offset += n


def broadcast_module(module: torch.nn.Module, info: DistInfo) -> None:
    """Make every process start from rank 0's parameters and buffers."""
    if not info.enabled:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)

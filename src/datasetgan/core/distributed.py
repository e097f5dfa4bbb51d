"""Processes started by ``torchrun``: rank, world size, process group, barriers.

Shared by the commands that run under ``torchrun`` (``train-gan``, ``synthesize``).
A process started without it (``WORLD_SIZE`` unset or 1) gets a ``DistInfo()``
on which every helper here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from datasetgan.core.devices import resolve_device
from datasetgan.core.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_info() -> DistInfo:
    """Rank, world size and local rank from ``torchrun``'s environment, without joining a group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    return DistInfo(rank=rank, world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", rank)))


def init_distributed(device_name: str | None, timeout: timedelta | None = None) -> DistInfo:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``); else a no-op.

    Backend: NCCL for CUDA, gloo for the CPU (``device_name`` ``"cpu"``, or no GPU).
    ``timeout``: how long a collective (a barrier) may wait; default PyTorch's.
    """
    info = launched_info()
    if not info.enabled:
        return info
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo",
                                **({"timeout": timeout} if timeout is not None else {}))
    return info


def rank_device(name: str | None, info: DistInfo, flag: str = "--device") -> torch.device:
    """The device of this process: ``name`` as ``resolve_device`` reads it; under ``torchrun``
    a CUDA device is ``cuda:LOCAL_RANK`` (one GPU per process)."""
    device = resolve_device(name, flag)
    if not info.enabled or device.type != "cuda":
        return device
    if device.index is not None:
        raise UserError(f"{flag} {name}: under torchrun each process takes the GPU of its LOCAL_RANK; "
                        f"give {flag} cuda (or leave it out)")
    if info.local_rank >= torch.cuda.device_count():
        raise UserError(f"torchrun --nproc-per-node: process {info.local_rank} of this node has no GPU of its own "
                        f"({torch.cuda.device_count()} visible); start at most that many processes per node")
    return torch.device("cuda", info.local_rank)


def gloo_group(info: DistInfo, timeout: timedelta | None = None):
    """A gloo process group of every rank for barriers (None: the default group, already gloo).

    A gloo barrier fails as soon as a peer's connection closes, where an NCCL one waits out its
    timeout. Every rank must call this, at the same point."""
    if not info.enabled or dist.get_backend() == "gloo":
        return None
    return dist.new_group(backend="gloo", **({"timeout": timeout} if timeout is not None else {}))


def all_reduce_sum(t: torch.Tensor, info: DistInfo, op=None) -> torch.Tensor:
    """In-place all-reduce (sum by default); CPU tensors take a trip to the GPU under NCCL."""
    if not info.enabled:
        return t
    op = dist.ReduceOp.SUM if op is None else op
    if t.device.type == "cpu" and dist.get_backend() == "nccl":
        dev = t.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(dev, op=op)
        t.copy_(dev.cpu())
    else:
        dist.all_reduce(t, op=op)
    return t


def barrier(info: DistInfo, group=None) -> None:
    if info.enabled:
        dist.barrier(group=group)


def broadcast_object(obj, info: DistInfo):
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()

"""Multi-process training under ``torchrun``: process group, gradient all-reduce, barriers.

Gradients are averaged by hand (one flattened all-reduce per phase, as NVIDIA's
trainer does) instead of wrapping the networks in ``DistributedDataParallel``:
the phases call the networks several times per step and differentiate twice
(R1, path length), which DDP's hooks do not handle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


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


def init_distributed(device_name: str) -> DistInfo:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``); else a no-op.

    Backend: NCCL for CUDA, gloo for the CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank)


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


def broadcast_module(module: torch.nn.Module, info: DistInfo) -> None:
    """Make every process start from rank 0's parameters and buffers."""
    if not info.enabled:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(obj, info: DistInfo):
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()

"""Rendering seeds in batches so that each sample is the same whatever batch it is in.

Float kernels pick their algorithm (and so their rounding) from the shapes
they are given. Measured on a CPU (PyTorch 2.x, MKL + oneDNN), a batched
``G.mapping``/``G.synthesis`` differs from one-seed-at-a-time rendering by
~1e-6, which flips uint8 pixels and near-tie labels, and so makes a data set
depend on ``--batch-size``. Two places differ:

- the matrix products of the mapping network and of every layer's style
  affine: MKL's row results depend on the number of rows (1, 2-3 and >= 4
  rows gave three different roundings);
- the modulated convolutions: run fused, as one grouped convolution with a
  group per sample, each group is computed alone, identically for any
  number of groups >= 2; a single sample (groups = 1) takes another algorithm.

So ``render_batch`` computes every fully connected layer (mapping and style
affines) as a per-row product, ``(x[:, None, :] * W).sum(-1)``: each output
row is reduced on its own, in the same order whatever the number of rows
(tiny work next to the convolutions). It runs the convolutions fused, and
pads every batch to a fixed size of at least 2 by repeating its last seed. Everything else in the generator is elementwise or
per channel. Each sample then depends only on its seed, which
``tests/synthesis`` checks bit for bit across batch sizes (and which held for
the demo generator and the tiny test generators at 1 and 2 threads).

What is not promised: the same bits under a different number of CPU threads
(measured: the taps and labels stayed equal, but the toRGB image path
rounded differently at 1 vs 2 threads), on other hardware or library
versions, or on a GPU, where cuDNN and cuBLAS choose kernels per shape, so
different batch sizes may round differently there (a resumed run with the
same ``--batch-size`` still repeats exactly: every call has the same padded
shape). The images of ``sample`` (batched plainly) equal these up to such
rounding, i.e. almost always byte for byte.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch

from datasetgan.generator import Generator
from datasetgan.generator.layers import FullyConnectedLayer
from datasetgan.generator.ops import bias_act
from datasetgan.generator.sampling import z_from_seeds


def padded_batch_size(batch_size: int, n: int) -> int:
    """The fixed number of samples per generator call: ``batch_size`` (at
    most ``n``), and at least 2 so that every convolution runs grouped."""
    return max(2, min(batch_size, n))


def rowwise_linear(module: FullyConnectedLayer, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with each row of ``x [N, in]`` computed alone: an
    elementwise product and a reduction over the last dimension instead of a
    matrix product (whose row results depend on the number of rows)."""
    w = module.weight.to(x.dtype) * module.weight_gain
    y = (x.unsqueeze(1) * w.unsqueeze(0)).sum(dim=2)
    b = module.bias
    if b is not None:
        b = b.to(x.dtype) * module.bias_gain if module.bias_gain != 1 else b.to(x.dtype)
    return bias_act(y, b, act=module.activation, overwrite_input=True)


@contextmanager
def rowwise_linears(G: Generator) -> Iterator[None]:
    """Within the block, every fully connected layer of ``G`` (mapping and
    style affines) returns ``rowwise_linear``'s rows."""
    def hook(module: FullyConnectedLayer, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return rowwise_linear(module, inputs[0])

    handles = [m.register_forward_hook(hook) for m in G.modules() if isinstance(m, FullyConnectedLayer)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def render_batch(G: Generator, seeds: Sequence[int], size: int, truncation_psi: float,
                 truncation_cutoff: int | None = None, c: torch.Tensor | None = None,
                 noise_mode: str = "const") -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Render ``seeds`` (at most ``size`` of them) padded to ``size`` samples.

    Returns ``img [len(seeds), C, R, R]`` and the feature maps
    ``[len(seeds), C_i, R_i, R_i]`` (``G.synthesis(..., return_features=True)``'s),
    each sample bit-identical whatever the other seeds of the call.
    ``c``: one conditioning label ``[c_dim]`` for every sample.
    """
    if not 1 <= len(seeds) <= size or size < 2:
        raise ValueError(f"render_batch: {len(seeds)} seeds for a padded size of {size}")
    device = next(G.parameters()).device
    padded = list(seeds) + [seeds[-1]] * (size - len(seeds))
    z = z_from_seeds(padded, G.z_dim).to(device)
    cb = None if c is None else c.to(device).reshape(1, -1).repeat(size, 1)
    with rowwise_linears(G):
        ws = G.mapping(z, cb, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                       update_w_avg=False)
        img, features = G.synthesis(ws, noise_mode=noise_mode, return_features=True, fused_modconv=True)
    n = len(seeds)
    return img[:n], [f[:n] for f in features]

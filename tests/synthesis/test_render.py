"""Batched rendering is per sample: bit-identical whatever the batch."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import make_tiny_generator

from datasetgan.generator.layers import FullyConnectedLayer
from datasetgan.synthesis.render import padded_batch_size, render_batch, rowwise_linear


@pytest.mark.parametrize("architecture,c_dim", [("skip", 0), ("orig", 0), ("resnet", 0), ("skip", 3)])
def test_each_sample_is_independent_of_its_batch(architecture, c_dim):
    torch.set_num_threads(1)
    if c_dim:  # conditional: the mapping's label embedding is a fully connected layer too
        from datasetgan.generator import Generator, GeneratorConfig
        from tests.conftest import TINY_GENERATOR_KWARGS
        torch.manual_seed(0)
        G = Generator(GeneratorConfig(**{**TINY_GENERATOR_KWARGS, "c_dim": c_dim})).eval()
    else:
        G = make_tiny_generator(architecture=architecture)
    c = torch.eye(3)[1] if c_dim else None
    seeds = [3, 4, 5, 6, 7]
    alone = [render_batch(G, [s], 2, 0.7, c=c) for s in seeds]
    for size in (3, 5):
        for start in range(0, len(seeds), size):
            chunk = seeds[start:start + size]
            img, maps = render_batch(G, chunk, size, 0.7, c=c)
            assert img.shape[0] == len(chunk) and all(m.shape[0] == len(chunk) for m in maps)
            for j, seed in enumerate(chunk):
                ref_img, ref_maps = alone[seeds.index(seed)]
                assert torch.equal(img[j], ref_img[0])
                assert all(torch.equal(m[j], r[0]) for m, r in zip(maps, ref_maps))


def test_padded_batch_size():
    assert padded_batch_size(1, 10) == 2 and padded_batch_size(8, 10) == 8 and padded_batch_size(8, 5) == 5
    assert padded_batch_size(8, 1) == 2
    with pytest.raises(ValueError):
        render_batch(make_tiny_generator(), [0, 1, 2], 2, 0.7)


def test_rowwise_linear_is_the_layer():
    torch.manual_seed(0)
    for activation, lr in (("linear", 1.0), ("lrelu", 0.01)):
        layer = FullyConnectedLayer(16, 8, activation=activation, lr_multiplier=lr, bias_init=0.5)
        x = torch.randn(5, 16)
        torch.testing.assert_close(rowwise_linear(layer, x), layer(x))

"""``G.synthesis(..., noise=...)``: per-sample noise maps in place of the stored ones."""

from __future__ import annotations

import pytest
import torch


def test_per_sample_noise_replaces_the_stored_noise(tiny_generator):
    G = tiny_generator
    ws = G.mapping(torch.randn([2, G.z_dim], generator=torch.Generator().manual_seed(0)))
    buffers = dict(G.synthesis.named_buffers())
    layers = G.synthesis.noise_layers
    assert [name for name, _ in layers] == [m.name for m in G.feature_spec.maps]
    own = {name: buffers[f"{name}.noise_const"].expand(2, -1, -1) for name, _ in layers}
    with torch.no_grad():
        assert torch.equal(G.synthesis(ws, noise=own), G.synthesis(ws, noise_mode="const"))
        other = {name: torch.randn([2, r, r]) for name, r in layers}
        mixed = {k: torch.stack([own[k][0], other[k][1]]) for k in own}
        out = G.synthesis(ws, noise=mixed)
        assert torch.allclose(out[0], G.synthesis(ws[:1], noise_mode="const")[0], atol=1e-5)
        assert not torch.allclose(out[1], G.synthesis(ws[1:], noise_mode="const")[0])
    with pytest.raises(ValueError, match="unknown layer"):
        G.synthesis(ws, noise={"b99.conv0": torch.zeros([2, 4, 4])})
    with pytest.raises(ValueError, match="noise_mode 'const'"):
        G.synthesis(ws, noise_mode="random", noise=own)
    with pytest.raises(ValueError, match="expected noise_input"):
        G.synthesis(ws, noise={"b8.conv0": torch.zeros([2, 4, 4])})

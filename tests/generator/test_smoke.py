"""Quick end-to-end checks of the generator contract (details in the other test files)."""

from __future__ import annotations

import torch

from datasetgan.generator import FeatureSpec, Generator, generator_fingerprint, load_generator, z_from_seeds


def test_contract_shapes(tiny_generator):
    G = tiny_generator
    z = z_from_seeds([0, 1], G.z_dim)
    ws = G.mapping(z, truncation_psi=0.7)
    assert ws.shape == (2, G.num_ws, G.w_dim)
    img, feats = G.synthesis(ws, noise_mode="const", return_features=True)
    assert img.shape == (2, 3, 32, 32)
    spec = G.feature_spec
    assert isinstance(spec, FeatureSpec)
    assert [tuple(f.shape[1:]) for f in feats] == [(m.channels, m.resolution, m.resolution) for m in spec]
    assert spec.total_channels == 192


def test_save_load_roundtrip(tiny_generator, tmp_path):
    tiny_generator.save_pretrained(tmp_path / "g")
    H = load_generator(tmp_path / "g")
    assert isinstance(H, Generator)
    assert generator_fingerprint(H) == generator_fingerprint(tiny_generator)
    z = z_from_seeds([3], tiny_generator.z_dim)
    assert torch.equal(H(z), tiny_generator(z))

"""FeatureSpec is derived from the network and agrees with what synthesis returns."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.conftest import make_tiny_generator
from datasetgan.generator import FeatureMap, FeatureSpec, Generator, GeneratorConfig, z_from_seeds


def test_spec_follows_nvidia_channel_formula():
    cfg = GeneratorConfig(z_dim=8, w_dim=8, img_resolution=64, mapping_layers=1, channel_base=1024,
                          channel_max=48)
    spec = Generator(cfg).feature_spec
    assert spec.names == ("b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1",
                          "b32.conv0", "b32.conv1", "b64.conv0", "b64.conv1")
    assert spec.resolutions == (4, 8, 8, 16, 16, 32, 32, 64, 64)
    assert [m.channels for m in spec] == [min(1024 // m.resolution, 48) for m in spec]
    assert spec.total_channels == sum(m.channels for m in spec) == 48 * 5 + 32 * 2 + 16 * 2
    assert spec.offsets()[:3] == (0, 48, 96)
    assert spec.max_resolution == 64 and len(spec) == 9


def test_spec_matches_returned_maps_and_image_is_unchanged(tiny_generator):
    G = tiny_generator
    ws = G.mapping(z_from_seeds([0, 1, 2], G.z_dim), truncation_psi=0.7)
    img, feats = G.synthesis(ws, return_features=True)
    assert torch.equal(img, G.synthesis(ws))
    assert len(feats) == len(G.feature_spec)
    for f, m in zip(feats, G.feature_spec):
        assert f.shape == (3, m.channels, m.resolution, m.resolution)
        assert f.dtype == torch.float32


def test_features_are_the_layer_outputs_after_activation(tiny_generator):
    G = tiny_generator
    ws = G.mapping(z_from_seeds([4], G.z_dim))
    _, feats = G.synthesis(ws, return_features=True)
    b8 = G.synthesis.b8
    again = b8.conv0(feats[0], ws[:, 1], noise_mode="const")
    assert torch.allclose(again, feats[1], atol=1e-6)
    assert torch.allclose(b8.conv1(feats[1], ws[:, 2], noise_mode="const"), feats[2], atol=1e-6)
    # lrelu with gain sqrt(2) leaves negative values at 0.2 * sqrt(2) of the pre-activation scale.
    assert (feats[1] < 0).any() and (feats[1] > 0).any()


def test_spec_is_frozen_and_serialisable():
    spec = make_tiny_generator().feature_spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.maps = ()  # type: ignore[misc]
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    assert spec[0] == FeatureMap("b4.conv1", 4, 32)

"""Sampled and projected features equal the straightforward upsample+concat."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch

from datasetgan.core.errors import UserError
from datasetgan.features import FeatureBank, FeatureConfig, select_features, upsample_concat
from datasetgan.generator.features import FeatureSpec
from tests.features.reference import gather_pixel_features, project_first_layer

FM = namedtuple("FM", "name resolution channels")


def _maps(n: int = 2, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(5, 4), (3, 8), (4, 8), (2, 16), (3, 32)]
    return [torch.randn(n, c, r, r, generator=g) for c, r in shapes]


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("out", [32, 24])
def test_gather_matches_full_upsample(mode, out):
    maps = _maps()
    full = upsample_concat(maps, out, mode)  # [N, D, H, W]
    g = torch.Generator().manual_seed(1)
    b = torch.randint(0, 2, (200,), generator=g)
    ys = torch.randint(0, out, (200,), generator=g)
    xs = torch.randint(0, out, (200,), generator=g)
    got = gather_pixel_features(maps, ys, xs, out, mode, batch_index=b)
    want = full[b, :, ys, xs]
    assert got.shape == (200, full.shape[1])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_bank_matches_gather(mode):
    maps = _maps(n=3)
    bank = FeatureBank(3, [m.shape[-1] for m in maps], [m.shape[1] for m in maps], 32, mode,
                       dtype=torch.float32)
    for i in range(3):
        bank.store(i, [m[i:i + 1] for m in maps])
    g = torch.Generator().manual_seed(2)
    b, ys, xs = (torch.randint(0, k, (100,), generator=g) for k in (3, 32, 32))
    torch.testing.assert_close(bank.gather(b, ys, xs),
                               gather_pixel_features(maps, ys, xs, 32, mode, batch_index=b),
                               atol=1e-5, rtol=1e-5)
    assert bank.width == sum(m.shape[1] for m in maps)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_projection_commutes_with_upsampling(mode):
    maps = _maps()
    d = sum(m.shape[1] for m in maps)
    weight = torch.randn(d, 6, generator=torch.Generator().manual_seed(3))
    bias = torch.randn(6)
    full = upsample_concat(maps, 32, mode)
    want = torch.einsum("ndhw,do->nohw", full, weight) + bias.view(1, -1, 1, 1)
    got = project_first_layer(maps, weight, 32, mode, bias=bias)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_select_features_by_name_and_resolution():
    spec = [FM("b4.conv1", 4, 8), FM("b8.conv0", 8, 8), FM("b8.conv1", 8, 8), FM("b16.conv0", 16, 4)]
    sel = select_features(spec, FeatureConfig())
    assert sel.width == 28 and sel.indices == (0, 1, 2, 3)
    sel = select_features(spec, FeatureConfig(layers=("8", "b16.conv0")))
    assert sel.indices == (1, 2, 3) and sel.offsets == (0, 8, 16)
    with pytest.raises(UserError, match="b32.conv0"):
        select_features(spec, FeatureConfig(layers=("b32.conv0",)))


def test_select_the_image_tap():
    spec = FeatureSpec((FM("b4.conv1", 4, 8), FM("b8.conv0", 8, 8)), image=FM("img", 8, 3))
    sel = select_features(spec, FeatureConfig(layers=("all", "img")))
    assert sel.names == ("b4.conv1", "b8.conv0", "img") and sel.width == 19 and sel.offsets == (0, 8, 16)
    maps, img = [torch.zeros(1, 8, 4, 4), torch.zeros(1, 8, 8, 8)], torch.ones(1, 3, 8, 8)
    assert sel.pick(maps, img)[-1] is img
    with pytest.raises(ValueError, match="generated image"):
        sel.pick(maps)
    # The default stays the reference's: every convolution, no image.
    assert select_features(spec, FeatureConfig()).names == ("b4.conv1", "b8.conv0")
    assert select_features(spec, FeatureConfig(layers=("img",))).indices == ()
    with pytest.raises(UserError, match="does not offer its image"):
        select_features(list(spec), FeatureConfig(layers=("all", "img")))
    with pytest.raises(UserError, match="'all' or 'img'"):
        select_features(spec, FeatureConfig(layers=("rgb",)))

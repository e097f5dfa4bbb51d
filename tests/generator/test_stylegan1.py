"""StyleGAN1 (the DatasetGAN release's generator): equal to the release's architecture, loaded safely.

The release's network is re-implemented independently in ``stylegan1_reference``
(its module names, so its ``state_dict`` is a release ``*.for_g_all.pt``) and
given random weights; ``load_generator`` reads that file.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from datasetgan.core.errors import CheckpointError
from datasetgan.core.images import to_uint8
from datasetgan.generator import Generator, StyleGAN1Config, StyleGAN1Generator, generator_fingerprint, load_generator
from datasetgan.generator.stylegan1 import const_noise
from datasetgan.generator.stylegan1_release import release_to_stylegan1
from tests.generator.stylegan1_reference import randomize, release_g_all, release_uint8, set_noise

SMALL = dict(fmap_base=512, fmap_max=64)   # channels 64 up to 16 px, then 32, 16, 8 at 128 px


def release_file(tmp_path, resolution=128, seed=0, **kwargs):
    ref = randomize(release_g_all(resolution, **{**SMALL, **kwargs}), seed=seed)
    path = tmp_path / f"g{resolution}.for_g_all.pt"
    torch.save(ref.state_dict(), path)
    return ref, path


def zs(n=2, seed=1):
    return torch.randn([n, 512], generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("resolution,const_input", [(128, True), (64, False)])
def test_images_and_taps_equal_the_release(tmp_path, resolution, const_input):
    ref, path = release_file(tmp_path, resolution, const_input=const_input)
    set_noise(ref, 0.0)
    G = load_generator(path)
    assert isinstance(G, StyleGAN1Generator)
    assert G.img_resolution == resolution and G.config.const_input is const_input
    z = zs()
    with torch.no_grad():
        ref_ws = ref.g_mapping(z)
        ref_img, ref_taps = ref.g_synthesis(ref_ws)
        ws = G.mapping(z)
        img, taps = G.synthesis(ws, noise_mode="none", return_features=True)
    assert G.num_ws == 2 * (int(np.log2(resolution)) - 1)
    torch.testing.assert_close(ws, ref_ws[:, :G.num_ws], rtol=1e-5, atol=1e-5)
    assert 0.2 < ((ref_img > -1) & (ref_img < 1)).float().mean()          # the uint8 comparison means something
    diff = np.abs(to_uint8(img).astype(int) - release_uint8(ref_img).astype(int))
    assert diff.max() <= 2
    assert [t.shape[1] for t in ref_taps] == [m.channels for m in G.feature_spec]
    assert [t.shape[-1] for t in ref_taps] == [m.resolution for m in G.feature_spec]
    for mine, theirs, spec in zip(taps, ref_taps, G.feature_spec):
        scale = theirs.abs().max().item()
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5 * max(scale, 1.0), msg=spec.name)


def test_the_fused_upscale_from_128_px_matters(tmp_path):
    ref, path = release_file(tmp_path, 128)
    set_noise(ref, 0.0)
    G = load_generator(path)
    assert G.synthesis.b128.conv0.fused and not G.synthesis.b64.conv0.fused
    with torch.no_grad():
        ref_img, _ = ref.g_synthesis(ref.g_mapping(zs()))
        G.synthesis.b128.conv0.fused = False     # the other upsampling: no longer the release's image
        img = G.synthesis(G.mapping(zs()), noise_mode="none")
    assert (img - ref_img).abs().max() > 1e-2


def test_const_noise_is_added_where_the_release_adds_noise(tmp_path):
    ref, path = release_file(tmp_path, 64)
    G = load_generator(path)
    noise = const_noise(G.config)
    layers = [m for m in ref.modules() if type(m).__name__ == "NoiseLayer"]
    assert [name for name, _ in G.synthesis.noise_layers] == list(noise)
    for layer, maps in zip(layers, noise.values(), strict=True):
        layer.noise = maps[None, None]
    with torch.no_grad():
        ref_img, ref_taps = ref.g_synthesis(ref.g_mapping(zs()))
        img, taps = G.synthesis(G.mapping(zs()), noise_mode="const", return_features=True)
        plain = G.synthesis(G.mapping(zs()), noise_mode="none")
    torch.testing.assert_close(img, ref_img, rtol=1e-4, atol=1e-4)
    assert (plain - img).abs().max() > 1e-3


def test_random_noise_is_fresh_unless_seeded(tmp_path):
    _, path = release_file(tmp_path, 32)
    G = load_generator(path)
    ws = G.mapping(zs())
    a, b = (G.synthesis(ws, noise_mode="random") for _ in range(2))
    assert (a - b).abs().max() > 1e-4
    c, d = (G.synthesis(ws, noise_mode="random", noise_generator=torch.Generator().manual_seed(3)) for _ in range(2))
    torch.testing.assert_close(c, d, rtol=0, atol=0)


def test_truncation_is_the_releases(tmp_path):
    avg = torch.randn([512], generator=torch.Generator().manual_seed(5))
    ref = randomize(release_g_all(32, **SMALL, avg_latent=avg, max_layer=3))
    config, tensors = release_to_stylegan1(ref.state_dict(), "g.pt", avg_latent=avg[None, None].expand(1, 18, 512))
    from datasetgan.generator.stylegan1 import build_stylegan1
    G = build_stylegan1(config, tensors, source="g.pt")
    with torch.no_grad():
        expected = ref.truncation(ref.g_mapping(zs()))[:, :G.num_ws]
        got = G.mapping(zs(), truncation_psi=0.7, truncation_cutoff=3)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_w_avg_without_an_average_latent_is_estimated_and_stable(tmp_path):
    _, path = release_file(tmp_path, 16)
    a, b = load_generator(path), load_generator(path)
    assert a.mapping.w_avg.abs().sum() > 0
    assert generator_fingerprint(a) == generator_fingerprint(b)


@pytest.mark.parametrize("resolution,width", [(1024, 5088), (512, 5056), (256, 4992)])
def test_feature_widths_are_the_releases(resolution, width):
    # The release's experiment files: face_34 "dim" [512, 512, 5088], car_20 [384, 512, 5056].
    config = StyleGAN1Config(img_resolution=resolution)
    spec = torch.device("meta")
    with spec:
        G = StyleGAN1Generator(config)
    assert G.feature_spec.total_channels == width
    assert len(G.feature_spec) == 2 * (int(np.log2(resolution)) - 1)
    assert G.feature_spec.names[:2] == ("b4.adain1", "b4.conv1")


def test_own_format_round_trip_names_the_model(tmp_path):
    _, path = release_file(tmp_path, 32)
    G = load_generator(path)
    G.save_pretrained(tmp_path / "own")
    data = json.loads((tmp_path / "own" / "config.json").read_text())
    assert data["model"] == "stylegan1"
    H = load_generator(tmp_path / "own")
    assert isinstance(H, StyleGAN1Generator) and generator_fingerprint(H) == generator_fingerprint(G)
    ws = G.mapping(zs())
    torch.testing.assert_close(H.synthesis(ws), G.synthesis(ws), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="StyleGAN1Config generator, not a StyleGAN2 one"):
        Generator.from_pretrained(tmp_path / "own")
    data["model"] = "stylegan9"
    (tmp_path / "own" / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="key 'model': 'stylegan9'"):
        load_generator(tmp_path / "own")


def test_stylegan2_folders_are_unchanged(tmp_path, tiny_generator):
    tiny_generator.save_pretrained(tmp_path / "g2")
    assert "model" not in json.loads((tmp_path / "g2" / "config.json").read_text())
    assert isinstance(load_generator(tmp_path / "g2"), Generator)


def test_bad_release_files_are_named(tmp_path):
    ref, path = release_file(tmp_path, 16)
    sd = ref.state_dict()
    torch.save({**sd, "g_synthesis.extra.weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\) 'g_synthesis.extra.weight'") as info:
        load_generator(path)
    assert str(path) in str(info.value)
    torch.save({k: v for k, v in sd.items() if "8x8.epi2.style_mod" not in k}, path)
    with pytest.raises(CheckpointError, match="missing tensor 'g_synthesis.blocks.8x8.epi2.style_mod.lin.weight'"):
        load_generator(path)
    bad = dict(sd)
    bad["g_synthesis.blocks.8x8.conv0_up.intermediate.kernel"] = torch.ones(1, 1, 3, 3)
    torch.save(bad, path)
    with pytest.raises(CheckpointError, match=r"not the release's normalised \[1, 2, 1\] blur"):
        load_generator(path)
    bad = dict(sd)
    bad["g_synthesis.torgb.bias"] = torch.zeros(4)
    torch.save(bad, path)
    with pytest.raises(CheckpointError, match="synthesis.torgb.bias"):
        load_generator(path)


def test_hostile_release_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.for_g_all.pt"
    torch.save({"g_mapping.dense0.weight": torch.zeros(2, 2), "g_synthesis.torgb.weight": Evil()}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load: pickle references '(posix|nt|os)\.system'") as info:
        load_generator(path)
    assert str(path) in str(info.value)
    assert not marker.exists()

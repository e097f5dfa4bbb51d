"""The networks: NVIDIA's key layout, layers against manual computations, modes and training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import make_tiny_generator
from datasetgan.core.errors import UserError
from datasetgan.generator import Generator, GeneratorConfig, z_from_seeds
from datasetgan.generator.layers import FullyConnectedLayer
from datasetgan.generator.ops import setup_filter, upsample2d


def nvidia_shapes(cfg: GeneratorConfig) -> dict[str, tuple[int, ...]]:
    """Every state_dict key and shape of NVIDIA's Generator, written out from its source layout."""
    ch = {r: min(cfg.channel_base // r, cfg.channel_max) for r in cfg.block_resolutions}
    s: dict[str, tuple[int, ...]] = {}
    for r in cfg.block_resolutions:
        p = f"synthesis.b{r}."
        s[p + "resample_filter"] = (4, 4)
        if r == 4:
            s[p + "const"] = (ch[4], 4, 4)
        for conv in (["conv1"] if r == 4 else ["conv0", "conv1"]):
            cin = ch[r // 2] if conv == "conv0" else ch[r]
            s[p + conv + ".weight"] = (ch[r], cin, 3, 3)
            s[p + conv + ".bias"] = (ch[r],)
            s[p + conv + ".noise_strength"] = ()
            s[p + conv + ".noise_const"] = (r, r)
            s[p + conv + ".resample_filter"] = (4, 4)
            s[p + conv + ".affine.weight"] = (cin, cfg.w_dim)
            s[p + conv + ".affine.bias"] = (cin,)
        s[p + "torgb.weight"] = (cfg.img_channels, ch[r], 1, 1)
        s[p + "torgb.bias"] = (cfg.img_channels,)
        s[p + "torgb.affine.weight"] = (ch[r], cfg.w_dim)
        s[p + "torgb.affine.bias"] = (ch[r],)
    dims = [cfg.z_dim + (cfg.w_dim if cfg.c_dim else 0)] + [cfg.w_dim] * cfg.mapping_layers
    for i in range(cfg.mapping_layers):
        s[f"mapping.fc{i}.weight"] = (dims[i + 1], dims[i])
        s[f"mapping.fc{i}.bias"] = (dims[i + 1],)
    if cfg.c_dim:
        s["mapping.embed.weight"] = (cfg.w_dim, cfg.c_dim)
        s["mapping.embed.bias"] = (cfg.w_dim,)
    s["mapping.w_avg"] = (cfg.w_dim,)
    return s


@pytest.mark.parametrize("resolution,base,cmax", [(4, 64, 16), (8, 256, 32), (16, 512, 24),
                                                  (32, 1024, 64), (64, 512, 16)])
def test_state_dict_layout_and_output_shapes(resolution, base, cmax):
    cfg = GeneratorConfig(z_dim=8, w_dim=12, img_resolution=resolution, mapping_layers=3,
                          channel_base=base, channel_max=cmax)
    torch.manual_seed(0)
    G = Generator(cfg).eval()
    got = {k: tuple(v.shape) for k, v in G.state_dict().items()}
    assert got == nvidia_shapes(cfg)
    n_blocks = int(math.log2(resolution)) - 1
    assert G.num_ws == cfg.num_ws == 2 * n_blocks
    z = torch.randn(2, 8)
    ws = G.mapping(z)
    assert ws.shape == (2, G.num_ws, 12)
    img = G.synthesis(ws)
    assert img.shape == (2, 3, resolution, resolution) and img.dtype == torch.float32
    assert torch.isfinite(img).all()


def test_conditional_layout_and_forward():
    cfg = GeneratorConfig(z_dim=8, c_dim=3, w_dim=8, img_resolution=8, mapping_layers=2,
                          channel_base=64, channel_max=8)
    G = Generator(cfg).eval()
    assert {k: tuple(v.shape) for k, v in G.state_dict().items()} == nvidia_shapes(cfg)
    c = F.one_hot(torch.tensor([0, 2]), 3).float()
    assert G(torch.randn(2, 8), c).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="c of shape"):
        G(torch.randn(2, 8))


@pytest.mark.parametrize("architecture", ["orig", "resnet"])
def test_other_architectures(architecture):
    cfg = GeneratorConfig(z_dim=8, w_dim=8, img_resolution=16, mapping_layers=1, channel_base=128,
                          channel_max=16, architecture=architecture)
    G = Generator(cfg).eval()
    keys = set(G.state_dict())
    assert "synthesis.b8.torgb.weight" not in keys and "synthesis.b16.torgb.weight" in keys
    assert ("synthesis.b16.skip.weight" in keys) == (architecture == "resnet")
    img, feats = G.synthesis(G.mapping(torch.randn(2, 8)), return_features=True)
    assert img.shape == (2, 3, 16, 16) and len(feats) == len(G.feature_spec) == 5


def test_bad_configs_are_user_errors():
    with pytest.raises(UserError, match="img_resolution"):
        GeneratorConfig(img_resolution=48)
    with pytest.raises(UserError, match="img_resolution"):
        GeneratorConfig(img_resolution=2)
    with pytest.raises(UserError, match="z_dim"):
        GeneratorConfig(z_dim=0, c_dim=0)
    with pytest.raises(UserError, match="unknown setting"):
        GeneratorConfig.from_dict({"z_dim": 8, "nope": 1})


def test_fully_connected_layer_matches_manual_matmul():
    torch.manual_seed(0)
    fc = FullyConnectedLayer(6, 4, activation="lrelu", lr_multiplier=0.01, bias_init=0.5)
    x = torch.randn(3, 6)
    pre = x @ (fc.weight * 0.01 / math.sqrt(6)).t() + fc.bias * 0.01
    assert torch.allclose(fc(x), F.leaky_relu(pre, 0.2) * math.sqrt(2), atol=1e-6)
    lin = FullyConnectedLayer(6, 4, bias_init=1)
    assert torch.allclose(lin.bias, torch.ones(4))
    assert torch.allclose(lin(x), x @ (lin.weight / math.sqrt(6)).t() + 1, atol=1e-6)


def test_mapping_matches_manual_matmuls(tiny_generator):
    M = tiny_generator.mapping
    z = torch.randn(4, 32)
    x = z / torch.sqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
    for i in range(2):
        fc = getattr(M, f"fc{i}")
        x = F.leaky_relu(x @ (fc.weight * 0.01 / math.sqrt(32)).t() + fc.bias * 0.01, 0.2) * math.sqrt(2)
    ws = M(z)
    assert ws.shape == (4, 8, 32)
    assert torch.allclose(ws, x[:, None].expand(4, 8, 32), atol=1e-5)


def test_truncation_and_cutoff(tiny_generator):
    M = tiny_generator.mapping
    z = torch.randn(3, 32)
    w = M(z)
    avg = M.w_avg
    assert torch.allclose(M(z, truncation_psi=0.7), avg + 0.7 * (w - avg), atol=1e-6)
    assert torch.allclose(M(z, truncation_psi=0.0), avg.expand_as(w))
    cut = M(z, truncation_psi=0.5, truncation_cutoff=3)
    assert torch.allclose(cut[:, :3], avg + 0.5 * (w[:, :3] - avg), atol=1e-6)
    assert torch.equal(cut[:, 3:], w[:, 3:])


def test_w_avg_tracking_in_training_mode_only():
    G = make_tiny_generator()
    z = torch.randn(16, 32)
    before = G.mapping.w_avg.clone()
    G.mapping(z)  # eval: untouched
    assert torch.equal(G.mapping.w_avg, before)
    G.train()
    w = G.mapping(z, update_w_avg=False)[:, 0]
    assert torch.equal(G.mapping.w_avg, before)
    G.mapping(z)
    expected = before * 0.995 + w.mean(dim=0) * 0.005
    assert torch.allclose(G.mapping.w_avg, expected, atol=1e-6)


def test_noise_modes(tiny_generator):
    G = tiny_generator
    ws = G.mapping(z_from_seeds([0, 1], 32))
    const_a, const_b = G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const")
    assert torch.equal(const_a, const_b)
    gen = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    rand_a = G.synthesis(ws, noise_mode="random", noise_generator=gen())
    rand_b = G.synthesis(ws, noise_mode="random", noise_generator=gen())
    assert torch.equal(rand_a, rand_b)
    assert (rand_a - const_a).abs().max() > 1e-3
    none = G.synthesis(ws, noise_mode="none")
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.zero_()
    assert torch.allclose(G.synthesis(ws, noise_mode="const"), none, atol=1e-6)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="fixed")


def test_fused_and_unfused_agree_and_batch_independent(tiny_generator):
    G = tiny_generator
    ws = G.mapping(z_from_seeds([0, 1, 2], 32), truncation_psi=0.7)
    fused = G.synthesis(ws, fused_modconv=True)
    unfused = G.synthesis(ws, fused_modconv=False)
    assert torch.allclose(fused, unfused, atol=1e-5)
    one_by_one = torch.cat([G.synthesis(ws[i:i + 1]) for i in range(3)])
    assert torch.allclose(fused, one_by_one, atol=1e-5)


def test_fp16_blocks_and_conv_clamp():
    G = make_tiny_generator(num_fp16_res=2, conv_clamp=256.0)
    assert [getattr(G.synthesis, f"b{r}").use_fp16 for r in (4, 8, 16, 32)] == [False, False, True, True]
    ws = G.mapping(z_from_seeds([0, 1], 32))
    fp32 = G.synthesis(ws)  # on a CPU fp16 blocks run in fp32 by default
    assert torch.equal(fp32, G.synthesis(ws, force_fp32=True))
    img, feats = G.synthesis(ws, force_fp32=False, return_features=True)  # NVIDIA's casts, fp16
    assert img.dtype == torch.float32 and all(f.dtype == torch.float32 for f in feats)
    assert (img - fp32).abs().max() < 0.05
    G2 = make_tiny_generator(conv_clamp=0.05)
    _, feats = G2.synthesis(ws, return_features=True)
    assert all(f.abs().max() <= 0.05 + 1e-7 for f in feats)


def test_skip_architecture_image_is_sum_of_upsampled_torgb(tiny_generator):
    G = tiny_generator
    ws = G.mapping(z_from_seeds([3], 32))
    img, feats = G.synthesis(ws, return_features=True)
    f = setup_filter([1, 3, 3, 1])
    block_x = {4: feats[0], 8: feats[2], 16: feats[4], 32: feats[6]}
    ref, w_idx = None, 1
    for r in (4, 8, 16, 32):
        y = getattr(G.synthesis, f"b{r}").torgb(block_x[r], ws[:, w_idx])
        ref = y if ref is None else upsample2d(ref, f) + y
        w_idx += 2
    assert torch.allclose(img, ref, atol=1e-5)


def test_training_mode_backward_reaches_every_parameter():
    G = make_tiny_generator().train()
    z = torch.randn(2, 32)
    img = G(z, noise_mode="random")
    img.square().mean().backward()
    missing = [n for n, p in G.named_parameters() if p.grad is None]
    assert missing == []


def test_synthesis_rejects_wrong_ws_shape(tiny_generator):
    with pytest.raises(ValueError, match=r"ws of shape \[N, 8, 32\]"):
        tiny_generator.synthesis(torch.zeros(1, 7, 32))
    with pytest.raises(ValueError, match="z of shape"):
        tiny_generator.mapping(torch.zeros(1, 31))


def test_same_seed_same_weights():
    a, b = make_tiny_generator(0), make_tiny_generator(0)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_autocast_bf16_keeps_image_and_ws_float32():
    G = make_tiny_generator()
    z = z_from_seeds([0, 1], 32)
    ref = G(z, truncation_psi=0.7)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ws = G.mapping(z, truncation_psi=0.7)
        img = G.synthesis(ws)
    assert ws.dtype == torch.float32 and img.dtype == torch.float32
    assert (img - ref).abs().max() < 0.2


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["fp32", "fp16-blocks", "bf16-autocast"])
def test_cuda_precisions_agree_with_cpu(mode):
    if not torch.cuda.is_available():
        pytest.fail("the gpu marker needs a CUDA device")
    G = make_tiny_generator(num_fp16_res=2, conv_clamp=256.0)
    z = z_from_seeds([0, 1, 2], 32)
    ref = G(z, truncation_psi=0.7)
    Gc = G.cuda()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "bf16-autocast"):
        img = Gc(z.cuda(), truncation_psi=0.7, force_fp32=(mode == "fp32"))
    assert img.dtype == torch.float32
    tol = {"fp32": 1e-3, "fp16-blocks": 0.05, "bf16-autocast": 0.2}[mode]
    assert (img.cpu() - ref).abs().max() < tol


def test_config_types_are_canonical_for_fingerprints():
    from datasetgan.generator import generator_fingerprint

    a = GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, mapping_layers=1, channel_base=64,
                        channel_max=8, conv_clamp=256, resample_filter=[1, 3, 3, 1])
    b = GeneratorConfig.from_dict(a.to_dict())
    assert a == b and a.to_dict() == b.to_dict() and isinstance(a.conv_clamp, float)
    torch.manual_seed(0)
    ga = Generator(a)
    torch.manual_seed(0)
    assert generator_fingerprint(ga) == generator_fingerprint(Generator(b))

"""rosinality .pt checkpoints: mapped onto NVIDIA's layout, numerically equal.

No rosinality code is needed: ``rosinality_reference`` below is an independent
re-implementation of rosinality/stylegan2-pytorch ``model.py`` math (EqualLinear,
ModulatedConv2d with transposed conv + Blur, NoiseInjection, FusedLeakyReLU,
ToRGB with Upsample), written from its definitions, run on the rosinality-format
state dict directly.
"""

from __future__ import annotations

import argparse
import math
import os

import pytest
import torch
import torch.nn.functional as F

from datasetgan.core.errors import CheckpointError
from datasetgan.generator import Generator, GeneratorConfig, load_generator
from datasetgan.generator.rosinality import estimate_w_avg, load_rosinality, nvidia_to_rosinality

SQRT2 = math.sqrt(2)


# --- rosinality's math, re-implemented ---------------------------------------

def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Zero-insertion upsampling, zero padding (pad0 before, pad1 after), true convolution."""
    n, c, h, w = x.shape
    if up > 1:
        y = x.new_zeros([n, c, h * up, w * up])
        y[:, :, ::up, ::up] = x
        x = y
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = torch.flip(kernel, [0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def equal_linear(x, weight, bias, lr_mul=1.0, fused_lrelu=False):
    scale = (1 / math.sqrt(weight.shape[1])) * lr_mul
    if fused_lrelu:
        return F.leaky_relu(F.linear(x, weight * scale) + bias * lr_mul, 0.2) * SQRT2
    return F.linear(x, weight * scale, bias=bias * lr_mul)


def modulated_conv(sd, prefix, x, w, demodulate=True, upsample=False):
    weight = sd[f"{prefix}.weight"]  # [1, O, I, k, k]
    _, out_c, in_c, k, _ = weight.shape
    batch, _, h, wd = x.shape
    style = equal_linear(w, sd[f"{prefix}.modulation.weight"], sd[f"{prefix}.modulation.bias"]).view(batch, 1, in_c, 1, 1)
    weight = (1 / math.sqrt(in_c * k * k)) * weight * style
    if demodulate:
        weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(batch, out_c, 1, 1, 1)
    x = x.reshape(1, batch * in_c, h, wd)
    if upsample:
        weight = weight.transpose(1, 2).reshape(batch * in_c, out_c, k, k)
        out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=batch)
        out = out.view(batch, out_c, *out.shape[2:])
        # Blur(kernel, pad=(1, 1), upsample_factor=2): the kernel times 4.
        return upfirdn2d(out, sd[f"{prefix}.blur.kernel"], pad=(1, 1))
    weight = weight.reshape(batch * out_c, in_c, k, k)
    out = F.conv2d(x, weight, padding=k // 2, groups=batch)
    return out.view(batch, out_c, *out.shape[2:])


def styled_conv(sd, prefix, x, w, noise, upsample=False):
    out = modulated_conv(sd, f"{prefix}.conv", x, w, upsample=upsample)
    out = out + sd[f"{prefix}.noise.weight"] * noise
    return F.leaky_relu(out + sd[f"{prefix}.activate.bias"].view(1, -1, 1, 1), 0.2) * SQRT2


def to_rgb(sd, prefix, x, w, skip=None):
    out = modulated_conv(sd, f"{prefix}.conv", x, w, demodulate=False) + sd[f"{prefix}.bias"]
    if skip is not None:
        out = out + upfirdn2d(skip, sd[f"{prefix}.upsample.kernel"], up=2, pad=(2, 1))
    return out


def rosinality_reference(sd, z, n_mlp, truncation=1.0, truncation_latent=None):
    """Generator.forward(styles=[z], randomize_noise=False): image and the StyledConv outputs."""
    x = z * torch.rsqrt(torch.mean(z ** 2, dim=1, keepdim=True) + 1e-8)
    for i in range(1, n_mlp + 1):
        x = equal_linear(x, sd[f"style.{i}.weight"], sd[f"style.{i}.bias"], lr_mul=0.01, fused_lrelu=True)
    if truncation < 1:
        x = truncation_latent + truncation * (x - truncation_latent)
    n_blocks = sum(1 for k in sd if k.startswith("to_rgbs.") and k.endswith(".conv.weight"))
    latent = x.unsqueeze(1).repeat(1, 2 * (n_blocks + 2) - 2, 1)
    noise = [sd[f"noises.noise_{i}"] for i in range(2 * n_blocks + 1)]
    out = sd["input.input"].repeat(z.shape[0], 1, 1, 1)
    out = styled_conv(sd, "conv1", out, latent[:, 0], noise[0])
    feats = [out]
    skip = to_rgb(sd, "to_rgb1", out, latent[:, 1])
    i = 1
    for b in range(n_blocks):
        out = styled_conv(sd, f"convs.{2 * b}", out, latent[:, i], noise[i], upsample=True)
        feats.append(out)
        out = styled_conv(sd, f"convs.{2 * b + 1}", out, latent[:, i + 1], noise[i + 1])
        feats.append(out)
        skip = to_rgb(sd, f"to_rgbs.{b}", out, latent[:, i + 2], skip)
        i += 2
    return skip, feats


# --- fixtures -----------------------------------------------------------------

def tiny_config(**over) -> GeneratorConfig:
    base = dict(z_dim=16, w_dim=16, img_resolution=32, img_channels=3, mapping_layers=3,
                channel_base=256, channel_max=32, num_fp16_res=0, conv_clamp=None)
    base.update(over)
    return GeneratorConfig(**base)


def random_generator(cfg: GeneratorConfig, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    G = Generator(cfg).eval().requires_grad_(False)
    with torch.no_grad():
        for key, t in G.state_dict().items():
            if not key.endswith("resample_filter"):
                t.add_(torch.randn_like(t) * 0.2)
    return G


def save_rosinality(path, G: Generator, *, latent_avg=True, args=True, extra=None):
    sd = nvidia_to_rosinality(G.state_dict(), G.config)
    data = {"g_ema": sd, "g": sd, "d": {"convs.0.0.weight": torch.zeros(1)}, "ada_aug_p": 0.0}
    if latent_avg:
        data["latent_avg"] = G.mapping.w_avg.clone()
    if args:
        data["args"] = argparse.Namespace(size=G.img_resolution, latent=G.w_dim, n_mlp=G.config.mapping_layers,
                                          channel_multiplier=2, path="/data/lmdb", r1=10.0, augment=False)
    data.update(extra or {})
    torch.save(data, path)
    return sd


@pytest.fixture
def tiny_G() -> Generator:
    return random_generator(tiny_config())


def _z(n=2, dim=16, seed=3):
    return torch.randn([n, dim], generator=torch.Generator().manual_seed(seed))


# --- tests --------------------------------------------------------------------

def test_roundtrip_config_and_tensors(tmp_path, tiny_G):
    path = tmp_path / "060000.pt"
    save_rosinality(path, tiny_G)
    config, tensors = load_rosinality(path)
    assert config == tiny_G.config
    expected = tiny_G.state_dict()
    assert set(tensors) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(tensors[key], value, rtol=1e-6, atol=1e-7, msg=key)


def test_same_image_as_rosinality_math(tmp_path, tiny_G):
    path = tmp_path / "ckpt.pt"
    sd = save_rosinality(path, tiny_G)
    G = load_generator(path)
    z = _z()
    with torch.no_grad():
        ours, feats = G.synthesis(G.mapping(z, truncation_psi=0.7), noise_mode="const", return_features=True)
        ref, ref_feats = rosinality_reference(sd, z, n_mlp=3, truncation=0.7, truncation_latent=tiny_G.mapping.w_avg)
    assert len(feats) == len(ref_feats)
    for i, (a, b) in enumerate(zip(feats, ref_feats)):  # every style-modulated conv, after its activation
        assert (a - b).abs().max().item() < 1e-4, f"layer {i}"
    diff = (ours - ref).abs().max().item()
    assert diff < 1e-4, diff


@pytest.mark.parametrize("size,style_dim,n_mlp", [(8, 8, 1), (64, 8, 2)])
def test_other_shapes(tmp_path, size, style_dim, n_mlp):
    cfg = tiny_config(img_resolution=size, z_dim=style_dim, w_dim=style_dim, mapping_layers=n_mlp,
                      channel_base=512, channel_max=16)
    G0 = random_generator(cfg, seed=1)
    path = tmp_path / "g.pt"
    sd = save_rosinality(path, G0, args=False)
    G = load_generator(path)
    # channel_base is not unique when every block has channel_max channels
    assert [G.config.channels_at(r) for r in cfg.block_resolutions] == [cfg.channels_at(r) for r in cfg.block_resolutions]
    assert G.config.img_resolution == size and G.config.mapping_layers == n_mlp and G.config.w_dim == style_dim
    z = _z(dim=style_dim)
    with torch.no_grad():
        ref, _ = rosinality_reference(sd, z, n_mlp=n_mlp)
        assert (G(z) - ref).abs().max().item() < 1e-4


def test_upsampling_layers_equal_nvidia_conv2d_resample():
    # One upsampling modulated conv: rosinality's transposed conv + Blur against
    # our SynthesisLayer (NVIDIA's conv2d_resample), weights converted as the loader does.
    G = random_generator(tiny_config(), seed=7)
    layer = G.synthesis.b16.conv0
    sd = nvidia_to_rosinality(G.state_dict(), G.config)
    x = torch.randn([3, 32, 8, 8], generator=torch.Generator().manual_seed(0))
    w = torch.randn([3, 16], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = layer(x, w, noise_mode="none")
        ref = modulated_conv(sd, "convs.2.conv", x, w, upsample=True)
        ref = F.leaky_relu(ref + sd["convs.2.activate.bias"].view(1, -1, 1, 1), 0.2) * SQRT2
    assert (ours - ref).abs().max().item() < 1e-5


def test_without_latent_avg_w_avg_is_estimated_deterministically(tmp_path, tiny_G):
    path = tmp_path / "noavg.pt"
    save_rosinality(path, tiny_G, latent_avg=False)
    _, t1 = load_rosinality(path)
    _, t2 = load_rosinality(path)
    assert torch.equal(t1["mapping.w_avg"], t2["mapping.w_avg"])
    with torch.no_grad():
        ws = tiny_G.mapping(torch.randn([4096, 16], generator=torch.Generator().manual_seed(99)))[:, 0]
    assert (t1["mapping.w_avg"] - ws.mean(0)).abs().max() < 0.1 * ws.std(0).max()
    assert torch.equal(t1["mapping.w_avg"], estimate_w_avg(t1, tiny_G.config))


def test_hostile_pt_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(2, 2)}, "args": Evil()}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load: pickle references '(posix|nt|os)\.system'") as info:
        load_generator(path)
    assert str(path) in str(info.value)
    assert "weights_only=False" not in str(info.value)
    assert not marker.exists()


def test_damaged_files(tmp_path, tiny_G):
    good = tmp_path / "good.pt"
    save_rosinality(good, tiny_G)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_generator(cut)
    # Short non-checkpoint files: the legacy unpickler fails on them with KeyError, IndexError, ...
    for i, junk in enumerate((b"hi\n", b"\x80\x02}q\x00", bytes(range(64)), b"PK\x03\x04junk")):
        path = tmp_path / f"junk{i}.pt"
        path.write_bytes(junk)
        with pytest.raises(CheckpointError, match=f"junk{i}.pt: not a readable torch checkpoint"):
            load_generator(path)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_rosinality(empty)
    no_ema = tmp_path / "no_ema.pt"
    torch.save({"g": {}, "d": {}}, no_ema)
    with pytest.raises(CheckpointError, match="no 'g_ema'"):
        load_rosinality(no_ema)


def test_unexpected_and_misshapen_tensors_name_the_key(tmp_path, tiny_G):
    sd = nvidia_to_rosinality(tiny_G.state_dict(), tiny_G.config)
    extra = dict(sd, **{"convs.0.extra.weight": torch.zeros(3)})
    path = tmp_path / "extra.pt"
    torch.save({"g_ema": extra}, path)
    with pytest.raises(CheckpointError, match="convs.0.extra.weight"):
        load_rosinality(path)

    bad = dict(sd)
    bad["noises.noise_3"] = torch.zeros(1, 1, 5, 5)  # should be 16x16
    path = tmp_path / "bad.pt"
    torch.save({"g_ema": bad}, path)
    with pytest.raises(CheckpointError, match="noise_const") as info:
        load_generator(path)
    assert "synthesis.b16.conv0.noise_const" in str(info.value)

    blur = dict(sd)
    blur["convs.0.conv.blur.kernel"] = torch.ones(4, 4)
    path = tmp_path / "blur.pt"
    torch.save({"g_ema": blur}, path)
    with pytest.raises(CheckpointError, match="blur.kernel"):
        load_rosinality(path)


def test_unrepresentable_channel_rule_is_refused(tmp_path):
    # rosinality channel_multiplier=4 style: 512 up to 32x32 but 1024 at 64x64.
    G = random_generator(tiny_config(img_resolution=16, channel_base=64, channel_max=16), seed=2)
    sd = nvidia_to_rosinality(G.state_dict(), G.config)
    # Widen the 16x16 block to 32 channels (more than at 8x8): no NVIDIA channel rule gives that.
    sd["convs.2.conv.weight"] = torch.randn(1, 32, 8, 3, 3)
    path = tmp_path / "wide.pt"
    torch.save({"g_ema": sd}, path)
    with pytest.raises(CheckpointError, match="channel"):
        load_rosinality(path)


def test_args_mismatch_is_refused(tmp_path, tiny_G):
    path = tmp_path / "args.pt"
    save_rosinality(path, tiny_G, extra={"args": argparse.Namespace(size=256, latent=16, n_mlp=3)})
    with pytest.raises(CheckpointError, match="args.size"):
        load_rosinality(path)

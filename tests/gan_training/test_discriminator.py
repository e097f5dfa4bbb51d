import torch

from datasetgan.gan_training.discriminator import (Discriminator, DiscriminatorConfig, MinibatchStdLayer,
                                                   fir_downsample_pad, setup_filter)


def tiny_d(**kw) -> Discriminator:
    torch.manual_seed(0)
    return Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=128, channel_max=32, **kw))


def test_nvidia_state_dict_names_and_shapes():
    D = tiny_d()
    sd = D.state_dict()
    # NVIDIA resnet D at 16x16 with channels {16: 8, 8: 16, 4: 32}.
    expected = {
        "b16.fromrgb.weight": [8, 3, 1, 1], "b16.fromrgb.bias": [8], "b16.fromrgb.resample_filter": [4, 4],
        "b16.conv0.weight": [8, 8, 3, 3], "b16.conv1.weight": [16, 8, 3, 3], "b16.skip.weight": [16, 8, 1, 1],
        "b8.conv0.weight": [16, 16, 3, 3], "b8.conv1.weight": [32, 16, 3, 3], "b8.skip.weight": [32, 16, 1, 1],
        "b4.conv.weight": [32, 33, 3, 3], "b4.fc.weight": [32, 512], "b4.out.weight": [1, 32], "b4.out.bias": [1],
    }
    for key, shape in expected.items():
        assert list(sd[key].shape) == shape, key
    assert "b16.skip.bias" not in sd and "b16.fromrgb" not in dict(D.b8.named_children())


def test_forward_shape_and_grad():
    D = tiny_d()
    x = torch.randn(8, 3, 16, 16, requires_grad=True)
    out = D(x)
    assert out.shape == (8, 1) and torch.isfinite(out).all()
    g, = torch.autograd.grad(out.sum(), x, create_graph=True)
    g.square().sum().backward()  # R1 needs double backward
    assert D.b16.fromrgb.weight.grad is not None


def test_fir_downsample_keeps_constant_interior_and_halves():
    x = torch.ones(1, 2, 8, 8)
    y = fir_downsample_pad(x, setup_filter(), pad=1, down=2)
    assert y.shape == (1, 2, 4, 4)
    torch.testing.assert_close(y[..., 1:-1, 1:-1], torch.ones(1, 2, 2, 2))


def test_minibatch_std_matches_group_std():
    x = torch.randn(8, 4, 2, 2)
    y = MinibatchStdLayer(group_size=4)(x)
    assert y.shape == (8, 5, 2, 2)
    groups = x.reshape(4, 2, 4, 2, 2)  # [G, n, C, H, W]: sample i belongs to group i % 2
    ref = (groups.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=[1, 2, 3])
    torch.testing.assert_close(y[0, 4, 0, 0], ref[0])
    torch.testing.assert_close(y[1, 4, 0, 0], ref[1])


def test_save_and_load_round_trip(tmp_path):
    D = tiny_d(conv_clamp=256.0)
    D.save_pretrained(tmp_path / "D")
    D2 = Discriminator.from_pretrained(tmp_path / "D")
    assert D2.config == D.config
    x = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(D(x), D2(x))

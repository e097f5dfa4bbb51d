import torch

from datasetgan.gan_training.augment import AdaController, AdaptiveAugment, DiffAugment, build_augment

GEOMETRIC = ["xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac"]
COLOUR = ["brightness", "contrast", "lumaflip", "hue", "saturation"]


def only(*names, p=1.0) -> AdaptiveAugment:
    return AdaptiveAugment(p=p, **{k: (1 if k in names else 0) for k in GEOMETRIC + COLOUR})


def test_p_zero_is_identity():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(AdaptiveAugment(p=0.0)(x), x, atol=1e-5, rtol=0)


def test_xflip_and_rot90_are_exact():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    y = only("xflip")(x)
    for i in range(8):
        assert min((y[i] - x[i]).abs().max(), (y[i] - x[i].flip(-1)).abs().max()) < 1e-5
    y = only("rotate90")(x)
    for i in range(8):
        assert min((y[i] - torch.rot90(x[i], k, (1, 2))).abs().max() for k in range(4)) < 1e-5


def test_integer_translation_moves_whole_pixels():
    torch.manual_seed(1)
    x = torch.rand(8, 3, 16, 16)
    y = only("xint")(x)
    for i in range(8):
        # Some shift by at most 2 whole pixels reproduces the interior exactly (no interpolation).
        errs = [(y[i, :, 4:12, 4:12] - x[i, :, 4 + dy:12 + dy, 4 + dx:12 + dx]).abs().max()
                for dy in range(-2, 3) for dx in range(-2, 3)]
        assert min(errs) < 1e-5


def test_colour_transforms_keep_grey_with_saturation_only():
    torch.manual_seed(0)
    grey = torch.rand(4, 1, 8, 8).repeat(1, 3, 1, 1)
    torch.testing.assert_close(only("saturation")(grey), grey, atol=1e-5, rtol=0)
    torch.testing.assert_close(only("hue")(grey), grey, atol=1e-5, rtol=0)


def test_full_pipeline_changes_images_and_is_twice_differentiable():
    torch.manual_seed(0)
    x = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    y = AdaptiveAugment(p=1.0)(x)
    assert y.shape == x.shape and (y - x).abs().mean() > 0.05
    g, = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    g.sum().backward()
    assert x.grad is not None


def test_ada_controller_steers_p_and_clamps_at_zero():
    aug = AdaptiveAugment(p=0.0)
    ada = AdaController(aug, target=0.6, interval=4, ada_kimg=1)
    ada.accumulate(torch.ones(8, 1))           # D sure that reals are real: overfitting -> raise p
    ada.update(batch_size=8)
    assert abs(float(aug.p) - 8 * 4 / 1000) < 1e-6
    ada.accumulate(-torch.ones(8, 1))          # D unsure: lower p
    ada.update(batch_size=8)
    ada.accumulate(-torch.ones(8, 1))
    ada.update(batch_size=8)
    assert float(aug.p) == 0.0                 # never below zero
    assert float(ada.count) == 0.0


def test_diffaugment_policies_and_build():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16) + 0.1
    y = DiffAugment("cutout")(x)
    zeros = (y == 0).all(dim=1).float().mean(dim=[1, 2])
    assert ((zeros > 0) & (zeros <= 0.25 + 1e-6)).all()   # an 8x8 hole, possibly cut by the border
    y = DiffAugment("translation")(x)
    assert y.shape == x.shape
    assert isinstance(build_augment("ada"), AdaptiveAugment)
    assert isinstance(build_augment("diffaug"), DiffAugment)
    assert build_augment("none") is None

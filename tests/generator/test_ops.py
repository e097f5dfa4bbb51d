"""The low-level ops against references computed by hand (numpy/scipy, float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d

from datasetgan.generator.ops import (bias_act, conv2d_resample, downsample2d, modulated_conv2d,
                                      normalize_2nd_moment, setup_filter, upsample2d)


def _zero_insert(x: np.ndarray) -> np.ndarray:
    u = np.zeros((2 * x.shape[0], 2 * x.shape[1]))
    u[::2, ::2] = x
    return u


def test_setup_filter_is_normalised_outer_product():
    f = setup_filter([1, 3, 3, 1])
    expected = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0
    assert f.dtype == torch.float32 and f.shape == (4, 4)
    np.testing.assert_allclose(f.numpy(), expected, rtol=0, atol=1e-7)
    assert setup_filter(list(range(1, 9))).shape == (8,)  # 8+ taps stay separable, as NVIDIA


def test_upsample2d_matches_zero_insertion_then_full_convolution():
    # FIR upsampling = insert zeros, convolve with 4 * f, keep the centred 2H x 2W window.
    f = setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    y = upsample2d(x, f)
    assert y.shape == (2, 3, 10, 12)
    for n in range(2):
        for c in range(3):
            full = convolve2d(_zero_insert(x[n, c].numpy()), 4 * f.numpy(), mode="full")
            np.testing.assert_allclose(y[n, c].numpy(), full[1:11, 1:13], atol=1e-12)


def test_upsample2d_closed_form_in_1d():
    # Along one axis [1,3,3,1] upsampling is y[2i] = (x[i-1] + 3x[i]) / 4, y[2i+1] = (3x[i] + x[i+1]) / 4.
    x = torch.randn(1, 1, 7, 7, dtype=torch.float64)
    y = upsample2d(x, setup_filter([1, 3, 3, 1]).double())
    xp = np.pad(x[0, 0].numpy(), 1)

    def up1d(a: np.ndarray) -> np.ndarray:  # along axis 0 of a zero-padded array
        even = (a[:-2] + 3 * a[1:-1]) / 4
        odd = (3 * a[1:-1] + a[2:]) / 4
        out = np.empty((2 * even.shape[0],) + a.shape[1:])
        out[0::2], out[1::2] = even, odd
        return out

    rows = up1d(xp)[:, 1:-1]                        # [14, 7]
    ref = up1d(np.pad(rows, ((0, 0), (1, 1))).T).T  # [14, 14]
    np.testing.assert_allclose(y[0, 0].numpy(), ref, atol=1e-12)


def test_downsample2d_keeps_constants_and_halves():
    f = setup_filter([1, 3, 3, 1])
    x = torch.ones(1, 2, 8, 8)
    y = downsample2d(x, f)
    assert y.shape == (1, 2, 4, 4)
    assert torch.allclose(y[:, :, 1:-1, 1:-1], torch.ones(1, 2, 2, 2))


@pytest.mark.parametrize("flip_weight", [False, True])
def test_conv2d_resample_up2_matches_direct_computation(flip_weight):
    # Upsampling conv = zero insertion, FIR (x4) and the 3x3 kernel as full convolutions, centred crop.
    f = setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    y = conv2d_resample(x, w, f=f, up=2, padding=1, flip_weight=flip_weight)
    assert y.shape == (1, 3, 8, 8)
    for o in range(3):
        ref = np.zeros((8, 8))
        for i in range(2):
            k = w[o, i].numpy() if not flip_weight else w[o, i].numpy()[::-1, ::-1]
            full = convolve2d(convolve2d(_zero_insert(x[0, i].numpy()), 4 * f.numpy()), k)
            ref += full[2:10, 2:10]
        np.testing.assert_allclose(y[0, o].numpy(), ref, atol=1e-12)


def test_conv2d_resample_plain_is_conv2d_and_groups_work():
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    w = torch.randn(6, 2, 3, 3, dtype=torch.float64)
    y = conv2d_resample(x, w, padding=1, groups=2)
    assert torch.allclose(y, F.conv2d(x, w, padding=1, groups=2))
    # Grouped upsampling equals running each group on its own.
    f = setup_filter([1, 3, 3, 1]).double()
    yg = conv2d_resample(x, w, f=f, up=2, padding=1, groups=2, flip_weight=False)
    y0 = conv2d_resample(x[:, :2], w[:3], f=f, up=2, padding=1, flip_weight=False)
    y1 = conv2d_resample(x[:, 2:], w[3:], f=f, up=2, padding=1, flip_weight=False)
    assert torch.allclose(yg, torch.cat([y0, y1], dim=1))


def test_conv2d_resample_down2_matches_filter_then_strided_conv():
    f = setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    w = torch.randn(1, 1, 3, 3, dtype=torch.float64)
    y = conv2d_resample(x, w, f=f, down=2, padding=1)
    assert y.shape == (1, 1, 4, 4)
    # Reference: pad 2 each side (1 for the conv + FIR's own), filter, correlate, every 2nd pixel.
    filt = convolve2d(np.pad(x[0, 0].numpy(), 2), f.numpy()[::-1, ::-1], mode="valid")  # [7, 7]
    corr = convolve2d(filt, w[0, 0].numpy()[::-1, ::-1], mode="valid")               # [5, 5]
    np.testing.assert_allclose(y[0, 0].numpy(), corr[::2, ::2][:4, :4], atol=1e-12)


def test_bias_act_lrelu_gain_clamp():
    x = torch.tensor([[-2.0, -0.5, 0.5, 3.0]]).reshape(1, 4, 1, 1)
    b = torch.tensor([0.0, 1.0, 0.0, 1.0])
    y = bias_act(x, b, act="lrelu", clamp=4.0).flatten()
    pre = torch.tensor([-2.0, 0.5, 0.5, 4.0])
    ref = torch.where(pre >= 0, pre, 0.2 * pre) * math.sqrt(2)
    assert torch.allclose(y, ref.clamp(-4, 4))
    assert torch.equal(bias_act(x), x)
    with pytest.raises(ValueError):
        bias_act(x, act="swish")


def test_normalize_2nd_moment():
    z = torch.randn(5, 16) * 3
    y = normalize_2nd_moment(z)
    assert torch.allclose(y.square().mean(dim=1), torch.ones(5), atol=1e-5)


def _modconv_reference(x, weight, styles, demodulate, up, f):
    """Per-sample explicit modulated weights, float64, one ordinary conv each."""
    out = []
    for i in range(x.shape[0]):
        wm = weight * styles[i].reshape(1, -1, 1, 1)
        if demodulate:
            wm = wm / torch.sqrt(wm.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        if up == 1:
            out.append(F.conv2d(x[i:i + 1], wm, padding=weight.shape[-1] // 2))
        else:
            out.append(conv2d_resample(x[i:i + 1], wm, f=f, up=2, padding=1, flip_weight=False))
    return torch.cat(out)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv2d_matches_explicit_per_sample_weights(fused, up, demodulate):
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    weight = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    styles = torch.randn(3, 4, dtype=torch.float64)
    noise = torch.randn(3, 1, 5 * up, 5 * up, dtype=torch.float64)
    y = modulated_conv2d(x, weight, styles, noise=noise, up=up, padding=1, resample_filter=f,
                         demodulate=demodulate, flip_weight=(up == 1), fused_modconv=fused)
    ref = _modconv_reference(x, weight, styles, demodulate, up, f) + noise
    assert y.shape == (3, 6, 5 * up, 5 * up)
    assert torch.allclose(y, ref, atol=1e-10)


def test_modulated_conv2d_fp16_prenormalisation_is_harmless():
    torch.manual_seed(1)
    x = torch.randn(2, 8, 6, 6)
    weight = torch.randn(8, 8, 3, 3)
    styles = torch.randn(2, 8) * 5
    ref = modulated_conv2d(x, weight, styles, padding=1, fused_modconv=False)
    y = modulated_conv2d(x.half(), weight, styles, padding=1, fused_modconv=False)
    assert y.dtype == torch.float16
    assert torch.allclose(y.float(), ref, atol=2e-2)

"""The tiny-map shortcuts must compute what torch's convolutions compute, forward and backward."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from datasetgan.segmenter.models import Segmenter, SegmenterConfig
from datasetgan.segmenter.small_maps import (DENSE_MAX_PIXELS, AtrousConv2d, DenseDepthwiseConv2d,
                                             conv_of_upsampled, fold_fits, remove_shortcuts)


def _outputs_and_grads(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    x = x.clone().requires_grad_()
    torch.manual_seed(1)                                   # the same dropout masks
    out = model(x)
    out.square().mean().backward()
    return out.detach(), [x.grad] + [p.grad.clone() for p in model.parameters() if p.grad is not None]


def _assert_close(a: torch.Tensor, b: torch.Tensor) -> None:
    scale = float(b.abs().max()) + 1e-12
    assert float((a - b).abs().max()) <= 1e-5 * scale, (float((a - b).abs().max()), scale)


@pytest.mark.parametrize("kernel,stride,dilation,size", [
    (k, s, d, n) for k, s, d, n in itertools.product((3, 5), (1, 2), (1, 2), (1, 3, 4, 5, 8))])
def test_dense_depthwise_equals_torch(kernel, stride, dilation, size):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 6, kernel, stride, dilation * (kernel // 2), dilation, groups=6, bias=True)
    dense = copy.deepcopy(conv)
    dense.__class__ = DenseDepthwiseConv2d
    x = torch.randn(3, 6, size, size)
    (out_t, grads_t), (out_d, grads_d) = _outputs_and_grads(conv, x), _outputs_and_grads(dense, x)
    assert out_d.shape == out_t.shape
    _assert_close(out_d, out_t)
    for g_d, g_t in zip(grads_d, grads_t):
        _assert_close(g_d, g_t)


def test_dense_depthwise_leaves_larger_maps_to_torch():
    conv = nn.Conv2d(4, 4, 3, 1, 1, groups=4)
    dense = copy.deepcopy(conv)
    dense.__class__ = DenseDepthwiseConv2d
    side = int(DENSE_MAX_PIXELS ** 0.5) + 1
    x = torch.randn(2, 4, side, side)
    assert torch.equal(dense(x), conv(x))                  # the same kernel, bit for bit


@pytest.mark.parametrize("decoder,output_stride,size", [("plus", None, 64), ("none", 8, 64), ("none", None, 256)])
def test_shortcuts_equal_torch_in_the_whole_network(decoder, output_stride, size):
    """ASPP's rates 12-36 on a 4x4 map read only padding off-centre, and MobileNetV3's depthwise
    convolutions on 8x8 and smaller maps run as matmuls: outputs and every gradient must match
    torch's own convolutions (and larger maps must take torch's path)."""
    torch.manual_seed(0)
    fast = Segmenter(SegmenterConfig(num_outputs=4, decoder=decoder, output_stride=output_stride)).train()
    assert sum(isinstance(m, AtrousConv2d) for m in fast.modules()) >= 3   # the ASPP's dilated branches
    assert sum(isinstance(m, DenseDepthwiseConv2d) for m in fast.modules()) >= 10
    full = copy.deepcopy(fast)
    remove_shortcuts(full)
    assert not any(isinstance(m, (AtrousConv2d, DenseDepthwiseConv2d)) for m in full.modules())
    if decoder == "plus":                                  # the decoder's upsampled 3x3 convolution
        assert fast.decoder.fold_upsampling and not full.decoder.fold_upsampling
    x = torch.rand(2, 3, size, size)
    (out_f, grads_f), (out_t, grads_t) = _outputs_and_grads(fast, x), _outputs_and_grads(full, x)
    assert torch.allclose(out_f, out_t, atol=1e-5, rtol=1e-4)
    for g_f, g_t in zip(grads_f, grads_t):
        assert torch.allclose(g_f, g_t, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("size,out_size,kernel", [((4, 4), (16, 16), 3), ((5, 3), (17, 12), 3),
                                                   ((1, 1), (4, 4), 3), ((4, 4), (16, 16), 5), ((6, 6), (6, 6), 3)])
def test_conv_of_upsampled_equals_torch(size, out_size, kernel):
    torch.manual_seed(0)
    x = torch.randn(2, 5, *size, requires_grad=True)
    weight = torch.randn(7, 5, kernel, kernel, requires_grad=True)
    ours = conv_of_upsampled(x, weight, out_size)
    up = nn.functional.interpolate(x, size=out_size, mode="bilinear", align_corners=False)
    theirs = nn.functional.conv2d(up, weight, padding=kernel // 2)
    _assert_close(ours.detach(), theirs.detach())
    g = torch.randn_like(theirs)
    grads_ours = torch.autograd.grad(ours, (x, weight), g)
    grads_theirs = torch.autograd.grad(theirs, (x, weight), g)
    for a, b in zip(grads_ours, grads_theirs):
        _assert_close(a, b)


def test_conv_of_upsampled_is_only_used_where_its_matrix_is_small():
    assert fold_fits((4, 4), (16, 16)) and fold_fits((8, 8), (32, 32))   # 64 and 128 px inputs
    assert not fold_fits((16, 16), (64, 64))                             # 256 px: as dear as the conv


def test_dense_depthwise_runs_in_double_precision():
    conv = nn.Conv2d(3, 3, 5, 1, 4, 2, groups=3).double()
    dense = copy.deepcopy(conv)
    dense.__class__ = DenseDepthwiseConv2d
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert torch.allclose(dense(x), conv(x), atol=1e-12)

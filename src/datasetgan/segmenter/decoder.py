"""DeepLabV3+'s decoder for torchvision's DeepLabV3: fine detail from a stride-4 backbone map.

DeepLabV3 predicts at the backbone's output stride (16 for MobileNetV3) and
upsamples the logits bilinearly, so on small images the thin parts (eyes,
pupils, eyebrows: a few pixels at 64x64) cannot appear at all. DeepLabV3+
(Chen et al., ECCV 2018) keeps the ASPP head and adds a light decoder: the
ASPP features are upsampled to stride 4, concatenated with a 1x1 projection of
the backbone's stride-4 features, refined by two 3x3 convolutions and
classified there. ``separable=True`` makes those two convolutions depthwise
separable (a depthwise 3x3 then a pointwise 1x1, each with BatchNorm and
ReLU), as the paper does: about 8x less decoder arithmetic.

Without ``separable``, the first 3x3 convolution of the upsampled ASPP map
runs as ``small_maps.conv_of_upsampled`` where that is cheaper (exact; see
there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from datasetgan.segmenter.small_maps import conv_of_upsampled, fold_fits

LOW_CHANNELS = 48        # the low-level projection's width, as in the paper
DECODER_CHANNELS = 128   # narrower than the paper's 256: the decoder runs at stride 4


def low_level_layer(arch: str) -> str:
    """The name, inside torchvision's backbone ``IntermediateLayerGetter``, of the last stride-4 layer."""
    if "mobilenet_v3" in arch:
        return "3"           # features[3]: the last inverted residual block before the stride-8 one (24 ch)
    return "layer1"          # ResNets: the first stage (256 ch)


def _conv_bn_relu(cin: int, cout: int, k: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


def _refine_conv(cin: int, cout: int, separable: bool) -> nn.Sequential:
    """A 3x3 convolution block, or its depthwise-separable form."""
    if not separable:
        return _conv_bn_relu(cin, cout, 3)
    return nn.Sequential(_conv_bn_relu(cin, cin, 3, groups=cin), _conv_bn_relu(cin, cout, 1))


class PlusDecoder(nn.Module):
    """``(aspp [N, A, h, w], low [N, L, 4h', 4w']) -> logits [N, num_outputs, 4h', 4w']``."""

    def __init__(self, aspp_channels: int, low_channels: int, num_outputs: int, separable: bool = False):
        super().__init__()
        self.project_low = _conv_bn_relu(low_channels, LOW_CHANNELS, 1)
        self.refine = nn.Sequential(_refine_conv(aspp_channels + LOW_CHANNELS, DECODER_CHANNELS, separable),
                                    _refine_conv(DECODER_CHANNELS, DECODER_CHANNELS, separable))
        self.classify = nn.Conv2d(DECODER_CHANNELS, num_outputs, 1)
        self.separable = separable
        self.fold_upsampling = False   # set by small_maps.install_shortcuts

    def forward(self, aspp: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = self.project_low(low)
        size = tuple(low.shape[-2:])
        first = self.refine[0]
        if self._folds(aspp, size):
            # conv3x3(cat(up(aspp), low)) as the sum of its two input-channel groups' convolutions
            conv, a = first[0], aspp.shape[1]
            x = conv_of_upsampled(aspp, conv.weight[:, :a], size)
            x = x + F.conv2d(low, conv.weight[:, a:], conv.bias, conv.stride, conv.padding)
            return self.classify(self.refine[1:](first[1:](x)))
        up = F.interpolate(aspp, size=size, mode="bilinear", align_corners=False)
        return self.classify(self.refine(torch.cat([up, low], dim=1)))

    def _folds(self, aspp: torch.Tensor, size: tuple[int, int]) -> bool:
        """Whether the first refinement runs through ``conv_of_upsampled`` (CPU, small maps)."""
        return (self.fold_upsampling and not self.separable and aspp.device.type == "cpu"
                and fold_fits(tuple(aspp.shape[-2:]), size))


def attach_decoder(net: nn.Module, arch: str, num_outputs: int, separable: bool = False) -> PlusDecoder:
    """Turn torchvision's DeepLabV3 ``net`` into DeepLabV3+ in place; returns the new decoder.

    The backbone also returns its stride-4 map (key ``"low"``), and the
    classifier's last 1x1 convolution is dropped: the head now ends with the
    ASPP's 3x3 refinement (256 channels), which the decoder consumes.
    """
    net.backbone.return_layers[low_level_layer(arch)] = "low"
    final = net.classifier[-1]
    net.classifier[-1] = nn.Identity()
    was_training = net.training
    net.eval()                 # a probe for the channel count must not touch BatchNorm statistics
    with torch.no_grad():
        low = net.backbone(torch.zeros(1, 3, 64, 64))["low"]
    net.train(was_training)
    return PlusDecoder(final.in_channels, low.shape[1], num_outputs, separable)


def forward_plus(net: nn.Module, decoder: PlusDecoder, x: torch.Tensor) -> torch.Tensor:
    """DeepLabV3+ forward: ``x [N, 3, H, W]`` (normalised) -> ``[N, num_outputs, H, W]``."""
    feats = net.backbone(x)
    logits = decoder(net.classifier(feats["out"]), feats["low"])
    return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

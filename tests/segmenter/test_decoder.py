"""DeepLabV3+ decoder and class-frequency weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from datasetgan.core.errors import UserError
from datasetgan.labels import Item, LabelSpec
from datasetgan.segmenter.models import Segmenter, SegmenterConfig
from datasetgan.segmenter.train import frequency_weights


@pytest.mark.parametrize("decoder", ["plus", "plus-separable"])
def test_plus_decoder_predicts_at_full_size_from_stride_4_features(decoder):
    torch.manual_seed(0)
    model = Segmenter(SegmenterConfig(num_outputs=5, resolution=64, decoder=decoder)).eval()
    feats = model.net.backbone(torch.zeros(2, 3, 64, 64))
    assert feats["low"].shape[-1] == 16 and feats["out"].shape[-1] == 4     # strides 4 and 16
    out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 5, 64, 64)
    # The decoder sees fine detail: a single changed 4x4 patch changes the logits there more than far away.
    x = torch.rand(1, 3, 64, 64)
    y = x.clone()
    y[..., 30:34, 30:34] = 1 - y[..., 30:34, 30:34]
    with torch.no_grad():
        diff = (model(x) - model(y)).abs().sum(1)[0]
    assert diff[28:36, 28:36].mean() > diff[:8, :8].mean()


def test_separable_decoder_is_lighter():
    def decoder_params(name: str) -> int:
        return sum(p.numel() for p in Segmenter(SegmenterConfig(num_outputs=5, decoder=name)).decoder.parameters())
    assert decoder_params("plus-separable") * 5 < decoder_params("plus")


def test_unknown_decoder_is_refused():
    with pytest.raises(UserError, match="--decoder"):
        Segmenter(SegmenterConfig(num_outputs=3, decoder="unet"))


def test_frequency_weights_favour_rare_classes_and_keep_the_loss_scale(tmp_path):
    spec = LabelSpec(classes=("bg", "face", "eye", "absent"))
    items = []
    for i in range(2):
        lab = np.zeros((20, 20), np.uint8)
        lab[5:15, 5:15] = 1
        lab[9:11, 9:11] = 2
        Image.fromarray(lab).save(tmp_path / f"{i}.png")
        items.append(Item(image=tmp_path / f"{i}.png", label=tmp_path / f"{i}.png", stem=str(i)))
    w = frequency_weights(items, spec, power=0.5, quiet=True)
    freq = np.array([300, 96, 4, 0]) / 400
    assert w[2] > w[1] > w[0]
    assert float((torch.tensor(freq, dtype=torch.float32) * w).sum()) == pytest.approx(1.0, rel=1e-5)
    assert w[3] == w[2]                          # absent: the rarest present class's weight
    assert torch.allclose(frequency_weights(items, spec, power=0.0, quiet=True), torch.ones(4))

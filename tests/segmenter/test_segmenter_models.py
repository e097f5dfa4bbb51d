"""DeepLabV3 wrapper, checkpoints, backbone weights, heatmaps."""

from __future__ import annotations

import pytest
import torch

from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.labels import LabelSpec
from datasetgan.segmenter.keypoints import decode_heatmaps, render_heatmaps, rescale_keypoints
from datasetgan.segmenter.models import Segmenter, SegmenterConfig, load_backbone_weights, load_checkpoint, save_checkpoint

SPEC = LabelSpec(classes=("bg", "a", "b"))


def test_forward_shape_and_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = Segmenter(SegmenterConfig(num_outputs=3, resolution=32)).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, 32, 32)
    save_checkpoint(tmp_path / "ck", model, SPEC)
    again, spec, meta = load_checkpoint(tmp_path / "ck")
    assert spec == SPEC and meta["model"]["num_outputs"] == 3
    with torch.no_grad():
        assert torch.equal(again(x), y)
    with pytest.raises(CheckpointError, match="not a segmenter checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(UserError, match="--arch"):
        Segmenter(SegmenterConfig(arch="deeplabv3_vgg"))  # type: ignore[arg-type]


def test_backbone_weights_from_a_local_file(tmp_path):
    from torchvision.models import mobilenet_v3_large
    torch.manual_seed(1)
    classifier = mobilenet_v3_large()
    torch.save(classifier.state_dict(), tmp_path / "mnv3.pth")
    model = Segmenter(SegmenterConfig(num_outputs=2))
    copied = load_backbone_weights(model, tmp_path / "mnv3.pth")
    assert copied == len(model.net.backbone.state_dict())
    assert torch.equal(model.net.backbone.state_dict()["0.0.weight"], classifier.state_dict()["features.0.0.weight"])
    torch.save({"unrelated": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="backbone tensors"):
        load_backbone_weights(model, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="not found"):
        load_backbone_weights(model, tmp_path / "missing.pth")


def test_heatmap_decoding_is_sub_pixel():
    kp = torch.tensor([[[10.3, 7.6, 1.0], [3.0, 20.2, 1.0], [5.0, 5.0, 0.0]]])
    maps = render_heatmaps(kp, 32, sigma=2.0)
    assert maps.shape == (1, 3, 32, 32) and maps[0, 2].abs().max() == 0
    dec = decode_heatmaps(maps)
    assert torch.allclose(dec[0, :2, :2], kp[0, :2, :2], atol=0.1)


def test_rescale_keypoints_pixel_centres():
    kp = torch.tensor([[0.0, 0.0], [31.0, 15.0]])
    out = rescale_keypoints(kp, (16, 32), (32, 64))
    assert out.tolist() == [[0.5, 0.5], [62.5, 30.5]]
    assert torch.allclose(rescale_keypoints(out, (32, 64), (16, 32)), kp)

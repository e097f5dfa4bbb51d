"""DeepLabV3 networks for part segmentation and keypoint heatmaps, and their checkpoints.

The networks are torchvision's DeepLabV3 builders, always with ``weights=None``
(nothing is downloaded). A keypoint network is the same DeepLabV3 with ``K``
output channels read by a keypoint head (``segmenter.keypoints``: integral
soft-argmax by default, legacy Gaussian heatmaps). A checkpoint is a folder with
``config.json`` (the ``SegmenterConfig`` and the label spec) and
``model.safetensors``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file
from torch import nn

from datasetgan.core.config import config_to_dict
from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.fileio import atomic_path, write_json
from datasetgan.core.weights import read_state_dict, read_weights
from datasetgan.labels import LabelSpec
from datasetgan.segmenter.decoder import attach_decoder, forward_plus
from datasetgan.segmenter.keypoints import KEYPOINT_HEADS, KeypointHead
from datasetgan.segmenter.small_maps import install_shortcuts

Arch = Literal["deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50", "deeplabv3_resnet101"]
ARCHS: tuple[str, ...] = ("deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50", "deeplabv3_resnet101")
Task = Literal["segmentation", "keypoints"]
DECODERS: tuple[str, ...] = ("none", "plus", "plus-separable")
Decoder = Literal["none", "plus", "plus-separable"]

# torchvision's ImageNet normalisation: a backbone loaded from ImageNet weights expects it.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SegmenterConfig:
    """Everything needed to rebuild the network; saved next to its weights."""

    arch: Arch = "deeplabv3_mobilenet_v3_large"
    task: Task = "segmentation"
    num_outputs: int = 2          # classes (segmentation) or keypoints (heatmap channels)
    resolution: int = 128         # square input side the network is trained and run at
    heatmap_sigma: float = 2.0    # Gaussian sigma of keypoint targets, in pixels at `resolution`
    # None = torchvision's own (16 for MobileNetV3, 8 for the ResNets). MobileNetV3 also takes 8: the
    # stride-2 block that reaches /16 runs at stride 1 and later convolutions are dilated (about 2x slower).
    output_stride: int | None = None
    keypoint_head: KeypointHead = "integral"   # how keypoint outputs are trained and decoded (task keypoints)
    # "none": DeepLabV3 as torchvision builds it; "plus": DeepLabV3+'s decoder on the stride-4 backbone
    # features (see segmenter.decoder), for parts only a few pixels wide; "plus-separable": the same with
    # depthwise-separable 3x3 convolutions, as in the paper (cheaper).
    decoder: Decoder = "none"


class Segmenter(nn.Module):
    """DeepLabV3 returning logits (or heatmaps) ``[N, num_outputs, R, R]`` for images ``[N, 3, R, R]`` in [0, 1]."""

    def __init__(self, config: SegmenterConfig):
        super().__init__()
        if config.arch not in ARCHS:
            raise UserError(f"--arch {config.arch!r}: expected one of {', '.join(ARCHS)}")
        from torchvision.models import segmentation as tvseg
        if config.keypoint_head not in KEYPOINT_HEADS:
            raise UserError(f"--keypoint-head {config.keypoint_head!r}: expected one of {', '.join(KEYPOINT_HEADS)}")
        builder = getattr(tvseg, config.arch)
        self.config = config
        self.net = builder(weights=None, weights_backbone=None, num_classes=config.num_outputs, aux_loss=False)
        native = 16 if "mobilenet" in config.arch else 8
        if config.output_stride not in (None, native):
            if not (native == 16 and config.output_stride == 8):
                raise UserError(f"--output-stride {config.output_stride}: {config.arch} supports "
                                f"{'8 or 16' if native == 16 else '8'}")
            dilate_backbone(self.net.backbone, native, config.output_stride)
        if config.decoder not in DECODERS:
            raise UserError(f"--decoder {config.decoder!r}: expected one of {', '.join(DECODERS)}")
        self.decoder = None if config.decoder == "none" else attach_decoder(
            self.net, config.arch, config.num_outputs, separable=config.decoder == "plus-separable")
        install_shortcuts(self)   # exact: tiny maps' convolutions as cheaper equivalents
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [N, 3, H, W]`` in [0, 1] -> ``[N, num_outputs, H, W]``."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [N, 3, H, W], got {tuple(images.shape)}")
        x = (images - self.mean) / self.std
        if self.decoder is not None:
            return forward_plus(self.net, self.decoder, x)
        return self.net(x)["out"]


def dilate_backbone(backbone: nn.Module, native: int, target: int) -> None:
    """Lower a backbone's output stride from ``native`` to ``target`` in place (DeepLab's atrous trick).

    Walks the spatial (k > 1) convolutions in order. Once the running stride
    would pass ``target``, a stride-2 convolution becomes stride 1 and every
    later convolution's dilation is doubled, so receptive fields stay as they
    were; weights keep their shapes (ImageNet weights still load).
    """
    stride, factor = 1, 1
    for m in backbone.modules():
        if not isinstance(m, nn.Conv2d) or m.kernel_size[0] == 1:
            continue
        if m.stride[0] == 2 and stride * 2 > target:
            m.stride = (1, 1)
            factor *= 2            # this conv keeps its dilation; the ones after it widen
        elif m.stride[0] == 2:
            stride *= 2
        else:
            m.dilation = (m.dilation[0] * factor, m.dilation[1] * factor)
        m.padding = tuple(d * (k - 1) // 2 for d, k in zip(m.dilation, m.kernel_size))
    if stride != target:
        raise ValueError(f"could not bring the output stride from {native} to {target}")


def load_backbone_weights(model: Segmenter, path: str | Path) -> int:
    """Copy ImageNet classification weights from a local file into the backbone.

    ``path`` holds the classifier's state dict (torchvision's ``.pth`` files, or
    a ``.safetensors`` file); keys may carry ``features.``/``backbone.``/
    ``module.`` prefixes. Returns the number of tensors copied; a file that
    matches fewer than 90% of the backbone's tensors is refused.
    """
    state = read_state_dict(path, "--backbone-weights")
    target = model.net.backbone.state_dict()
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key
        for prefix in ("module.", "backbone.", "features."):
            if name.startswith(prefix):
                name = name[len(prefix):]
        if name in target and isinstance(value, torch.Tensor) and value.shape == target[name].shape:
            renamed[name] = value
    if len(renamed) < 0.9 * len(target):
        raise CheckpointError(path, f"only {len(renamed)} of {len(target)} backbone tensors of "
                                    f"{model.config.arch} found; is this the matching ImageNet classifier?")
    model.net.backbone.load_state_dict(renamed, strict=False)
    return len(renamed)


def save_checkpoint(folder: str | Path, model: Segmenter, spec: LabelSpec, extra: dict | None = None) -> None:
    """Write ``folder/config.json`` and ``folder/model.safetensors`` (each atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    write_json(folder / "config.json", {"format": "datasetgan-segmenter", "version": 1,
                                        "model": config_to_dict(model.config), "spec": spec.to_dict(),
                                        **(extra or {})})


def load_checkpoint(folder: str | Path, device: torch.device | str = "cpu") -> tuple[Segmenter, LabelSpec, dict]:
    """Rebuild a model saved by ``save_checkpoint``; returns ``(model in eval mode, spec, config.json)``."""
    folder = Path(folder)
    cfg_path, weights = folder / "config.json", folder / "model.safetensors"
    if not cfg_path.exists() or not weights.exists():
        raise CheckpointError(folder, "not a segmenter checkpoint (needs config.json and model.safetensors)")
    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
        fields = {f.name for f in dataclasses.fields(SegmenterConfig)}
        values = {k: v for k, v in meta["model"].items() if k in fields}
        if values.get("task") == "keypoints" and "keypoint_head" not in values:
            values["keypoint_head"] = "heatmap"    # checkpoints written before the integral head existed
        config = SegmenterConfig(**values)
        spec = LabelSpec.from_dict(meta["spec"], where=str(cfg_path))
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(cfg_path, f"malformed segmenter config ({exc})") from None
    if meta.get("format") != "datasetgan-segmenter":
        raise CheckpointError(cfg_path, "not a datasetgan segmenter checkpoint")
    model = Segmenter(config)
    state = read_weights(weights)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(weights, f"weights do not fit {config.arch} ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), spec, meta

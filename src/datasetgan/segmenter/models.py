"""DeepLabV3 networks for part segmentation and keypoint heatmaps, and their checkpoints.

The networks are torchvision's DeepLabV3 builders, always with ``weights=None``
(nothing is downloaded). A keypoint network is the same DeepLabV3 with ``K``
output channels regressing Gaussian heatmaps. A checkpoint is a folder with
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
from safetensors.torch import load_file, save_file
from torch import nn

from datasetgan.core.config import config_to_dict
from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.fileio import atomic_path, write_json
from datasetgan.core.labels import LabelSpec
from datasetgan.core.weights import read_state_dict

Arch = Literal["deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50", "deeplabv3_resnet101"]
ARCHS: tuple[str, ...] = ("deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50", "deeplabv3_resnet101")
Task = Literal["segmentation", "keypoints"]

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


class Segmenter(nn.Module):
    """DeepLabV3 returning logits (or heatmaps) ``[N, num_outputs, R, R]`` for images ``[N, 3, R, R]`` in [0, 1]."""

    def __init__(self, config: SegmenterConfig):
        super().__init__()
        if config.arch not in ARCHS:
            raise UserError(f"--arch {config.arch!r}: expected one of {', '.join(ARCHS)}")
        from torchvision.models import segmentation as tvseg
        builder = getattr(tvseg, config.arch)
        self.config = config
        self.net = builder(weights=None, weights_backbone=None, num_classes=config.num_outputs, aux_loss=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [N, 3, H, W]`` in [0, 1] -> ``[N, num_outputs, H, W]``."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [N, 3, H, W], got {tuple(images.shape)}")
        return self.net((images - self.mean) / self.std)["out"]


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
        config = SegmenterConfig(**{k: v for k, v in meta["model"].items() if k in fields})
        spec = LabelSpec.from_dict(meta["spec"], where=str(cfg_path))
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(cfg_path, f"malformed segmenter config ({exc})") from None
    if meta.get("format") != "datasetgan-segmenter":
        raise CheckpointError(cfg_path, "not a datasetgan segmenter checkpoint")
    model = Segmenter(config)
    try:
        model.load_state_dict(load_file(str(weights)))
    except RuntimeError as exc:
        raise CheckpointError(weights, f"weights do not fit {config.arch} ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), spec, meta

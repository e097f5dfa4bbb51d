"""The demo's stand-in for a human annotator: a small U-Net trained on rendered faces.

A person labelling generated faces has learnt what eyes, brows and mouths
look like from real ones, and draws the parts they see in each generated
image. The annotator does the same: it learns parts and keypoints from
thousands of rendered faces with exact labels (the domain's "real" images),
then labels generated images by looking at their pixels only. It never sees
the generator's latents or features, so no information reaches the style
interpreter through a side door, and it is reproducible from a seed.

Training images are blurred, noised and colour-shifted at random, so that it
also reads the softer images a small GAN makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from datasetgan.core.config import build_config, config_to_dict
from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.fileio import atomic_path, read_json, write_json
from datasetgan.core.progress import progress
from datasetgan.core.weights import read_weights
from datasetgan.demo.domain import CLASSES, KEYPOINTS
from datasetgan.demo.render import render_batch


@dataclass(frozen=True)
class AnnotatorConfig:
    """Architecture and training of the annotator."""

    width: int = 8                  # channels of the first U-Net level (x2 per level, 3 levels down)
    train_images: int = 3000        # rendered faces it learns from (seeds from seed_start)
    seed_start: int = 2_000_000     # disjoint from the demo's test seeds
    steps: int = 1500
    batch_size: int = 16
    lr: float = 3e-3
    heatmap_sigma: float = 1.0      # keypoint target Gaussian, pixels
    keypoint_weight: float = 0.1    # spatial cross-entropy of keypoints vs. part cross-entropy
    class_weight_power: float = 0.5 # rare thin parts weigh (frequency)^-power, at most 10x background
    blur_max: float = 1.2           # augmentation: Gaussian blur sigma in [0, blur_max]
    seed: int = 0


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Annotator(nn.Module):
    """U-Net: ``[N, 3, H, W]`` in [-1, 1] -> ``(class logits [N, C, H, W], heatmaps [N, K, H, W])``."""

    def __init__(self, config: AnnotatorConfig, num_classes: int = len(CLASSES), num_keypoints: int = len(KEYPOINTS)):
        super().__init__()
        w = config.width
        self.config, self.num_classes, self.num_keypoints = config, num_classes, num_keypoints
        self.enc = nn.ModuleList([_block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 4 * w)])
        self.dec = nn.ModuleList([_block(8 * w, 2 * w), _block(4 * w, w), _block(2 * w, w)])
        self.head = nn.Conv2d(w, num_classes + num_keypoints, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.dec, reversed(skips[:-1])):
            x = block(torch.cat([F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False), skip], 1))
        out = self.head(x)
        return out[:, :self.num_classes], out[:, self.num_classes:]

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / "model.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(tmp))
        write_json(directory / "config.json", {"config": config_to_dict(self.config), "classes": list(CLASSES),
                                               "keypoints": list(KEYPOINTS)})

    @classmethod
    def load(cls, directory: str | Path) -> "Annotator":
        directory = Path(directory)
        if not (directory / "config.json").exists() or not (directory / "model.safetensors").exists():
            raise UserError(f"{directory}: not an annotator folder (needs config.json and model.safetensors)")
        meta = read_json(directory / "config.json", "annotator config")
        try:
            model = cls(build_config(AnnotatorConfig, meta["config"]), len(meta["classes"]), len(meta["keypoints"]))
            model.load_state_dict(read_weights(directory / "model.safetensors"))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(directory, f"not a readable annotator ({type(exc).__name__}: {exc})") from None
        return model.eval()


def to_input(images: np.ndarray) -> torch.Tensor:
    """``[N, H, W, 3]`` uint8 -> ``[N, 3, H, W]`` float in [-1, 1] (the generator's range)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def keypoint_heatmaps(keypoints: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """``[N, K, 3]`` (x, y, visible; pixel-index units) -> ``[N, K, size, size]`` Gaussians (0 if invisible)."""
    r = torch.arange(size, dtype=torch.float32)
    gx = torch.exp(-(r[None, None, :] - keypoints[..., 0:1]) ** 2 / (2 * sigma ** 2))
    gy = torch.exp(-(r[None, None, :] - keypoints[..., 1:2]) ** 2 / (2 * sigma ** 2))
    return gy[..., :, None] * gx[..., None, :] * keypoints[..., 2, None, None]


def _augment(x: torch.Tensor, cfg: AnnotatorConfig, gen: torch.Generator) -> torch.Tensor:
    """Random blur, colour shift and noise on ``[N, 3, H, W]`` (labels unchanged)."""
    n = x.shape[0]
    sigma = torch.rand(n, generator=gen) * cfg.blur_max
    r = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-r[None] ** 2 / (2 * sigma[:, None].clamp(min=1e-3) ** 2))
    k = k / k.sum(1, keepdim=True)                                     # [N, 5]
    xp = F.pad(x, (2, 2, 2, 2), mode="replicate").reshape(1, n * 3, x.shape[2] + 4, x.shape[3] + 4)
    kk = k.repeat_interleave(3, 0)
    xp = F.conv2d(xp, kk[:, None, None, :], groups=n * 3)
    xp = F.conv2d(xp, kk[:, None, :, None], groups=n * 3)
    x = xp.reshape_as(x)
    x = x * (1 + 0.2 * (torch.rand(n, 3, 1, 1, generator=gen) - 0.5)) + 0.2 * (torch.rand(n, 3, 1, 1, generator=gen) - 0.5)
    x = x + torch.randn(x.shape, generator=gen) * 0.04 * torch.rand(n, 1, 1, 1, generator=gen)
    return x


def train_annotator(cfg: AnnotatorConfig, show_progress: bool = True) -> Annotator:
    """Render ``cfg.train_images`` faces and fit the annotator for ``cfg.steps`` steps."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    seeds = list(range(cfg.seed_start, cfg.seed_start + cfg.train_images))
    images, labels, keypoints = [], [], []
    for start in progress(range(0, len(seeds), 250), desc="annotator: render faces", unit="batch",
                          disable=not show_progress):
        r = render_batch(seeds[start:start + 250])
        images.append(r.images), labels.append(r.labels), keypoints.append(r.keypoints)
    images_t = to_input(np.concatenate(images))
    labels_t = torch.from_numpy(np.concatenate(labels)).long()
    keypoints_t = torch.from_numpy(np.concatenate(keypoints))
    freq = torch.bincount(labels_t.flatten(), minlength=len(CLASSES)).float().clamp(min=1)
    class_weight = (freq / freq.max()).pow(-cfg.class_weight_power).clamp(max=10)
    model = Annotator(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    model.train()
    bar = progress(range(cfg.steps), desc="annotator: train", unit="step", disable=not show_progress)
    for _ in bar:
        idx = torch.randint(len(images_t), (cfg.batch_size,), generator=gen)
        x = _augment(images_t[idx], cfg, gen)
        logits, heat = model(x)
        loss_seg = F.cross_entropy(logits, labels_t[idx], weight=class_weight)
        loss_kp = keypoint_loss(heat, keypoints_t[idx], cfg.heatmap_sigma) * cfg.keypoint_weight
        opt.zero_grad(set_to_none=True)
        (loss_seg + loss_kp).backward()
        opt.step()
        sched.step()
        bar.set_postfix(seg=f"{loss_seg.item():.3f}", kp=f"{loss_kp.item():.3f}", refresh=False)
    return model.eval()


def keypoint_loss(heat: torch.Tensor, keypoints: torch.Tensor, sigma: float) -> torch.Tensor:
    """Spatial cross-entropy of visible keypoints (softmax over pixels against a normalised
    Gaussian) plus a visibility term on each map's peak logit. ``heat [N, K, H, W]``."""
    n, k, h, w = heat.shape
    located = torch.cat([keypoints[..., :2], torch.ones_like(keypoints[..., 2:])], -1)  # every map a Gaussian
    target = keypoint_heatmaps(located, h, sigma).reshape(n, k, -1)
    target = target / target.sum(-1, keepdim=True).clamp(min=1e-8)
    flat = heat.reshape(n, k, -1)
    visible = keypoints[..., 2]
    ce = -(target * F.log_softmax(flat, -1)).sum(-1)
    ce = (ce * visible).sum() / visible.sum().clamp(min=1)
    vis = F.binary_cross_entropy_with_logits(flat.max(-1).values, visible)
    return ce + vis


def peaks(heat: torch.Tensor) -> np.ndarray:
    """``[N, K, H, W]`` logits -> ``[N, K, 3]`` (x, y, visible): the peak refined by the
    softmax-weighted 3x3 centroid; visible where the peak logit is positive."""
    n, k, h, w = heat.shape
    flat = heat.reshape(n, k, -1)
    value, arg = flat.max(-1)
    ys, xs = arg // w, arg % w
    out = np.zeros((n, k, 3), np.float32)
    prob = F.pad(torch.exp(heat - value[..., None, None]), (1, 1, 1, 1))
    d = torch.arange(-1, 2, dtype=torch.float32)
    for i in range(n):
        for j in range(k):
            y, x = int(ys[i, j]), int(xs[i, j])
            patch = prob[i, j, y:y + 3, x:x + 3]
            total = patch.sum().clamp(min=1e-8)
            out[i, j, 0] = x + float((patch.sum(0) * d).sum() / total)
            out[i, j, 1] = y + float((patch.sum(1) * d).sum() / total)
            out[i, j, 2] = float(value[i, j] > 0)
    return out


@torch.no_grad()
def annotate(model: Annotator, images: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Label ``[N, H, W, 3]`` uint8 images: ``(labels [N, H, W] uint8, keypoints [N, K, 3] float32)``."""
    model.eval()
    labels, keypoints = [], []
    for start in range(0, len(images), batch_size):
        logits, heat = model(to_input(images[start:start + batch_size]))
        labels.append(logits.argmax(1).to(torch.uint8).numpy())
        keypoints.append(peaks(heat))
    return np.concatenate(labels), np.concatenate(keypoints)


def annotate_folder(model: Annotator, image_dir: str | Path, stems: list[str], out: str | Path) -> Path:
    """Label ``image_dir/<stem>.png`` for each stem into ``out/<stem>.png`` (indexed, spec
    palette) and ``out/<stem>.json`` (keypoints). Returns ``out``."""
    from PIL import Image

    from datasetgan.demo.domain import label_spec
    from datasetgan.labels import LabelSpec, write_label_map

    out, spec = Path(out), LabelSpec.from_dict(label_spec())
    paths = [Path(image_dir) / f"{s}.png" for s in stems]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UserError(f"annotator: images not found: {', '.join(missing[:3])}")
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    labels, keypoints = annotate(model, images)
    for stem, lab, kp in zip(stems, labels, keypoints):
        write_label_map(out / f"{stem}.png", lab, spec)
        # numpy's rounding, not write_keypoints': the committed demo labels and results were made so
        write_json(out / f"{stem}.json", np.round(kp, 3).tolist(), indent=None)
    return out


def evaluate_annotator(model: Annotator, n: int = 200, seed_start: int = 5_000_000) -> dict:
    """Part IoU (percent) and keypoint error (pixels) on ``n`` rendered faces with exact labels."""
    r = render_batch(list(range(seed_start, seed_start + n)))
    labels, keypoints = annotate(model, r.images)
    c = len(CLASSES)
    conf = np.bincount(r.labels.ravel().astype(np.int64) * c + labels.ravel(), minlength=c * c).reshape(c, c)
    iou = np.diag(conf) / np.maximum(conf.sum(0) + conf.sum(1) - np.diag(conf), 1)
    visible = r.keypoints[..., 2] > 0
    err = np.linalg.norm(keypoints[..., :2] - r.keypoints[..., :2], axis=-1)
    return {"test_faces": n, "seed_start": seed_start, "miou": round(100 * float(iou.mean()), 2),
            "per_class_iou": {name: round(100 * float(v), 2) for name, v in zip(CLASSES, iou)},
            "keypoint_mean_error_px": round(float(err[visible].mean()), 3),
            "keypoint_visibility_accuracy": round(float(((keypoints[..., 2] > 0) == visible).mean()), 3)}

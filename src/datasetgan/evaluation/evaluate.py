"""Score a trained segmenter or keypoint run on real labelled images.

Every checkpoint of the run predicts every test image once; per-image
confusion matrices (or keypoint predictions) are kept, so k-fold selection
over checkpoints costs no further forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.progress import progress
from datasetgan.evaluation import metrics as M
from datasetgan.evaluation.config import EvaluationConfig
from datasetgan.evaluation.cv import cross_validate, kfold_splits, most_chosen, summarize
from datasetgan.labels import IGNORE, Item, LabelSpec, read_label_map, write_label_map
from datasetgan.segmenter.keypoints import decode_keypoints, rescale_keypoints
from datasetgan.segmenter.models import load_checkpoint
from datasetgan.segmenter.train import list_epochs


def resolve_checkpoints(model: str | Path) -> list[Path]:
    """A run folder -> its epoch checkpoints (oldest first); a checkpoint folder -> itself."""
    model = Path(model)
    if (model / "config.json").exists() and (model / "model.safetensors").exists():
        return [model]
    if not model.is_dir():
        raise UserError(f"--model {model}: folder not found")
    found = list_epochs(model)
    if not found:
        raise CheckpointError(model, "no epoch_*/ checkpoints (expected a train-segmenter/train-keypoints run)")
    return found


@dataclass
class TestSet:
    """Test images resized for the network, with labels at their own size."""

    items: list[Item]
    inputs: torch.Tensor                 # [N, 3, R, R] uint8
    sizes: list[tuple[int, int]]         # (H, W) of each label / image
    labels: list[np.ndarray] | None      # [H, W] uint8 class ids (segmentation)
    keypoints: np.ndarray | None         # [N, K, 3] (keypoints)

    @property
    def stems(self) -> list[str]:
        return [it.stem for it in self.items]


def load_test_set(items: list[Item], spec: LabelSpec, resolution: int, task: str, quiet: bool = False) -> TestSet:
    inputs, sizes, labels, kps = [], [], [], []
    for item in progress(items, desc="reading test set", unit="img", disable=quiet or None):
        image = Image.open(item.image).convert("RGB")
        w, h = image.size
        arr = np.asarray(image.resize((resolution, resolution), Image.BILINEAR))
        inputs.append(torch.from_numpy(arr.copy()).permute(2, 0, 1))
        sizes.append((h, w))
        if task == "segmentation":
            labels.append(read_label_map(item.label, spec, size=(h, w)).astype(np.uint8))
        else:
            kps.append(item.keypoints)
    return TestSet(items, torch.stack(inputs), sizes, labels if task == "segmentation" else None,
                   np.stack(kps) if task == "keypoints" else None)


@torch.no_grad()
def _forward(model: torch.nn.Module, inputs: torch.Tensor, device: torch.device, batch_size: int):
    """Yield ``(start index, outputs [B, C, R, R] float32 on CPU)``."""
    for i in range(0, len(inputs), batch_size):
        x = inputs[i:i + batch_size].to(device).float() / 255.0
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            out = model(x)
        yield i, out.float().cpu()


def predict_segmentation(model: torch.nn.Module, test: TestSet, device: torch.device,
                         batch_size: int = 8) -> list[np.ndarray]:
    """Class ids ``[H, W]`` uint8 per image at its label's size (logits upsampled bilinearly, then arg-max)."""
    preds = []
    for i, out in _forward(model, test.inputs, device, batch_size):
        for j in range(len(out)):
            h, w = test.sizes[i + j]
            logits = F.interpolate(out[j:j + 1], size=(h, w), mode="bilinear", align_corners=False)
            preds.append(logits[0].argmax(0).numpy().astype(np.uint8))
    return preds


def predict_keypoints(model: torch.nn.Module, test: TestSet, device: torch.device, batch_size: int = 8) -> np.ndarray:
    """``[N, K, 3]`` (x, y, confidence) in each image's own pixel coordinates, decoded by the model's head."""
    r = test.inputs.shape[-1]
    head = model.config.keypoint_head
    preds = []
    for i, out in _forward(model, test.inputs, device, batch_size):
        dec = decode_keypoints(out, head)
        for j in range(len(out)):
            preds.append(rescale_keypoints(dec[j], (r, r), test.sizes[i + j]).numpy())
    return np.stack(preds)


def check_spec(model_spec: LabelSpec, spec: LabelSpec, task: str, where: str) -> None:
    if task == "segmentation" and model_spec.classes != spec.classes:
        raise UserError(f"{where}: the model's classes {list(model_spec.classes)} differ from the test spec's "
                        f"{list(spec.classes)}")
    if task == "keypoints" and model_spec.num_keypoints != spec.num_keypoints:
        raise UserError(f"{where}: the model predicts {model_spec.num_keypoints} keypoints, the test spec names "
                        f"{spec.num_keypoints}")


@dataclass
class Evaluation:
    """Everything the report needs."""

    task: str
    metrics: dict
    checkpoint: Path                      # the checkpoint whose predictions are shown / saved
    predictions: list | np.ndarray        # of that checkpoint
    image_scores: np.ndarray              # [N] per-image score (mIoU or PCK@0.1) of that checkpoint
    confusion: np.ndarray | None = None
    test: TestSet | None = None


def evaluate(model_path: str | Path, items: list[Item], spec: LabelSpec, device: torch.device,
             config: EvaluationConfig | None = None, quiet: bool = False) -> Evaluation:
    """Score every checkpoint of ``model_path`` on ``items``; with ``config.cv_folds``, k-fold selection
    over them.

    Without cross-validation the last checkpoint is scored on all images.
    ``config.checkpoint_every`` keeps every n-th checkpoint, counted back from the last one.
    """
    config = config or EvaluationConfig()
    cv_folds, cv_seed, batch_size = config.cv_folds, config.cv_seed, config.batch_size
    ckpts = resolve_checkpoints(model_path)
    ckpts = ckpts[::-1][::config.checkpoint_every][::-1]
    _, model_spec, meta = load_checkpoint(ckpts[-1])
    task, resolution = meta["model"]["task"], int(meta["model"]["resolution"])
    check_spec(model_spec, spec, task, str(model_path))
    test = load_test_set(items, spec, resolution, task, quiet=quiet)
    n = len(items)
    folds = kfold_splits(n, cv_folds, cv_seed) if cv_folds else None
    per_ckpt: list = []
    last_preds: list = []
    ignore = IGNORE if spec.has_ignore else None
    for ckpt in progress(ckpts if folds else ckpts[-1:], desc="checkpoints", unit="ckpt", disable=quiet or None):
        model, _, _ = load_checkpoint(ckpt, device)
        if task == "segmentation":
            preds = last_preds = predict_segmentation(model, test, device, batch_size)
            cms = np.stack([M.confusion_matrix(p, t, spec.num_classes, ignore) for p, t in zip(preds, test.labels)])
            per_ckpt.append(cms)
        else:
            per_ckpt.append(predict_keypoints(model, test, device, batch_size))
    candidates = ckpts if folds else ckpts[-1:]

    def score(c: int, idx: np.ndarray) -> float:
        if task == "segmentation":
            return M.mean_iou(per_ckpt[c][idx].sum(0))
        return M.pck(per_ckpt[c][idx], test.keypoints[idx], 0.1)

    out: dict = {"task": task, "num_images": n, "checkpoints": len(candidates)}
    if folds:
        results = cross_validate(len(candidates), folds, score)
        mean, std = summarize(results)
        chosen = most_chosen(results)
        out["last_checkpoint_score"] = score(len(candidates) - 1, np.arange(n))
        out["cv"] = {"folds": cv_folds, "seed": cv_seed, "mean": mean, "std": std,
                     "per_fold": [{"fold": r.fold, "checkpoint": candidates[r.chosen].name,
                                   "select_score": r.select_score, "score": r.score} for r in results]}
    else:
        results, chosen = [], 0
    ckpt = candidates[chosen]
    out["checkpoint"] = ckpt.name
    if task == "segmentation":
        if folds:
            rest = [np.setdiff1d(np.arange(n), folds[r.fold]) for r in results]
            confusion = sum(per_ckpt[r.chosen][idx].sum(0) for r, idx in zip(results, rest))
            ious = np.mean([M.iou_per_class(per_ckpt[r.chosen][idx].sum(0)) for r, idx in zip(results, rest)], 0)
            out["miou"], out["miou_std"] = mean, std
        else:
            confusion = per_ckpt[0].sum(0)
            ious = M.iou_per_class(confusion)
            out["miou"] = float(ious.mean())
        out["per_class_iou"] = {c: float(v) for c, v in zip(spec.classes, ious)}
        out["pixel_accuracy"] = M.pixel_accuracy(confusion)
        out["confusion_matrix"] = confusion.astype(int).tolist()
        if chosen == len(candidates) - 1:
            preds = last_preds
        else:
            preds = predict_segmentation(load_checkpoint(ckpt, device)[0], test, device, batch_size)
        scores = np.array([M.image_score(c) for c in per_ckpt[chosen]])
        return Evaluation(task, out, ckpt, preds, scores, confusion, test)
    preds = per_ckpt[chosen]
    if folds:
        rest = [np.setdiff1d(np.arange(n), folds[r.fold]) for r in results]
        for alpha in (0.05, 0.1):
            vals = [M.pck(per_ckpt[r.chosen][idx], test.keypoints[idx], alpha) for r, idx in zip(results, rest)]
            out[f"pck_{alpha}"], out[f"pck_{alpha}_std"] = float(np.mean(vals)), float(np.std(vals))
        vals = [M.mean_l2(per_ckpt[r.chosen][idx], test.keypoints[idx]) for r, idx in zip(results, rest)]
        out["mean_l2"], out["mean_l2_std"] = float(np.mean(vals)), float(np.std(vals))
    else:
        for alpha in (0.05, 0.1):
            out[f"pck_{alpha}"] = M.pck(preds, test.keypoints, alpha)
        out["mean_l2"] = M.mean_l2(preds, test.keypoints)
    scores = np.array([M.pck(preds[i:i + 1], test.keypoints[i:i + 1], 0.1) for i in range(n)])
    return Evaluation(task, out, ckpt, preds, scores, None, test)


def save_predictions(folder: str | Path, evaluation: Evaluation, items: list[Item], spec: LabelSpec) -> None:
    """Segmentation: ``<stem>.png`` indexed class-id PNGs at the label's size; keypoints: ``<stem>.json``."""
    from datasetgan.core.fileio import write_json
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for item, pred in zip(items, evaluation.predictions):
        if evaluation.task == "segmentation":
            write_label_map(folder / f"{item.stem}.png", pred, spec)
        else:
            write_json(folder / f"{item.stem}.json", [[float(x), float(y), 1] for x, y, _ in pred], indent=None)

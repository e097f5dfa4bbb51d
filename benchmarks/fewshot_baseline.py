"""Few-shot real-data baseline rows (the "transfer learning" rows DatasetGAN must beat).

    python benchmarks/fewshot_baseline.py ../shared/data [--work /tmp/fewshot] [--arch ...] [--device cpu]

1. FASSEG: DeepLabV3 trained on ``V2/Train`` (20 images), scored on ``V2/Test``
   (50 images). Faces are cropped like UTKFace: a square around the inner
   face (eyes, nose, mouth) - side max(2.0 x their width, 1.9 x their height),
   eyes at 40% of the height, clamped to the image - then resized to R x R
   (64 and 128); mIoU is computed at R x R.
2. Helen: keypoint network (integral head) trained on 16 images drawn
   (seeded) from the pool (names sorted: first 248), scored on the last 100 by
   PCK@0.05/0.1 (larger side of the keypoints' bounding box) and mean L2 in
   original pixels. With ``--helen-crop S`` (default 1.5) every photo is first
   framed like UTKFace from its own keypoints (``labels.helen.face_crop_box``;
   the DatasetGAN row must use the same test crops:
   ``datasetgan import-helen ROOT --subset test --crop 1.5 --out DIR``);
   ``--helen-crop 0`` keeps the whole photos.

Training from scratch (no ImageNet weights here) on 20 images needs far more
than the 20-30 epochs of the reference's pretrained baseline: 20 images in
batches of 8 are 3 steps an epoch, so the defaults are 200 epochs (600 steps)
with a cosine-decayed rate, checkpoints every 20 epochs for the
cross-validation.

Each row is printed side by side with a straightforward yardstick measured in
the same run: the per-pixel most frequent training class (segmentation) and
the mean training shape (keypoints). Scores use 5-fold cross-validation over
the epoch checkpoints (1/5 picks, 4/5 scores) as the reference does, plus the
last checkpoint on all test images. Derived files go to ``--work`` (outside
the project; never commit them).

Plain DeepLabV3 has no decoder: its logits are a bilinear upsampling of a
grid 1/16 of the input (4 x 4 at 64 px), too coarse for eyes and mouth. The
default network is therefore DeepLabV3+ (``--seg-decoder plus``, a stride-4
decoder) with frequency-weighted cross-entropy (``--seg-class-weight-power
0.5``), the segmenter the demo's DatasetGAN rows use; the baseline must use
the same network as the row it is compared with. Without the decoder the
backbone runs at output stride 8 up to 64 px.

Measured (2026-11-25, CPU, 1 thread per run on 2 shared cores, seed 0; all
200 cosine epochs, 5-fold CV over checkpoints every 20 epochs; "prior" is the
per-pixel most frequent training class)::

    python benchmarks/fewshot_baseline.py ../shared/data --work W --resolutions 64 --skip-helen --device cpu
    FASSEG 64x64,   DeepLabV3+, cw 0.5:  76.68 +- 0.38 mIoU (last 76.68); prior 52.43 (train 439 s)
    FASSEG 128x128, DeepLabV3+, cw 0.5:  80.63 +- 0.30 mIoU (last 80.63); prior 52.62 (train 756 s)

    ... --seg-decoder none --seg-class-weight-power 0 [--seg-output-stride 16]
    FASSEG 128x128, DeepLabV3 OS 16:     64.47 +- 0.47 mIoU (last 64.33); prior 52.62 (train 2034 s)
    FASSEG 64x64,   DeepLabV3 OS 8:      57.26 +- 0.40 mIoU (last 57.36)              (train 1431 s)
    FASSEG 64x64,   DeepLabV3 OS 16:     34.81 +- 0.38 mIoU (last 33.84); training-set mIoU only 38.2

    python benchmarks/fewshot_baseline.py ../shared/data --work W --skip-fasseg --device cpu [--helen-crop 0]
    Helen 128 px, crop 1.5, 16 images:   PCK@0.1 81.50 +- 1.29, PCK@0.05 46.20, mean L2 8.36 px;
                                         mean training shape 72.86 / 38.34 / 9.63 px  (train 1760 s)
    Helen 128 px, whole photos:          PCK@0.1 19.85 +- 1.52, PCK@0.05 5.96, mean L2 32.06 px;
                                         mean training shape 16.62 / 4.24 / 27.71 px  (train 901 s)

The earlier schedule (30 epochs, constant rate) gave 44.20 +- 0.56 (128) and
30.16 +- 0.38 (64), below the prior; the earlier heatmap head could not fit
its own training images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datasetgan.core.devices import resolve_device
from datasetgan.core.images import save_png
from datasetgan.evaluation import metrics as M
from datasetgan.evaluation.config import EvaluationConfig
from datasetgan.evaluation.evaluate import evaluate
from datasetgan.evaluation.report import write_outputs
from datasetgan.labels import LabelSpec, load_label_spec, read_label_map, write_label_map
from datasetgan.labels.helen import crop_items, helen_items, helen_split
from datasetgan.segmenter.data import collect_items
from datasetgan.segmenter.config import SegmenterTrainingConfig
from datasetgan.segmenter.train import train

REPO = Path(__file__).resolve().parents[1]
FACE_PARTS = (3, 4, 5)   # eyes, nose, mouth in configs/labels/fasseg.yaml


def face_box(labels: np.ndarray) -> tuple[float, float, float, float]:
    """Square crop ``(x0, y0, x1, y1)`` framing the face from forehead to chin (see module docstring)."""
    ys, xs = np.nonzero(np.isin(labels, FACE_PARTS))
    fw, fh = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    h, w = labels.shape
    side = min(max(2.0 * fw, 1.9 * fh), h, w)
    eye_y = np.nonzero(labels == 3)[0].mean()
    cx = (xs.max() + xs.min()) / 2
    x0 = min(max(cx - side / 2, 0.0), w - side)
    y0 = min(max(eye_y - 0.4 * side, 0.0), h - side)
    return float(x0), float(y0), float(x0 + side), float(y0 + side)


def prepare_fasseg(root: Path, work: Path, spec: LabelSpec, resolutions: list[int]) -> None:
    """Write cropped, resized FASSEG splits: work/fasseg_R/{train,test}/{images,labels}/<stem>.png."""
    for split, rgb, lab in (("train", "Train_RGB", "Train_Labels"), ("test", "Test_RGB", "Test_Labels")):
        for label_path in sorted((root / "fasseg" / "V2" / lab).glob("*.png")):
            labels = read_label_map(label_path, spec)
            image = Image.open(root / "fasseg" / "V2" / rgb / label_path.name).convert("RGB")
            box = face_box(labels)
            for r in resolutions:
                base = work / f"fasseg_{r}" / split
                save_png(base / "images" / label_path.name, np.asarray(image.resize((r, r), Image.BILINEAR, box=box)))
                lab_img = Image.fromarray(labels.astype(np.uint8), mode="L").resize((r, r), Image.NEAREST, box=box)
                write_label_map(base / "labels" / label_path.name, np.asarray(lab_img), spec)


def prior_miou(train_items, test_items, spec: LabelSpec, r: int) -> float:
    """Yardstick: predict every test pixel as the training set's most frequent class at that position."""
    counts = np.zeros((spec.num_classes, r, r))
    for it in train_items:
        lab = read_label_map(it.label, spec)
        counts += np.eye(spec.num_classes)[lab].transpose(2, 0, 1)
    prior = counts.argmax(0)
    cm = sum(M.confusion_matrix(prior, read_label_map(it.label, spec), spec.num_classes) for it in test_items)
    return M.mean_iou(cm)


def mean_shape_pck(train_items, test_items) -> dict:
    """Yardstick: the mean training shape in relative image coordinates, placed on each test image."""
    def rel(it):
        w, h = Image.open(it.image).size
        return it.keypoints[:, :2] / np.array([w, h]), (w, h)
    mean = np.mean([rel(it)[0] for it in train_items], 0)
    preds, truth = [], []
    for it in test_items:
        _, (w, h) = rel(it)
        preds.append(mean * np.array([w, h]))
        truth.append(it.keypoints)
    preds, truth = np.stack(preds), np.stack(truth)
    return {"pck_0.05": M.pck(preds, truth, 0.05), "pck_0.1": M.pck(preds, truth, 0.1),
            "mean_l2": M.mean_l2(preds, truth)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_root", type=Path, help="the shared data folder (fasseg/, helen/)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/datasetgan_fewshot"), help="derived files and runs")
    ap.add_argument("--arch", default="deeplabv3_mobilenet_v3_large")
    ap.add_argument("--backbone-weights", default=None, help="local ImageNet weights (optional)")
    ap.add_argument("--resolutions", default="64,128", help="FASSEG resolutions (default 64,128)")
    ap.add_argument("--seg-epochs", type=int, default=200)
    ap.add_argument("--kp-epochs", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-schedule", default="cosine", choices=("constant", "cosine"))
    ap.add_argument("--kp-resolution", type=int, default=128)
    ap.add_argument("--seg-output-stride", type=int, default=None, choices=(8, 16),
                    help="default: 8 up to 64 px without a decoder, else 16 (the logit grid is then at least 8 x 8)")
    ap.add_argument("--seg-decoder", default="plus", choices=("none", "plus"),
                    help="plus: DeepLabV3+'s stride-4 decoder (use what the DatasetGAN row uses)")
    ap.add_argument("--seg-class-weight-power", type=float, default=0.5,
                    help="frequency-weighted cross-entropy (0 = plain)")
    ap.add_argument("--kp-output-stride", type=int, default=None, choices=(8, 16))
    ap.add_argument("--kp-head", default="integral", choices=("integral", "heatmap"))
    ap.add_argument("--helen-crop", type=float, default=1.5, help="face crop scale (0 = whole photos)")
    ap.add_argument("--helen-train", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--cv-folds", type=int, default=5)
    ap.add_argument("--checkpoint-every", type=int, default=20,
                    help="keep a checkpoint every N epochs; CV selects among them")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--skip-fasseg", action="store_true")
    ap.add_argument("--skip-helen", action="store_true")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    spec = load_label_spec(REPO / "configs" / "labels" / "fasseg.yaml")
    resolutions = [int(r) for r in args.resolutions.split(",") if r]
    work = args.work
    rows, results = [], {"args": {k: str(v) for k, v in vars(args).items()}, "device": str(device),
                         "torch_threads": torch.get_num_threads()}
    base = dict(arch=args.arch, batch_size=args.batch_size, seed=args.seed, backbone_weights=args.backbone_weights,
                lr=args.lr, lr_schedule=args.lr_schedule, checkpoint_every=args.checkpoint_every)

    if not args.skip_fasseg:
        prepare_fasseg(args.data_root, work, spec, resolutions)
        for r in resolutions:
            d = work / f"fasseg_{r}"
            train_items, _ = collect_items("segmentation", images=d / "train/images", labels=d / "train/labels", spec=spec)
            test_items, _ = collect_items("segmentation", images=d / "test/images", labels=d / "test/labels", spec=spec)
            stride = args.seg_output_stride or (8 if r <= 64 and args.seg_decoder == "none" else 16)
            cfg = SegmenterTrainingConfig(epochs=args.seg_epochs, resolution=r, output_stride=stride,
                                          decoder=args.seg_decoder, class_weight_power=args.seg_class_weight_power,
                                          **base)
            t0 = time.time()
            run = train(train_items, spec, "segmentation", cfg, work / f"run_fasseg_{r}", device, quiet=True)
            t_train = time.time() - t0
            t0 = time.time()
            ev = evaluate(run, test_items, spec, device, EvaluationConfig(cv_folds=args.cv_folds, cv_seed=args.seed),
                          quiet=True)
            write_outputs(work / f"eval_fasseg_{r}", ev, test_items, spec, f"FASSEG few-shot baseline {r}x{r}")
            m = ev.metrics
            yard = prior_miou(train_items, test_items, spec, r)
            results[f"fasseg_{r}"] = {"miou_cv": m["miou"], "miou_cv_std": m["miou_std"],
                                      "miou_last": m["last_checkpoint_score"], "per_class_iou": m["per_class_iou"],
                                      "prior_miou": yard, "train_s": round(t_train, 1),
                                      "eval_s": round(time.time() - t0, 1)}
            rows.append((f"FASSEG {r}x{r}, 20 real (mIoU %)", f"{100 * m['miou']:.2f} ± {100 * m['miou_std']:.2f}",
                         f"{100 * m['last_checkpoint_score']:.2f}", f"{100 * yard:.2f}",
                         f"{100 * (m['miou'] - yard):+.2f}", f"{t_train:.0f}"))
            print(rows[-1], flush=True)

    if not args.skip_helen:
        items, kspec = helen_items(args.data_root / "helen")
        pool, test = helen_split(items)
        rng = np.random.default_rng(args.seed)
        chosen = [pool[i] for i in sorted(rng.choice(len(pool), size=args.helen_train, replace=False))]
        if args.helen_crop:
            chosen = crop_items(chosen, work / "helen_crop" / "train", args.helen_crop)
            test = crop_items(test, work / "helen_crop" / "test", args.helen_crop)
        cfg = SegmenterTrainingConfig(epochs=args.kp_epochs, resolution=args.kp_resolution,
                                      output_stride=args.kp_output_stride, keypoint_head=args.kp_head, **base)
        t0 = time.time()
        run = train(chosen, kspec, "keypoints", cfg, work / "run_helen", device, quiet=True)
        t_train = time.time() - t0
        ev = evaluate(run, test, kspec, device, EvaluationConfig(cv_folds=args.cv_folds, cv_seed=args.seed),
                      quiet=True)
        write_outputs(work / "eval_helen", ev, test, kspec, "Helen few-shot keypoint baseline")
        m, yard = ev.metrics, mean_shape_pck(chosen, test)
        results["helen"] = {**{k: m[k] for k in m if k.startswith(("pck", "mean_l2", "last"))},
                            "train_stems": [it.stem for it in chosen], "mean_shape": yard, "train_s": round(t_train, 1)}
        rows.append((f"Helen {args.kp_resolution}px crop {args.helen_crop}, {args.helen_train} real (PCK@0.1 %)",
                     f"{100 * m['pck_0.1']:.2f} ± {100 * m['pck_0.1_std']:.2f}",
                     f"{100 * m['last_checkpoint_score']:.2f}", f"{100 * yard['pck_0.1']:.2f}",
                     f"{100 * (m['pck_0.1'] - yard['pck_0.1']):+.2f}", f"{t_train:.0f}"))
        rows.append((f"Helen PCK@0.05 % / mean L2 px", f"{100 * m['pck_0.05']:.2f} / {m['mean_l2']:.2f}", "",
                     f"{100 * yard['pck_0.05']:.2f} / {yard['mean_l2']:.2f}", "", ""))

    header = ("row", f"DeepLabV3 ({args.cv_folds}-fold CV)", "last epoch", "yardstick", "gain", "train s")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    print("yardstick: per-pixel most frequent training class (FASSEG) / mean training shape (Helen), same run")
    # Merge with earlier invocations (e.g. one resolution at a time on a slow machine).
    old = json.loads((work / "results.json").read_text()) if (work / "results.json").exists() else {}
    (work / "results.json").write_text(json.dumps({**old, **results}, indent=2))
    print(f"wrote {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

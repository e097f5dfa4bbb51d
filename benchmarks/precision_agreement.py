"""How far ``synthesize --precision bfloat16`` moves the labels of a real
generator and interpreter: each seed is rendered as ``synthesize`` renders it
(``render_batch``) and labelled three ways from the same features:

- the straightforward path (upsample, concatenate, every member's MLP per
  pixel, float32): the yardstick;
- the fast path with float32 first-layer matmuls;
- the fast path with bfloat16 first-layer matmuls.

Segmentation: prints, for each fast path, the share of pixels whose label
equals the yardstick's (the issue's target: >= 99.9%), the same over the
pixels that ``--ignore-pixels-above JS`` would keep, and the largest change of
the per-pixel Jensen-Shannon divergence and of the per-image score.
Keypoints: the mean and largest keypoint displacement (pixels, over keypoints
visible in both) and the share of equal visibility decisions.

    .venv/bin/python benchmarks/precision_agreement.py src/datasetgan/assets/demo_generator \\
        demo-output/interpreter --images 200 --truncation 1.0 --ignore-above 0.15
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch
from tqdm.auto import tqdm

from datasetgan.generator import load_generator
from datasetgan.interpreter.artifact import Interpreter
from datasetgan.interpreter.predict import Prediction, Workspace, predict_straightforward
from datasetgan.synthesis.render import padded_batch_size, render_batch

PRECISIONS = ("float32", "bfloat16")


def compare(fast: Prediction, ref: Prediction, ignore_above: float, totals: dict) -> None:
    """Add one batch's differences between ``fast`` and the yardstick ``ref`` to ``totals``."""
    totals["max_uncertainty_diff"] = max(totals["max_uncertainty_diff"],
                                         float((fast.uncertainty - ref.uncertainty).abs().max()))
    totals["max_score_diff"] = max(totals["max_score_diff"], float((fast.scores - ref.scores).abs().max()))
    if ref.labels is not None:
        equal = fast.labels == ref.labels
        keep = ref.uncertainty <= ignore_above
        totals["pixels"] += equal.numel()
        totals["equal"] += int(equal.sum())
        totals["kept"] += int(keep.sum())
        totals["equal_kept"] += int((equal & keep).sum())
        return
    both = (fast.keypoints[..., 2] > 0) & (ref.keypoints[..., 2] > 0)
    shift = (fast.keypoints[..., :2] - ref.keypoints[..., :2]).norm(dim=-1)[both]
    totals["keypoints"] += fast.keypoints[..., 2].numel()
    totals["same_visibility"] += int((fast.keypoints[..., 2] == ref.keypoints[..., 2]).sum())
    totals["visible"] += int(both.sum())
    totals["shift_sum"] += float(shift.sum())
    totals["max_shift"] = max(totals["max_shift"], float(shift.max()) if shift.numel() else 0.0)


def report(name: str, t: dict, ignore_above: float) -> str:
    tail = (f"max |uncertainty difference| {t['max_uncertainty_diff']:.2e}, "
            f"max |score difference| {t['max_score_diff']:.2e}")
    if t["pixels"]:
        return (f"fast {name}: labels equal to the straightforward path's on {100 * t['equal'] / t['pixels']:.4f}% "
                f"of pixels (target >= 99.9), {100 * t['equal_kept'] / max(t['kept'], 1):.4f}% of those with "
                f"JS <= {ignore_above}; {tail}")
    return (f"fast {name}: keypoints moved by {t['shift_sum'] / max(t['visible'], 1):.4f} px on average, "
            f"{t['max_shift']:.4f} px at most ({int(t['visible'])} visible in both); visibility equal for "
            f"{100 * t['same_visibility'] / max(t['keypoints'], 1):.3f}% of keypoints; {tail}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("generator", help="a checkpoint `datasetgan synthesize --generator` takes")
    ap.add_argument("interpreter", help="a `datasetgan train-interpreter` folder")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--seed-start", type=int, default=100000)
    ap.add_argument("--truncation", type=float, default=0.7)
    ap.add_argument("--ignore-above", type=float, default=0.15,
                    help="segmentation: also count agreement over the pixels with JS <= this (as "
                         "--ignore-pixels-above)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    G = load_generator(args.generator).eval()
    interp = Interpreter.load(args.interpreter).bind(G, source=args.interpreter)
    seeds = list(range(args.seed_start, args.seed_start + args.images))
    size = padded_batch_size(args.batch_size, len(seeds))
    ws = Workspace()
    totals = {name: defaultdict(float) for name in PRECISIONS}
    with torch.no_grad():
        for start in tqdm(range(0, len(seeds), size), desc="seeds", unit="batch"):
            batch = seeds[start:start + size]
            img, feats = render_batch(G, batch, size, args.truncation)
            ref = predict_straightforward(interp.model, interp.selection.pick(feats, img), interp.out_size,
                                          interp.upsample, interp.task, interp.visibility_threshold)
            for name in PRECISIONS:
                fast = interp.predict(feats, img, workspace=ws, first_layer_dtype=getattr(torch, name))
                compare(fast, ref, args.ignore_above, totals[name])
    what = (f"{100 * totals['float32']['kept'] / totals['float32']['pixels']:.2f}% of pixels have JS <= "
            f"{args.ignore_above}" if interp.task == "segmentation" else f"{interp.model.config.num_outputs} keypoints")
    print(f"{len(seeds)} images of {interp.out_size}, truncation {args.truncation}, "
          f"{interp.model.config.members} members, {interp.task}; {what}")
    for name in PRECISIONS:
        print(report(name, totals[name], args.ignore_above))


if __name__ == "__main__":
    main()

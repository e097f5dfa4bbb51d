"""How far ``synthesize --precision bfloat16`` moves the labels of a real
generator and interpreter: each seed is rendered as ``synthesize`` renders it
(``render_batch``) and labelled three ways from the same features:

- the straightforward path (upsample, concatenate, every member's MLP per
  pixel, float32): the yardstick;
- the fast path with float32 first-layer matmuls;
- the fast path with bfloat16 first-layer matmuls.

Prints, for each fast path, the share of pixels whose label equals the
yardstick's (the issue's target: >= 99.9%), the same over the pixels that
``--ignore-pixels-above JS`` would keep, and the largest change of the
per-pixel Jensen-Shannon divergence and of the per-image score.

    .venv/bin/python benchmarks/precision_agreement.py src/datasetgan/assets/demo_generator \\
        demo-output/interpreter --images 64 --truncation 1.0 --ignore-above 0.15
"""

from __future__ import annotations

import argparse

import torch
from tqdm.auto import tqdm

from datasetgan.generator import load_generator
from datasetgan.interpreter.artifact import Interpreter
from datasetgan.interpreter.predict import Workspace, predict, predict_straightforward
from datasetgan.synthesis.render import padded_batch_size, render_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("generator", help="a checkpoint `datasetgan synthesize --generator` takes")
    ap.add_argument("interpreter", help="a `datasetgan train-interpreter` folder (segmentation)")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--seed-start", type=int, default=100000)
    ap.add_argument("--truncation", type=float, default=0.7)
    ap.add_argument("--ignore-above", type=float, default=0.15,
                    help="also count agreement over the pixels with JS <= this (as --ignore-pixels-above)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    G = load_generator(args.generator).eval()
    interp = Interpreter.load(args.interpreter)
    if interp.task != "segmentation":
        raise SystemExit(f"{args.interpreter}: a {interp.task} interpreter; this compares segmentation labels")
    sel = interp.selected_features(G, source=args.interpreter)
    seeds = list(range(args.seed_start, args.seed_start + args.images))
    size = padded_batch_size(args.batch_size, len(seeds))
    ws = Workspace()
    names = ("float32", "bfloat16")
    same = {k: 0 for k in names}
    same_kept = {k: 0 for k in names}
    js_err = {k: 0.0 for k in names}
    score_err = {k: 0.0 for k in names}
    pixels = kept = 0
    with torch.no_grad():
        for start in tqdm(range(0, len(seeds), size), desc="seeds", unit="batch"):
            batch = seeds[start:start + size]
            _, feats = render_batch(G, batch, size, args.truncation)
            maps = sel.pick(feats)
            ref = predict_straightforward(interp.model, maps, interp.out_size, interp.upsample)
            keep = ref.uncertainty <= args.ignore_above
            pixels += ref.labels.numel()
            kept += int(keep.sum())
            for name in names:
                fast = predict(interp.model, maps, interp.out_size, interp.upsample, workspace=ws,
                               first_layer_dtype=getattr(torch, name))
                equal = fast.labels == ref.labels
                same[name] += int(equal.sum())
                same_kept[name] += int((equal & keep).sum())
                js_err[name] = max(js_err[name], float((fast.uncertainty - ref.uncertainty).abs().max()))
                score_err[name] = max(score_err[name], float((fast.scores - ref.scores).abs().max()))
    print(f"{len(seeds)} images of {interp.out_size}, truncation {args.truncation}, "
          f"{interp.model.config.members} members; {100 * kept / pixels:.2f}% of pixels have JS <= "
          f"{args.ignore_above}")
    for name in names:
        print(f"fast {name}: labels equal to the straightforward path's on {100 * same[name] / pixels:.4f}% "
              f"of pixels (target >= 99.9), {100 * same_kept[name] / max(kept, 1):.4f}% of those with "
              f"JS <= {args.ignore_above}; max |JS difference| {js_err[name]:.2e}, "
              f"max |score difference| {score_err[name]:.2e}")


if __name__ == "__main__":
    main()

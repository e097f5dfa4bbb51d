"""What keeping freed memory (``datasetgan.core.memory.keep_freed_memory``,
which the ``datasetgan`` command turns on) is worth, side by side in one run.

The setting is process-wide, so each variant runs in its own child process,
alternating (plain glibc malloc, kept, plain, kept, ...) so that a change in
machine load hits both alike. Each child times what ``synthesize`` does per
batch on a randomly initialised 256x256 StyleGAN2 (``render_batch``: image
and feature maps) and ``predict`` on those maps with a 10-member ensemble,
and reports its medians. Prints the medians of each variant and the ratios.

    .venv/bin/python benchmarks/freed_memory.py --threads 2 [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import torch
from datasetgan.core.memory import keep_freed_memory
kept = sys.argv[1] == "kept"
took = keep_freed_memory() if kept else False
torch.set_num_threads(int(sys.argv[2]))
from datasetgan.features import FeatureConfig, select_features
from datasetgan.generator import Generator, GeneratorConfig
from datasetgan.interpreter.model import EnsembleConfig, EnsembleMLP
from datasetgan.interpreter.predict import Workspace, predict
from datasetgan.synthesis.render import render_batch
torch.manual_seed(0)
R, batch, iters = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
G = Generator(GeneratorConfig(img_resolution=R)).eval()
sel = select_features(G.feature_spec, FeatureConfig())
model = EnsembleMLP(EnsembleConfig(sel.width, 8)).eval()
ws = Workspace()
seeds = list(range(batch))
times = {"render": [], "predict": []}
with torch.no_grad():
    for i in range(iters + 1):
        t0 = time.perf_counter()
        img, maps = render_batch(G, seeds, batch, 0.7)
        t1 = time.perf_counter()
        predict(model, sel.pick(maps), R, workspace=ws)
        t2 = time.perf_counter()
        if i:  # the first round warms up
            times["render"].append(t1 - t0)
            times["predict"].append(t2 - t1)
print(json.dumps({"took": took, **{k: sorted(v)[len(v) // 2] / batch for k, v in times.items()}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3, help="timed batches per child")
    ap.add_argument("--rounds", type=int, default=3, help="children per variant")
    args = ap.parse_args()
    results: dict[str, list[dict]] = {"plain": [], "kept": []}
    for r in range(args.rounds):
        for variant in results:
            out = subprocess.run([sys.executable, "-c", CHILD, variant, str(args.threads),
                                  str(args.resolution), str(args.batch_size), str(args.iters)],
                                 check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            results[variant].append(row)
            print(f"  round {r + 1}/{args.rounds} {variant:>5}: render {row['render']:.3f} s/image, "
                  f"predict {row['predict']:.3f} s/image", flush=True)
    if not all(row["took"] for row in results["kept"]):
        print("keep_freed_memory() did not take effect here (not glibc?): the two variants are the same")
    med = {v: {k: statistics.median(row[k] for row in rows) for k in ("render", "predict")}
           for v, rows in results.items()}
    print(f"{args.resolution}x{args.resolution}, batch {args.batch_size}, {args.threads} threads, "
          f"medians of {args.rounds} children x {args.iters} batches:")
    for k in ("render", "predict"):
        print(f"  {k:>8}: plain malloc {med['plain'][k]:.3f} s/image, kept {med['kept'][k]:.3f} s/image, "
              f"{med['plain'][k] / med['kept'][k]:.2f}x")
    both = {v: m["render"] + m["predict"] for v, m in med.items()}
    print(f"  together: {both['plain'] / both['kept']:.2f}x")


if __name__ == "__main__":
    main()

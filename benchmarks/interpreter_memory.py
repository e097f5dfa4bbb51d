"""Peak host memory of `train-interpreter` on a Face-34-shaped problem, next to
the straightforward way (every labelled pixel's full feature vector in memory).

Face-34 shape: 16 labelled 512x512 images, a 512x512 StyleGAN2 (NVIDIA's
config: channel_base 32768, channel_max 512 -> 5,504 feature channels),
34 classes, 10 members. The generator is randomly initialised: memory does
not depend on the weights. Training is capped with --max-steps (memory is
reached at the first step; the rest is time).

Each measurement runs in its own subprocess; peak RSS is the child's
``ru_maxrss``. The straightforward version is measured on a scaled-down copy
(fewer images, lower label resolution, same feature width) and extrapolated
linearly in the number of labelled pixels.

    nice -n 10 .venv/bin/python benchmarks/interpreter_memory.py [--images 16] [--max-steps 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GB = 1024 ** 3


def run_child(code: str, *args: str) -> tuple[int, str]:
    """Run ``code`` in a fresh Python; return (peak RSS bytes of that child, its stdout)."""
    wrapper = ("import resource, subprocess, sys\n"
               "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "sys.stderr.write(p.stderr[-3000:])\n"
               "print(p.stdout, end='')\n"
               "print('RC', p.returncode)\n"
               "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-c", code, *args],
                         capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    if lines[-2] != "RC 0":
        raise SystemExit(f"child failed:\n{out.stdout}\n{out.stderr}")
    return int(lines[-1].split()[1]) * 1024, "\n".join(lines[:-2])


PREPARE = r"""
import json, sys
from pathlib import Path
import numpy as np, torch
from PIL import Image
from safetensors.torch import save_file
from datasetgan.generator import Generator, GeneratorConfig, generator_fingerprint, z_from_seeds
root, images, res, classes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
G = Generator(GeneratorConfig(img_resolution=res, channel_base=32768, channel_max=512)).eval()
G.save_pretrained(root / "G")
seeds = list(range(images))
with torch.no_grad():
    z = z_from_seeds(seeds, G.z_dim); w = G.mapping(z, None, truncation_psi=0.7)
s = root / "samples"; (s / "images").mkdir(parents=True)
save_file({"z": z, "w": w.contiguous(), "seeds": torch.tensor(seeds)}, str(s / "latents.safetensors"))
(s / "samples.jsonl").write_text("".join(json.dumps({"seed": k, "truncation_psi": 0.7, "noise_mode": "const",
    "image": f"images/{k:06d}.png"}) + "\n" for k in seeds))
(s / "generator.json").write_text(json.dumps({"checkpoint": str(root / "G"), "fingerprint": generator_fingerprint(G)}))
(root / "labels").mkdir()
rng = np.random.RandomState(0)
for k in seeds:  # blocky masks with every class present
    coarse = rng.randint(0, classes, size=(16, 16)).astype(np.uint8)
    coarse.flat[:classes] = np.arange(classes)
    Image.fromarray(np.kron(coarse, np.ones((res // 16, res // 16), np.uint8))).save(root / "labels" / f"{k:06d}.png")
(root / "spec.yaml").write_text("classes: [" + ", ".join(f"c{i}" for i in range(classes)) + "]\n")
print(G.feature_spec.total_channels)
"""

TRAIN = r"""
import sys, torch
torch.set_num_threads(2)
from datasetgan.cli import main
sys.exit(main(sys.argv[1:]))
"""

# The reference's data preparation: every labelled pixel's upsampled,
# concatenated feature vector, stored in fp16, then an fp32 copy for training.
STRAIGHTFORWARD = r"""
import sys, json, resource
from pathlib import Path
import torch
from safetensors.torch import load_file
from datasetgan.generator import load_generator
from datasetgan.features import upsample_concat
torch.set_num_threads(2)
root, images, label_res = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
G = load_generator(root / "G")
w = load_file(str(root / "samples" / "latents.safetensors"))["w"][:images]
D = G.feature_spec.total_channels
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
table = torch.empty(images * label_res * label_res, D, dtype=torch.float16)
with torch.no_grad():
    for i in range(images):
        _, maps = G.synthesis(w[i:i + 1], return_features=True)
        full = upsample_concat(maps, label_res)                       # [1, D, H, W]
        table[i * label_res ** 2:(i + 1) * label_res ** 2] = full[0].permute(1, 2, 0).reshape(-1, D).half()
        del full, maps
train = table.float()                                                 # the fp32 copy the reference trains on
print(json.dumps({"before": before, "table_bytes": table.numel() * 2 + train.numel() * 4,
                  "pixels": images * label_res * label_res, "width": D}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--classes", type=int, default=34)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--max-steps", type=int, default=50)
    ap.add_argument("--small-images", type=int, default=2, help="straightforward copy: labelled images")
    ap.add_argument("--small-resolution", type=int, default=128, help="straightforward copy: label side")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.time()
        _, width = run_child(PREPARE, str(root), str(args.images), str(args.resolution), str(args.classes))
        width = int(width.strip().splitlines()[-1])
        print(f"prepared {args.images} labelled {args.resolution}x{args.resolution} samples, {args.classes} classes, "
              f"feature width {width} ({time.time() - t0:.0f}s)", flush=True)

        t0 = time.time()
        rss, out = run_child(TRAIN, "train-interpreter", "--samples", str(root / "samples"),
                             "--labels", str(root / "labels"), "--spec", str(root / "spec.yaml"),
                             "--out", str(root / "interp"), "--members", str(args.members),
                             "--pixels-per-image", "all", "--max-steps", str(args.max_steps),
                             "--device", "cpu", "--quiet")
        cfg = json.loads((root / "interp" / "config.json").read_text())["training"]
        print(f"train-interpreter (all {cfg['pixels']:,} labelled pixels, {args.members} members, "
              f"{cfg['steps']} steps, {time.time() - t0:.0f}s): peak RSS {rss / GB:.2f} GB "
              f"(feature bank {cfg['feature_bank_bytes'] / GB:.2f} GB)", flush=True)

        rss_small, out = run_child(STRAIGHTFORWARD, str(root), str(args.small_images), str(args.small_resolution))
        info = json.loads(out.strip().splitlines()[-1])
        scale = (args.images * args.resolution ** 2) / info["pixels"]
        extrapolated = info["before"] + (rss_small - info["before"]) * scale
        print(f"straightforward, scaled-down copy ({args.small_images} images at {args.small_resolution}x"
              f"{args.small_resolution}, width {info['width']}): peak RSS {rss_small / GB:.2f} GB "
              f"(feature tables {info['table_bytes'] / GB:.2f} GB)")
        print(f"straightforward, extrapolated x{scale:.0f} to {args.images} images at {args.resolution}x"
              f"{args.resolution}: {extrapolated / GB:.1f} GB "
              f"(feature tables alone {info['table_bytes'] * scale / GB:.1f} GB)")
        print(f"ratio straightforward / ours: {extrapolated / rss:.0f}x;  ours <= 4 GB: {rss <= 4 * GB}")


if __name__ == "__main__":
    main()

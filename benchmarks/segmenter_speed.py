"""DeepLabV3 training steps per second, with and without the atrous shortcut, side by side.

DeepLabV3's ASPP applies 3x3 convolutions with dilation 12, 24 and 36 to the
stride-16 map. On small images that map is no larger than the dilation (4x4
at 64 px, 8x8 at 128 px), so every off-centre tap reads padding only, and
``segmenter.models.AtrousConv2d`` runs such a convolution as a 1x1 convolution
of its centre taps (exact). The straightforward version is torch's dilated
convolution. Both models share their weights; steps alternate between them
(forward, cross-entropy, backward, Adam), so a shared machine's load drift
hits both alike. Prints images/s of both, their ratio, and the largest output
difference after one identical step.

    .venv/bin/python benchmarks/segmenter_speed.py [--resolution 64] [--batch-size 16] [--decoder plus]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from datasetgan.segmenter.models import AtrousConv2d, Segmenter, SegmenterConfig


def plain_copy(model: Segmenter) -> Segmenter:
    """The same network with torch's own dilated convolutions everywhere."""
    other = Segmenter(model.config)
    other.load_state_dict(model.state_dict())
    for m in other.modules():
        if isinstance(m, AtrousConv2d):
            m.__class__ = nn.Conv2d
    return other


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="deeplabv3_mobilenet_v3_large")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--decoder", default="plus", choices=["none", "plus"])
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per model")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fast = Segmenter(SegmenterConfig(arch=args.arch, num_outputs=args.classes, decoder=args.decoder)).train()
    plain = plain_copy(fast).train()
    swapped = sum(isinstance(m, AtrousConv2d) for m in fast.modules())
    x = torch.rand(args.batch_size, 3, args.resolution, args.resolution)
    y = torch.randint(0, args.classes, (args.batch_size, args.resolution, args.resolution))
    with torch.no_grad():
        torch.manual_seed(1)
        a = fast(x)
        torch.manual_seed(1)
        b = plain(x)
    print(f"{args.arch}, decoder {args.decoder}, {args.resolution} px, batch {args.batch_size}, "
          f"threads {torch.get_num_threads()}: {swapped} dilated convolutions may take the shortcut (where the map "
          f"is no larger than their dilation); "
          f"max |output difference| {float((a - b).abs().max()):.2e}")
    opts = {name: torch.optim.Adam(m.parameters(), 1e-3) for name, m in (("fast", fast), ("plain", plain))}
    models = {"fast": fast, "plain": plain}
    totals = {"fast": 0.0, "plain": 0.0}
    for step in range(args.steps + 2):          # the first 2 steps of each warm up
        for name in ("fast", "plain"):
            t0 = time.perf_counter()
            loss = F.cross_entropy(models[name](x), y)
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            opts[name].step()
            if step >= 2:
                totals[name] += time.perf_counter() - t0
    ips = {name: args.steps * args.batch_size / t for name, t in totals.items()}
    print(f"atrous shortcut: {ips['fast']:.1f} images/s; torch's dilated convolution: {ips['plain']:.1f} images/s")
    print(f"speed-up: {ips['fast'] / ips['plain']:.2f}x training steps")


if __name__ == "__main__":
    main()

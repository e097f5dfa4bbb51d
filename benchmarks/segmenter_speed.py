"""DeepLabV3 training steps per second: the project's exact speed-ups against torch as it is, side by side.

On small images a MobileNetV3 DeepLabV3 runs its last stages on 8x8 and 4x4
maps, where torch's CPU kernels cost far more than their arithmetic. Three
variants of one network (shared weights) take turns on the same batch
(forward, cross-entropy, backward, Adam step), so a shared machine's load
drift hits all alike:

1. ``plain``: torch's own convolutions and its default Adam (the
   straightforward version);
2. ``shortcuts``: ``segmenter.small_maps.install_shortcuts`` (ASPP's
   dilated convolutions on maps no larger than their dilation as 1x1
   convolutions of their centre taps; depthwise convolutions on maps of at most
   8x8 pixels as one batched matmul; with ``--decoder plus``, the decoder's 3x3
   convolution of the upsampled ASPP map folded through the upsampling,
   ``small_maps.conv_of_upsampled``), default Adam;
3. ``fast``: the shortcuts and the fused Adam kernel (``core.devices.adam_kwargs``),
   which is what ``train-segmenter`` runs.

Prints images/s of each, the ratios to ``plain``, and the largest output
difference between ``fast`` and ``plain`` after one identical step.

    .venv/bin/python benchmarks/segmenter_speed.py [--resolution 64] [--batch-size 16] [--decoder plus]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F

from datasetgan.core.devices import adam_kwargs
from datasetgan.segmenter.models import DECODERS, Segmenter, SegmenterConfig
from datasetgan.segmenter.small_maps import AtrousConv2d, DenseDepthwiseConv2d, remove_shortcuts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="deeplabv3_mobilenet_v3_large")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--decoder", default="plus", choices=DECODERS)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fast = Segmenter(SegmenterConfig(arch=args.arch, num_outputs=args.classes, decoder=args.decoder)).train()
    shortcuts = copy.deepcopy(fast)
    plain = copy.deepcopy(fast)
    remove_shortcuts(plain)
    models = {"plain": plain, "shortcuts": shortcuts, "fast": fast}
    device = torch.device("cpu")
    opts = {"plain": torch.optim.Adam(plain.parameters(), 1e-3),
            "shortcuts": torch.optim.Adam(shortcuts.parameters(), 1e-3),
            "fast": torch.optim.Adam(fast.parameters(), 1e-3, **adam_kwargs(device))}
    atrous = sum(isinstance(m, AtrousConv2d) for m in fast.modules())
    dense = sum(isinstance(m, DenseDepthwiseConv2d) for m in fast.modules())
    x = torch.rand(args.batch_size, 3, args.resolution, args.resolution)
    y = torch.randint(0, args.classes, (args.batch_size, args.resolution, args.resolution))
    print(f"{args.arch}, decoder {args.decoder}, {args.resolution} px, batch {args.batch_size}, "
          f"threads {torch.get_num_threads()}: {atrous} dilated and {dense} depthwise convolutions may take "
          f"a shortcut (where their map is small enough)")
    totals = dict.fromkeys(models, 0.0)
    for step in range(args.steps + 2):          # the first 2 steps of each warm up
        for name, model in models.items():
            t0 = time.perf_counter()
            torch.manual_seed(step)             # the same dropout masks in every variant
            loss = F.cross_entropy(model(x), y)
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            opts[name].step()
            if step >= 2:
                totals[name] += time.perf_counter() - t0
        if step == 0:
            with torch.no_grad():
                torch.manual_seed(99)
                a = fast(x)
                torch.manual_seed(99)
                b = plain(x)
            print(f"after one identical step: max |output difference| fast vs plain {float((a - b).abs().max()):.2e} "
                  f"(outputs up to {float(b.abs().max()):.1f})")
    ips = {name: args.steps * args.batch_size / t for name, t in totals.items()}
    for name in models:
        print(f"{name:>10}: {ips[name]:5.1f} images/s  ({ips[name] / ips['plain']:.2f}x plain)")
    print(f"speed-up: {ips['fast'] / ips['plain']:.2f}x training steps (fast vs plain)")


if __name__ == "__main__":
    main()

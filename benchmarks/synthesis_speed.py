"""Synthesis throughput (image + labels + uncertainty, no disk writes), side by side:

1. the generator alone (mapping + synthesis), images/s;
2. the fast path (`datasetgan synthesize`'s: features at native size, first
   MLP layer projected before upsampling, folded BatchNorms), with float32
   first-layer matmuls (``--precision float32``) and, where ``--precision
   auto`` picks it (a CPU with AMX or AVX512-BF16) or with ``--bfloat16``,
   with bfloat16 ones;
3. the straightforward path (upsample every map, concatenate, every member's
   MLP on every pixel, all float32).

Prints, per fast variant, fast / generator (target >= 0.5), fast /
straightforward (target >= 10; end to end, both paths include the same
generator work, which bounds this ratio), the labelling-only ratio (each
path minus the generator), and the share of pixels whose labels agree with
the straightforward path's (target >= 99.9%; over the ``--slow-images``).
The interpreter is trained briefly on 4 labelled samples of the same
(randomly initialised) generator, so that its labels are structured rather
than near-ties. Every path renders the same batches of ``--batch-size``
seeds: the generator alone as plain ``G(z)``; the fast path exactly as
`synthesize` does (``render_batch``: per-sample mapping and style affines,
fused convolutions, so that the data set does not depend on the batch size;
then ``predict`` image by image with reused buffers); the straightforward
path from the plain batched generator's features.

    nice -n 10 .venv/bin/python benchmarks/synthesis_speed.py --threads 1 [--resolution 256] [--batch-size 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from datasetgan.core.memory import keep_freed_memory
from datasetgan.core.images import to_uint8
from datasetgan.features import FeatureBank, FeatureConfig, select_features
from datasetgan.generator import Generator, GeneratorConfig, ws_from_seeds
from datasetgan.interpreter.config import InterpreterConfig
from datasetgan.interpreter.pixels import sample_segmentation_pixels
from datasetgan.generator.sampling import z_from_seeds
from datasetgan.interpreter.predict import (Prediction, Workspace, first_layer_precision, predict,
                                            predict_straightforward)
from datasetgan.interpreter.train import PixelSet, train_ensemble
from datasetgan.synthesis.render import padded_batch_size, render_batch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def labels_of(img: torch.Tensor, classes: int) -> torch.Tensor:
    """A known function of the image: brightness quantised into ``classes`` levels."""
    b = to_uint8(img).astype("float32").mean(axis=3)  # [N, H, W]
    return torch.from_numpy((b * classes / 256.0).astype("int64").clip(0, classes - 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--images", type=int, default=4, help="timed images per path (fast, generator)")
    ap.add_argument("--slow-images", type=int, default=2, help="timed images, straightforward path")
    ap.add_argument("--batch-size", type=int, default=2,
                    help="seeds per generator call, all paths (synthesize pads a call to at least 2)")
    ap.add_argument("--train-steps", type=int, default=150)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--bfloat16", action="store_true",
                    help="also time bfloat16 first-layer matmuls where --precision auto would not pick them")
    ap.add_argument("--plain-malloc", action="store_true",
                    help="leave glibc's malloc as it is (the datasetgan command keeps freed memory)")
    args = ap.parse_args()
    if not args.plain_malloc:
        keep_freed_memory()  # as the datasetgan command does
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(img_resolution=args.resolution)).eval().to(device)
    sel = select_features(G.feature_spec, FeatureConfig())
    R = args.resolution
    print(f"generator {R}x{R}, feature width {sel.width}, device {device}, threads {torch.get_num_threads()}")

    # A briefly trained interpreter (4 labelled samples, brightness classes).
    t0 = time.perf_counter()
    train_seeds = [1000, 1001, 1002, 1003]
    bank = FeatureBank(len(train_seeds), sel.resolutions, sel.channels, R, "bilinear", torch.float16)
    gen = torch.Generator().manual_seed(0)
    parts = []
    with torch.no_grad():
        for i, s in enumerate(train_seeds):
            img, maps = G.synthesis(ws_from_seeds(G, [s], 0.7), return_features=True)
            bank.store(i, [m.cpu() for m in sel.pick(maps)])
            flat, target = sample_segmentation_pixels(labels_of(img, args.classes)[0], 4096, 20, gen)
            parts.append((torch.full_like(flat, i), flat // R, flat % R, target))
    pixels = PixelSet(*(torch.cat([p[k] for p in parts]) for k in range(3)),
                      labels=torch.cat([p[3] for p in parts]))
    model, _ = train_ensemble(bank, pixels, args.classes, "segmentation",
                              InterpreterConfig(members=args.members, max_steps=args.train_steps), device, quiet=True)
    del bank
    print(f"interpreter: {args.members} members, hidden {model.config.hidden}, trained "
          f"{args.train_steps} steps ({time.perf_counter() - t0:.0f}s)", flush=True)

    size = padded_batch_size(args.batch_size, args.images)
    workspace = Workspace()
    auto = first_layer_precision(device, "auto")

    def generator_only(batch):
        return G(z_from_seeds(batch, G.z_dim).to(device), truncation_psi=0.7)

    def fast_with(first_layer_dtype):
        def fast(batch):
            img, maps = render_batch(G, batch, size, 0.7)
            return img, predict(model, sel.pick(maps), R, workspace=workspace, first_layer_dtype=first_layer_dtype)
        return fast

    def straightforward(batch):
        img, maps = G.synthesis(ws_from_seeds(G, batch, 0.7), return_features=True)
        maps = sel.pick(maps)
        preds = [predict_straightforward(model, [m[i:i + 1] for m in maps], R) for i in range(len(batch))]
        return img, Prediction(**{k: torch.cat([getattr(p, k) for p in preds])
                                  for k in ("uncertainty", "scores", "labels")})

    # The fast path as `synthesize --precision float32`, and in bfloat16 where that is
    # `auto`'s choice here or --bfloat16 asks for it.
    paths = {"generator": generator_only, "fast float32": fast_with(torch.float32)}
    if auto != torch.float32 or args.bfloat16:
        paths["fast bfloat16"] = fast_with(torch.bfloat16)
    fast_names = [name for name in paths if name.startswith("fast")]
    print(f"synthesize --precision auto here: {str(auto).removeprefix('torch.')} first-layer matmuls")

    # Interleaved per batch (every path on the same seeds, in turn) so that a shared
    # machine's load drift hits every path alike; the sums give images/s.
    seeds = list(range(args.images))
    batches = [seeds[i:i + size] for i in range(0, len(seeds), size)]
    with torch.no_grad():
        for fn in paths.values():
            fn(batches[0])  # warm-up
    totals = {name: 0.0 for name in [*paths, "straightforward"]}
    outputs: dict[str, list] = {name: [] for name in totals}
    n_slow = 0
    with torch.no_grad():
        for batch in batches:
            slow = n_slow < args.slow_images
            for name, fn in [*paths.items(), *([("straightforward", straightforward)] if slow else [])]:
                sync(device)
                t0 = time.perf_counter()
                out = fn(batch)
                sync(device)
                totals[name] += time.perf_counter() - t0
                if slow and name != "generator":  # kept for the label comparison
                    outputs[name].append(out)
            n_slow += len(batch) if slow else 0
            print(f"  seeds {batch}: " + ", ".join(f"{k} {v:.1f}s" for k, v in totals.items()) + " (cumulative)",
                  flush=True)
    ips = {name: (n_slow if name == "straightforward" else len(seeds)) / t for name, t in totals.items()}
    print(f"batches of {size} seeds, {len(seeds)} timed images ({n_slow} straightforward)")
    for name, v in ips.items():
        print(f"{name + ':':<22}{v:.4f} images/s")
    gen_per = totals["generator"] / len(seeds)
    slow_label = totals["straightforward"] / n_slow - gen_per
    for name in fast_names:
        print(f"--- {name} ---")
        print(f"  fast / generator:       {ips[name] / ips['generator']:.2f}x  (target >= 0.5)")
        print(f"  fast / straightforward: {ips[name] / ips['straightforward']:.1f}x  "
              "(target >= 10; both include the same generator work)")
        # The labelling alone (each path's time minus the generator's time for the same seeds).
        fast_label = totals[name] / len(seeds) - gen_per
        print(f"  labelling only: fast {fast_label:.2f} s/image, straightforward {slow_label:.2f} s/image, "
              f"ratio {slow_label / max(fast_label, 1e-9):.1f}x")
        pairs = list(zip(outputs[name], outputs["straightforward"]))
        agree = torch.cat([(f[1].labels == s[1].labels).flatten() for f, s in pairs]).float().mean()
        js_err = max(float((f[1].uncertainty - s[1].uncertainty).abs().max()) for f, s in pairs)
        classes_seen = torch.unique(torch.cat([f[1].labels.flatten() for f, _ in pairs])).numel()
        print(f"  label agreement with straightforward: {100 * float(agree):.4f}% of pixels "
              f"(target >= 99.9; {classes_seen} classes present); max |JS difference| {js_err:.2e}")

if __name__ == "__main__":
    main()

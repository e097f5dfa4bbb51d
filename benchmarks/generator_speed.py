"""Generator throughput (images/s), side by side in one run.

Compares, on the same randomly initialised StyleGAN2 and the same ws:

- ``fused``: NVIDIA's default in eval mode, and ours (one grouped conv with
  per-sample weights)
- ``unfused``: styles scale the activations around one shared conv (NVIDIA's
  training/fp16 path)
- ``per-sample``: the straightforward way, one image at a time (batch 1)

and checks that the three give the same images. The default model is NVIDIA's
``paper256`` configuration (channel_base 16384, channel_max 512, 8 mapping
layers, w_dim 512) at 256x256, batch 8, on the CPU.

    .venv/bin/python benchmarks/generator_speed.py
    .venv/bin/python benchmarks/generator_speed.py --device cuda --resolution 512 --dtype bf16
"""

from __future__ import annotations

import argparse
import time

import torch

from datasetgan.core.memory import keep_freed_memory
from datasetgan.core.devices import resolve_device
from datasetgan.generator import Generator, GeneratorConfig, z_from_seeds

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def timed_interleaved(fns: dict, device: torch.device, iters: int, warmup: int) -> dict[str, float]:
    """Median seconds per call of each function, run round-robin so that a
    change in machine load hits every variant alike."""
    def once(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            times[name].append(once(fn))
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--channel-base", type=int, default=16384)
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--dtype", choices=DTYPES, default="fp32",
                   help="fp32, or autocast to bf16/fp16 (CUDA)")
    p.add_argument("--num-fp16-res", type=int, default=0,
                   help="NVIDIA's fp16 blocks (runs them in fp16 on CUDA; conv_clamp 256)")
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--skip-per-sample", action="store_true")
    p.add_argument("--plain-malloc", action="store_true",
                   help="leave glibc's malloc as it is (the datasetgan command keeps freed memory)")
    args = p.parse_args()
    if not args.plain_malloc:
        keep_freed_memory()  # as the datasetgan command does

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cfg = GeneratorConfig(z_dim=512, w_dim=512, img_resolution=args.resolution, mapping_layers=8,
                          channel_base=args.channel_base, channel_max=args.channel_max,
                          num_fp16_res=args.num_fp16_res,
                          conv_clamp=256.0 if args.num_fp16_res else None)
    torch.manual_seed(0)
    G = Generator(cfg).eval().requires_grad_(False).to(device)
    params = sum(p.numel() for p in G.parameters())
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"model {cfg.img_resolution}x{cfg.img_resolution}, channel_base {cfg.channel_base}, "
          f"channel_max {cfg.channel_max}, {params / 1e6:.1f}M params, batch {args.batch}, dtype {args.dtype}")

    ws = G.mapping(z_from_seeds(range(args.batch), cfg.z_dim).to(device), truncation_psi=0.7)
    dtype = DTYPES[args.dtype]

    def run(**kw):
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32,
                                             enabled=dtype is not None):
            return G.synthesis(ws, noise_mode="const", **kw)

    variants = {"fused": lambda: run(fused_modconv=True),
                "unfused": lambda: run(fused_modconv=False)}
    if not args.skip_per_sample:
        variants["per-sample loop"] = lambda: torch.cat(
            [G.synthesis(ws[i:i + 1], noise_mode="const") for i in range(args.batch)]) \
            if dtype is None else torch.cat([_one(G, ws[i:i + 1], device, dtype) for i in range(args.batch)])

    ref = run(fused_modconv=True).float()
    diffs = {name: (fn().float() - ref).abs().max().item() for name, fn in variants.items()}
    secs = timed_interleaved(variants, device, args.iters, args.warmup)
    results = {}
    for name, sec in secs.items():
        results[name] = args.batch / sec
        print(f"  {name:<18} {args.batch / sec:8.2f} images/s   ({sec * 1000:8.1f} ms/batch, "
              f"max |diff| vs fused {diffs[name]:.2e})")
    if "per-sample loop" in results:
        base = results["per-sample loop"]
        print("  speed-up vs per-sample loop: "
              + ", ".join(f"{k} {v / base:.2f}x" for k, v in results.items() if k != "per-sample loop"))


def _one(G: Generator, ws: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype):
        return G.synthesis(ws, noise_mode="const")


if __name__ == "__main__":
    main()

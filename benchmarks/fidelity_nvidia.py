"""Fidelity against NVIDIA's own code: same .pkl, same z, same image?

Phase 1 (this process, NVIDIA's code importable from ``--nvidia-src``): build a
random NVIDIA ``training.networks.Generator`` (stylegan2-ada-pytorch) with fp16
blocks and ``conv_clamp``, give every parameter and buffer non-trivial values
(as a trained network has), pickle a snapshot dict ``{G, D, G_ema,
augment_pipe, training_set_kwargs}`` with NVIDIA's persistence machinery, and
render seeds with NVIDIA's ``G_ema`` on the CPU: z as in ``gen_images.py``
(``np.random.RandomState(seed).randn(z_dim)``), ``noise_mode='const'``,
truncation psi; once with ``force_fp32=True`` (fp32 everywhere) and once as is
(stylegan2-ada runs the fp16 blocks in fp16 even on a CPU; stylegan3 forces fp32
off CUDA). ``--flavor stylegan3`` uses the stylegan3 repository's
``training/networks_stylegan2.py`` instead.

Phase 2 (a fresh subprocess whose ``sys.path`` lacks NVIDIA's code): load the
.pkl with ``datasetgan.generator.load_generator`` and render the same seeds;
print the max abs differences.

NVIDIA's code is not part of this repository: pass the folder that holds its
``dnnlib/``, ``torch_utils/`` and ``training/``::

    python benchmarks/fidelity_nvidia.py --nvidia-src /tmp/nvidia_ref
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO_SRC = Path(__file__).resolve().parents[1] / "src"


def _z(seeds: list[int], z_dim: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.random.RandomState(s).randn(z_dim) for s in seeds])).float()


def make_reference(args: argparse.Namespace, out: Path) -> None:
    sys.path.insert(0, str(Path(args.nvidia_src).resolve()))
    import dnnlib  # NVIDIA's, from --nvidia-src

    torch.manual_seed(args.init_seed)
    common = dict(z_dim=args.z_dim, c_dim=0, w_dim=args.z_dim, img_resolution=args.resolution, img_channels=3,
                  mapping_kwargs=dnnlib.EasyDict(num_layers=args.mapping_layers))
    synthesis = dnnlib.EasyDict(channel_base=args.channel_base, channel_max=args.channel_max,
                                num_fp16_res=args.num_fp16_res, conv_clamp=args.conv_clamp,
                                architecture=args.architecture)
    if args.flavor == "stylegan2-ada":
        from training import networks  # stylegan2-ada-pytorch training/networks.py
        G = networks.Generator(**common, synthesis_kwargs=synthesis)
    else:
        # stylegan3 repository, --cfg=stylegan2: synthesis kwargs passed flat, as its train.py does.
        from training import networks_stylegan2 as networks
        G = networks.Generator(**common, **synthesis, fused_modconv_default="inference_only")
    # A "trained" network: NVIDIA initialises noise strengths, biases and w_avg to
    # constants; give them values so every code path matters.
    gen = torch.Generator().manual_seed(args.init_seed + 1)
    with torch.no_grad():
        for name, t in G.named_parameters():
            if name.endswith("noise_strength"):
                t.copy_(torch.rand([], generator=gen) * 0.5)
            elif name.endswith("bias"):
                t.add_(torch.randn(t.shape, generator=gen) * 0.2)
        G.mapping.w_avg.copy_(torch.randn(G.mapping.w_avg.shape, generator=gen))
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    snapshot = dict(G=G, D=None, G_ema=G_ema, augment_pipe=None,
                    training_set_kwargs=dict(path="/data/none.zip", resolution=args.resolution, xflip=False))
    with open(out / "network-snapshot.pkl", "wb") as f:
        pickle.dump(snapshot, f)

    z = _z(args.seeds, args.z_dim)
    with torch.no_grad():
        fp32 = G_ema(z, None, truncation_psi=args.truncation, noise_mode="const", force_fp32=True)
        fp16 = G_ema(z, None, truncation_psi=args.truncation, noise_mode="const")
        # Same algorithm on both sides (NVIDIA picks fused/unfused modconv per block; ours
        # prefers unfused on a CPU for speed): isolates rounding from real differences.
        fp32_unfused = G_ema(z, None, truncation_psi=args.truncation, noise_mode="const", force_fp32=True,
                             fused_modconv=False)
        fp16_unfused = G_ema(z, None, truncation_psi=args.truncation, noise_mode="const", fused_modconv=False)
    fp16_blocks = [res for res in G_ema.synthesis.block_resolutions if getattr(G_ema.synthesis, f"b{res}").use_fp16]
    torch.save({"z": z, "fp32": fp32, "fp16": fp16, "fp32_unfused": fp32_unfused, "fp16_unfused": fp16_unfused},
               out / "nvidia_out.pt")
    (out / "meta.json").write_text(json.dumps({"fp16_blocks": fp16_blocks, "seeds": args.seeds,
                                               "truncation": args.truncation}))


def compare(out: Path) -> dict:
    # Fresh interpreter: NVIDIA's modules are neither on sys.path nor imported.
    for name in ("torch_utils", "dnnlib", "training"):
        assert name not in sys.modules, name
    sys.path.insert(0, str(REPO_SRC))
    from datasetgan.generator import load_generator

    meta = json.loads((out / "meta.json").read_text())
    ref = torch.load(out / "nvidia_out.pt", weights_only=True)
    G = load_generator(out / "network-snapshot.pkl")
    with torch.no_grad():
        ours = G(ref["z"], truncation_psi=meta["truncation"], noise_mode="const")
        # Our fp16 path on the CPU too (by default fp16 blocks run in fp16 on CUDA only).
        ours16 = G(ref["z"], truncation_psi=meta["truncation"], noise_mode="const", force_fp32=False)
        ours_unfused = G(ref["z"], truncation_psi=meta["truncation"], noise_mode="const", fused_modconv=False)
        ours16_unfused = G(ref["z"], truncation_psi=meta["truncation"], noise_mode="const", force_fp32=False,
                           fused_modconv=False)
    to_u8 = lambda x: (x * 127.5 + 128).clamp(0, 255).to(torch.uint8).int()  # noqa: E731
    leaked = [m for m in sys.modules if m.startswith("_imported_module_") or m in ("torch_utils", "training")]
    return {
        "config": G.config.to_dict(),
        "fp16_blocks": meta["fp16_blocks"],
        "max_abs_vs_nvidia_fp32": (ours - ref["fp32"]).abs().max().item(),
        "max_abs_vs_nvidia_fp16_on_cpu": (ours - ref["fp16"]).abs().max().item(),
        "max_abs_fp16_ours_vs_nvidia_fp16": (ours16 - ref["fp16"]).abs().max().item(),
        "unfused_fp32": (ours_unfused - ref["fp32_unfused"]).abs().max().item(),
        "unfused_fp16": (ours16_unfused - ref["fp16_unfused"]).abs().max().item(),
        "nvidia_fp16_vs_fp32": (ref["fp16"] - ref["fp32"]).abs().max().item(),
        "uint8_pixels_differing_vs_fp32": int((to_u8(ours) != to_u8(ref["fp32"])).sum()),
        "uint8_max_diff_vs_fp32": int((to_u8(ours) - to_u8(ref["fp32"])).abs().max()),
        "image_abs_max": ref["fp32"].abs().max().item(),
        "nvidia_modules_loaded": leaked,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nvidia-src", help="folder with NVIDIA's dnnlib/, torch_utils/, training/")
    p.add_argument("--flavor", choices=["stylegan2-ada", "stylegan3"], default="stylegan2-ada",
                   help="training/networks.py (stylegan2-ada-pytorch) or training/networks_stylegan2.py (stylegan3)")
    p.add_argument("--architecture", choices=["skip", "orig", "resnet"], default="skip")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--num-fp16-res", type=int, default=2)
    p.add_argument("--conv-clamp", type=float, default=256)
    p.add_argument("--channel-base", type=int, default=2048)
    p.add_argument("--channel-max", type=int, default=128)
    p.add_argument("--z-dim", type=int, default=64)
    p.add_argument("--mapping-layers", type=int, default=4)
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=list(range(8)))
    p.add_argument("--truncation", type=float, default=0.7)
    p.add_argument("--init-seed", type=int, default=0)
    p.add_argument("--workdir", help="keep the .pkl and outputs here (default: a temporary folder)")
    p.add_argument("--compare", help=argparse.SUPPRESS)  # phase 2, internal
    args = p.parse_args()

    if args.compare:
        print(json.dumps(compare(Path(args.compare))))
        return
    if not args.nvidia_src:
        p.error("--nvidia-src is required")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.workdir or tmp)
        out.mkdir(parents=True, exist_ok=True)
        make_reference(args, out)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run([sys.executable, __file__, "--compare", str(out)], capture_output=True, text=True,
                              env=env, cwd=str(REPO_SRC.parent))
        if proc.returncode != 0:
            sys.exit(proc.stderr)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"flavor: {args.flavor}; config: {result['config']}")
    print(f"fp16 blocks (resolutions): {result['fp16_blocks']}; seeds {args.seeds}; psi {args.truncation}; "
          f"noise_mode const; CPU")
    print(f"max |ours - NVIDIA force_fp32|        = {result['max_abs_vs_nvidia_fp32']:.3e}  "
          f"(image |x| up to {result['image_abs_max']:.2f})")
    print(f"uint8 pixels differing (of {len(args.seeds) * 3 * args.resolution ** 2}) = "
          f"{result['uint8_pixels_differing_vs_fp32']}, max {result['uint8_max_diff_vs_fp32']}")
    if args.flavor == "stylegan2-ada":
        print(f"max |ours - NVIDIA fp16 blocks on CPU| = {result['max_abs_vs_nvidia_fp16_on_cpu']:.3e}")
        print(f"max |NVIDIA fp16 - NVIDIA fp32|        = {result['nvidia_fp16_vs_fp32']:.3e}  (fp16 rounding itself)")
        print(f"max |ours fp16 - NVIDIA fp16| (both fp16 blocks on CPU) = "
              f"{result['max_abs_fp16_ours_vs_nvidia_fp16']:.3e}")
        print(f"same algorithm (fused_modconv=False on both): fp32 {result['unfused_fp32']:.3e}, "
              f"fp16 blocks in fp16 {result['unfused_fp16']:.3e}")
    else:  # stylegan3's blocks force fp32 off CUDA: no fp16 reference on a CPU
        print(f"same algorithm (fused_modconv=False on both): fp32 {result['unfused_fp32']:.3e}")
    print(f"NVIDIA modules imported while loading: {result['nvidia_modules_loaded'] or 'none'}")
    ok = result["max_abs_vs_nvidia_fp32"] <= 1e-3
    print("PASS (<= 1e-3)" if ok else "FAIL (> 1e-3)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

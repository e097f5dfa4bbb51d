#!/usr/bin/env python
"""The GPU figures of issue 31 in one prepared run: train-gan and synthesis speed, and 2-GPU synthesis.

For a session that is lent a GPU (about 15 minutes of device time in all, start-up included):

    run(command="PYTHONPATH=src python scripts/gpu_scale_checks.py", timeout_s=560)

Every step runs in its own process under its own time limit and writes ``$OUT/<step>.json``
(``$OUT`` or ``--out``, default /tmp/gpu_scale); ``$OUT/summary.json`` gathers them with each
step's status (ok, failed, timeout, skipped) and the tail of its log (``$OUT/<step>.log``). The
steps run in order of value and a step is skipped when the whole run's ``--budget`` (seconds) has
less left than the step's limit, so a short session still brings back the first figures. It needs
no package index: torch, numpy, PIL, safetensors and pyyaml as the package itself (the WebDataset
reader is not used).

Steps:

- ``gan_speed`` (and ``gan_float32``, ``gan_no_channels_last``, ``gan_foreach_adam``,
  ``gan_compile``): images/s of the training step (``benchmarks/train_gan_speed.py``'s "ours":
  G and D phases, lazy R1 every 16 steps, ADA at p 0.3, EMA) for ``configs/gan/faces64.yaml``
  (64 px, batch 256), with synced per-phase times; the variants change one thing each: float32
  instead of bfloat16 autocast, contiguous instead of channels-last tensors, the multi-tensor
  instead of the fused Adam, ``torch.compile`` of the main passes.
- ``gan_profile``: ``torch.profiler`` over the baseline's steps: the operators that take the time.
- ``gan_loop``: ``train-gan --config configs/gan/faces64.yaml`` itself on random 64 px images for
  about a minute: images/s per tick from its ``stats.jsonl`` (data loading, ticks and all).
- ``synth_256``, ``synth_512``: ``synthesize`` (rendering, labelling, PNG files, finishing) against
  the generator alone on the same seeds: images/s, their ratio (target >= 0.5), peak GPU memory
  and its share per image of a batch. The interpreter is trained briefly on 4 labelled samples.
- ``synth_torchrun``: with 2 GPUs, ``torchrun --nproc-per-node 2 -m datasetgan.cli synthesize``
  against one process on the same data set (wall time of both commands) and whether the two data
  sets are byte-identical.

``--smoke`` runs every step on the CPU with tiny sizes (the torchrun step with 2 gloo processes),
to check the script itself; its figures mean nothing (and ``gan_compile`` may run out of time:
compiling for a CPU is slow).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "benchmarks")]

# (name, limit in seconds), in order of value.
STEPS = [("env", 30), ("gan_speed", 90), ("gan_profile", 90), ("synth_256", 120), ("synth_512", 150),
         ("gan_loop", 120), ("synth_torchrun", 150), ("gan_float32", 60), ("gan_no_channels_last", 60),
         ("gan_foreach_adam", 60), ("gan_compile", 180)]
GAN_VARIANTS = {"gan_speed": {}, "gan_float32": {"precision": "float32"},
                "gan_no_channels_last": {"channels_last": False}, "gan_foreach_adam": {"adam": "foreach"},
                "gan_compile": {"compile": True}}


def _device(smoke: bool):
    import torch
    return torch.device("cpu" if smoke or not torch.cuda.is_available() else "cuda")


def _sync(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- train-gan ---------------------------------------------------------------------------------

def _gan_config(smoke: bool, **changes):
    from datasetgan.core.config import build_config, read_mapping
    from datasetgan.gan_training.config import GanTrainingConfig, resolve
    preset = read_mapping(ROOT / "configs" / "gan" / "faces64.yaml")
    if smoke:   # the same kind of network, a fraction of its size
        preset.update(resolution=32, batch_size=8, channel_base=1024, channel_max=32, z_dim=64, w_dim=64)
    return resolve(build_config(GanTrainingConfig, {**preset, "data": "-", **changes}))


def _gan_setup(variant: dict, smoke: bool):
    import torch
    import train_gan_speed as tgs
    from datasetgan.gan_training import loop
    device = _device(smoke)
    if device.type == "cuda":   # as train-gan sets them
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    changes = {k: v for k, v in variant.items() if k != "adam"}
    cfg = _gan_config(smoke, device=str(device), **changes)
    if variant.get("adam") == "foreach":
        loop.adam_kwargs = lambda device: {"foreach": True}
    one, _ = tgs.setup("ours", cfg, device)
    return tgs, cfg, device, one


def step_gan_speed(name: str, smoke: bool) -> dict:
    import torch
    variant = GAN_VARIANTS[name]
    tgs, cfg, device, one = _gan_setup(variant, smoke)
    steps, warmup, repeats = (2, 1, 1) if smoke else (32, 4, 2)
    t0 = time.perf_counter()
    null = tgs.Timer(device, False)
    for s in range(warmup):   # step 0 runs R1; with --compile this compiles
        one(s, 0, null)
    _sync(device)
    warmup_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    best = min(tgs.timed(one, steps, device, null) for _ in range(repeats))
    timer = tgs.Timer(device, True)
    tgs.timed(one, steps, device, timer)
    return {"variant": variant, "config": {k: getattr(cfg, k) for k in (
                "resolution", "batch_size", "channel_base", "channel_max", "map_depth", "aug", "precision",
                "channels_last", "compile", "r1_interval", "gamma", "pl_weight")},
            "timed_steps": steps, "images_per_s": round(cfg.batch_size * steps / best, 1),
            "ms_per_step": round(best / steps * 1000, 2), "warmup_s": round(warmup_s, 1),
            "phase_ms_per_step": {k: round(v / steps * 1000, 2) for k, v in timer.times.items()},
            "peak_gpu_mem_gb": round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2)
            if device.type == "cuda" else None,
            "target_images_per_s": 2000}


def step_gan_profile(smoke: bool, out: Path) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile
    tgs, cfg, device, one = _gan_setup({}, smoke)
    null = tgs.Timer(device, False)
    for s in range(1 if smoke else 4):
        one(s, 0, null)
    steps = 2 if smoke else 16
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    _sync(device)
    with profile(activities=activities) as prof:
        tgs.timed(one, steps, device, null)
    averages = prof.key_averages()
    # (torch >= 2.4 names GPU time "device" time; earlier ones "cuda")
    device_key = "self_device_time_total" if hasattr(averages[0], "self_device_time_total") else \
        "self_cuda_time_total"
    key = device_key if device.type == "cuda" else "self_cpu_time_total"
    (out / "gan_profile.txt").write_text(averages.table(sort_by=key, row_limit=40))
    total = sum(getattr(e, key) for e in averages) or 1
    rows = sorted(averages, key=lambda e: -getattr(e, key))[:30]
    return {"steps": steps, "sort": key, "table": "gan_profile.txt",
            "top": [{"op": e.key, "calls": e.count, "self_ms_per_step": round(getattr(e, key) / 1000 / steps, 3),
                     "share": round(getattr(e, key) / total, 4)} for e in rows]}


def step_gan_loop(smoke: bool, out: Path, limit: float) -> dict:
    import numpy as np
    from PIL import Image
    device = _device(smoke)
    data, run = out / "work" / "gan_images", out / "work" / "gan_run"
    shutil.rmtree(run, ignore_errors=True)
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(64 if smoke else 1024):   # speed does not depend on what the images show
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(data / f"{i:05d}.png")
    cmd = [sys.executable, "-m", "datasetgan.cli", "train-gan", "--config", str(ROOT / "configs/gan/faces64.yaml"),
           "--data", str(data), "--out", str(run), "--kimg", "100000", "--tick-kimg", "0.05" if smoke else "10",
           "--snap-ticks", "100000", "--image-ticks", "100000", "--metrics", "none", "--device", device.type,
           "--quiet"]
    if smoke:
        cmd += ["--resolution", "32", "--batch-size", "8", "--channel-base", "1024", "--channel-max", "32",
                "--z-dim", "64", "--w-dim", "64"]
    seconds = 25.0 if smoke else max(20.0, limit - 45)   # then SIGTERM, and the snapshot it writes
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    ticks = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()] \
        if (run / "stats.jsonl").exists() else []
    steady = [t["img_per_sec"] for t in ticks[1:]]   # the first tick holds the warm-up
    return {"seconds": seconds, "returncode": proc.returncode, "ticks": ticks,
            "images_per_s_steady": round(sum(steady) / len(steady), 1) if steady else None,
            "output_tail": output[-2000:]}


# ---- synthesis ---------------------------------------------------------------------------------

def _synthesis_fixture(resolution: int, smoke: bool, work: Path) -> tuple[Path, Path]:
    """A random generator at ``resolution`` (the default StyleGAN2 config) and an interpreter
    trained briefly on 4 of its samples with brightness classes, as folders."""
    import numpy as np
    import torch
    from PIL import Image
    from datasetgan.cli import main
    from datasetgan.generator import Generator, GeneratorConfig
    device = _device(smoke)
    g_dir, interp = work / f"G{resolution}", work / f"interp{resolution}"
    torch.manual_seed(0)
    kwargs = dict(channel_base=1024, channel_max=32, z_dim=64, w_dim=64, mapping_layers=2) if smoke else {}
    Generator(GeneratorConfig(img_resolution=resolution, **kwargs)).eval().save_pretrained(g_dir)
    samples, labels = work / f"samples{resolution}", work / f"labels{resolution}"
    assert main(["sample", "--generator", str(g_dir), "--seeds", "1000-1003", "--out", str(samples),
                 "--device", device.type, "--quiet"]) == 0
    labels.mkdir(exist_ok=True)
    classes = 8
    for p in sorted((samples / "images").glob("*.png")):
        grey = np.asarray(Image.open(p).convert("L"), np.float32)
        Image.fromarray((grey * classes / 256).astype(np.uint8)).save(labels / p.name)
    (work / "spec.yaml").write_text(f"classes: [{', '.join(f'c{i}' for i in range(classes))}]\n")
    assert main(["train-interpreter", "--samples", str(samples), "--labels", str(labels), "--spec",
                 str(work / "spec.yaml"), "--out", str(interp), "--members", "2" if smoke else "10",
                 "--max-steps", "5" if smoke else "150", "--pixels-per-image", "2000", "--device", device.type,
                 "--quiet"]) == 0
    return g_dir, interp


def step_synth(resolution: int, smoke: bool, out: Path) -> dict:
    import torch
    from datasetgan.generator import load_generator, z_from_seeds
    from datasetgan.interpreter.artifact import Interpreter
    from datasetgan.synthesis.config import SynthesisConfig
    from datasetgan.synthesis.render import render_batch
    from datasetgan.synthesis.run import synthesize
    device = _device(smoke)
    resolution = 32 if smoke else resolution
    work = out / "work" / f"synth{resolution}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    g_dir, interp_dir = _synthesis_fixture(resolution, smoke, work)
    setup_s = time.perf_counter() - t0
    G = load_generator(g_dir, device=device)
    interp = Interpreter.load(interp_dir, device=device)
    batch, n = (2, 4) if smoke else (8, 64 if resolution <= 256 else 32)
    seeds = list(range(n))
    batches = [seeds[i:i + batch] for i in range(0, n, batch)]

    def rate(fn) -> float:
        with torch.no_grad():
            fn(batches[0])   # warm-up
            _sync(device)
            t = time.perf_counter()
            for b in batches:
                fn(b)
            _sync(device)
        return n / (time.perf_counter() - t)
    generator = rate(lambda b: G(z_from_seeds(b, G.z_dim).to(device), truncation_psi=0.7))
    rendering = rate(lambda b: render_batch(G, b, batch, 0.7))   # what synthesize renders with
    config = SynthesisConfig(num_images=n, batch_size=batch, drop_uncertain=0.1)
    synthesize(G, interp, work / "warmup", SynthesisConfig(num_images=batch, batch_size=batch), device,
               quiet=True)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    _sync(device)
    t = time.perf_counter()
    synthesize(G, interp, work / "ds", config, device, quiet=True)
    _sync(device)
    synth = n / (time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"resolution": resolution, "batch_size": batch, "images": n, "setup_s": round(setup_s, 1),
            "generator_images_per_s": round(generator, 2), "render_batch_images_per_s": round(rendering, 2),
            "synthesize_images_per_s": round(synth, 2), "synthesize_over_generator": round(synth / generator, 3),
            "target_ratio": 0.5, "feature_width": interp.selected_features(G).width,
            "peak_gpu_mem_gb": round(peak / 2 ** 30, 3) if peak is not None else None,
            "weights_gpu_mem_gb": round(base / 2 ** 30, 3) if peak is not None else None,
            "peak_gpu_mem_per_image_gb": round((peak - base) / batch / 2 ** 30, 3) if peak is not None else None}


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.pop("WORLD_SIZE", None)
    return env


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def step_synth_torchrun(smoke: bool, out: Path) -> dict:
    import torch
    gpus = torch.cuda.device_count()
    if not smoke and gpus < 2:
        return {"skipped": f"{gpus} GPU(s): needs 2"}
    resolution = 32 if smoke else 256
    work = out / "work" / "torchrun"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    g_dir, interp_dir = _synthesis_fixture(resolution, smoke, work)
    n, batch = (6, 2) if smoke else (128, 8)
    device = "cpu" if smoke else "cuda"
    common = ["synthesize", "--generator", str(g_dir), "--interpreter", str(interp_dir), "--num-images", str(n),
              "--batch-size", str(batch), "--device", device, "--quiet"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = _env()
    if smoke:
        env["OMP_NUM_THREADS"] = "1"   # both runs alike: torchrun gives each rank one thread by default
    runs = {}
    for name, prefix in (("one_process", [sys.executable, "-m", "datasetgan.cli"]),
                         ("torchrun_2", [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                                         "--master-port", str(port), "-m", "datasetgan.cli"])):
        t = time.perf_counter()
        res = subprocess.run([*prefix, *common, "--out", str(work / name)], env=env, capture_output=True,
                             text=True, timeout=240)
        runs[name] = {"returncode": res.returncode, "wall_s": round(time.perf_counter() - t, 2),
                      "stderr_tail": res.stderr[-1500:]}
    a, b = (_files(work / name) if (work / name / "dataset.json").exists() else None
            for name in ("one_process", "torchrun_2"))
    differing = None if a is None or b is None else sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return {"gpus": gpus, "resolution": resolution, "images": n, "batch_size": batch, **runs,
            "images_per_s": {k: round(n / v["wall_s"], 2) for k, v in runs.items()},
            "byte_identical": differing == [] if differing is not None else None,
            "differing_files": differing[:20] if differing else differing}


def step_env(smoke: bool) -> dict:
    import torch
    info = {"torch": torch.__version__, "python": sys.version.split()[0], "cuda": torch.version.cuda,
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            "cpu_threads": torch.get_num_threads(), "smoke": smoke}
    try:
        info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                             "--format=csv,noheader"], capture_output=True, text=True,
                                            timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        info["nvidia_smi"] = None
    return info


def run_step(name: str, smoke: bool, out: Path, limit: float) -> dict:
    if name == "env":
        return step_env(smoke)
    if name in GAN_VARIANTS:
        return step_gan_speed(name, smoke)
    if name == "gan_profile":
        return step_gan_profile(smoke, out)
    if name == "gan_loop":
        return step_gan_loop(smoke, out, limit)
    if name in ("synth_256", "synth_512"):
        return step_synth(int(name.split("_")[1]), smoke, out)
    if name == "synth_torchrun":
        return step_synth_torchrun(smoke, out)
    raise SystemExit(f"unknown step {name!r}")


# ---- the driver --------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/gpu_scale"))
    ap.add_argument("--smoke", action="store_true", help="every step on the CPU with tiny sizes")
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for the whole run")
    ap.add_argument("--only", default=None, help="comma-separated step names")
    ap.add_argument("--step", default=None, help=argparse.SUPPRESS)   # one step, in this process
    ap.add_argument("--limit", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.step:
        try:
            result = run_step(args.step, args.smoke, out, args.limit)
        except Exception:
            (out / f"{args.step}.json").write_text(json.dumps({"error": traceback.format_exc()}, indent=2))
            raise
        (out / f"{args.step}.json").write_text(json.dumps(result, indent=2, default=str))
        return 0
    wanted = args.only.split(",") if args.only else [name for name, _ in STEPS]
    start = time.perf_counter()
    summary: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "smoke": args.smoke, "steps": {}}
    for name, limit in STEPS:
        if name not in wanted:
            continue
        left = args.budget - (time.perf_counter() - start)
        if left < min(limit, 30):
            summary["steps"][name] = {"status": "skipped", "reason": f"{left:.0f} s of the budget left"}
            continue
        limit = min(limit, left)
        log = out / f"{name}.log"
        t = time.perf_counter()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--step", name, "--out", str(out),
               "--limit", str(limit), *(["--smoke"] if args.smoke else [])]
        with open(log, "w") as f:
            proc = subprocess.Popen(cmd, env=_env(), stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = proc.wait(timeout=limit)
                status = "ok" if rc == 0 else "failed"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)   # the step's own children (torchrun ranks) too
                proc.wait()
                rc, status = None, "timeout"
        result_file = out / f"{name}.json"
        summary["steps"][name] = {"status": status, "returncode": rc, "seconds": round(time.perf_counter() - t, 1),
                                  "limit_s": round(limit), "log_tail": log.read_text()[-1500:],
                                  "result": json.loads(result_file.read_text()) if result_file.exists() else None}
        print(f"== {name}: {status} in {summary['steps'][name]['seconds']} s (limit {limit:.0f} s)", flush=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    summary["seconds"] = round(time.perf_counter() - start, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    shutil.rmtree(out / "work", ignore_errors=True)   # generators, data sets: nothing to bring back
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Real processes: SIGTERM/SIGINT write a resumable snapshot; torchrun with 2 CPU processes (gloo)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from datasetgan.gan_training.checkpoint import list_snapshots

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    env.pop("WORLD_SIZE", None)
    return env


def _cmd(data, out, tiny_flags, *extra) -> list[str]:
    return [sys.executable, "-m", "datasetgan.cli", "train-gan", "--data", str(data), "--out", str(out),
            *tiny_flags, *extra]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_writes_resumable_snapshot(image_folder, tmp_path, tiny_flags, sig):
    out = tmp_path / "run"
    proc = subprocess.Popen(_cmd(image_folder, out, tiny_flags, "--kimg", "1000"), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stats = out / "stats.jsonl"
    deadline = time.time() + 60
    while not (stats.exists() and stats.read_text().count("\n") >= 1):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"training did not start: {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resumable checkpoint" in err
    snaps = list_snapshots(out)
    assert snaps, err
    state = json.loads((snaps[-1] / "state.json").read_text())
    assert state["reason"] == "signal" and state["step"] >= 2
    if sig == signal.SIGTERM:
        # Resume it for a couple more steps.
        kimg = state["kimg"] + 0.008
        res = subprocess.run(_cmd(image_folder, out, tiny_flags, "--kimg", str(kimg), "--resume", "latest"),
                             env=_env(), capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert list_snapshots(out)[-1].name != snaps[-1].name


def _torchrun(image_folder, out, tiny_flags, *extra, out_flag="--out"):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "datasetgan.cli", "train-gan", "--data", str(image_folder), out_flag, str(out),
           *tiny_flags, "--batch-size", "8", *extra]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]


def test_torchrun_two_cpu_processes(image_folder, tmp_path, tiny_flags):
    out = tmp_path / "run"
    _torchrun(image_folder, out, tiny_flags, "--kimg", "0.024")
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["snapshots"]   # --out is the run folder
    snap = list_snapshots(out)[-1]
    assert (snap / "rng-rank0.safetensors").is_file() and (snap / "rng-rank1.safetensors").is_file()
    state = json.loads((snap / "state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 3 and state["cur_nimg"] == 24
    opts = json.loads((out / "training_options.json").read_text())
    assert opts["world_size"] == 2
    # (Weights are checked to agree across the processes at every snapshot: the run would fail otherwise.)
    G = load_file(str(snap / "G" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in G.values())


@pytest.mark.slow
def test_torchrun_resume_is_exact(image_folder, tmp_path, tiny_flags):
    """2 processes: 5 steps straight == 2 steps + resume to 5 (RNG and ADA state of every rank restored).

    In the deprecated numbered layout (``--outdir``), whose folder number only process 0 may pick."""
    out = tmp_path / "runs"
    _torchrun(image_folder, out, tiny_flags, "--kimg", "0.04", "--pl-weight", "2", out_flag="--outdir")
    _torchrun(image_folder, out, tiny_flags, "--kimg", "0.016", "--pl-weight", "2", out_flag="--outdir")
    _torchrun(image_folder, out, tiny_flags, "--kimg", "0.04", "--resume", "latest", out_flag="--outdir")
    assert sorted(p.name for p in out.iterdir()) == ["00000-data-16", "00001-data-16"]
    a, b = list_snapshots(out / "00000-data-16")[-1], list_snapshots(out / "00001-data-16")[-1]
    for part in ("G", "G_ema", "D"):
        wa, wb = load_file(str(a / part / "model.safetensors")), load_file(str(b / part / "model.safetensors"))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), part

"""Several processes on one data set: torchrun ranks (2 gloo processes on the CPU), ``--shard``
processes and the claim of the finishing step, and the flags that torchrun's own parser sees."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.synthesis.conftest import _snapshot, _synth

from datasetgan.synthesis import claim
from datasetgan.synthesis import run as synth_run

ROOT = Path(__file__).resolve().parents[2]
ARGS = ("--num-images", "7", "--drop-uncertain", "0.3", "--batch-size", "2")


def _torchrun(labelled, interpreter_dir, out: Path, *extra: str, env: dict | None = None):
    """``torchrun --nproc-per-node 2 -m tests.synthesis.torchrun_rank synthesize ...`` (one thread per rank,
    as the in-process runs of these tests), each rank's seeds logged beside ``out``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    logs = out.parent / f"{out.name}-ranks"
    logs.mkdir(exist_ok=True)
    full_env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}",
                    RANK_LOG_DIR=str(logs), **(env or {}))
    full_env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
           "-m", "tests.synthesis.torchrun_rank", "synthesize", "--generator", str(labelled["G"]),
           "--interpreter", str(interpreter_dir), "--out", str(out), "--device", "cpu", "--quiet", *extra]
    res = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    seeds = {r: [[int(s) for s in line.split()] for line in (logs / f"rank{r}.txt").read_text().splitlines()]
             if (logs / f"rank{r}.txt").exists() else [] for r in (0, 1)}
    return res, seeds


def test_torchrun_ranks_share_the_seeds_and_equal_one_process(labelled, interpreter_dir, tmp_path):
    assert _synth(labelled, interpreter_dir, tmp_path / "whole", *ARGS) == 0
    res, seeds = _torchrun(labelled, interpreter_dir, tmp_path / "ranks", *ARGS)
    assert res.returncode == 0, res.stderr[-3000:]
    assert seeds == {0: [[0, 2], [4, 6]], 1: [[1, 3], [5]]}   # every 2nd seed, batches padded alike
    assert res.stdout.count("5 of 7 samples kept") == 1        # rank 0 reports
    out = tmp_path / "ranks"
    assert _snapshot(out) == _snapshot(tmp_path / "whole")
    assert (out / "dataset.json").read_text() == (tmp_path / "whole" / "dataset.json").read_text()
    assert not (out / ".staging").exists() and not (out / claim.CLAIM).exists()


def test_a_rank_that_dies_fails_the_run_and_the_same_command_resumes(labelled, interpreter_dir, tmp_path):
    out = tmp_path / "ranks"
    res, seeds = _torchrun(labelled, interpreter_dir, out, *ARGS, env={"DIE_RANK": "1", "DIE_AT_BATCH": "2"})
    assert res.returncode != 0
    assert "rank      : 1" in res.stderr and "exitcode  : 17" in res.stderr, res.stderr[-3000:]  # torchrun's
    assert "run the same command again to resume" in res.stderr, res.stderr[-3000:]   # rank 0's, where it stopped
    assert not (out / "dataset.json").exists() and not (out / "images").exists()
    staged = {int(p.stem) for p in (out / ".staging").glob("0*.json")}
    assert 5 not in staged and staged <= {0, 1, 2, 3, 4, 6}   # rank 1 died before its second batch
    res, again = _torchrun(labelled, interpreter_dir, out, *ARGS)
    assert res.returncode == 0, res.stderr[-3000:]
    rendered = {s for r in (0, 1) for batch in again[r][len(seeds[r]):] for s in batch}
    assert not rendered & staged   # only what was missing
    assert _synth(labelled, interpreter_dir, tmp_path / "whole", *ARGS) == 0
    assert _snapshot(out) == _snapshot(tmp_path / "whole")


def test_the_shard_that_ends_last_finishes(labelled, interpreter_dir, tmp_path, capsys):
    assert _synth(labelled, interpreter_dir, tmp_path / "whole", *ARGS) == 0
    out = tmp_path / "sharded"
    for shard in ("2/3", "0/3"):
        assert _synth(labelled, interpreter_dir, out, *ARGS, "--shard", shard) == 0
        assert not (out / "dataset.json").exists()
    assert "The shard that ends last finishes the data set" in capsys.readouterr().out
    assert _synth(labelled, interpreter_dir, out, *ARGS, "--shard", "1/3") == 0
    assert "5 of 7 samples kept" in capsys.readouterr().out
    assert _snapshot(out) == _snapshot(tmp_path / "whole")
    assert not (out / ".staging").exists() and not (out / claim.CLAIM).exists()


def _stage_everything(labelled, interpreter_dir, out: Path) -> None:
    for shard in ("0/2", "1/2"):   # the second would finish: claimed by "someone else" first
        assert _synth(labelled, interpreter_dir, out, *ARGS, "--shard", shard) == 0


def test_a_live_claim_keeps_others_from_finishing(labelled, interpreter_dir, tmp_path, capsys):
    out = tmp_path / "ds"
    out.mkdir()
    other = {"host": socket.gethostname(), "pid": os.getppid(), "started": "earlier"}   # a live process
    (out / claim.CLAIM).write_text(json.dumps(other))
    _stage_everything(labelled, interpreter_dir, out)
    assert _synth(labelled, interpreter_dir, out, *ARGS) == 0
    text = capsys.readouterr().out
    assert f"every seed is staged; process {os.getppid()} on {socket.gethostname()}" in text
    assert f"if it no longer runs, remove {out / claim.CLAIM}" in text
    assert not (out / "dataset.json").exists() and json.loads((out / claim.CLAIM).read_text()) == other
    # One from another machine cannot be checked from here: it stays until removed by hand.
    (out / claim.CLAIM).write_text(json.dumps({**other, "host": "elsewhere", "pid": 1}))
    assert _synth(labelled, interpreter_dir, out, *ARGS) == 0 and not (out / "dataset.json").exists()
    (out / claim.CLAIM).unlink()
    assert _synth(labelled, interpreter_dir, out, *ARGS) == 0 and (out / "dataset.json").exists()


def test_a_stale_claim_of_this_host_is_recovered(labelled, interpreter_dir, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "ds"
    out.mkdir()
    (out / claim.CLAIM).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "started": "x"}))
    _stage_everything(labelled, interpreter_dir, out)
    assert (out / "dataset.json").exists() and not (out / claim.CLAIM).exists()
    assert not list(out.glob(claim.CLAIM + "*"))


def test_claims_exclude_each_other(tmp_path):
    assert claim.acquire(tmp_path) is None
    held = claim.acquire(tmp_path)   # this process is alive: not stale
    assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    claim.release(tmp_path)
    assert not (tmp_path / claim.CLAIM).exists() and claim.read_claim(tmp_path) is None
    (tmp_path / claim.CLAIM).write_text("")   # being written by its claimant: held
    assert claim.acquire(tmp_path) == {}
    claim.release(tmp_path)                   # not ours: left alone
    assert (tmp_path / claim.CLAIM).exists()


def test_a_late_process_does_not_leave_staging_behind(labelled, interpreter_dir, tmp_path, monkeypatch):
    """A shard that started before another process finished the data set (and removed .staging/):
    it stops before its next batch, and removes the staging folder its last writes recreated."""
    assert _synth(labelled, interpreter_dir, tmp_path / "whole", *ARGS) == 0
    out = tmp_path / "ds"
    original = synth_run.render_batch
    calls = {"n": 0}

    def finished_by_another(G, seeds, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:   # the other process runs (and finishes) now
            monkeypatch.setattr(synth_run, "render_batch", original)
            assert _synth(labelled, interpreter_dir, out, *ARGS) == 0
            monkeypatch.setattr(synth_run, "render_batch", finished_by_another)
        return original(G, seeds, *args, **kwargs)
    monkeypatch.setattr(synth_run, "render_batch", finished_by_another)
    assert _synth(labelled, interpreter_dir, out, *ARGS, "--shard", "0/2") == 0
    assert calls["n"] == 1   # no second batch
    assert not (out / ".staging").exists()
    assert _snapshot(out) == _snapshot(tmp_path / "whole")


def test_the_old_count_flag_and_preset_key_still_work(labelled, interpreter_dir, tmp_path, monkeypatch):
    """``--n`` and the preset key ``n`` warn; a data set started under the old name resumes under the new."""
    out = tmp_path / "ds"

    def boom(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(synth_run, "_write_candidate", boom)
    with pytest.warns(FutureWarning, match="--n is deprecated.*--num-images"):
        assert _synth(labelled, interpreter_dir, out, "--n", "3") == 130
    monkeypatch.undo()
    preset = tmp_path / "synth.yaml"
    preset.write_text("n: 3\n")
    with pytest.warns(FutureWarning, match="'n' is deprecated.*'num_images'"):
        assert _synth(labelled, interpreter_dir, out, "--config", str(preset)) == 0
    assert json.loads((out / "dataset.json").read_text())["seeds"] == {"start": 0, "n": 3}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _synth(labelled, interpreter_dir, out, "--num-images", "3") == 0
        assert _synth(labelled, interpreter_dir, out, "--num-images", "4") == 2


def test_run_keys_of_earlier_versions_are_kept():
    """The run key (in .staging/run.json and dataset.json) still names the count ``n``, and the
    layout only when it is not PNG, so that data sets of earlier versions resume and are recognised."""
    from datasetgan.synthesis.config import SynthesisConfig
    key = synth_run.run_key(SynthesisConfig(num_images=5), "g", "i")
    assert key == {"generator": "g", "interpreter": "i", "seed_start": 0, "n": 5, "truncation": 0.7,
                   "truncation_cutoff": None, "drop_uncertain": 0.1, "class_idx": None}
    shards = synth_run.run_key(SynthesisConfig(num_images=5, format="webdataset", shard_size=2), "g", "i")
    assert shards == {**key, "format": "webdataset", "shard_size": 2}


def _subparser(name: str) -> argparse.ArgumentParser:
    from datasetgan.cli import build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["synthesize", "train-gan"])
def test_torchrun_passes_every_flag_on(command):
    """torchrun's parser reads the whole command line and refuses any flag that abbreviates two or
    more of its own (``--n``: ``--nnodes``, ``--nproc-per-node``, ...), even after ``-m module``."""
    from torch.distributed.run import get_args_parser
    launcher = get_args_parser()
    flags = sorted({s for a in _subparser(command)._actions for s in a.option_strings})
    refused = []
    for flag in flags:
        line = ["--nproc-per-node", "2", "-m", "datasetgan.cli", command, flag, "1"]
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                parsed = launcher.parse_args(line)
        except SystemExit:
            refused.append(flag)
            continue
        assert parsed.training_script_args == [command, flag, "1"]
    assert refused == (["--n"] if command == "synthesize" else [])   # the deprecated spelling of --num-images

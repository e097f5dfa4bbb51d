"""End-to-end: a 16x16 model trains a few steps on the CPU, snapshots, resumes exactly."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from datasetgan.cli import build_parser, main as cli_main
from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.gan_training.checkpoint import find_resume, list_snapshots
from datasetgan.generator import load_generator

def main(argv: list[str]) -> int:
    """Run a subcommand like the CLI, but let ``UserError`` propagate."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


@pytest.fixture
def train(tiny_flags):
    def run(data, out, *extra) -> int:
        return main(["train-gan", "--data", str(data), "--out", str(out), *tiny_flags, *extra])
    return run


def weights(snapshot, part):
    return load_file(str(snapshot / part / "model.safetensors"))


def test_train_snapshot_and_exact_resume(train, image_folder, tmp_path):
    out = tmp_path / "runs"
    # 5 steps straight (R1 at step 0, ADA update at step 4, ticks of 2 steps) ...
    assert train(image_folder, out, "--kimg", "0.02") == 0
    # ... equal 2 steps, then resuming to 5 steps.
    assert train(image_folder, out, "--kimg", "0.008") == 0
    assert train(image_folder, out, "--kimg", "0.02", "--resume", "latest") == 0
    straight, resumed = out / "00000-data-16", out / "00001-data-16"
    assert not (out / "00002-data-16").exists()                   # resuming continues the run folder
    s1, s2 = list_snapshots(straight)[-1], list_snapshots(resumed)[-1]
    assert s1.name == s2.name == "kimg-000000.020"
    for part in ("G", "G_ema", "D"):
        a, b = weights(s1, part), weights(s2, part)
        assert all(torch.equal(a[k], b[k]) for k in a), part
    oa, ob = load_file(str(s1 / "optim.safetensors")), load_file(str(s2 / "optim.safetensors"))
    assert all(torch.equal(oa[k], ob[k]) for k in oa)
    st1, st2 = (json.loads((s / "state.json").read_text()) for s in (s1, s2))
    assert st1["augment_p"] == st2["augment_p"] != 0.3             # p moved at step 4 and matches
    assert st1["data_order"] == st2["data_order"] and st1["step"] == st2["step"] == 5

    # The run folder has what the issue asks for.
    opts = json.loads((resumed / "training_options.json").read_text())
    assert opts["resolution"] == 16 and opts["kimg"] == 0.02 and opts["gamma"] == 1.0
    stats = [json.loads(line) for line in (resumed / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["kimg"] == 0.02 and "Loss/G/loss" in stats[-1] and stats[-1]["img_per_sec"] > 0
    assert (resumed / "reals.png").is_file() and list(resumed.glob("fakes-kimg*.png"))
    assert sorted(p.name for p in s2.iterdir()) == ["D", "G", "G_ema", "optim.safetensors",
                                                   "rng-rank0.safetensors", "state.json"]
    # G_ema loads with the generator package's loader (what sample / synthesize use).
    G = load_generator(s2)
    assert G.img_resolution == 16
    img = G(torch.randn(2, G.z_dim))
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()


def test_diffaug_and_no_aug_with_mirror_train(train, image_folder, tmp_path):
    assert train(image_folder, tmp_path / "a", "--kimg", "0.008", "--aug", "diffaug", "--mirror") == 0
    assert train(image_folder, tmp_path / "b", "--kimg", "0.008", "--aug", "none", "--pl-weight", "2",
                 "--batch", "8", "--batch-gpu", "4") == 0


def test_resume_errors(train, image_folder, tmp_path, capsys):
    out = tmp_path / "runs"
    with pytest.raises(UserError, match="no run with a snapshot"):
        train(image_folder, out, "--kimg", "0.004", "--resume", "latest", "--dry-run")
    with pytest.raises(UserError, match="not found"):
        train(image_folder, out, "--kimg", "0.004", "--resume", str(tmp_path / "nothing"))
    (tmp_path / "notasnap").mkdir()
    with pytest.raises(UserError, match="not a train-gan snapshot"):
        train(image_folder, out, "--kimg", "0.004", "--resume", str(tmp_path / "notasnap"))
    assert train(image_folder, out, "--kimg", "0.004") == 0
    with pytest.raises(CheckpointError, match=r"another architecture: --channel-max 16 \(snapshot: 32\)"):
        train(image_folder, out, "--kimg", "0.008", "--resume", "latest", "--channel-max", "16")
    # Flags not given are taken from the resumed run.
    snap = find_resume("latest", out)
    capsys.readouterr()
    assert main(["train-gan", "--resume", str(snap), "--kimg", "0.008", "--dry-run"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["channel_max"] == 32 and resolved["data"] == str(image_folder)


def test_bad_flags(train, image_folder, tmp_path):
    with pytest.raises(UserError, match="--resolution 24: expected a power of two"):
        main(["train-gan", "--data", str(image_folder), "--resolution", "24", "--dry-run"])
    with pytest.raises(UserError, match="--data: required"):
        main(["train-gan", "--resolution", "16", "--dry-run"])
    with pytest.raises(UserError, match="multiple of the minibatch-std group"):
        main(["train-gan", "--data", str(image_folder), "--resolution", "16", "--batch", "6", "--dry-run"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="contains no files"):
        train(tmp_path / "empty", tmp_path / "runs", "--kimg", "0.004")


def test_cli_prints_user_errors_without_traceback(image_folder, tmp_path, capsys):
    rc = cli_main(["train-gan", "--data", str(tmp_path / "missing"), "--resolution", "16",
                   "--out", str(tmp_path / "runs"), "--device", "cpu", "--quiet"])
    assert rc == 2
    assert "--data" in capsys.readouterr().err


@pytest.mark.parametrize("preset", sorted((Path(__file__).resolve().parents[2] / "configs" / "gan").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_presets_resolve(preset, image_folder, capsys):
    assert main(["train-gan", "--config", str(preset), "--data", str(image_folder), "--dry-run"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["resolution"] >= 8 and resolved["gamma"] is not None


def test_time_based_ticks_and_snapshots_and_pruning(train, image_folder, tmp_path):
    out = tmp_path / "runs"
    assert train(image_folder, out, "--kimg", "0.012", "--tick-kimg", "100", "--tick-minutes", "0",
                 "--snap-ticks", "1000", "--snap-minutes", "0", "--keep-snapshots", "2") == 0
    run = out / "00000-data-16"
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [1, 2, 3]                 # a tick per step (time limit 0)
    assert [p.name for p in list_snapshots(run)] == ["kimg-000000.008", "kimg-000000.012"]


def test_resumed_adam_moments_take_a_channels_last_parameters_layout(tmp_path):
    # D is channels-last on CUDA; its saved moments are contiguous, and the fused CUDA Adam
    # refuses moments in another layout than their parameter (the first GPU resume's crash).
    from datasetgan.gan_training.checkpoint import load_optimizer, optimizer_tensors

    conv = torch.nn.Conv2d(4, 8, 3).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(conv.parameters())
    conv(torch.randn(2, 4, 8, 8)).sum().backward()
    opt.step()
    tensors, meta = optimizer_tensors("D", opt)
    resumed = torch.optim.Adam(conv.parameters())
    load_optimizer(resumed, "D", tensors, meta, tmp_path)
    weight = conv.weight
    for name in ("exp_avg", "exp_avg_sq"):
        assert resumed.state[weight][name].stride() == weight.stride()
        torch.testing.assert_close(resumed.state[weight][name], opt.state[weight][name])

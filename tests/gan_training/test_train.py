"""End-to-end: a 16x16 model trains a few steps on the CPU, snapshots, resumes exactly."""

import json
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from datasetgan.cli import build_parser, main as cli_main
from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.gan_training.checkpoint import find_resume, list_snapshots
from datasetgan.gan_training.config import GanTrainingConfig, check_world_size
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
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    # 5 steps straight (R1 at step 0, ADA update at step 4, ticks of 2 steps) ...
    assert train(image_folder, straight, "--kimg", "0.02") == 0
    # ... equal 2 steps, then the same --out started again, resuming to 5 steps.
    assert train(image_folder, resumed, "--kimg", "0.008") == 0
    assert train(image_folder, resumed, "--kimg", "0.02") == 0
    assert sorted(p.name for p in resumed.iterdir() if p.is_dir()) == ["snapshots"]   # --out is the run
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


def test_diffaug_and_no_aug_with_flip_train(train, image_folder, tmp_path):
    assert train(image_folder, tmp_path / "a", "--kimg", "0.008", "--aug", "diffaug", "--flip") == 0
    assert json.loads((tmp_path / "a" / "training_options.json").read_text())["flip"] is True
    assert train(image_folder, tmp_path / "b", "--kimg", "0.008", "--aug", "none", "--pl-weight", "2",
                 "--batch-size", "8", "--batch-gpu", "4") == 0


def _dry_run(argv: list[str], capsys) -> tuple[dict, list[str]]:
    """The resolved settings ``--dry-run`` prints, and the FutureWarnings on the way."""
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train-gan", *argv, "--dry-run"]) == 0
    return (json.loads(capsys.readouterr().out),
            [str(w.message) for w in caught if issubclass(w.category, FutureWarning)])


def test_old_flag_spellings_still_work_with_a_warning(image_folder, tmp_path, capsys):
    resolved, warned = _dry_run(["--data", str(image_folder), "--resolution", "16", "--batch", "8", "--mirror",
                                 "--precision", "bf16"], capsys)
    assert resolved["batch_size"] == 8 and resolved["flip"] is True and resolved["precision"] == "bfloat16"
    assert resolved["gamma"] == 0.0002 * 16 ** 2 / 8                # derived from the batch size given
    assert any("--batch is deprecated" in w and "--batch-size" in w for w in warned), warned
    assert any("--mirror is deprecated" in w and "--flip" in w for w in warned), warned
    assert any("--precision bf16 is deprecated" in w and "--precision bfloat16" in w for w in warned), warned
    resolved, warned = _dry_run(["--data", str(image_folder), "--resolution", "16", "--precision", "fp32"], capsys)
    assert resolved["precision"] == "float32" and warned
    # ... and in presets.
    preset = tmp_path / "old.yaml"
    preset.write_text("resolution: 16\nbatch: 8\nmirror: true\nprecision: bf16\n")
    resolved, warned = _dry_run(["--config", str(preset), "--data", str(image_folder)], capsys)
    assert (resolved["batch_size"], resolved["flip"], resolved["precision"]) == (8, True, "bfloat16")
    assert len(warned) == 3, warned
    with pytest.raises(SystemExit):
        main(["train-gan", "--data", str(image_folder), "--resolution", "16", "--precision", "fp16", "--dry-run"])


def test_precision_auto_means_bfloat16_on_cuda_only():
    from datasetgan.gan_training.loop import _autocast_dtype

    cfg = GanTrainingConfig(data="x", resolution=16)
    assert _autocast_dtype(cfg, torch.device("cpu")) is None
    assert _autocast_dtype(cfg, torch.device("cuda")) is torch.bfloat16
    assert _autocast_dtype(cfg.with_(precision="bfloat16"), torch.device("cpu")) is torch.bfloat16
    assert _autocast_dtype(cfg.with_(precision="float32"), torch.device("cuda")) is None


def test_config_checks_python_callers_too():
    with pytest.raises(UserError, match="--resolution 7: expected a power of two"):
        GanTrainingConfig(resolution=7, data="x")
    with pytest.raises(UserError, match="--data: required"):
        GanTrainingConfig(resolution=16, data="")
    with pytest.raises(UserError, match="--precision bf16"):
        GanTrainingConfig(resolution=16, data="x", precision="bf16")
    with pytest.raises(UserError, match="--r1-interval"):
        GanTrainingConfig(resolution=16, data="x", r1_interval=0)
    cfg = GanTrainingConfig(resolution=16, data="x", batch_size=6)
    check_world_size(cfg, 3)                                       # 2 per process: a whole mbstd group
    with pytest.raises(UserError, match="multiple of the minibatch-std group"):
        check_world_size(cfg, 1)
    with pytest.raises(UserError, match="multiple of the process count"):
        check_world_size(cfg, 4)


def test_resume_errors(train, image_folder, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(UserError, match="no snapshot in"):
        train(image_folder, out, "--kimg", "0.004", "--resume", "latest", "--dry-run")
    with pytest.raises(UserError, match="--resume latest: needs --out"):
        main(["train-gan", "--data", str(image_folder), "--resolution", "16", "--resume", "latest", "--dry-run"])
    with pytest.raises(UserError, match="not found"):
        train(image_folder, out, "--kimg", "0.004", "--resume", str(tmp_path / "nothing"))
    (tmp_path / "notasnap").mkdir()
    with pytest.raises(UserError, match="not a train-gan snapshot"):
        train(image_folder, out, "--kimg", "0.004", "--resume", str(tmp_path / "notasnap"))
    assert train(image_folder, out, "--kimg", "0.004") == 0
    with pytest.raises(CheckpointError, match=r"another architecture: --channel-max 16 \(snapshot: 32\)"):
        train(image_folder, out, "--kimg", "0.008", "--resume", "latest", "--channel-max", "16")
    with pytest.raises(CheckpointError, match="another architecture"):   # resumed without --resume too
        train(image_folder, out, "--kimg", "0.008", "--channel-max", "16")
    # Python callers get the same check.
    from datasetgan.gan_training.loop import train as train_gan
    base = main_config(["--out", str(out), "--kimg", "0.008"])
    with pytest.raises(CheckpointError, match="another architecture"):
        train_gan(base.with_(channel_max=16), out, quiet=True)
    # Flags not given are taken from the resumed run; it continues in the snapshot's run folder.
    snap = find_resume("latest", out)
    resolved, warned = _dry_run(["--resume", str(snap), "--kimg", "0.008"], capsys)
    assert resolved["channel_max"] == 32 and resolved["data"] == str(image_folder) and not warned
    assert resolved["out"] == str(out) and resolved["resume"] == str(snap)


def main_config(argv: list[str]) -> GanTrainingConfig:
    from datasetgan.gan_training.cli import build_gan_training_config

    return build_gan_training_config(build_parser().parse_args(["train-gan", *argv]))[0]


def _rewrite_in_old_names(snapshot: Path) -> None:
    """Make ``snapshot``'s saved options look as an earlier release wrote them."""
    path = snapshot / "state.json"
    state = json.loads(path.read_text())
    opts = state["options"]
    opts["batch"], opts["mirror"] = opts.pop("batch_size"), opts.pop("flip")
    opts["precision"] = {"float32": "fp32", "bfloat16": "bf16"}.get(opts["precision"], opts["precision"])
    opts["out"], opts["name"] = str(snapshot.parents[2]), None
    path.write_text(json.dumps(state))


def test_snapshot_with_options_of_an_earlier_release_resumes(train, image_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(image_folder, out, "--kimg", "0.008", "--flip", "--precision", "float32") == 0
    _rewrite_in_old_names(list_snapshots(out)[-1])
    resolved, warned = _dry_run(["--out", str(out), "--kimg", "0.016"], capsys)
    assert (resolved["batch_size"], resolved["flip"], resolved["precision"]) == (4, True, "float32")
    assert not warned                                              # our own file: mapped quietly
    assert train(image_folder, out, "--kimg", "0.016") == 0
    assert [p.name for p in list_snapshots(out)] == ["kimg-000000.008", "kimg-000000.016"]
    assert json.loads((list_snapshots(out)[-1] / "state.json").read_text())["step"] == 4


def test_old_run_folder_layout(train, image_folder, tmp_path, tiny_flags, capsys):
    """``--outdir PARENT`` (deprecated) keeps the numbered run folders of earlier releases."""
    parent = tmp_path / "runs"
    flags = ["--data", str(image_folder), "--kimg", "0.008"]
    with pytest.warns(FutureWarning, match="--outdir PARENT"):
        assert main(["train-gan", *flags, "--outdir", str(parent), "--name", "old", *tiny_flags]) == 0
    run = parent / "00000-old"
    assert list_snapshots(run)
    # --out PARENT of numbered runs is refused with what to give instead, not guessed at.
    with pytest.raises(UserError, match=rf"not a run folder; it holds numbered run folders.*--out {run}"):
        train(image_folder, parent, "--kimg", "0.008")
    with pytest.raises(UserError, match=r"no snapshot in .*--outdir"):
        train(image_folder, parent, "--kimg", "0.016", "--resume", "latest")
    # --outdir PARENT --resume latest: the newest run in PARENT; a fresh start numbers the next one.
    resolved, warned = _dry_run([*flags, "--outdir", str(parent), "--resume", "latest"], capsys)
    assert resolved["resume"] == str(list_snapshots(run)[-1]) and resolved["out"] == str(run) and warned
    resolved, _ = _dry_run([*flags, "--resolution", "16", "--outdir", str(parent)], capsys)
    assert resolved["out"] == str(parent / "<next number>-data-16")
    with pytest.raises(UserError, match="--out, --outdir: give one"):
        _dry_run([*flags, "--outdir", str(parent), "--out", str(run)], capsys)
    with pytest.raises(UserError, match="--name: only with --outdir"):
        _dry_run([*flags, "--out", str(run), "--name", "x"], capsys)


def test_bad_flags(train, image_folder, tmp_path):
    with pytest.raises(UserError, match="--resolution 24: expected a power of two"):
        main(["train-gan", "--data", str(image_folder), "--resolution", "24", "--dry-run"])
    with pytest.raises(UserError, match="--data: required"):
        main(["train-gan", "--resolution", "16", "--dry-run"])
    with pytest.raises(UserError, match="multiple of the minibatch-std group"):
        main(["train-gan", "--data", str(image_folder), "--resolution", "16", "--batch-size", "6", "--dry-run"])
    with pytest.raises(UserError, match="--out: required"):
        main(["train-gan", "--data", str(image_folder), "--resolution", "16", "--kimg", "0.004"])
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
    resolved, warned = _dry_run(["--config", str(preset), "--data", str(image_folder)], capsys)
    assert resolved["resolution"] >= 8 and resolved["gamma"] is not None and resolved["ema_kimg"] is not None
    assert not warned                                              # presets use the current names


def test_time_based_ticks_and_snapshots_and_pruning(train, image_folder, tmp_path):
    run = tmp_path / "run"
    assert train(image_folder, run, "--kimg", "0.012", "--tick-kimg", "100", "--tick-minutes", "0",
                 "--snap-ticks", "1000", "--snap-minutes", "0", "--keep-snapshots", "2") == 0
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

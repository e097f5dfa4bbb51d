"""train-interpreter from the command line: outputs, keypoint mode, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import make_tiny_generator

from datasetgan.cli import main
from datasetgan.core.errors import CheckpointError
from datasetgan.interpreter.artifact import Interpreter


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("samples")
    make_tiny_generator().save_pretrained(root / "G")
    assert main(["sample", "--generator", str(root / "G"), "--seeds", "0-3", "--out", str(root / "s"),
                 "--device", "cpu"]) == 0
    (root / "spec.yaml").write_text("classes: [bg, a, b]\npalette: [[0,0,0],[255,0,0],[0,255,0]]\n"
                                    "keypoints: [tip, tail]\n")
    return root


def _masks(folder: Path, stems, size=32, value=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, stem in enumerate(stems):
        m = np.zeros((size, size), np.uint8)
        m[:, size // 2:] = 1 if value is None else value
        m[: size // 3] = 2
        Image.fromarray(m).save(folder / f"{stem}.png")
    return folder


def _train(samples: Path, labels: Path, out: Path, *extra: str, allow_unlabelled: bool = True) -> int:
    # Most tests label a subset of the 4 samples, hence --allow-unlabelled by default here.
    return main(["train-interpreter", "--samples", str(samples / "s"), "--labels", str(labels),
                 "--spec", str(samples / "spec.yaml"), "--out", str(out), "--device", "cpu", "--quiet",
                 "--members", "3", "--max-steps", "15", *extra,
                 *(["--allow-unlabelled"] if allow_unlabelled else [])])


def test_train_writes_config_and_weights(samples, tmp_path):
    labels = _masks(tmp_path / "L", ["000000", "000002"])  # --allow-unlabelled: the others are skipped
    assert _train(samples, labels, tmp_path / "out", "--pixels-per-image", "100") == 0
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["task"] == "segmentation" and cfg["label_spec"]["classes"] == ["bg", "a", "b"]
    assert cfg["ensemble"] == {"in_features": 192, "num_outputs": 3, "members": 3, "hidden": [128, 32]}
    assert cfg["training"]["labelled"] == ["000000", "000002"] and cfg["training"]["pixels"] == 200
    assert len(cfg["generator"]["fingerprint"]) == 64
    interp = Interpreter.load(tmp_path / "out")
    assert interp.out_size == (32, 32) and interp.layers[0] == "b4.conv1"
    assert set(interp.model.state_dict()) >= {"w1", "bn1_mean", "w3"}
    weights = tmp_path / "out" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])          # a truncated copy
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file"):
        Interpreter.load(tmp_path / "out")


def test_unlabelled_pixels_do_not_train_the_interpreter(samples, tmp_path, capsys):
    labels = _masks(tmp_path / "L", ["000000", "000001"], value=255)   # rows 10-31 of the right half: 255
    spec = tmp_path / "spec.yaml"
    spec.write_text((samples / "spec.yaml").read_text() + "ignore_index: 255\n")
    argv = ["train-interpreter", "--samples", str(samples / "s"), "--labels", str(labels), "--out",
            str(tmp_path / "out"), "--device", "cpu", "--quiet", "--members", "2", "--max-steps", "5",
            "--pixels-per-image", "all", "--allow-unlabelled"]
    assert main([*argv, "--spec", str(spec)]) == 0
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["training"]["pixels"] == 2 * (32 * 32 - 22 * 16)
    assert cfg["label_spec"]["ignore_index"] == 255
    assert main([*argv, "--spec", str(samples / "spec.yaml"), "--out", str(tmp_path / "out2")]) == 2
    assert "class id 255" in capsys.readouterr().err


def test_keypoint_mode_trains_and_synthesizes(samples, tmp_path):
    labels = tmp_path / "K"
    labels.mkdir()
    for k, stem in enumerate(["000000", "000001", "000003"]):
        (labels / f"{stem}.json").write_text(json.dumps([[5 + k, 7, 1], [20, 25 - k, 0 if k == 1 else 2]]))
    assert _train(samples, labels, tmp_path / "kp", "--heatmap-sigma", "1.5") == 0
    assert json.loads((tmp_path / "kp" / "config.json").read_text())["task"] == "keypoints"
    out = tmp_path / "ds"
    assert main(["synthesize", "--generator", str(samples / "G"), "--interpreter", str(tmp_path / "kp"),
                 "--out", str(out), "--num-images", "4", "--device", "cpu", "--quiet"]) == 0
    coco = json.loads((out / "keypoints_coco.json").read_text())
    assert coco["categories"][0]["keypoints"] == ["tip", "tail"]
    assert len(coco["images"]) == len(coco["annotations"]) == 4 - 0  # round(0.4) = 0 dropped
    assert all(len(a["keypoints"]) == 6 for a in coco["annotations"])
    assert (out / "labels" / "000000.json").exists() and (out / "contact_sheet.png").exists()


@pytest.mark.parametrize("case, needle", [
    ("wrong_size", "000001.png: label is 16x16"),
    ("bad_id", "000001.png: class id 7"),
    ("bad_colour", "000001.png"),
    ("orphan", "000099.png: label without a sample"),
    ("empty", "no label files"),
])
def test_bad_labels_name_the_file(samples, tmp_path, capsys, case, needle):
    labels = _masks(tmp_path / "L", ["000000"])
    if case == "wrong_size":
        _masks(labels, ["000001"], size=16)
    elif case == "bad_id":
        _masks(labels, ["000001"], value=7)
    elif case == "bad_colour":
        rgb = np.zeros((32, 32, 3), np.uint8)
        rgb[:, :16] = (12, 200, 240)  # no palette colour nor blend of two
        Image.fromarray(rgb).save(labels / "000001.png")
    elif case == "orphan":
        _masks(labels, ["000099"])
    elif case == "empty":
        for p in labels.iterdir():
            p.unlink()
    assert _train(samples, labels, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_unlabelled_samples_are_an_error_naming_them(samples, tmp_path, capsys):
    labels = _masks(tmp_path / "L", ["000000", "000002"])
    assert _train(samples, labels, tmp_path / "out", allow_unlabelled=False) == 2
    err = capsys.readouterr().err
    assert "2 of 4 samples have no label file in" in err and str(labels) in err, err
    assert str(samples / "s" / "images" / "000001.png") in err and "000003.png" in err, err
    assert "000000.png" not in err and "--allow-unlabelled" in err, err
    assert not (tmp_path / "out" / "model.safetensors").exists()
    # The flag skips them, saying how many; all samples labelled needs no flag.
    assert _train(samples, labels, tmp_path / "out", "--pixels-per-image", "20") == 0
    assert "2 of 4 samples" in capsys.readouterr().out
    _masks(labels, ["000001", "000003"])
    assert _train(samples, labels, tmp_path / "all", "--pixels-per-image", "20", allow_unlabelled=False) == 0
    assert json.loads((tmp_path / "all" / "config.json").read_text())["training"]["labelled"] == [
        "000000", "000001", "000002", "000003"]


def test_bad_samples_folder_and_generator(samples, tmp_path, capsys):
    labels = _masks(tmp_path / "L", ["000000"])
    code = main(["train-interpreter", "--samples", str(tmp_path), "--labels", str(labels),
                 "--spec", str(samples / "spec.yaml"), "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert code == 2 and "generator.json: not found" in capsys.readouterr().err
    make_tiny_generator(seed=5).save_pretrained(tmp_path / "G5")
    assert _train(samples, labels, tmp_path / "o", "--generator", str(tmp_path / "G5")) == 2
    assert "is not the one that made" in capsys.readouterr().err


def test_interrupted_training_resumes_to_the_same_bits(samples, tmp_path, monkeypatch, capsys):
    """SIGTERM mid-run: the state is saved, the command exits 130, and the same
    command resumes it; the result equals an uninterrupted run's bit for bit
    (the stop falls inside an epoch, so the saved shuffle position matters)."""
    import os
    import signal

    from datasetgan.interpreter import run as interp_run
    from datasetgan.interpreter.train import MaskedAdam
    labels = _masks(tmp_path / "L", ["000000", "000001"])
    args = ("--pixels-per-image", "300", "--max-steps", "40")  # 600 pixels: 9 batches of 64 per epoch
    assert _train(samples, labels, tmp_path / "whole", *args) == 0
    monkeypatch.setattr(interp_run, "STATE_EVERY_SECONDS", 0.0)  # also save after every step
    calls = {"n": 0}
    original = MaskedAdam.step

    def step_then_signal(self, active):
        original(self, active)
        calls["n"] += 1
        if calls["n"] == 13:
            os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(MaskedAdam, "step", step_then_signal)
    out = tmp_path / "resumed"
    assert _train(samples, labels, out, *args) == 130
    state = out / interp_run.STATE_FILE
    assert state.exists() and not (out / "model.safetensors").exists()
    assert "stopped by SIGTERM at step 13" in capsys.readouterr().out
    monkeypatch.setattr(MaskedAdam, "step", original)
    # Other settings are refused, naming the state file and what differs; nothing is lost.
    assert _train(samples, labels, out, "--pixels-per-image", "300", "--max-steps", "41") == 2
    err = capsys.readouterr().err
    assert str(state) in err and "(config)" in err and state.exists()
    assert _train(samples, labels, out, *args) == 0
    assert "resuming" in capsys.readouterr().out and not state.exists()
    a = Interpreter.load(tmp_path / "whole").model.state_dict()
    b = Interpreter.load(out).model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    trained = json.loads((out / "config.json").read_text())["training"]
    assert trained["steps"] == 40 and trained["epochs"] == 5


def test_damaged_training_state_is_named(samples, tmp_path, capsys):
    from datasetgan.interpreter import run as interp_run
    labels = _masks(tmp_path / "L", ["000000", "000001"])
    out = tmp_path / "out"
    out.mkdir()
    (out / interp_run.STATE_FILE).write_bytes(b"\x00" * 50)
    assert _train(samples, labels, out, "--pixels-per-image", "100") == 2
    err = capsys.readouterr().err
    assert interp_run.STATE_FILE in err and "delete it to start over" in err


def test_min_epochs_holds_early_stopping_off(samples, tmp_path):
    """``--min-epochs E --max-epochs E`` trains every member exactly E epochs, even with patience 0."""
    labels = _masks(tmp_path / "L", ["000000", "000002"])
    (tmp_path / "impatient.yaml").write_text("patience: 0\n")
    common = ("--pixels-per-image", "100", "--batch-size", "50", "--lr", "0.002", "--max-epochs", "6",
              "--max-steps", "1000", "--config", str(tmp_path / "impatient.yaml"))
    assert _train(samples, labels, tmp_path / "exact", *common, "--min-epochs", "6") == 0
    exact = json.loads((tmp_path / "exact" / "config.json").read_text())["training"]
    assert exact["member_stopped_at"] == [None, None, None]    # none stopped early
    assert (exact["steps"], exact["epochs"]) == (24, 6)        # 200 pixels, 50 a batch: 4 batches an epoch
    assert (exact["config"]["batch_size"], exact["config"]["lr"], exact["config"]["min_epochs"]) == (50, 0.002, 6)
    assert _train(samples, labels, tmp_path / "early", *common) == 0    # the reference's epoch 4
    early = json.loads((tmp_path / "early" / "config.json").read_text())["training"]
    assert None not in early["member_stopped_at"] and max(early["member_stopped_at"]) < 24

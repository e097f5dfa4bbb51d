"""SegmenterTrainingConfig: its checks, its flags, presets, --dry-run and the old --no-amp / run.json amp."""

from __future__ import annotations

import json

import pytest
import torch

from datasetgan.cli import main
from datasetgan.core.config import config_to_dict
from datasetgan.core.errors import UserError
from datasetgan.segmenter.config import SegmenterTrainingConfig
from datasetgan.segmenter.data import collect_items
from datasetgan.segmenter.models import SegmenterConfig
from datasetgan.segmenter.train import _same_run, autocast_dtype, list_epochs, train


def _dry_run(capsys, *argv: str, command: str = "train-segmenter") -> dict:
    assert main([command, "--images", "imgs", "--labels", "labels", "--spec", "spec.yaml", "--out", "run",
                 *argv, "--dry-run"]) == 0
    return json.loads(capsys.readouterr().out)


def test_python_callers_get_the_command_lines_checks():
    with pytest.raises(UserError, match=r"^--batch-size 1: must be at least 2"):
        SegmenterTrainingConfig(batch_size=1)
    with pytest.raises(UserError, match=r"^--precision 'float16': expected one of auto, float32, bfloat16"):
        SegmenterTrainingConfig(precision="float16")
    with pytest.raises(UserError, match=r"^--zoom-out 2.5: must lie in \[1, 2\)"):
        SegmenterTrainingConfig(zoom_out=2.5)
    with pytest.raises(UserError, match=r"^--output-stride 4: expected 8 or 16"):
        SegmenterTrainingConfig(output_stride=4)


def test_dry_run_prints_the_resolved_settings_and_trains_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = _dry_run(capsys, "--epochs", "3", "--no-flip")
    assert settings == {**config_to_dict(SegmenterTrainingConfig()), "epochs": 3, "flip": False}
    assert not (tmp_path / "run").exists()


def test_preset_then_flags(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "preset.yaml").write_text("epochs: 100\nlr: 0.01\nprecision: float32\n")
    settings = _dry_run(capsys, "--config", "preset.yaml", "--lr", "0.002")
    assert (settings["epochs"], settings["lr"], settings["precision"]) == (100, 0.002, "float32")
    (tmp_path / "bad.yaml").write_text("batch_size: 1\n")
    assert main(["train-segmenter", "--images", "i", "--out", "run", "--config", "bad.yaml"]) == 2
    assert "--batch-size 1: must be at least 2" in capsys.readouterr().err
    (tmp_path / "typo.yaml").write_text("epoch: 3\n")
    assert main(["train-segmenter", "--images", "i", "--out", "run", "--config", "typo.yaml"]) == 2
    assert "typo.yaml: key 'epoch': unknown setting" in capsys.readouterr().err


def test_no_amp_is_a_deprecated_spelling_of_precision_float32(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.warns(FutureWarning, match=r"--no-amp is deprecated .*use --precision float32"):
        settings = _dry_run(capsys, "--no-amp")
    assert settings["precision"] == "float32" and "amp" not in settings
    assert _dry_run(capsys, "--precision", "bfloat16")["precision"] == "bfloat16"
    with pytest.raises(SystemExit):
        main(["train-segmenter", "--help"])
    shown = capsys.readouterr().out
    assert "--precision {auto,float32,bfloat16}" in shown and "--no-amp" not in shown


def test_each_command_shows_its_own_settings(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _dry_run(capsys, "--keypoint-head", "heatmap", "--heatmap-sigma", "1.5",
                    command="train-keypoints")["keypoint_head"] == "heatmap"
    for command, flag in (("train-segmenter", "--keypoint-head"), ("train-keypoints", "--class-weight-power")):
        with pytest.raises(SystemExit):
            main([command, "--images", "i", "--out", "run", flag, "1", "--dry-run"])
        assert "unrecognized arguments" in capsys.readouterr().err


def test_the_demos_arguments_still_parse(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seg = ["--arch", "deeplabv3_mobilenet_v3_large", "--batch-size", "8", "--resolution", "128", "--decoder",
           "plus", "--class-weight-power", "0.5", "--zoom-out", "1.6", "--device", "cpu"]
    settings = _dry_run(capsys, "--epochs", "18", *seg, "--weight-decay", "0.0001", "--quiet")
    assert (settings["decoder"], settings["zoom_out"], settings["weight_decay"]) == ("plus", 1.6, 1e-4)
    settings = _dry_run(capsys, "--epochs", "4", *seg, "--init", "segmenter_datasetgan", "--lr", "0.0001",
                        "--freeze-bn")
    assert settings["freeze_bn"] is True and settings["init"] == "segmenter_datasetgan"


def test_autocast_dtype_keeps_the_old_default():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert autocast_dtype("auto", cuda) == torch.float16                 # --amp of earlier releases
    assert autocast_dtype("bfloat16", cuda) == torch.bfloat16
    assert autocast_dtype("float32", cuda) is None                       # --no-amp
    assert all(autocast_dtype(p, cpu) is None for p in ("auto", "float32", "bfloat16"))


def _record(**train_settings) -> dict:
    return {"train": {**config_to_dict(SegmenterTrainingConfig()), **train_settings},
            "model": config_to_dict(SegmenterConfig()), "spec": {}, "source": {}, "num_images": 4}


def test_run_json_with_the_old_amp_key_is_the_same_run():
    def old(amp: bool) -> dict:
        record = _record()
        record["train"].pop("precision")
        record["train"]["amp"] = amp
        return record
    assert _same_run(old(True), _record(precision="auto"))
    assert _same_run(old(False), _record(precision="float32"))
    assert not _same_run(old(True), _record(precision="float32"))
    assert not _same_run(old(False), _record(precision="auto"))
    assert not _same_run(old(True), _record(precision="bfloat16"))


def test_a_run_started_with_amp_resumes_under_precision(tiny_set, tmp_path):
    items, spec = collect_items("segmentation", images=tiny_set / "images", labels=tiny_set / "labels",
                                spec=tiny_set / "spec.yaml")
    run = tmp_path / "run"
    cfg = dict(batch_size=2, resolution=32, bn_recalibrate=0)
    train(items, spec, "segmentation", SegmenterTrainingConfig(epochs=1, precision="float32", **cfg), run,
          torch.device("cpu"), quiet=True)
    record = json.loads((run / "run.json").read_text())
    assert record["train"].pop("precision") == "float32"
    record["train"]["amp"] = False                                    # as --no-amp wrote it
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match="different settings"):
        train(items, spec, "segmentation", SegmenterTrainingConfig(epochs=2, **cfg), run, torch.device("cpu"),
              quiet=True)
    train(items, spec, "segmentation", SegmenterTrainingConfig(epochs=2, precision="float32", **cfg), run,
          torch.device("cpu"), quiet=True)
    assert [p.name for p in list_epochs(run)] == ["epoch_001", "epoch_002"]
    assert json.loads((run / "run.json").read_text())["train"]["precision"] == "float32"

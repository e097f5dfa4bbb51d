"""``datasetgan demo --quick`` end to end on tiny sizes: every stage runs, every output is written."""

from __future__ import annotations

import json

import pytest

from datasetgan.cli import main
from datasetgan.core.errors import UserError
from datasetgan.demo.config import DemoConfig, load_demo_config
from datasetgan.demo.domain import CLASSES


def test_synth_total_keeps_exactly_enough_by_synthesizes_rounding():
    from datasetgan.synthesis.config import SynthesisConfig

    # (5, 0.1) is where half-to-even and half-up rounding part: 5 * 0.1 = 0.5.
    for keep, drop in ((2000, 0.1), (24, 0.1), (10, 0.0), (7, 0.33), (5, 0.1), (4, 0.125)):
        cfg = DemoConfig(synth_keep=keep, synthesis=SynthesisConfig(drop_uncertain=drop))
        n = cfg.synth_total
        assert cfg.synthesis_run.num_images == n
        assert SynthesisConfig(num_images=n, drop_uncertain=drop).keep_count >= keep
        assert n == keep or SynthesisConfig(num_images=n - 1, drop_uncertain=drop).keep_count < keep
    assert DemoConfig(synth_keep=5, synthesis=SynthesisConfig(drop_uncertain=0.1)).synth_total == 6


def test_bad_settings_name_the_key(tmp_path):
    from datasetgan.demo.config import load_demo_config

    preset = tmp_path / "demo.yaml"
    preset.write_text("synthesis:\n  ignore_pixels_above: 0.0\n")
    with pytest.raises(UserError, match="--ignore-pixels-above 0.0: must be > 0"):
        load_demo_config(preset, quick=False)
    preset.write_text("segmenter:\n  epochz: 3\n")
    with pytest.raises(UserError, match=r"demo.yaml: key 'segmenter.epochz': unknown setting"):
        load_demo_config(preset, quick=False)
    with pytest.raises(UserError, match="finetune_epochs"):
        DemoConfig(finetune_epochs=-1)


def test_baseline_epochs_are_at_most_the_segmenter_epochs():
    def cfg(seg, base):
        return load_demo_config(None, quick=False, overrides={"segmenter": {"epochs": seg},
                                                              "baseline": {"epochs": base}})
    assert cfg(18, 8).baseline_run.epochs == 8
    assert cfg(6, 8).baseline_run.epochs == 6
    with pytest.raises(UserError, match="--epochs"):
        cfg(6, 0)
    with pytest.raises(UserError, match="--weight-decay -0.1"):
        load_demo_config(None, quick=False, overrides={"segmenter": {"weight_decay": -0.1}})


def test_quick_preset_uses_the_random_generator():
    cfg = load_demo_config(None, quick=True)
    assert cfg.generator == "random" and cfg.synth_keep < 100


def test_quick_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick", "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    for key in ("datasetgan_miou", "baseline_miou"):
        assert 0 <= results[key] <= 100
    for key in ("datasetgan_per_class_iou", "baseline_per_class_iou"):
        assert set(results[key]) == set(CLASSES)
    assert results["synthetic_images"] == load_demo_config(None, quick=True).synth_keep
    # The baseline stops after its epoch; the DatasetGAN segmenter resumes alone for its second.
    assert (results["datasetgan_epochs"], results["baseline_epochs"]) == (2, 1)
    assert sorted(p.name for p in (out / "segmenter_datasetgan").glob("epoch_*")) == ["epoch_001", "epoch_002"]
    assert sorted(p.name for p in (out / "segmenter_baseline").glob("epoch_*")) == ["epoch_001"]
    trained = {name: json.loads((out / f"segmenter_{name}" / "run.json").read_text())["train"]
               for name in ("datasetgan", "baseline", "finetuned")}
    assert trained["datasetgan"]["epochs"] == 2
    # Each segmenter trains with its own weight decay; the fine-tuning keeps its start's BatchNorm statistics.
    cfg = load_demo_config(None, quick=True)
    assert trained["datasetgan"]["weight_decay"] == cfg.segmenter.weight_decay > 0
    assert trained["baseline"]["weight_decay"] == cfg.baseline.weight_decay == 0
    assert trained["finetuned"]["freeze_bn"] and not trained["datasetgan"]["freeze_bn"]
    # Then the DatasetGAN segmenter is fine-tuned on the labelled samples, and scored next to the others.
    tuned = trained["finetuned"]
    assert tuned["init"] == str(out / "segmenter_datasetgan") and tuned["lr"] == 1e-4
    assert set(results["finetuned_per_class_iou"]) == set(CLASSES) and 0 <= results["finetuned_miou"] <= 100
    assert results["finetuned_gain_miou"] == pytest.approx(results["finetuned_miou"] - results["baseline_miou"], abs=0.02)
    html = (out / "report.html").read_text()
    assert "Per-class IoU" in html and "report/labelled.png" in html and "fine-tuned" in html


def test_builtin_presets_match_the_repository_files():
    from datasetgan.demo.config import QUICK, build_config, preset_path

    assert load_demo_config(None, quick=False) == DemoConfig()
    assert load_demo_config(None, quick=True) == build_config(DemoConfig, QUICK)
    assert preset_path(True).exists() and preset_path(False).exists()


def test_bundled_generator_and_labels_belong_together(tmp_path):
    from datasetgan.demo.pipeline import bundled, bundled_labels_fit, tiny_random_generator
    from datasetgan.generator import load_generator

    G = load_generator(bundled("demo_generator"))
    assert G.img_resolution == 64
    labels = bundled("demo_labels")
    assert len(list((labels / "labels").glob("*.png"))) == 16
    assert len(list((labels / "labels").glob("*.json"))) == 16
    seeds = list(range(16))
    assert bundled_labels_fit(labels, bundled("demo_generator"), seeds, 0.7)
    assert not bundled_labels_fit(labels, tiny_random_generator(tmp_path / "g"), seeds, 0.7)
    assert not bundled_labels_fit(labels, bundled("demo_generator"), list(range(8)), 0.7)
    assert not bundled_labels_fit(labels, bundled("demo_generator"), seeds, 1.0)


def test_side_by_side_failure_names_the_stage(tmp_path):
    from datasetgan.demo.pipeline import Job, run_side_by_side, train_segmenter
    from datasetgan.segmenter.config import SegmenterTrainingConfig

    job = Job("train-segmenter (baseline)", train_segmenter,
              dict(config=SegmenterTrainingConfig(), run=tmp_path / "run", device="cpu", quiet=True,
                   images=tmp_path / "missing", labels=tmp_path / "missing", spec=tmp_path / "missing.yaml"))
    with pytest.raises(UserError, match="'train-segmenter \\(baseline\\)' failed \\(exit 2\\)"):
        run_side_by_side([job], threads=1)

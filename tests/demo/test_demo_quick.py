"""``datasetgan demo --quick`` end to end on tiny sizes: every stage runs, every output is written."""

from __future__ import annotations

import json

import pytest

from datasetgan.cli import main
from datasetgan.core.errors import UserError
from datasetgan.demo.config import DemoConfig, load_demo_config
from datasetgan.demo.domain import CLASSES


def test_synth_total_keeps_exactly_enough():
    for keep, drop in ((2000, 0.1), (24, 0.1), (10, 0.0), (7, 0.33)):
        cfg = DemoConfig(synth_keep=keep, drop_uncertain=drop)
        n = cfg.synth_total
        assert n - round(n * drop) >= keep and (n - 1) - round((n - 1) * drop) < keep


def test_bad_unlabelled_pixel_threshold_names_the_key():
    for bad in (0.0, -0.1):
        with pytest.raises(UserError, match="synth_ignore_above: expected a divergence > 0"):
            DemoConfig(synth_ignore_above=bad)
    assert DemoConfig(synth_ignore_above=None).synth_ignore_above is None


def test_baseline_epochs_are_at_most_the_segmenter_epochs():
    assert DemoConfig(seg_epochs=18, baseline_epochs=8).baseline_seg_epochs == 8
    assert DemoConfig(seg_epochs=6, baseline_epochs=8).baseline_seg_epochs == 6
    assert DemoConfig(seg_epochs=6, baseline_epochs=None).baseline_seg_epochs == 6
    with pytest.raises(UserError, match="baseline_epochs: expected a positive integer"):
        DemoConfig(baseline_epochs=0)
    with pytest.raises(UserError, match="seg_weight_decay: expected 0 .none. or more, got -0.1"):
        DemoConfig(seg_weight_decay=-0.1)


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
    assert trained["datasetgan"]["weight_decay"] == cfg.seg_weight_decay > 0
    assert trained["baseline"]["weight_decay"] == cfg.baseline_weight_decay == 0
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


def test_side_by_side_failure_names_the_stage():
    from datasetgan.demo.pipeline import run_side_by_side

    with pytest.raises(UserError, match="'train-segmenter \\(baseline\\)' failed \\(exit 2\\)"):
        run_side_by_side([(["train-segmenter", "--no-such-flag"], "train-segmenter (baseline)")], threads=1)

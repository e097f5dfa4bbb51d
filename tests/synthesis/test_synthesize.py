"""End to end: 8 labelled samples -> interpreter -> synthetic data set.

A tiny generator whose colours are a fixed function of its features, 8
labelled samples of it, and an interpreter trained on them (conftest.py, once
per session).

A randomly initialised skip-architecture StyleGAN re-colours every sample
through its toRGB style modulation, so its colours are not a fixed function
of its features (a trained generator's semantics are). The fixture uses the
'orig' architecture (one toRGB, fed by the last feature map) with the toRGB
style affine zeroed, so that "red channel above a threshold" is a labelling
that a pixel classifier can learn from a few samples, as parts are on a
trained generator.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import make_tiny_generator
from tests.synthesis.conftest import _snapshot, _synth, make_colour_generator, red_labels

from datasetgan.cli import main
from datasetgan.synthesis import finish as synth_finish
from datasetgan.synthesis import run as synth_run
from datasetgan.synthesis.config import SynthesisConfig

def test_sanity_segmentation_accuracy(labelled, interpreter_dir, tmp_path):
    """>= 95% pixel accuracy on new samples, from 8 labelled ones."""
    out = tmp_path / "ds"
    assert _synth(labelled, interpreter_dir, out, "--num-images", "24", "--seed-start", "100",
                  "--drop-uncertain", "0") == 0
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [e["seed"] for e in manifest] == list(range(100, 124))
    correct = total = 0
    for e in manifest:
        image = np.asarray(Image.open(out / e["image"]))
        label = Image.open(out / e["label"])
        assert label.mode == "P" and label.getpalette()[:6] == [0, 0, 0, 255, 0, 0]
        label = np.asarray(label)
        correct += int((label == red_labels(image)).sum())
        total += label.size
        assert e["class_pixels"] == {"other": int((label == 0).sum()), "red": int((label == 1).sum())}
    accuracy = correct / total
    majority = max(np.mean([red_labels(np.asarray(Image.open(out / e["image"]))).mean() for e in manifest]),
                   0.5)
    print(f"pixel accuracy {accuracy:.4f} (majority class {majority:.3f})")
    assert accuracy >= 0.95


def test_outputs_and_drop_count(labelled, interpreter_dir, tmp_path):
    out = tmp_path / "ds"
    assert _synth(labelled, interpreter_dir, out, "--num-images", "10", "--drop-uncertain", "0.25") == 0
    info = json.loads((out / "dataset.json").read_text())
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert info["kept"] == len(manifest) == 10 - 3  # round(2.5) half up
    kept = {e["seed"] for e in manifest}
    assert kept | set(info["dropped_seeds"]) == set(range(10))
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{s:06d}.png" for s in sorted(kept)]
    assert sorted(p.name for p in (out / "labels").iterdir()) == [f"{s:06d}.png" for s in sorted(kept)]
    assert (out / "contact_sheet.png").exists() and (out / "index.html").exists()
    assert not (out / ".staging").exists()
    assert info["classes"] == ["other", "red"] and len(info["generator"]["fingerprint"]) == 64
    # A seed means what it means in `sample`: same image bytes for seed 3.
    if 3 in kept:
        assert (out / "images/000003.png").read_bytes() == (labelled["samples"] / "images/000003.png").read_bytes()


def test_dropped_are_the_most_uncertain(labelled, interpreter_dir, tmp_path):
    out = tmp_path / "all"
    assert _synth(labelled, interpreter_dir, out, "--num-images", "8", "--drop-uncertain", "0") == 0
    scores = {json.loads(l)["seed"]: json.loads(l)["uncertainty"] for l in (out / "manifest.jsonl").read_text().splitlines()}
    out2 = tmp_path / "some"
    assert _synth(labelled, interpreter_dir, out2, "--num-images", "8", "--drop-uncertain", "0.25") == 0
    dropped = json.loads((out2 / "dataset.json").read_text())["dropped_seeds"]
    assert sorted(dropped) == sorted(sorted(scores, key=lambda s: (scores[s], s))[-2:])


def test_independent_of_batch_size(labelled, interpreter_dir, tmp_path):
    """Batches really are batched (padded to a fixed size), yet every file,
    the kept set included, is byte-identical for any batch size."""
    calls = []
    original = synth_run.render_batch

    def counting(G, seeds, size, *args, **kwargs):
        calls.append((len(seeds), size))
        return original(G, seeds, size, *args, **kwargs)
    synth_run.render_batch = counting
    try:
        for b in (1, 3, 8):
            assert _synth(labelled, interpreter_dir, tmp_path / f"b{b}", "--num-images", "7", "--batch-size", str(b),
                          "--drop-uncertain", "0.3") == 0
    finally:
        synth_run.render_batch = original
    assert calls == [(2, 2)] * 3 + [(1, 2)] + [(3, 3), (3, 3), (1, 3)] + [(7, 7)]  # at least 2 per call
    reference = _snapshot(tmp_path / "b1")
    assert len(json.loads((tmp_path / "b1" / "dataset.json").read_text())["dropped_seeds"]) == 2
    for b in (3, 8):
        assert _snapshot(tmp_path / f"b{b}") == reference
        assert (tmp_path / f"b{b}" / "dataset.json").read_text() == (tmp_path / "b1" / "dataset.json").read_text()


def _interrupt_at_candidate(monkeypatch, n: int) -> None:
    """Make the ``n``-th staged seed's write raise KeyboardInterrupt (as Ctrl-C would)."""
    calls = {"n": 0}
    original = synth_run._write_candidate

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return original(*args, **kwargs)
    monkeypatch.setattr(synth_run, "_write_candidate", flaky)


@pytest.mark.parametrize("where", ["render", "finalise"])
def test_interrupted_run_finishes_identically(labelled, interpreter_dir, tmp_path, monkeypatch, where):
    assert _synth(labelled, interpreter_dir, tmp_path / "whole", "--num-images", "7", "--batch-size", "2") == 0
    out = tmp_path / "resumed"
    if where == "render":
        _interrupt_at_candidate(monkeypatch, 4)
    else:
        def broken(*args, **kwargs):
            raise KeyboardInterrupt
        monkeypatch.setattr(synth_finish, "write_contact_sheet", broken)
    assert _synth(labelled, interpreter_dir, out, "--num-images", "7", "--batch-size", "2") == 130
    assert not (out / "dataset.json").exists()
    if where == "render":  # nothing final yet, and only whole seeds staged
        assert not (out / "images").exists()
        assert len(list((out / ".staging").glob("0*.json"))) == 3
    monkeypatch.undo()
    assert _synth(labelled, interpreter_dir, out, "--num-images", "7", "--batch-size", "3") == 0
    assert _snapshot(out) == _snapshot(tmp_path / "whole")
    # Running it again is a no-op; other settings in the same folder are refused.
    assert _synth(labelled, interpreter_dir, out, "--num-images", "7") == 0
    assert _synth(labelled, interpreter_dir, out, "--num-images", "8") == 2


def test_unfinished_run_with_other_settings_is_refused(labelled, interpreter_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ds"

    def boom(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(synth_run, "_write_candidate", boom)
    assert _synth(labelled, interpreter_dir, out, "--num-images", "4") == 130
    monkeypatch.undo()
    assert _synth(labelled, interpreter_dir, out, "--num-images", "4", "--truncation", "0.5") == 2
    assert "settings (truncation: --truncation 0.7 there, 0.5 now)" in capsys.readouterr().err
    assert _synth(labelled, interpreter_dir, out, "--num-images", "4", "--ignore-pixels-above", "0.1") == 2
    assert "settings (ignore_pixels_above: --ignore-pixels-above not set there, 0.1 now)" in capsys.readouterr().err
    # a setting the unfinished run has and the new one lacks is named too
    monkeypatch.setattr(synth_run, "_write_candidate", boom)
    assert _synth(labelled, interpreter_dir, tmp_path / "ds2", "--num-images", "4", "--ignore-pixels-above", "0.1") == 130
    monkeypatch.undo()
    assert _synth(labelled, interpreter_dir, tmp_path / "ds2", "--num-images", "4") == 2
    assert "settings (ignore_pixels_above: --ignore-pixels-above 0.1 there, not set now)" in capsys.readouterr().err


def test_precision_is_recorded_and_part_of_the_run(labelled, interpreter_dir, tmp_path, monkeypatch, capsys):
    """``--precision``: the same images; labels from bfloat16 first-layer matmuls
    agree with float32's on nearly every pixel; the choice is in dataset.json and
    in the run key, so a run is not finished under another precision."""
    common = ("--num-images", "6", "--drop-uncertain", "0")
    for p in ("float32", "bfloat16"):
        assert _synth(labelled, interpreter_dir, tmp_path / p, *common, "--precision", p) == 0
        assert json.loads((tmp_path / p / "dataset.json").read_text())["first_layer_precision"] == p
    same = different = 0
    for seed in range(6):
        stem = f"{seed:06d}.png"
        assert (tmp_path / "float32/images" / stem).read_bytes() == (tmp_path / "bfloat16/images" / stem).read_bytes()
        a, b = (np.asarray(Image.open(tmp_path / p / "labels" / stem)) for p in ("float32", "bfloat16"))
        same, different = same + int((a == b).sum()), different + int((a != b).sum())
    assert same / (same + different) >= 0.99

    def boom(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(synth_run, "_write_candidate", boom)
    assert _synth(labelled, interpreter_dir, tmp_path / "ds", *common, "--precision", "bfloat16") == 130
    monkeypatch.undo()
    assert _synth(labelled, interpreter_dir, tmp_path / "ds", *common, "--precision", "float32") == 2
    assert "settings (first_layer: --precision bfloat16 there, float32 now)" in capsys.readouterr().err
    assert _synth(labelled, interpreter_dir, tmp_path / "ds", *common, "--precision", "bfloat16") == 0


def test_shards_then_a_finishing_run_equal_one_run(labelled, interpreter_dir, tmp_path, monkeypatch, capsys):
    """Shards stage disjoint seeds and never finalise; the run without a shard
    renders only what is missing, and the data set equals a single run's."""
    args = ("--num-images", "7", "--drop-uncertain", "0.3", "--batch-size", "2")
    assert _synth(labelled, interpreter_dir, tmp_path / "whole", *args) == 0
    rendered = []
    original = synth_run.render_batch

    def recording(G, seeds, *rest, **kwargs):
        rendered.append(list(seeds))
        return original(G, seeds, *rest, **kwargs)
    monkeypatch.setattr(synth_run, "render_batch", recording)
    out = tmp_path / "sharded"
    capsys.readouterr()
    assert _synth(labelled, interpreter_dir, out, *args, "--shard", "1/3") == 0
    assert rendered == [[1, 4]] and not (out / "dataset.json").exists() and not (out / "images").exists()
    assert "shard 1/3 staged (2 seeds); 5 of 7 seeds still missing" in capsys.readouterr().out
    assert _synth(labelled, interpreter_dir, out, *args, "--shard", "0/3") == 0
    assert rendered[1:] == [[0, 3], [6]] and not (out / "dataset.json").exists()
    assert "2 of 7 seeds still missing" in capsys.readouterr().out
    assert _synth(labelled, interpreter_dir, out, *args, "--shard", "0/3") == 0  # done: renders nothing
    assert len(rendered) == 3
    assert _synth(labelled, interpreter_dir, out, *args) == 0   # shard 2/3 never ran: seeds 2 and 5
    assert rendered[3:] == [[2, 5]]
    assert _snapshot(out) == _snapshot(tmp_path / "whole")
    assert (out / "dataset.json").read_text() == (tmp_path / "whole" / "dataset.json").read_text()
    # A finished data set is returned as it is, with or without a shard.
    assert _synth(labelled, interpreter_dir, out, *args, "--shard", "2/3") == 0
    assert len(rendered) == 4 and "5 of 7 samples kept" in capsys.readouterr().out


@pytest.mark.parametrize("shard", ["3/3", "-1/2", "0/0"])
def test_bad_shard_is_named(labelled, interpreter_dir, tmp_path, capsys, shard):
    assert _synth(labelled, interpreter_dir, tmp_path / "ds", "--num-images", "4", f"--shard={shard}") == 2
    assert f"--shard {shard}: expected I/N with 0 <= I < N" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_unparsable_shard_is_refused_by_argparse(labelled, interpreter_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _synth(labelled, interpreter_dir, tmp_path / "ds", "--num-images", "4", "--shard", "two")
    assert "argument --shard: 'two': expected I/N" in capsys.readouterr().err

def test_damaged_staged_files_are_named(labelled, interpreter_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ds"
    _interrupt_at_candidate(monkeypatch, 3)
    assert _synth(labelled, interpreter_dir, out, "--num-images", "4", "--batch-size", "2") == 130
    monkeypatch.undo()
    record = out / ".staging" / "000000.json"
    record.write_text('{"seed": 0, "uncert')   # e.g. a disk that filled up under another tool
    assert _synth(labelled, interpreter_dir, out, "--num-images", "4", "--batch-size", "2") == 2
    assert "000000.json: file is not valid JSON" in capsys.readouterr().err
    record.write_text("[]")
    assert _synth(labelled, interpreter_dir, out, "--num-images", "4", "--batch-size", "2") == 2
    assert "000000.json: expected a JSON object" in capsys.readouterr().err
    (out / ".staging" / "run.json").write_text("{")
    assert _synth(labelled, interpreter_dir, out, "--num-images", "4", "--batch-size", "2") == 2
    assert "run.json: file is not valid JSON" in capsys.readouterr().err


def test_interpreter_for_another_generator_is_refused(labelled, interpreter_dir, tmp_path, capsys):
    make_colour_generator(seed=1).save_pretrained(tmp_path / "G2")
    code = main(["synthesize", "--generator", str(tmp_path / "G2"), "--interpreter", str(interpreter_dir),
                 "--out", str(tmp_path / "ds"), "--num-images", "2", "--device", "cpu", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "fingerprint" in err and str(interpreter_dir) in err
    assert not (tmp_path / "ds").exists()


def test_uncertain_pixels_left_unlabelled(labelled, interpreter_dir, tmp_path, capsys):
    """``--ignore-pixels-above JS``: exactly the pixels whose ensemble divergence exceeds JS carry
    the unlabelled id; the counts leave them out, and the set reads back with them as IGNORE."""
    from types import SimpleNamespace

    from datasetgan.core.errors import UserError
    from datasetgan.labels import IGNORE, read_label_map
    from datasetgan.demo.uncertainty import write_uncertainty_maps
    from datasetgan.segmenter.data import collect_items

    seeds = list(range(200, 206))
    maps = write_uncertainty_maps(labelled["G"], interpreter_dir, seeds, 0.7, tmp_path / "maps")
    js = {s: np.load(maps / f"{i:02d}_{s:06d}.npy") for i, s in enumerate(seeds)}
    threshold = float(np.quantile(np.stack(list(js.values())), 0.9))
    plain, cut = tmp_path / "plain", tmp_path / "cut"
    common = ("--num-images", "6", "--seed-start", "200", "--drop-uncertain", "0")
    assert _synth(labelled, interpreter_dir, plain, *common) == 0
    assert _synth(labelled, interpreter_dir, cut, *common, "--ignore-pixels-above", str(threshold)) == 0
    assert "of their pixels left unlabelled" in capsys.readouterr().out

    info = json.loads((cut / "dataset.json").read_text())
    assert info["ignore_index"] == IGNORE and info["unlabelled"]["above_js"] == threshold
    assert "ignore_index" not in json.loads((plain / "dataset.json").read_text())
    items, spec = collect_items("segmentation", data=cut)
    assert spec.ignore_index == IGNORE and len(items) == 6
    total = 0
    for e, item in zip(synth_run.read_manifest(cut), items):
        unsure = js[e["seed"]] > threshold
        before = np.asarray(Image.open(plain / e["label"]))
        after = np.asarray(Image.open(cut / e["label"]))
        assert np.array_equal(after, np.where(unsure, IGNORE, before))
        assert np.array_equal(read_label_map(item.label, spec), np.where(unsure, IGNORE, before))
        assert e["unlabelled_pixels"] == int(unsure.sum())
        assert e["class_pixels"] == {"other": int((after == 0).sum()), "red": int((after == 1).sum())}
        total += int(unsure.sum())
    assert 0 < total and info["unlabelled"]["pixel_fraction"] == round(total / (6 * after.size), 6)
    assert f"{total} pixels of the kept samples left unlabelled" in (cut / "index.html").read_text()

    assert _synth(labelled, interpreter_dir, tmp_path / "zero", "--num-images", "2", "--ignore-pixels-above", "0") == 2
    assert "--ignore-pixels-above 0.0: must be > 0" in capsys.readouterr().err
    with pytest.raises(UserError, match="only for segmentation"):
        synth_run.synthesize(None, SimpleNamespace(task="keypoints"), tmp_path / "kp",
                             SynthesisConfig(num_images=2, ignore_pixels_above=0.1), torch.device("cpu"))


@pytest.mark.gpu
def test_cuda_synthesis_matches_the_cpus(labelled, interpreter_dir, tmp_path):
    """The same seeds on a GPU and on a CPU (float32 both): the same images, up to float rounding
    (cuDNN's TF32 convolutions included), and the same labels but for near-ties."""
    if not torch.cuda.is_available():
        pytest.fail("the gpu marker needs a CUDA device")
    assert _synth(labelled, interpreter_dir, tmp_path / "cpu", "--num-images", "6", "--precision", "float32") == 0
    assert main(["synthesize", "--generator", str(labelled["G"]), "--interpreter", str(interpreter_dir),
                 "--out", str(tmp_path / "cuda"), "--device", "cuda", "--quiet", "--num-images", "6"]) == 0
    names = sorted(p.name for p in (tmp_path / "cpu" / "labels").glob("*.png"))
    assert names and names == sorted(p.name for p in (tmp_path / "cuda" / "labels").glob("*.png"))
    for folder, fraction in (("images", 0.99), ("labels", 0.995)):
        a = np.stack([np.asarray(Image.open(tmp_path / "cpu" / folder / n), dtype=np.int16) for n in names])
        b = np.stack([np.asarray(Image.open(tmp_path / "cuda" / folder / n), dtype=np.int16) for n in names])
        close = np.abs(a - b) <= (2 if folder == "images" else 0)
        assert close.mean() >= fraction, f"{folder}: only {close.mean():.4f} agree"


def test_image_tap_labels_what_the_pixels_show(tmp_path):
    """``--layers img``: the interpreter reads each pixel's own colour, in training and in
    synthesis alike. A skip-architecture generator re-colours every sample through its
    toRGB styles, so "redder than green" is learnable from the image tap, not from its features."""
    torch.set_num_threads(1)
    make_tiny_generator(seed=3).save_pretrained(tmp_path / "G")
    assert main(["sample", "--generator", str(tmp_path / "G"), "--seeds", "0-7", "--out",
                 str(tmp_path / "samples"), "--device", "cpu"]) == 0
    images = {p.name: np.asarray(Image.open(p)) for p in sorted((tmp_path / "samples" / "images").glob("*.png"))}

    def red(image: np.ndarray) -> np.ndarray:   # redder than green: a function of a pixel's colour alone
        return (image[:, :, 0].astype(int) > image[:, :, 1]).astype(np.uint8)

    (tmp_path / "labels").mkdir()
    for name, image in images.items():
        Image.fromarray(red(image)).save(tmp_path / "labels" / name)
    (tmp_path / "spec.yaml").write_text("classes: [other, red]\npalette: [[0, 0, 0], [255, 0, 0]]\n")
    assert main(["train-interpreter", "--samples", str(tmp_path / "samples"), "--labels", str(tmp_path / "labels"),
                 "--spec", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "interp"), "--layers", "img",
                 "--members", "3", "--device", "cpu", "--quiet"]) == 0
    config = json.loads((tmp_path / "interp" / "config.json").read_text())
    assert config["features"]["layers"] == ["img"] and config["ensemble"]["in_features"] == 3
    out = tmp_path / "ds"
    assert main(["synthesize", "--generator", str(tmp_path / "G"), "--interpreter", str(tmp_path / "interp"),
                 "--out", str(out), "--num-images", "16", "--seed-start", "100", "--drop-uncertain", "0",
                 "--device", "cpu", "--quiet"]) == 0
    correct = total = reds = 0
    for e in (json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()):
        truth = red(np.asarray(Image.open(out / e["image"])))
        correct += int((np.asarray(Image.open(out / e["label"])) == truth).sum())
        total, reds = total + truth.size, reds + int(truth.sum())
    assert 0.1 < reds / total < 0.9, "the test needs both classes on the synthesised images"
    print(f"pixel accuracy {correct / total:.4f}, red share {reds / total:.3f}")
    assert correct / total >= 0.97    # 0.987 here; the 7 conv taps alone give 0.79

"""`datasetgan invert` end to end: the samples folder, its labels, resuming, pivotal tuning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.inversion.conftest import FAST

from datasetgan.cli import main
from datasetgan.core.errors import UserError
from datasetgan.core.images import to_uint8
from datasetgan.generator import generator_fingerprint, load_generator
from datasetgan.interpreter.data import open_generator, read_samples_folder
from datasetgan.inversion import run as run_module
from datasetgan.labels import load_label_spec, read_keypoints, read_label_map


def invert(generator: Path, real: Path, out: Path, *extra: str, labels: str | None = "labels") -> int:
    args = ["invert", "--generator", str(generator), "--images", str(real / "images"), "--out", str(out), *FAST]
    if labels is not None:
        args += ["--labels", str(real / labels), "--spec", str(real / "spec.yaml")]
    return main([*args, *extra])


def rerendered(out: Path) -> dict[str, np.ndarray]:
    """Every sample rendered again from OUT, as train-interpreter renders it."""
    samples = read_samples_folder(out)
    G, _ = open_generator(samples, None, torch.device("cpu"))
    images = {}
    for i, stem in enumerate(samples.stems):
        with torch.no_grad():
            img = G.synthesis(samples.ws[i:i + 1], **samples.synthesis_kwargs(i, "cpu"))
        images[stem] = to_uint8(img)[0]
    return images


def test_the_samples_folder_trains_an_interpreter(generator_dir, real_set, tmp_path):
    out = tmp_path / "out"
    assert invert(generator_dir, real_set, out) == 0
    for name in ("generator.json", "latents.safetensors", "samples.jsonl", "grid.png"):
        assert (out / name).is_file(), name
    assert not (out / ".staging").exists()
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["image"] for r in records] == [f"images/{i:06d}.png" for i in range(4)]
    r = records[0]
    assert r["source"] == str((real_set / "images" / "000000.png").resolve())
    assert r["noise_mode"] == "stored" and r["space"] == "wplus" and r["perceptual"] == "ssim"
    assert np.isfinite(r["loss"]) and 0 < r["psnr"] < 100
    latents = load_file(str(out / "latents.safetensors"))
    assert latents["w"].shape == (4, 8, 32)
    assert latents["noise.b32.conv1"].shape == (4, 32, 32)
    assert main(["train-interpreter", "--samples", str(out), "--labels", str(out / "labels"),
                 "--spec", str(real_set / "spec.yaml"), "--out", str(tmp_path / "interp"), "--device", "cpu",
                 "--quiet", "--members", "2", "--max-steps", "5", "--pixels-per-image", "50"]) == 0
    cfg = json.loads((tmp_path / "interp" / "config.json").read_text())
    assert cfg["training"]["labelled"] == [f"{i:06d}" for i in range(4)]


def test_the_reconstruction_rendered_again_from_out_is_the_image(generator_dir, real_set, tmp_path):
    out = tmp_path / "out"
    assert invert(generator_dir, real_set, out, labels=None) == 0
    again = rerendered(out)
    for stem, array in again.items():
        assert np.array_equal(array, np.asarray(Image.open(out / "images" / f"{stem}.png"))), stem
    # The stored noise maps are each image's own: the generator's noise gives other images.
    samples = read_samples_folder(out)
    G = load_generator(generator_dir)
    with torch.no_grad():
        plain = to_uint8(G.synthesis(samples.ws[:1], noise_mode="const"))[0]
    assert not np.array_equal(plain, again["000000"])
    assert not torch.equal(samples.noise["b32.conv1"][0], samples.noise["b32.conv1"][1])


def test_labels_follow_the_crop_and_resize(generator_dir, real_set, tmp_path):
    spec = load_label_spec(real_set / "spec.yaml")
    assert invert(generator_dir, real_set, tmp_path / "m") == 0
    source = read_label_map(real_set / "labels" / "000001.png", spec)        # 40 x 36 (H x W)
    crop = Image.fromarray(source[2:38].astype(np.uint8)).resize((32, 32), Image.NEAREST)
    assert np.array_equal(read_label_map(tmp_path / "m" / "labels" / "000001.png", spec, size=(32, 32)),
                          np.asarray(crop))
    assert invert(generator_dir, real_set, tmp_path / "k", labels="keypoints") == 0
    kp = read_keypoints(tmp_path / "k" / "labels" / "000001.json", spec, size=(32, 32))
    # (5, 6) in the 36x40 image: the crop starts at row 2, then 36 px become 32 (pixel centres kept).
    assert kp[0, :2] == pytest.approx([5.5 * 32 / 36 - 0.5, 4.5 * 32 / 36 - 0.5], abs=1e-3)
    assert kp[2, 2] == 0


def test_an_interrupted_run_resumes_to_the_same_latents(generator_dir, real_set, tmp_path, monkeypatch):
    assert invert(generator_dir, real_set, tmp_path / "whole", labels=None) == 0
    real_batch = run_module.invert_batch
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(kwargs["seed"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(run_module, "invert_batch", interrupted)
    assert invert(generator_dir, real_set, tmp_path / "cut", labels=None) == 130
    assert (tmp_path / "cut" / ".staging" / "batch-00000.safetensors").is_file()
    assert not (tmp_path / "cut" / "samples.jsonl").exists()
    calls.clear()
    assert invert(generator_dir, real_set, tmp_path / "cut", labels=None) == 0
    assert calls == [1_000_003 * 0 + 1]               # only the missing batch ran again
    whole = load_file(str(tmp_path / "whole" / "latents.safetensors"))
    cut = load_file(str(tmp_path / "cut" / "latents.safetensors"))
    assert whole.keys() == cut.keys()
    for key in whole:
        assert torch.equal(whole[key], cut[key]), key
    assert (tmp_path / "whole" / "samples.jsonl").read_text() == (tmp_path / "cut" / "samples.jsonl").read_text()


def test_a_finished_run_is_kept_and_another_one_is_refused(generator_dir, real_set, tmp_path, capsys):
    out = tmp_path / "out"
    assert invert(generator_dir, real_set, out, labels=None) == 0
    before = (out / "latents.safetensors").read_bytes()
    capsys.readouterr()
    assert invert(generator_dir, real_set, out, labels=None) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (out / "latents.safetensors").read_bytes() == before
    assert invert(generator_dir, real_set, out, "--space", "w", labels=None) == 2
    assert "already holds a samples folder" in capsys.readouterr().err


def test_w_space_and_fixed_noise(generator_dir, real_set, tmp_path):
    out = tmp_path / "out"
    assert invert(generator_dir, real_set, out, "--space", "w", "--no-optimise-noise", "--start", "best",
                  "--start-candidates", "8", labels=None) == 0
    latents = load_file(str(out / "latents.safetensors"))
    assert set(latents) == {"w"}
    w = latents["w"]
    assert torch.equal(w, w[:, :1].expand_as(w))
    assert json.loads((out / "samples.jsonl").read_text().splitlines()[0])["noise_mode"] == "const"
    for stem, array in rerendered(out).items():
        assert np.array_equal(array, np.asarray(Image.open(out / "images" / f"{stem}.png"))), stem


def test_pivotal_tuning_makes_the_tuned_generator_the_samples_one(generator_dir, real_set, tmp_path):
    out = tmp_path / "out"
    assert invert(generator_dir, real_set, out, "--tune-generator", "--tune-steps", "3") == 0
    tuned = load_generator(out / "generator")
    meta = json.loads((out / "generator.json").read_text())
    assert meta["fingerprint"] == generator_fingerprint(tuned) != generator_fingerprint(load_generator(generator_dir))
    assert meta["inversion"]["tuned"] and Path(meta["checkpoint"]) == (out / "generator").resolve()
    record = json.loads((out / "samples.jsonl").read_text().splitlines()[0])
    assert "psnr_before_tuning" in record
    for stem, array in rerendered(out).items():
        assert np.array_equal(array, np.asarray(Image.open(out / "images" / f"{stem}.png"))), stem
    with pytest.raises(UserError, match="is not the one that made"):
        open_generator(read_samples_folder(out), str(generator_dir), torch.device("cpu"))


def test_a_snapshot_with_a_discriminator_gives_the_perceptual_term(snapshot_dir, real_set, tmp_path):
    out = tmp_path / "out"
    # The run folder: its newest snapshot, whose D gives the features.
    assert invert(snapshot_dir.parents[1], real_set, out, labels=None) == 0
    assert json.loads((out / "samples.jsonl").read_text().splitlines()[0])["perceptual"] == "discriminator"
    meta = json.loads((out / "generator.json").read_text())
    assert meta["inversion"]["discriminator"] == str((snapshot_dir / "D").resolve())

"""``datasetgan sample`` and ``datasetgan convert`` end to end on the tiny generator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from datasetgan.cli import main
from datasetgan.core.images import to_uint8
from datasetgan.generator import generator_fingerprint, load_generator, z_from_seeds


def test_sample_end_to_end(tiny_generator, tiny_generator_dir, tmp_path, capsys):
    out = tmp_path / "samples"
    rc = main(["sample", "--generator", str(tiny_generator_dir), "--seeds", "3-5,10", "--out", str(out),
               "--batch-size", "3", "--truncation", "0.5", "--device", "cpu"])
    assert rc == 0
    seeds = [3, 4, 5, 10]
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{s:06d}.png" for s in seeds]
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in records] == seeds
    assert records[0] == {"seed": 3, "truncation_psi": 0.5, "truncation_cutoff": None,
                          "noise_mode": "const", "image": "images/000003.png"}
    lat = load_file(str(out / "latents.safetensors"))
    assert lat["seeds"].tolist() == seeds
    assert torch.equal(lat["z"], z_from_seeds(seeds, 32))
    G = tiny_generator
    ws = G.mapping(lat["z"], truncation_psi=0.5)
    assert lat["w"].shape == (4, G.num_ws, G.w_dim) and torch.allclose(lat["w"], ws, atol=1e-6)
    expected = to_uint8(G.synthesis(ws, noise_mode="const"))
    for i, s in enumerate(seeds):
        png = np.asarray(Image.open(out / "images" / f"{s:06d}.png"))
        assert png.shape == (32, 32, 3)
        assert np.abs(png.astype(int) - expected[i].astype(int)).max() <= 1
    meta = json.loads((out / "generator.json").read_text())
    assert meta["fingerprint"] == generator_fingerprint(G)
    assert meta["config"]["img_resolution"] == 32 and meta["checkpoint"].endswith("tiny_generator")
    assert Image.open(out / "grid.png").size[0] > 32
    assert not list(out.rglob(".*.tmp*"))


def test_sample_outputs_do_not_depend_on_batch_size(tiny_generator_dir, tmp_path):
    for bs in (1, 4):
        assert main(["sample", "--generator", str(tiny_generator_dir), "--seeds", "0-3",
                     "--out", str(tmp_path / f"b{bs}"), "--batch-size", str(bs), "--device", "cpu"]) == 0
    for s in range(4):
        a = np.asarray(Image.open(tmp_path / "b1" / "images" / f"{s:06d}.png")).astype(int)
        b = np.asarray(Image.open(tmp_path / "b4" / "images" / f"{s:06d}.png")).astype(int)
        assert np.abs(a - b).max() <= 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_sample_cuda_without_gpu_is_clear_error(tiny_generator_dir, tmp_path, capsys):
    rc = main(["sample", "--generator", str(tiny_generator_dir), "--seeds", "0", "--out",
               str(tmp_path / "o"), "--device", "cuda"])
    assert rc == 2
    assert "no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv,message", [
    (["--seeds", "x"], "--seeds"),
    (["--seeds", "0", "--batch-size", "0"], "--batch-size"),
    (["--seeds", "0", "--truncation-cutoff", "99"], "--truncation-cutoff"),
    (["--seeds", "0", "--class-idx", "1"], "--class-idx"),
])
def test_sample_bad_flags(tiny_generator_dir, tmp_path, capsys, argv, message):
    rc = main(["sample", "--generator", str(tiny_generator_dir), "--out", str(tmp_path / "o"),
               "--device", "cpu", *argv])
    assert rc == 2 and message in capsys.readouterr().err


def test_sample_missing_checkpoint(tmp_path, capsys):
    rc = main(["sample", "--generator", str(tmp_path / "none.pkl"), "--seeds", "0", "--out",
               str(tmp_path / "o"), "--device", "cpu"])
    assert rc == 2 and "none.pkl: not found" in capsys.readouterr().err


def test_convert(tiny_generator, tiny_generator_dir, tmp_path, capsys):
    dst = tmp_path / "converted"
    assert main(["convert", str(tiny_generator_dir), str(dst)]) == 0
    assert generator_fingerprint(load_generator(dst)) == generator_fingerprint(tiny_generator)
    assert main(["convert", str(tiny_generator_dir), str(dst)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["convert", str(tiny_generator_dir), str(dst), "--overwrite"]) == 0


def test_sample_old_checkpoint_flag_still_works_with_a_warning(tiny_generator_dir, tmp_path):
    with pytest.warns(FutureWarning, match="--checkpoint is deprecated.*--generator"):
        rc = main(["sample", "--checkpoint", str(tiny_generator_dir), "--seeds", "0", "--out",
                   str(tmp_path / "o"), "--device", "cpu"])
    assert rc == 0 and (tmp_path / "o" / "images" / "000000.png").exists()


def test_sample_dry_run_and_preset(tiny_generator_dir, tmp_path, capsys):
    preset = tmp_path / "sample.yaml"
    preset.write_text("seeds: 4-6\ntruncation: 0.5\n")
    rc = main(["sample", "--generator", str(tiny_generator_dir), "--out", str(tmp_path / "o"),
               "--config", str(preset), "--truncation", "0.9", "--dry-run"])
    assert rc == 0 and not (tmp_path / "o").exists()
    printed = json.loads(capsys.readouterr().out)
    assert printed["seeds"] == "4-6" and printed["truncation"] == 0.9

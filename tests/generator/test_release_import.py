"""``datasetgan import-release`` on a fake release tree (random StyleGAN1 weights, a few masks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datasetgan.cli import main
from datasetgan.generator import StyleGAN1Generator, generator_fingerprint, load_generator
from datasetgan.labels import load_label_spec, read_label_map
from datasetgan.labels.release import clean_small_regions, resize_nearest
from tests.generator.stylegan1_reference import randomize, release_g_all

TINY = dict(fmap_base=128, fmap_max=32)    # 32 px: channels 32, 32, 16, 8 -> feature width 176
WIDTH = 176


def make_release(root: Path, n_latents: int = 4, max_training: int = 3, mask_size: int = 32,
                 category: str = "face", number_class: int = 34) -> Path:
    torch.manual_seed(0)
    d = root / "dataset_release"
    for sub in ("stylegan_pretrain", "training_latent", "annotation/training_data/proc", "annotation/testing_data/t"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    torch.save(randomize(release_g_all(32, **TINY)).state_dict(), d / "stylegan_pretrain/g.for_g_all.pt")
    rng = np.random.RandomState(0)
    np.save(d / "training_latent/avg_latent_stylegan1.npy", np.repeat(rng.randn(1, 1, 512), 18, axis=1))
    np.save(d / "training_latent/latent_stylegan1.npy", rng.randn(n_latents, 512))
    for i in range(max_training):
        mask = np.zeros((mask_size, mask_size), np.int64)
        mask[:, mask_size // 2:] = 1
        mask[: mask_size // 4] = 2
        mask[-2:, :2] = 5          # 4 pixels: the release's clean-up removes it
        np.save(d / f"annotation/training_data/proc/image_mask{i}.npy", mask)
        Image.fromarray(rng.randint(0, 255, (32, 32, 3), dtype=np.uint8)).save(
            d / f"annotation/training_data/proc/image_{i}.jpg")
    for k in range(3):
        Image.fromarray(rng.randint(0, 255, (40, 40, 3), dtype=np.uint8)).save(d / f"annotation/testing_data/t/{k}.png")
        np.save(d / f"annotation/testing_data/t/{k}.npy", rng.randint(0, number_class, (40, 40)))
    exp = {"category": category, "dim": [32, 32, WIDTH], "number_class": number_class,
           "testing_data_number_class": number_class, "max_training": max_training, "stylegan_ver": "1",
           "annotation_data_from_w": False,
           "annotation_mask_path": "./dataset_release/annotation/training_data/proc",
           "testing_path": "./dataset_release/annotation/testing_data/t",
           "average_latent": "./dataset_release/training_latent/avg_latent_stylegan1.npy",
           "annotation_image_latent_path": "./dataset_release/training_latent/latent_stylegan1.npy",
           "stylegan_checkpoint": "./dataset_release/stylegan_pretrain/g.for_g_all.pt",
           "model_num": 10, "upsample_mode": "bilinear"}
    path = root / "exp.json"
    path.write_text(json.dumps(exp))
    return path


def _import(tmp_path, exp: Path, *extra: str) -> int:
    return main(["import-release", str(exp), "--root", str(exp.parent), "--out", str(tmp_path / "out"),
                 "--device", "cpu", *extra])


def test_import_writes_generator_samples_labels_and_test_set(tmp_path):
    torch.set_num_threads(1)
    exp = make_release(tmp_path / "rel")
    assert _import(tmp_path, exp) == 0
    out = tmp_path / "out"
    G = load_generator(out / "generator")
    assert isinstance(G, StyleGAN1Generator) and G.feature_spec.total_channels == WIDTH
    avg = np.load(exp.parent / "dataset_release/training_latent/avg_latent_stylegan1.npy")[0, 0]
    torch.testing.assert_close(G.mapping.w_avg, torch.from_numpy(avg).float())
    meta = json.loads((out / "samples" / "generator.json").read_text())
    assert meta["fingerprint"] == generator_fingerprint(G)
    from safetensors.torch import load_file
    latents = load_file(str(out / "samples" / "latents.safetensors"))
    z = torch.from_numpy(np.load(exp.parent / "dataset_release/training_latent/latent_stylegan1.npy")[:3]).float()
    torch.testing.assert_close(latents["z"], z)
    torch.testing.assert_close(latents["w"], G.mapping(z, truncation_psi=0.7, truncation_cutoff=8))
    spec = load_label_spec(out / "spec.json")
    assert spec.num_classes == 34 and spec.classes[1] == "head" and spec.palette[0] == (255, 255, 255)
    raw = np.load(exp.parent / "dataset_release/annotation/training_data/proc/image_mask0.npy")
    labels = read_label_map(out / "labels" / "000000.png", spec)
    assert np.array_equal(labels, clean_small_regions(raw)) and not (labels == 5).any()
    assert sorted(p.name for p in (out / "samples" / "images").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert sorted(p.name for p in (out / "test" / "labels").iterdir()) == ["0.png", "1.png", "2.png"]
    test_mask = np.load(exp.parent / "dataset_release/annotation/testing_data/t/1.npy")
    assert np.array_equal(read_label_map(out / "test" / "labels" / "1.png", spec), test_mask)
    record = json.loads((out / "release.json").read_text())
    assert record["feature_width"] == WIDTH and record["cleaned_pixels"] == 3 * 4
    # The interpreter's input width is the release's dim[2].
    assert main(["train-interpreter", "--samples", str(out / "samples"), "--labels", str(out / "labels"),
                 "--spec", str(out / "spec.json"), "--out", str(tmp_path / "I"), "--device", "cpu", "--quiet",
                 "--members", "2", "--max-steps", "3", "--pixels-per-image", "100"]) == 0
    assert json.loads((tmp_path / "I" / "config.json").read_text())["ensemble"]["in_features"] == WIDTH


def test_clean_up_can_be_turned_off_and_masks_are_resized_as_the_release(tmp_path):
    exp = make_release(tmp_path / "rel", max_training=1, mask_size=32)
    assert _import(tmp_path, exp, "--no-clean-small-regions") == 0
    spec = load_label_spec(tmp_path / "out" / "spec.json")
    assert (read_label_map(tmp_path / "out" / "labels" / "000000.png", spec) == 5).sum() == 4
    m = np.arange(16).reshape(4, 4)
    assert resize_nearest(m, (2, 2)).tolist() == [[0, 2], [8, 10]]          # OpenCV's INTER_NEAREST
    assert resize_nearest(m[:2, :2], (4, 4)).tolist() == [[0, 0, 1, 1]] * 2 + [[4, 4, 5, 5]] * 2


def test_bad_input_is_named(tmp_path, capsys):
    exp = make_release(tmp_path / "few", n_latents=2, max_training=3)
    assert _import(tmp_path, exp) == 2
    assert "latent_stylegan1.npy: 2 latents, fewer than max_training 3" in capsys.readouterr().err

    exp = make_release(tmp_path / "size", mask_size=20)
    assert _import(tmp_path, exp) == 2
    err = capsys.readouterr().err
    assert "image_mask0.npy: a mask of shape [20, 20]" in err

    exp = make_release(tmp_path / "missing")
    (exp.parent / "dataset_release/annotation/training_data/proc/image_mask2.npy").unlink()
    assert _import(tmp_path, exp) == 2
    assert "image_mask2.npy: not found" in capsys.readouterr().err

    exp = make_release(tmp_path / "dim")
    data = json.loads(exp.read_text())
    data["dim"] = [32, 32, 5088]
    exp.write_text(json.dumps(data))
    assert _import(tmp_path, exp) == 2
    assert "key 'dim' says a feature width of 5088" in capsys.readouterr().err
    assert not (tmp_path / "out" / "release.json").exists()


def test_a_duplicate_release_colour_is_replaced_and_noted(tmp_path):
    exp = make_release(tmp_path / "cat", category="cat", number_class=16, max_training=1)
    assert _import(tmp_path, exp) == 0
    record = json.loads((tmp_path / "out" / "release.json").read_text())
    assert record["notes"] and "class 4" in record["notes"][0]
    spec = load_label_spec(tmp_path / "out" / "spec.json")
    assert spec.classes[1] == "class_1" and len(set(spec.palette)) == 16

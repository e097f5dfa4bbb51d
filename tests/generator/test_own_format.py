"""Own format: bit-exact round trip, fingerprint, and clear errors for damaged folders."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import make_tiny_generator
from datasetgan.core.errors import CheckpointError
from datasetgan.generator import Generator, generator_fingerprint, load_generator, z_from_seeds


def test_roundtrip_is_bit_exact(tiny_generator, tmp_path):
    tiny_generator.save_pretrained(tmp_path / "g")
    H = Generator.from_pretrained(tmp_path / "g")
    assert H.config == tiny_generator.config
    a, b = tiny_generator.state_dict(), H.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    z = z_from_seeds([0, 1], 32)
    assert torch.equal(H(z, truncation_psi=0.7), tiny_generator(z, truncation_psi=0.7))
    assert not H.training and not any(p.requires_grad for p in H.parameters())


def test_config_json_has_marker_and_no_temporary_files(tiny_generator_dir):
    data = json.loads((tiny_generator_dir / "config.json").read_text())
    assert data["format"] == "datasetgan.generator" and data["version"] == 1
    assert data["config"]["img_resolution"] == 32
    assert sorted(p.name for p in tiny_generator_dir.iterdir()) == ["config.json", "model.safetensors"]


def test_fingerprint_stable_and_sensitive(tiny_generator, tmp_path):
    fp = generator_fingerprint(tiny_generator)
    assert len(fp) == 64 and fp == generator_fingerprint(tiny_generator)
    assert fp == generator_fingerprint(make_tiny_generator())
    tiny_generator.save_pretrained(tmp_path / "g")
    assert generator_fingerprint(load_generator(tmp_path / "g")) == fp
    assert json.loads((tmp_path / "g" / "config.json").read_text())["fingerprint"] == fp
    assert generator_fingerprint(make_tiny_generator(seed=1)) != fp
    G = make_tiny_generator()
    with torch.no_grad():
        G.synthesis.b16.conv0.weight[0, 0, 0, 0] += 1e-6
    assert generator_fingerprint(G) != fp
    G = make_tiny_generator()
    G.mapping.w_avg[0] += 1e-6
    assert generator_fingerprint(G) != fp


def test_snapshot_folder_loads_g_ema(tiny_generator, tmp_path):
    tiny_generator.save_pretrained(tmp_path / "snap" / "G_ema")
    G = load_generator(tmp_path / "snap")
    assert generator_fingerprint(G) == generator_fingerprint(tiny_generator)


def test_run_folder_loads_its_newest_complete_snapshot(tiny_generator, tmp_path):
    run = tmp_path / "run"
    for name, seed in (("kimg-000000.512", 1), ("kimg-000001.024", 0)):
        make_tiny_generator(seed=seed).save_pretrained(run / "snapshots" / name / "G_ema")
        (run / "snapshots" / name / "state.json").write_text("{}")
    make_tiny_generator(seed=2).save_pretrained(run / "snapshots" / "kimg-000002.048" / "G_ema")  # no state.json
    assert generator_fingerprint(load_generator(run)) == generator_fingerprint(tiny_generator)


def test_missing_and_unknown(tmp_path):
    with pytest.raises(CheckpointError, match="nothing-here"):
        load_generator(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither config.json"):
        load_generator(tmp_path / "empty")
    (tmp_path / "x.ckpt").write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        load_generator(tmp_path / "x.ckpt")
    (tmp_path / "e.pkl").write_bytes(b"")
    with pytest.raises(CheckpointError, match="e.pkl: file is empty"):
        load_generator(tmp_path / "e.pkl")


def test_truncated_weights(tiny_generator_dir):
    path = tiny_generator_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="model.safetensors.*truncated"):
        load_generator(tiny_generator_dir)


def test_missing_weights(tiny_generator_dir):
    (tiny_generator_dir / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: file not found"):
        load_generator(tiny_generator_dir)


@pytest.mark.parametrize("text,message", [
    ("{not json", "not valid JSON"),
    ('{"config": {}}', "format"),
    ('{"format": "datasetgan.generator", "version": 99, "config": {}}', "version 99"),
    ('{"format": "datasetgan.generator", "version": 1, "config": {"img_resolution": 33}}', "img_resolution"),
    ('{"format": "datasetgan.generator", "version": 1, "config": {"bogus": 1}}', "bogus"),
])
def test_bad_config_json(tiny_generator_dir, text, message):
    (tiny_generator_dir / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=message) as info:
        load_generator(tiny_generator_dir)
    assert "config.json" in str(info.value)


def _rewrite(directory, edit):
    path = directory / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


def test_shape_mismatch_names_the_key(tiny_generator_dir):
    _rewrite(tiny_generator_dir, lambda t: t.update({"synthesis.b8.conv0.weight": torch.zeros(32, 32, 1, 1)}))
    with pytest.raises(CheckpointError, match=r"key 'synthesis.b8.conv0.weight': expected shape "
                                              r"\[32, 32, 3, 3\], got \[32, 32, 1, 1\]"):
        load_generator(tiny_generator_dir)


def test_missing_and_unexpected_keys(tiny_generator_dir):
    _rewrite(tiny_generator_dir, lambda t: t.pop("mapping.w_avg"))
    with pytest.raises(CheckpointError, match="missing key.*'mapping.w_avg'"):
        load_generator(tiny_generator_dir)
    _rewrite(tiny_generator_dir, lambda t: t.update({"mapping.w_avg": torch.zeros(32), "extra.x": torch.ones(1)}))
    with pytest.raises(CheckpointError, match="unexpected key.*'extra.x'"):
        load_generator(tiny_generator_dir)

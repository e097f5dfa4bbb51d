"""Seeds mean NVIDIA's seeds; rendering does not depend on the batch size; loader dispatch."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from datasetgan.core.errors import CheckpointError
from datasetgan.generator import generator_fingerprint, load_generator, z_from_seeds
from datasetgan.generator.sampling import render_seeds, ws_from_seeds


def test_z_from_seeds_is_numpy_randomstate():
    z = z_from_seeds([0, 7, 2**32 - 1], 512)
    assert z.shape == (3, 512) and z.dtype == torch.float32
    for row, seed in zip(z, [0, 7, 2**32 - 1]):
        np.testing.assert_array_equal(row.numpy(), np.random.RandomState(seed).randn(512).astype(np.float32))
    assert z_from_seeds([], 4).shape == (0, 4)


def test_render_is_batch_size_independent(tiny_generator):
    seeds = [5, 1, 9, 2, 7]
    runs = []
    for bs in (1, 2, 5):
        parts = list(render_seeds(tiny_generator, seeds, truncation_psi=0.7, batch_size=bs))
        assert [s for p in parts for s in p[0]] == seeds
        runs.append((torch.cat([p[2] for p in parts]), torch.cat([p[3] for p in parts])))
    for ws, img in runs[1:]:
        assert torch.allclose(ws, runs[0][0], atol=1e-6)
        assert torch.allclose(img, runs[0][1], atol=1e-5)
    assert torch.allclose(ws_from_seeds(tiny_generator, seeds, 0.7), runs[0][0], atol=1e-6)


def test_render_with_features(tiny_generator):
    (batch, z, ws, img, feats), = render_seeds(tiny_generator, [0, 1], return_features=True, batch_size=4)
    assert batch == [0, 1] and len(feats) == len(tiny_generator.feature_spec)


def _fake_reader(module_name, func_name, result, monkeypatch):
    """``load_generator`` calls a reader that returns ``result`` (and not ``module_name``'s)."""
    assert hasattr(importlib.import_module(module_name), func_name)
    monkeypatch.setattr(f"datasetgan.generator.loading.{func_name}", lambda path, *a, **k: result)


@pytest.mark.parametrize("suffix,module,func", [
    (".pkl", "datasetgan.generator.nvidia_pickle", "load_nvidia_pickle"),
    (".pt", "datasetgan.generator.loading", "load_torch_checkpoint"),
    (".pth", "datasetgan.generator.loading", "load_torch_checkpoint"),
])
def test_foreign_formats_dispatch_and_are_shape_checked(tiny_generator, tmp_path, monkeypatch, suffix, module, func):
    state = {k: v.clone() for k, v in tiny_generator.state_dict().items()}
    _fake_reader(module, func, (tiny_generator.config, state), monkeypatch)
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"not empty")
    G = load_generator(path)
    assert generator_fingerprint(G) == generator_fingerprint(tiny_generator)
    state["synthesis.b4.const"] = torch.zeros(32, 5, 5)
    with pytest.raises(CheckpointError, match=r"model\S*: key 'synthesis.b4.const': expected shape \[32, 4, 4\]"):
        load_generator(path)

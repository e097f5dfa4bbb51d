"""Resumable training state: optimisers, random generators and state files round-trip exactly."""

from __future__ import annotations

import pytest
import safetensors.torch
import torch

from datasetgan.core.errors import CheckpointError
from datasetgan.core.training_state import (atomic_dir, load_optimizer, load_state, optimizer_tensors, restore_rng,
                                            rng_tensors, save_state)


def _net_and_adam(steps: int) -> tuple[torch.nn.Module, torch.optim.Adam]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.8, 0.99))
    for _ in range(steps):
        opt.zero_grad()
        net(torch.randn(16, 4)).square().mean().backward()
        opt.step()
    return net, opt


def test_adam_state_round_trips_through_a_state_file(tmp_path):
    net, opt = _net_and_adam(3)
    tensors, meta = optimizer_tensors("opt", opt)
    assert sorted(tensors) == sorted(f"opt.{i}.{k}" for i in range(4) for k in ("step", "exp_avg", "exp_avg_sq"))
    save_state(tmp_path / "state.safetensors", tensors, meta)
    tensors, meta = load_state(tmp_path / "state.safetensors")

    twin = _net_and_adam(0)[0]
    twin.load_state_dict(net.state_dict())
    resumed = torch.optim.Adam(twin.parameters())               # other hyper-parameters: the saved ones win
    load_optimizer(resumed, "opt", tensors, meta, tmp_path)
    assert resumed.param_groups[0]["lr"] == 1e-2 and tuple(resumed.param_groups[0]["betas"]) == (0.8, 0.99)
    for a, b in zip(opt.param_groups[0]["params"], resumed.param_groups[0]["params"]):
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opt.state[a][name], resumed.state[b][name])
    # The next step is the same bits on both.
    x = torch.randn(16, 4)
    for model, optimiser in ((net, opt), (twin, resumed)):
        optimiser.zero_grad()
        model(x).square().mean().backward()
        optimiser.step()
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), twin.parameters()))


def test_an_optimiser_state_of_another_network_is_named(tmp_path):
    _, opt = _net_and_adam(1)
    tensors, meta = optimizer_tensors("opt", opt)
    other = torch.optim.Adam(torch.nn.Linear(4, 8).parameters())
    with pytest.raises(CheckpointError, match="state.safetensors: optimiser state 'opt' does not fit"):
        load_optimizer(other, "opt", tensors, meta, tmp_path / "state.safetensors")


def test_restored_rng_draws_the_same_numbers(tmp_path):
    torch.manual_seed(5)
    torch.rand(3)
    save_state(tmp_path / "rng.safetensors", rng_tensors("cpu"))
    want = torch.rand(10), torch.randn(4)
    torch.manual_seed(123)                                      # anything in between
    torch.rand(7)
    restore_rng(load_state(tmp_path / "rng.safetensors")[0], "cpu")
    got = torch.rand(10), torch.randn(4)
    assert all(torch.equal(a, b) for a, b in zip(want, got))


def test_metadata_round_trips_and_the_format_is_checked(tmp_path):
    path = tmp_path / "s.safetensors"
    save_state(path, {"x": torch.arange(3)}, {"format": "mine", "epoch": 2, "key": {"a": [1, 2]}})
    tensors, meta = load_state(path, "mine")
    assert torch.equal(tensors["x"], torch.arange(3)) and meta == {"format": "mine", "epoch": 2, "key": {"a": [1, 2]}}
    with pytest.raises(CheckpointError, match=r"s\.safetensors: not a theirs state"):
        load_state(path, "theirs")
    save_state(path, {"x": torch.arange(3)})                    # no metadata at all
    assert load_state(path)[1] == {}
    with pytest.raises(CheckpointError, match="not a mine state"):
        load_state(path, "mine")


def test_a_truncated_or_missing_state_file_is_named(tmp_path):
    path = tmp_path / "state.safetensors"
    save_state(path, {"w": torch.randn(64, 64)}, {"format": "mine"})
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])                     # killed while copying it, say
    with pytest.raises(CheckpointError, match="truncated or damaged") as info:
        load_state(path, "mine")
    assert info.value.path == str(path)
    path.write_bytes(b"\x00" * 50)
    with pytest.raises(CheckpointError) as info:
        load_state(path)
    assert info.value.path == str(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_state(tmp_path / "missing.safetensors")


def test_an_interrupted_save_leaves_the_previous_state(tmp_path, monkeypatch):
    path = tmp_path / "state.safetensors"
    save_state(path, {"step": torch.tensor(1)}, {"format": "mine"})

    def killed(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("datasetgan.core.training_state.save_file", killed)
    with pytest.raises(KeyboardInterrupt):
        save_state(path, {"step": torch.tensor(2)}, {"format": "mine"})
    assert int(load_state(path, "mine")[0]["step"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.safetensors"]   # no temporary file left


def test_atomic_dir_replaces_a_folder_whole_or_not_at_all(tmp_path):
    final = tmp_path / "state"
    with atomic_dir(final) as tmp:
        (tmp / "a.json").write_text("1")
        (tmp / "b.json").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "a.json").write_text("2")
            raise RuntimeError("interrupted half-way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
    assert (final / "a.json").read_text() == "1" and (final / "b.json").read_text() == "1"
    with atomic_dir(final) as tmp:
        (tmp / "a.json").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["a.json"] and (final / "a.json").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]


def test_state_tensors_are_saved_as_cpu_copies(tmp_path):
    t = torch.arange(12.0).view(3, 4).t()                       # not contiguous
    save_state(tmp_path / "s.safetensors", {"t": t})
    assert torch.equal(safetensors.torch.load_file(str(tmp_path / "s.safetensors"))["t"], t)

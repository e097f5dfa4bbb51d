"""Ensemble model, fast vs straightforward prediction, keypoint decoding."""

from __future__ import annotations

import pytest
import torch

from datasetgan.interpreter.keypoints import decode_heatmaps, gaussian_targets
from datasetgan.interpreter.model import EnsembleConfig, EnsembleMLP, reference_hidden
from datasetgan.interpreter.predict import predict, predict_straightforward


def _model(d: int, c: int, members: int = 3) -> EnsembleMLP:
    g = torch.Generator().manual_seed(0)
    model = EnsembleMLP(EnsembleConfig(d, c, members, reference_hidden(c)), generator=g)
    with torch.no_grad():  # non-trivial BatchNorm statistics and larger weights
        for name, p in model.named_parameters():
            if name.startswith("w"):
                p.normal_(0, 0.3, generator=g)
        model.bn1_mean.uniform_(0, 1, generator=g)
        model.bn1_var.uniform_(0.5, 2, generator=g)
        model.bn2_mean.uniform_(0, 1, generator=g)
        model.bn2_var.uniform_(0.5, 2, generator=g)
    return model.eval()


def _maps(n=2):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, c, r, r, generator=g) for c, r in [(6, 4), (5, 8), (4, 16), (3, 32)]]


def test_reference_hidden_widths():
    assert reference_hidden(6) == (128, 32)
    assert reference_hidden(34) == (256, 128)


def test_members_are_independent():
    model = _model(10, 4, members=3).train()
    x = torch.randn(3, 64, 10)
    out = model(x)
    out[1].sum().backward()
    assert model.w1.grad[0].abs().sum() == 0 and model.w1.grad[1].abs().sum() > 0


@pytest.mark.parametrize("tile_rows", [None, 5, 8])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("out_size", [32, 24, (32, 40)])
def test_fast_equals_straightforward_segmentation(mode, tile_rows, out_size):
    maps = _maps()
    model = _model(18, 5)
    fast = predict(model, maps, out_size, mode, tile_rows=tile_rows)
    slow = predict_straightforward(model, maps, out_size, mode)
    assert (fast.labels == slow.labels).float().mean() >= 0.999
    torch.testing.assert_close(fast.uncertainty, slow.uncertainty, atol=1e-4, rtol=1e-3)
    size = (out_size, out_size) if isinstance(out_size, int) else out_size
    assert fast.labels.shape == (2, *size) and fast.scores.shape == (2,)
    assert (fast.uncertainty >= 0).all()


@pytest.mark.parametrize("tile_rows", [None, 8])
def test_fast_equals_straightforward_keypoints(tile_rows):
    maps = _maps()
    model = _model(18, 3)
    fast = predict(model, maps, 32, task="keypoints", tile_rows=tile_rows)
    slow = predict_straightforward(model, maps, 32, task="keypoints")
    torch.testing.assert_close(fast.heatmaps, slow.heatmaps, atol=1e-4, rtol=1e-4)
    assert fast.keypoints.shape == (2, 3, 3)


def test_decode_recovers_subpixel_peak():
    kp = torch.tensor([[[10.3, 20.7], [0.0, 5.0]]])  # [1, K=2, 2]
    ys, xs = torch.meshgrid(torch.arange(32), torch.arange(40), indexing="ij")
    t = gaussian_targets(kp.expand(32 * 40, 2, 2), ys.reshape(-1), xs.reshape(-1), sigma=2.0)
    heat = t.t().reshape(1, 2, 32, 40)
    heat[0, 1] *= 0.2  # a weak peak counts as not visible
    out = decode_heatmaps(heat, 0.5)
    assert abs(out[0, 0, 0] - 10.3) < 0.1 and abs(out[0, 0, 1] - 20.7) < 0.1
    assert out[0, 0, 2] == 1 and out[0, 1, 2] == 0


def test_masked_adam_matches_torch_adam_and_freezes_stopped_members():
    from datasetgan.interpreter.train import MaskedAdam
    g = torch.Generator().manual_seed(0)
    a = torch.nn.Parameter(torch.randn(3, 4, 5, generator=g))
    b = torch.nn.Parameter(a.detach().clone())
    ours, ref = MaskedAdam([a], lr=1e-2), torch.optim.Adam([b], lr=1e-2)
    for step in range(5):
        grad = torch.randn(3, 4, 5, generator=g)
        a.grad, b.grad = grad.clone(), grad.clone()
        ours.step(torch.ones(3, dtype=torch.bool))
        ref.step()
    torch.testing.assert_close(a, b)
    frozen = a.detach()[1].clone()
    a.grad = torch.randn(3, 4, 5, generator=g)
    ours.step(torch.tensor([True, False, True]))
    assert torch.equal(a.detach()[1], frozen) and not torch.equal(a.detach()[0], b.detach()[0])


@pytest.mark.parametrize("task", ["segmentation", "keypoints"])
def test_fast_path_is_per_image_and_workspace_safe(task):
    """An image's result does not depend on the batch it is in, nor on the
    workspace's history: bit-identical, not just close."""
    from datasetgan.interpreter.predict import Workspace
    maps = _maps(n=3)
    model = _model(18, 5)
    ws = Workspace()
    predict(model, [m[:, :, :8, :8] for m in maps], 16, task=task, workspace=ws)  # other shapes first
    whole = predict(model, maps, 32, task=task, workspace=ws)
    for i in range(3):
        alone = predict(model, [m[i:i + 1] for m in maps], 32, task=task)
        assert torch.equal(alone.uncertainty[0], whole.uncertainty[i])
        assert torch.equal(alone.scores[0], whole.scores[i])
        if task == "segmentation":
            assert torch.equal(alone.labels[0], whole.labels[i])
        else:
            assert torch.equal(alone.heatmaps[0], whole.heatmaps[i])


def test_speck_threshold_scales_with_the_mask_area():
    import torch

    from datasetgan.interpreter.config import InterpreterConfig
    from datasetgan.interpreter.pixels import sample_segmentation_pixels

    cfg = InterpreterConfig()
    assert cfg.class_pixel_threshold((512, 512)) == 20          # the reference's, at its resolution
    assert cfg.class_pixel_threshold((256, 256)) == 5
    assert cfg.class_pixel_threshold((64, 64)) == 1
    assert InterpreterConfig(min_class_pixels=7).class_pixel_threshold((64, 64)) == 7
    # Two 8-pixel pupils in a 64x64 mask are trained on by default (a flat 20 dropped them).
    mask = torch.zeros(64, 64, dtype=torch.long)
    mask[30:32, 30:34] = 1
    mask[40:42, 30:34] = 1
    _, labels = sample_segmentation_pixels(mask, 100, cfg.class_pixel_threshold((64, 64)),
                                           torch.Generator().manual_seed(0))
    assert (labels == 1).sum() == 16
    _, labels = sample_segmentation_pixels(mask, 100, 20, torch.Generator().manual_seed(0))
    assert (labels == 1).sum() == 0


def test_unlabelled_pixels_are_never_sampled():
    import torch

    from datasetgan.labels import IGNORE
    from datasetgan.interpreter.pixels import sample_segmentation_pixels

    mask = torch.zeros(32, 32, dtype=torch.long)
    mask[8:16, 8:16] = 1
    mask[:, 20:] = IGNORE
    for n in (None, 50, 10_000):
        index, labels = sample_segmentation_pixels(mask, n, 1, torch.Generator().manual_seed(0))
        assert not (labels == IGNORE).any() and (mask.reshape(-1)[index] == labels).all()
        assert set(labels.tolist()) == {0, 1}


def test_class_weights_make_a_rare_part_win_votes():
    """A part of a few pixels (a pupil at 64x64) loses every vote under the plain loss;
    frequency-weighted cross-entropy (``class_weight_power``) lets the members predict it."""
    import numpy as np

    from datasetgan.labels import frequency_weights_from_counts
    from datasetgan.features import FeatureBank
    from datasetgan.interpreter.config import InterpreterConfig
    from datasetgan.interpreter.train import PixelSet, train_ensemble

    w = frequency_weights_from_counts(np.array([90.0, 10.0, 0.0]), 0.5)
    assert w[1] == pytest.approx(3 * w[0]) and w[2] == w[1]
    assert float((np.array([0.9, 0.1, 0.0]) * w).sum()) == pytest.approx(1.0)
    assert np.allclose(frequency_weights_from_counts(np.array([5.0, 1.0]), 0.0), 1.0)

    gen = torch.Generator().manual_seed(0)
    size = 32
    labels = (torch.rand(size * size, generator=gen) < 0.02).long()      # class 1: 2% of the pixels
    feats = torch.randn(size * size, 4, generator=gen)
    feats[:, 0] += 1.5 * labels                                         # overlapping, but informative
    bank = FeatureBank(1, [size], [4], size, dtype=torch.float32)
    bank.store(0, [feats.t().reshape(4, size, size)])
    flat = torch.arange(size * size)
    pixels = PixelSet(torch.zeros_like(flat), flat // size, flat % size, labels=labels)

    def recall(power: float) -> float:
        cfg = InterpreterConfig(members=2, max_epochs=20, class_weight_power=power)
        model, _ = train_ensemble(bank, pixels, 2, "segmentation", cfg, quiet=True)
        pred = predict(model, [feats.t().reshape(1, 4, size, size)], size).labels.reshape(-1)
        return float((pred[labels == 1] == 1).float().mean())

    plain, weighted = recall(0.0), recall(1.0)
    assert plain < 0.3 and weighted > plain + 0.3, (plain, weighted)


def test_bad_settings_name_the_flag_or_the_preset_key():
    from datasetgan.core.errors import UserError
    from datasetgan.interpreter.config import InterpreterConfig

    with pytest.raises(UserError, match=r"^--members 0: must be >= 1$"):
        InterpreterConfig(members=0)
    with pytest.raises(UserError, match=r"^--batch-size 1: must be >= 2$"):
        InterpreterConfig(batch_size=1)
    with pytest.raises(UserError, match=r"^--lr 0.0: must be > 0$"):
        InterpreterConfig(lr=0.0)
    with pytest.raises(UserError, match=r"^key 'patience' \(--config\) -1: must be >= 0$"):
        InterpreterConfig(patience=-1)
    with pytest.raises(UserError, match=r"^--heatmap-sigma -1.0: must be > 0$"):
        InterpreterConfig(heatmap_sigma=-1.0)


def _maps_shared_levels(n=2):
    """Two taps at some resolutions, so that a level's taps are packed together."""
    g = torch.Generator().manual_seed(2)
    return [torch.randn(n, c, r, r, generator=g) for c, r in [(6, 4), (5, 8), (2, 8), (4, 16), (3, 32), (2, 32)]]


@pytest.mark.parametrize("task", ["segmentation", "keypoints"])
def test_bfloat16_first_layer_stays_close_to_float32(task):
    maps = _maps_shared_levels()
    model = _model(22, 5)
    exact = predict(model, maps, 32, task=task)
    low = predict(model, maps, 32, task=task, first_layer_dtype=torch.bfloat16)
    if task == "segmentation":
        agree = (low.labels == exact.labels).float().mean()
        assert 0.99 <= agree < 1  # bfloat16 operands do change a few near-ties, and only a few
        torch.testing.assert_close(low.uncertainty, exact.uncertainty, atol=2e-2, rtol=0)
    else:
        torch.testing.assert_close(low.heatmaps, exact.heatmaps, atol=3e-2, rtol=0)
        assert not torch.equal(low.heatmaps, exact.heatmaps)


def test_bfloat16_first_layer_is_per_image():
    maps = _maps_shared_levels(n=3)
    model = _model(22, 5)
    whole = predict(model, maps, 32, first_layer_dtype=torch.bfloat16)
    for i in range(3):
        alone = predict(model, [m[i:i + 1] for m in maps], 32, first_layer_dtype=torch.bfloat16)
        assert torch.equal(alone.labels[0], whole.labels[i])
        assert torch.equal(alone.uncertainty[0], whole.uncertainty[i])


@pytest.mark.parametrize("amx, avx512_bf16", [(False, False), (True, False), (False, True), (True, True)])
def test_auto_precision_follows_the_cpus_bfloat16_units(monkeypatch, amx, avx512_bf16):
    from datasetgan.interpreter.predict import cpu_has_native_bfloat16, first_layer_precision
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert cpu_has_native_bfloat16() == (amx or avx512_bf16)
    expected = torch.bfloat16 if amx or avx512_bf16 else torch.float32
    assert first_layer_precision(torch.device("cpu"), "auto") == expected
    assert first_layer_precision(torch.device("cpu"), "float32") == torch.float32


def test_auto_precision_without_the_probes(monkeypatch):
    """An older PyTorch without the private probes: float32."""
    from datasetgan.interpreter.predict import first_layer_precision
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    assert first_layer_precision(torch.device("cpu"), "auto") == torch.float32


def test_first_layer_precision_choices():
    from datasetgan.interpreter.predict import cpu_has_native_bfloat16, first_layer_precision
    cpu = torch.device("cpu")
    assert first_layer_precision(cpu, "float32") == torch.float32
    assert first_layer_precision(cpu, "bfloat16") == torch.bfloat16
    assert first_layer_precision(cpu, "auto") == (torch.bfloat16 if cpu_has_native_bfloat16() else torch.float32)
    assert first_layer_precision(torch.device("meta"), "auto") == torch.float32  # not a CPU
    with pytest.raises(ValueError, match="precision"):
        first_layer_precision(cpu, "fp8")
    with pytest.raises(ValueError, match="first_layer_dtype"):
        predict(_model(22, 5), _maps_shared_levels(), 32, first_layer_dtype=torch.float16)

"""Training: run folder layout, resume, refusal of a different run."""

from __future__ import annotations

import json

import pytest
import torch

from datasetgan.core.errors import UserError
from datasetgan.segmenter.data import collect_items
from datasetgan.segmenter.config import SegmenterTrainingConfig
from datasetgan.segmenter.train import list_epochs, train


def test_train_checkpoints_and_resume(tiny_set, tmp_path):
    items, spec = collect_items("segmentation", images=tiny_set / "images", labels=tiny_set / "labels",
                                spec=tiny_set / "spec.yaml")
    cfg = SegmenterTrainingConfig(epochs=1, batch_size=3, resolution=32)   # 4 images: a lone last sample is folded in
    run = train(items, spec, "segmentation", cfg, tmp_path / "run", torch.device("cpu"), quiet=True)
    assert [p.name for p in list_epochs(run)] == ["epoch_001"]
    assert (run / "epoch_001" / "config.json").exists() and (run / "state" / "state.safetensors").exists()
    train(items, spec, "segmentation", SegmenterTrainingConfig(epochs=2, batch_size=3, resolution=32), run,
          torch.device("cpu"), quiet=True)
    assert [p.name for p in list_epochs(run)] == ["epoch_001", "epoch_002"]
    stats = [json.loads(l) for l in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["epoch"] for s in stats] == [1, 2]
    with pytest.raises(UserError, match="different settings"):
        train(items, spec, "segmentation", SegmenterTrainingConfig(epochs=2, batch_size=3, resolution=48), run,
              torch.device("cpu"), quiet=True)
    # A damaged resumable state is named, and the finished epochs are kept.
    (run / "state" / "state.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match=r"state: cannot resume from it .*remove this folder"):
        train(items, spec, "segmentation", SegmenterTrainingConfig(epochs=3, batch_size=3, resolution=32), run,
              torch.device("cpu"), quiet=True)
    assert [p.name for p in list_epochs(run)] == ["epoch_001", "epoch_002"]
    (run / "run.json").write_text("{")
    with pytest.raises(UserError, match=r"run\.json: run description is not valid JSON"):
        train(items, spec, "segmentation", SegmenterTrainingConfig(epochs=3, batch_size=3, resolution=32), run,
              torch.device("cpu"), quiet=True)


def test_segmentation_loss_skips_unlabelled_pixels():
    from datasetgan.labels import IGNORE
    from datasetgan.segmenter.train import segmentation_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 4))
    weight = torch.tensor([0.5, 1.0, 2.0])
    masked = target.clone()
    masked[:, :, :2] = IGNORE
    keep = masked != IGNORE
    flat_logits = logits.permute(0, 2, 3, 1)[keep]
    expected = torch.nn.functional.cross_entropy(flat_logits, target[keep], weight=weight)
    assert torch.allclose(segmentation_loss(logits, masked, weight, True), expected)
    assert torch.allclose(segmentation_loss(logits, target, weight, False),
                          torch.nn.functional.cross_entropy(logits, target, weight=weight))
    nothing = segmentation_loss(logits, torch.full_like(target, IGNORE), weight, True)   # not NaN
    nothing.backward()
    assert nothing.item() == 0.0 and torch.isfinite(logits.grad).all()


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["auto", "bfloat16"])
def test_mixed_precision_training_on_gpu(tiny_set, tmp_path, precision):
    """auto: float16 autocast with a GradScaler (whose state is saved); bfloat16: no loss scaling."""
    if not torch.cuda.is_available():
        pytest.fail("the gpu marker needs a CUDA device")
    items, spec = collect_items("segmentation", images=tiny_set / "images", labels=tiny_set / "labels",
                                spec=tiny_set / "spec.yaml")
    cfg = SegmenterTrainingConfig(epochs=1, batch_size=2, resolution=32, precision=precision)
    run = train(items, spec, "segmentation", cfg, tmp_path / "run", torch.device("cuda"), quiet=True)
    state = json.loads((run / "state" / "state.json").read_text())
    assert (state["scaler"] is not None) == (precision == "auto")
    assert [p.name for p in list_epochs(run)] == ["epoch_001"]
    stats = json.loads((run / "stats.jsonl").read_text().splitlines()[0])
    assert torch.isfinite(torch.tensor(stats["loss"]))


def test_batchnorm_recalibration_is_a_plain_average(tiny_set):
    from datasetgan.segmenter.data import LabelledImages
    from datasetgan.segmenter.train import recalibrate_batchnorm
    items, spec = collect_items("segmentation", images=tiny_set / "images", labels=tiny_set / "labels",
                                spec=tiny_set / "spec.yaml")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4, momentum=0.01)).eval()
    data = LabelledImages(items, spec, 16)
    recalibrate_batchnorm(model, data, torch.device("cpu"), max_images=4, batch_size=2)
    with torch.no_grad():
        feats = model[0](torch.stack([data[i]["image"] for i in range(4)]))
    bn = model[1]
    assert torch.allclose(bn.running_mean, feats.mean((0, 2, 3)), atol=1e-5)
    assert bn.momentum == 0.01 and not model.training


def test_checkpoint_every_cosine_lr_and_runs_from_before_the_new_settings(tiny_set, tmp_path):
    from datasetgan.segmenter.train import lr_at
    cosine = SegmenterTrainingConfig(lr=1e-3, lr_schedule="cosine")
    assert lr_at(cosine, 0, 10) == pytest.approx(1e-3) and lr_at(cosine, 5, 10) == pytest.approx(5e-4)
    assert lr_at(SegmenterTrainingConfig(lr=1e-3), 9, 10) == 1e-3
    items, spec = collect_items("segmentation", images=tiny_set / "images", labels=tiny_set / "labels",
                                spec=tiny_set / "spec.yaml")
    cfg = SegmenterTrainingConfig(epochs=3, batch_size=2, resolution=32, checkpoint_every=2, lr_schedule="cosine")
    run = train(items, spec, "segmentation", cfg, tmp_path / "run", torch.device("cpu"), quiet=True)
    assert [p.name for p in list_epochs(run)] == ["epoch_002", "epoch_003"]
    stats = [json.loads(l) for l in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["epoch"] for s in stats] == [1, 2, 3] and stats[-1]["lr"] < 1e-3 / 2
    # A run.json written before output_stride / keypoint_head / lr_schedule / checkpoint_every existed resumes.
    old = tmp_path / "old"
    train(items, spec, "segmentation", SegmenterTrainingConfig(epochs=1, batch_size=2, resolution=32), old,
          torch.device("cpu"), quiet=True)
    record = json.loads((old / "run.json").read_text())
    for key in ("keypoint_head", "keypoint_reg", "output_stride", "lr_schedule", "checkpoint_every"):
        record["train"].pop(key)
        record["model"].pop(key, None)
    (old / "run.json").write_text(json.dumps(record))
    train(items, spec, "segmentation", SegmenterTrainingConfig(epochs=2, batch_size=2, resolution=32), old,
          torch.device("cpu"), quiet=True)
    assert [p.name for p in list_epochs(old)] == ["epoch_001", "epoch_002"]


def test_keypoint_checkpoints_from_before_the_integral_head_decode_as_heatmaps(tmp_path):
    from datasetgan.labels import LabelSpec
    from datasetgan.segmenter.models import Segmenter, SegmenterConfig, load_checkpoint, save_checkpoint
    spec = LabelSpec(classes=(), keypoints=("a", "b"))
    save_checkpoint(tmp_path / "ck", Segmenter(SegmenterConfig(task="keypoints", num_outputs=2)), spec)
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert load_checkpoint(tmp_path / "ck")[0].config.keypoint_head == "integral"
    del meta["model"]["keypoint_head"], meta["model"]["output_stride"]
    (tmp_path / "ck" / "config.json").write_text(json.dumps(meta))
    assert load_checkpoint(tmp_path / "ck")[0].config.keypoint_head == "heatmap"


def test_signal_mid_epoch_saves_the_batch_and_resumes_exactly(tiny_set, tmp_path, monkeypatch):
    """SIGTERM after batch 1 of epoch 2 (of 2 per epoch): the state of that batch is
    saved, and the resumed run's checkpoint and losses equal an uninterrupted run's."""
    import os
    import signal

    from datasetgan.core.signals import Interrupted
    from datasetgan.segmenter import train as seg_train
    items, spec = collect_items("segmentation", images=tiny_set / "images", labels=tiny_set / "labels",
                                spec=tiny_set / "spec.yaml")
    cfg = SegmenterTrainingConfig(epochs=2, batch_size=2, resolution=32)
    whole = train(items, spec, "segmentation", cfg, tmp_path / "whole", torch.device("cpu"), quiet=True)
    calls = {"n": 0}
    original = seg_train.segmentation_loss

    def loss_then_signal(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # epoch 2, batch 1
            os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)
    monkeypatch.setattr(seg_train, "segmentation_loss", loss_then_signal)
    run = tmp_path / "resumed"
    with pytest.raises(Interrupted):
        train(items, spec, "segmentation", cfg, run, torch.device("cpu"), quiet=True)
    state = json.loads((run / "state" / "state.json").read_text())
    assert (state["epoch"], state["batch"], state["count"]) == (1, 1, 2)
    assert [p.name for p in list_epochs(run)] == ["epoch_001"]
    monkeypatch.undo()
    train(items, spec, "segmentation", cfg, run, torch.device("cpu"), quiet=True)
    assert calls["n"] == 3
    for name in ("epoch_001", "epoch_002"):
        assert (run / name / "model.safetensors").read_bytes() == (whole / name / "model.safetensors").read_bytes()
    assert (run / "stats.jsonl").read_text().count("\n") == 2
    losses = [[json.loads(l)["loss"] for l in (r / "stats.jsonl").read_text().splitlines()] for r in (run, whole)]
    assert losses[0] == losses[1]


def test_init_starts_from_a_trained_network_of_the_same_kind(tiny_set, tmp_path):
    from datasetgan.labels import LabelSpec
    from datasetgan.segmenter.models import Segmenter, load_checkpoint
    from datasetgan.segmenter.train import read_init

    items, spec = collect_items("segmentation", images=tiny_set / "images", labels=tiny_set / "labels",
                                spec=tiny_set / "spec.yaml")
    cfg = dict(batch_size=3, resolution=32, bn_recalibrate=0)
    first = train(items, spec, "segmentation", SegmenterTrainingConfig(epochs=1, **cfg), tmp_path / "a",
                  torch.device("cpu"), quiet=True)
    trained, _, _ = load_checkpoint(first / "epoch_001")
    state, used = read_init(first, trained.config, spec)
    assert used == first / "epoch_001"                                    # a run folder: its last epoch
    assert all(torch.equal(state[k], v) for k, v in trained.state_dict().items())
    # Fine-tuning at a rate of 0 keeps the weights it started from.
    tuned = train(items, spec, "segmentation", SegmenterTrainingConfig(epochs=1, lr=1e-12, init=str(first), **cfg),
                  tmp_path / "b", torch.device("cpu"), quiet=True)
    again, _, _ = load_checkpoint(tuned / "epoch_001")
    w = "net.classifier.0.convs.0.0.weight"
    assert torch.allclose(again.state_dict()[w], trained.state_dict()[w], atol=1e-6)
    assert not torch.allclose(Segmenter(trained.config).state_dict()[w], trained.state_dict()[w])
    # A different network or other classes are refused, naming the flag and the difference, before the
    # run folder is written.
    with pytest.raises(UserError, match=r"--init .*a different network: resolution 32 \(this run: 48\)"):
        train(items, spec, "segmentation",
              SegmenterTrainingConfig(epochs=1, batch_size=3, resolution=48, init=str(first)),
              tmp_path / "c", torch.device("cpu"), quiet=True)
    assert not (tmp_path / "c").exists()
    other = LabelSpec(classes=tuple(f"c{i}" for i in range(spec.num_classes)))
    with pytest.raises(UserError, match=r"--init .*trained for classes \[.*\]; this run's spec names \['c0'"):
        read_init(first, trained.config, other)
    with pytest.raises(UserError, match=r"--init .*nowhere: folder not found"):
        read_init(tmp_path / "nowhere", trained.config, spec)


def test_freeze_bn_keeps_the_statistics_it_started_from(tiny_set, tmp_path):
    from datasetgan.segmenter.models import load_checkpoint

    items, spec = collect_items("segmentation", images=tiny_set / "images", labels=tiny_set / "labels",
                                spec=tiny_set / "spec.yaml")
    cfg = dict(batch_size=3, resolution=32)
    first = train(items, spec, "segmentation", SegmenterTrainingConfig(epochs=1, **cfg), tmp_path / "a",
                  torch.device("cpu"), quiet=True)
    start = load_checkpoint(first / "epoch_001")[0].state_dict()
    runs = {}
    for frozen in (False, True):
        tuning = SegmenterTrainingConfig(epochs=2, lr=1e-2, init=str(first), freeze_bn=frozen, **cfg)
        run = train(items, spec, "segmentation", tuning, tmp_path / f"frozen_{frozen}", torch.device("cpu"),
                    quiet=True)
        runs[frozen] = load_checkpoint(run / "epoch_002")[0].state_dict()
    stats = [k for k in start if k.endswith(("running_mean", "running_var"))]
    assert stats
    # Frozen: every running statistic is the one it started from, although the weights (BatchNorm's
    # scale and shift too) trained on; otherwise recalibration and training move them.
    assert all(torch.equal(runs[True][k], start[k]) for k in stats)
    assert not all(torch.equal(runs[False][k], start[k]) for k in stats)
    bn_weight = stats[0].replace("running_mean", "weight")
    assert not torch.equal(runs[True][bn_weight], start[bn_weight])
    # With nothing to keep, the flag is refused by name.
    with pytest.raises(UserError, match="--freeze-bn: needs --init or --backbone-weights"):
        SegmenterTrainingConfig(freeze_bn=True)

"""``synthesize --format webdataset``: tar shards read back with the ``webdataset`` library, equal to
the PNG layout's files; resumable writing; ``train-segmenter --data`` streaming them."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from tests.synthesis.conftest import _synth

from datasetgan.cli import main
from datasetgan.synthesis import finish as synth_finish
from datasetgan.synthesis import run as synth_run

wds = pytest.importorskip("webdataset")

ARGS = ("--num-images", "8", "--drop-uncertain", "0.25", "--batch-size", "4")
WDS = ("--format", "webdataset", "--shard-size", "4")


@pytest.fixture(scope="module")
def both(labelled, interpreter_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("layouts")
    assert _synth(labelled, interpreter_dir, root / "png", *ARGS) == 0
    assert _synth(labelled, interpreter_dir, root / "wds", *ARGS, *WDS) == 0
    return {"png": root / "png", "wds": root / "wds"}


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_shards_hold_the_png_layouts_files(both):
    png, out = both["png"], both["wds"]
    info = json.loads((out / "dataset.json").read_text())
    assert info["layout"] == "webdataset" and info["kept"] == 6
    assert info["shards"] == {"pattern": "shards/synth-%06d.tar", "count": 2, "samples_per_shard": 4}
    assert sorted(p.name for p in out.iterdir()) == ["contact_sheet.png", "dataset.json", "index.html",
                                                     "manifest.jsonl", "shards"]
    urls = [str(out / "shards" / f"synth-{i:06d}.tar") for i in range(2)]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    entries = _manifest(png)
    assert [s["__key__"] for s in samples] == [f"{e['seed']:06d}" for e in entries]
    assert [Path(s["__url__"]).name for s in samples] == ["synth-000000.tar"] * 4 + ["synth-000001.tar"] * 2
    for s, e in zip(samples, entries):
        assert sorted(k for k in s if not k.startswith("__")) == ["json", "label.png", "png"]
        assert s["png"] == (png / e["image"]).read_bytes()
        assert s["label.png"] == (png / e["label"]).read_bytes()
        assert json.loads(s["json"]) == {k: v for k, v in e.items() if k not in ("image", "label")}
    assert [{k: v for k, v in e.items() if k not in ("shard", "key")} for e in _manifest(out)] == \
        [{k: v for k, v in e.items() if k not in ("image", "label")} for e in entries]
    assert (out / "contact_sheet.png").read_bytes() == (png / "contact_sheet.png").read_bytes()
    # The rest of dataset.json is the PNG layout's.
    png_info = json.loads((png / "dataset.json").read_text())
    assert {k: v for k, v in info.items() if k not in ("layout", "shards", "files", "run")} == \
        {k: v for k, v in png_info.items() if k not in ("files", "run")}


def test_an_interrupted_finish_writes_only_the_missing_shards(labelled, interpreter_dir, both, tmp_path,
                                                               monkeypatch):
    out = tmp_path / "ds"
    written = []
    original = synth_finish.write_shard

    def second_fails(path, members):
        if path.name == "synth-000001.tar":
            raise KeyboardInterrupt
        written.append(path.name)
        return original(path, members)
    monkeypatch.setattr(synth_finish, "write_shard", second_fails)
    assert _synth(labelled, interpreter_dir, out, *ARGS, *WDS) == 130
    assert written == ["synth-000000.tar"] and not (out / "dataset.json").exists()
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["synth-000000.tar"]   # no partial file
    monkeypatch.setattr(synth_finish, "write_shard", lambda path, members: (written.append(path.name),
                                                                         original(path, members)))
    assert _synth(labelled, interpreter_dir, out, *ARGS, *WDS) == 0
    assert written == ["synth-000000.tar", "synth-000001.tar"]
    for name in written:   # the bytes depend on the samples alone (no times or owners in the headers)
        assert (out / "shards" / name).read_bytes() == (both["wds"] / "shards" / name).read_bytes()


def test_the_layout_is_part_of_the_run(labelled, interpreter_dir, tmp_path, monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(synth_run, "_write_candidate", boom)
    assert _synth(labelled, interpreter_dir, tmp_path / "ds", *ARGS) == 130
    monkeypatch.undo()
    assert _synth(labelled, interpreter_dir, tmp_path / "ds", *ARGS, *WDS) == 2
    err = capsys.readouterr().err
    assert "format: --format png there, webdataset now" in err and "shard_size: --shard-size not set there" in err
    assert _synth(labelled, interpreter_dir, tmp_path / "x", "--shard-size", "0") == 2
    assert "--shard-size 0: must be >= 1" in capsys.readouterr().err


def test_streaming_reads_every_sample_once_per_epoch(both):
    from datasetgan.segmenter.data import Augment
    from datasetgan.segmenter.streaming import StreamingImages, batch_sizes, read_data

    source, spec = read_data("segmentation", data=both["wds"])
    assert len(source) == 6 and spec.classes == ("other", "red")
    data = StreamingImages(source, spec, "segmentation", 16, augment=Augment(), seed=3, buffer=4)
    seeds = sorted(e["seed"] for e in _manifest(both["png"]))
    orders = {}
    for workers in (0, 2, 0, 2):
        for epoch in (1, 2):
            data.set_epoch(epoch)
            batches = list(data.batches(batch_sizes(6, 4), num_workers=workers))
            assert [len(b["index"]) for b in batches] == [4, 2]
            order = [int(i) for b in batches for i in b["index"]]
            assert sorted(order) == seeds
            assert batches[0]["image"].shape == (4, 3, 16, 16) and batches[0]["target"].shape == (4, 16, 16)
            assert orders.setdefault((workers, epoch), order) == order   # the same again
    assert orders[(0, 1)] != orders[(0, 2)]   # shuffled anew each epoch


def test_train_segmenter_streams_shards_and_resumes_exactly(both, tmp_path, monkeypatch):
    """Class weights and BatchNorm recalibration read the shards too; SIGTERM mid-epoch and a
    resumed run give the uninterrupted run's checkpoints."""
    from datasetgan.segmenter import train as seg_train

    flags = ["--data", str(both["wds"]), "--resolution", "16", "--batch-size", "2", "--epochs", "2",
             "--class-weight-power", "0.5", "--bn-recalibrate", "4", "--device", "cpu", "--quiet"]
    assert main(["train-segmenter", *flags, "--out", str(tmp_path / "whole")]) == 0
    run = json.loads((tmp_path / "whole" / "run.json").read_text())
    assert run["num_images"] == 6
    calls = {"n": 0}
    original = seg_train.segmentation_loss

    def loss_then_signal(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:   # epoch 2, batch 2 of 3
            os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)
    monkeypatch.setattr(seg_train, "segmentation_loss", loss_then_signal)
    assert main(["train-segmenter", *flags, "--out", str(tmp_path / "resumed")]) == 130
    state = json.loads((tmp_path / "resumed" / "state" / "state.json").read_text())
    assert (state["epoch"], state["batch"]) == (1, 2)
    monkeypatch.undo()
    assert main(["train-segmenter", *flags, "--out", str(tmp_path / "resumed")]) == 0
    for name in ("epoch_001", "epoch_002"):
        a, b = (tmp_path / r / name / "model.safetensors" for r in ("whole", "resumed"))
        assert a.read_bytes() == b.read_bytes()
    losses = [[json.loads(l)["loss"] for l in (tmp_path / r / "stats.jsonl").read_text().splitlines()]
              for r in ("whole", "resumed")]
    assert losses[0] == losses[1]


def test_collect_items_names_the_streamed_layout(both):
    from datasetgan.core.errors import UserError
    from datasetgan.segmenter.data import collect_items

    with pytest.raises(UserError, match="holds WebDataset shards"):
        collect_items("segmentation", data=both["wds"])
    (both["wds"] / "shards" / "synth-000001.tar").rename(both["wds"] / "moved.tar")
    try:
        from datasetgan.segmenter.streaming import read_data
        with pytest.raises(UserError, match="1 of the 2 shards that dataset.json lists are missing"):
            read_data("segmentation", data=both["wds"])
    finally:
        (both["wds"] / "moved.tar").rename(both["wds"] / "shards" / "synth-000001.tar")
    torch.set_num_threads(1)


def test_keypoint_shards(labelled, tmp_path):
    """Keypoints: ``<key>.png`` and ``<key>.json`` (no mask), the PNG layout's keypoints; COCO names the members."""
    from datasetgan.segmenter.streaming import StreamingImages, batch_sizes, read_data

    labels = tmp_path / "kp_labels"
    labels.mkdir()
    for k, p in enumerate(sorted((labelled["samples"] / "images").glob("*.png"))):
        (labels / f"{p.stem}.json").write_text(json.dumps([[4 + k, 9, 1], [20, 22 - k, 2]]))
    spec = tmp_path / "kp.yaml"
    spec.write_text("classes: [bg]\nkeypoints: [tip, tail]\n")
    assert main(["train-interpreter", "--samples", str(labelled["samples"]), "--labels", str(labels),
                 "--spec", str(spec), "--out", str(tmp_path / "kp"), "--members", "2", "--max-steps", "5",
                 "--device", "cpu", "--quiet"]) == 0
    common = ["synthesize", "--generator", str(labelled["G"]), "--interpreter", str(tmp_path / "kp"),
              "--num-images", "5", "--drop-uncertain", "0", "--device", "cpu", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "png")]) == 0
    assert main([*common, "--out", str(tmp_path / "wds"), "--format", "webdataset", "--shard-size", "2"]) == 0
    urls = [str(tmp_path / "wds" / "shards" / f"synth-{i:06d}.tar") for i in range(3)]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert len(samples) == 5
    for s in samples:
        assert sorted(k for k in s if not k.startswith("__")) == ["json", "png"]
        assert s["png"] == (tmp_path / "png" / "images" / f"{s['__key__']}.png").read_bytes()
        written = json.loads((tmp_path / "png" / "labels" / f"{s['__key__']}.json").read_text())
        assert json.loads(s["json"])["keypoints"] == written
    coco = json.loads((tmp_path / "wds" / "keypoints_coco.json").read_text())
    assert [(i["file_name"], i["shard"]) for i in coco["images"]][:3] == [
        ("000000.png", "shards/synth-000000.tar"), ("000001.png", "shards/synth-000000.tar"),
        ("000002.png", "shards/synth-000001.tar")]
    source, kspec = read_data("keypoints", data=tmp_path / "wds")
    data = StreamingImages(source, kspec, "keypoints", 32, seed=0)
    batches = list(data.batches(batch_sizes(5, 2)))
    assert [b["keypoints"].shape for b in batches] == [(2, 2, 3), (3, 2, 3)]

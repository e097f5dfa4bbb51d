"""WebDataset input: a ``synthesize --format webdataset`` folder, streamed shard by shard.

``read_data`` opens either layout of a ``synthesize`` folder (or a folder of
images with labels): a list of ``Item`` for PNG files, a ``WebDatasetSource``
for tar shards, which ``train`` reads through ``StreamingImages`` (an
``IterableDataset``, with the ``webdataset`` library) and never lists.

**An epoch** reads every shard once. The shard order is drawn from
``(seed, epoch)``; with ``--workers W`` the shards are dealt to the loader's
processes in turn (worker ``k`` reads shards ``k, k + W, ...`` of that order),
and each passes its samples through a shuffle buffer of ``buffer`` samples
seeded by ``(seed, epoch, k)``. The loader takes one sample from each worker
in turn, so the order depends on the number of workers but not on timing.
Batches are formed in the main process: ``--batch-size`` samples each, the
lone last one folded into the batch before (BatchNorm cannot train on one),
so an epoch has as many steps as a PNG folder of the same size. A sample's
augmentation draws from ``(seed, epoch, its synthesis seed)``, whatever its
position.

**Resume.** A run stopped mid-epoch reads that epoch again from its start and
skips the batches it had trained on (decoding them again, which costs time
only). With the same data and ``--workers`` the remaining batches are the
ones the uninterrupted run would have trained on, so the result is the same
(as for PNG folders, where ``--workers`` does not matter). With another
``--workers`` that epoch's order differs, so the rest of it sees other
samples (some twice, some not at all); the epochs after it are whole again.
The shuffle buffer mixes samples of nearby shards only: shards are written in
seed order, and synthesis seeds are independent draws, so nearby samples are
no more alike than any others.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, default_collate, get_worker_info

from datasetgan.core.errors import LabelError, UserError
from datasetgan.core.fileio import read_json
from datasetgan.core.progress import progress
from datasetgan.labels import IGNORE, Item, LabelSpec, load_label_spec
from datasetgan.segmenter.data import Augment, LabelledImages, collect_items, is_webdataset, spec_from_dataset_json

DEFAULT_BUFFER = 256   # samples in each worker's shuffle buffer


@dataclass(frozen=True)
class WebDatasetSource:
    """The tar shards of a ``synthesize --format webdataset`` folder, and how many samples they hold."""

    root: Path
    shards: tuple[Path, ...]
    num_samples: int

    def __len__(self) -> int:
        return self.num_samples


def _webdataset():
    try:
        import webdataset
    except ImportError:
        raise UserError("reading WebDataset shards needs the webdataset package (pip install webdataset)") from None
    return webdataset


def open_webdataset(root: str | Path) -> WebDatasetSource:
    """The shards that ``root``'s ``dataset.json`` lists; a missing one is named."""
    root = Path(root)
    meta = read_json(root / "dataset.json", "data set description")
    try:
        pattern, count, kept = meta["shards"]["pattern"], int(meta["shards"]["count"]), int(meta["kept"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{root / 'dataset.json'}: a WebDataset layout needs 'shards' with 'pattern' and 'count', "
                        "and 'kept'") from None
    shards = tuple(root / (pattern % i) for i in range(count))
    missing = [p for p in shards if not p.is_file()]
    if missing:
        raise UserError(f"--data {root}: {len(missing)} of the {count} shards that dataset.json lists are missing, "
                        f"e.g. {missing[0]}")
    return WebDatasetSource(root, shards, kept)


def read_data(task: str, data: str | Path | None = None, images: str | Path | None = None,
              labels: str | Path | None = None, spec: str | Path | LabelSpec | None = None
              ) -> tuple[list[Item] | WebDatasetSource, LabelSpec]:
    """``collect_items``'s labelled images, or the shards of a WebDataset ``data`` folder."""
    if data is None or not is_webdataset(data):
        return collect_items(task, data=data, images=images, labels=labels, spec=spec)
    if images is not None or labels is not None:
        raise UserError("--data cannot be combined with --images/--labels")
    root = Path(data)
    label_spec = spec if isinstance(spec, LabelSpec) else (
        load_label_spec(spec) if spec is not None else spec_from_dataset_json(root / "dataset.json"))
    if task == "keypoints" and label_spec.keypoints is None:
        raise UserError("the label spec has no 'keypoints' list; train-keypoints needs one")
    if task == "segmentation" and label_spec.num_classes < 2:
        raise UserError("the label spec needs at least 2 classes for segmentation")
    return open_webdataset(root), label_spec


def raw_samples(shards: Sequence[Path], buffer: int = 0, rng: random.Random | None = None) -> Iterator[dict]:
    """The samples of ``shards``, in order (``buffer`` 0) or through a shuffle buffer drawn with ``rng``:
    dicts of ``__key__``, ``__url__`` and one bytes entry per member (``png``, ``label.png``, ``json``)."""
    wds = _webdataset()
    stages = [wds.SimpleShardList([str(p) for p in shards]), wds.tarfile_to_samples()]
    if buffer > 1:
        stages.append(wds.shuffle(buffer, initial=buffer, rng=rng))
    return iter(wds.DataPipeline(*stages))


def decode_sample(raw: dict, spec: LabelSpec, task: str) -> tuple[int, np.ndarray, np.ndarray | None,
                                                                     np.ndarray | None]:
    """``(seed, pixels [H, W, 3] uint8, class ids [H, W] uint8 or None, keypoints [K, 3] or None)``."""
    where = f"{raw.get('__url__', '?')}: sample {raw.get('__key__', '?')}"
    try:
        record = json.loads(raw["json"])
        with Image.open(io.BytesIO(raw["png"])) as im:
            pixels = np.asarray(im.convert("RGB"))
    except (KeyError, ValueError, OSError) as exc:
        raise LabelError(where, f"expected <key>.png and <key>.json ({type(exc).__name__}: {exc})") from None
    if task == "keypoints":
        kp = np.asarray(record.get("keypoints", []), np.float64).reshape(-1, 3)
        if len(kp) != spec.num_keypoints:
            raise LabelError(where, f"{len(kp)} keypoints, the spec names {spec.num_keypoints}")
        return int(record["seed"]), pixels, None, kp
    try:
        with Image.open(io.BytesIO(raw["label.png"])) as im:
            if im.mode not in ("P", "L"):
                raise ValueError(f"mode {im.mode}; synthesize writes indexed masks")
            ids = np.asarray(im).astype(np.int64)
    except (KeyError, ValueError, OSError) as exc:
        raise LabelError(where, f"expected an indexed mask <key>.label.png ({exc})") from None
    if ids.shape != pixels.shape[:2]:
        raise LabelError(where, f"mask is {ids.shape[0]}x{ids.shape[1]} but its image {pixels.shape[0]}x"
                                f"{pixels.shape[1]}")
    ignored = ids == spec.ignore_index if spec.ignore_index is not None else np.zeros(ids.shape, bool)
    bad = (ids >= spec.num_classes) & ~ignored
    if bad.any():
        raise LabelError(where, f"class id {int(ids[bad].max())} is outside the spec's {spec.num_classes} classes")
    ids[ignored] = IGNORE
    return int(record["seed"]), pixels, ids.astype(np.uint8), None


def batch_sizes(num_samples: int, batch_size: int) -> list[int]:
    """Sizes of an epoch's batches: ``batch_size`` each, a lone last sample folded into the one before."""
    sizes = [min(batch_size, num_samples - i) for i in range(0, num_samples, batch_size)]
    if len(sizes) > 1 and sizes[-1] == 1:
        sizes.pop()
        sizes[-1] += 1
    return sizes


class StreamingImages(IterableDataset):
    """A ``WebDatasetSource`` as training samples, the dicts ``LabelledImages`` gives
    (``index`` is the sample's synthesis seed). ``set_epoch`` before each epoch's loader."""

    def __init__(self, source: WebDatasetSource, spec: LabelSpec, task: str, resolution: int,
                 augment: Augment | None = None, seed: int = 0, buffer: int = DEFAULT_BUFFER):
        self.source, self.spec, self.task, self.seed, self.buffer = source, spec, task, seed, buffer
        self.resolution = resolution
        self.transform = LabelledImages([], spec, resolution, augment=augment, seed=seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.transform.set_epoch(epoch)

    def shard_order(self, epoch: int) -> list[Path]:
        order = np.random.default_rng((self.seed, epoch, 1)).permutation(len(self.source.shards))
        return [self.source.shards[i] for i in order]

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        state = np.random.SeedSequence((self.seed, self.epoch, worker)).generate_state(2)
        rng = random.Random(int(state[0]) << 32 | int(state[1]))
        for raw in raw_samples(self.shard_order(self.epoch)[worker::workers], self.buffer, rng):
            seed, pixels, labels, keypoints = decode_sample(raw, self.spec, self.task)
            out = self.transform.sample(seed, pixels, labels, keypoints, key=seed)
            out["index"] = seed
            yield out

    def batches(self, sizes: Sequence[int], skip: int = 0, **loader_kw) -> Iterator[dict]:
        """This epoch's batches of ``sizes`` (see ``batch_sizes``) after the first ``skip``: samples
        from a ``DataLoader`` (``loader_kw``: ``num_workers``, ``pin_memory``), collated here."""
        stream = iter(DataLoader(self, batch_size=None, **loader_kw))

        def take(n: int) -> list[dict]:
            samples = [s for _, s in zip(range(n), stream)]
            if len(samples) < n:
                raise UserError(f"--data {self.source.root}: the shards hold fewer samples than dataset.json's "
                                f"'kept' ({self.source.num_samples})")
            return samples
        take(sum(sizes[:skip]))
        for size in sizes[skip:]:
            yield default_collate(take(size))

    def label_counts(self, quiet: bool = False) -> np.ndarray:
        """Pixels per class ``[C]`` over every sample (unlabelled ones left out), shards in order."""
        counts = np.zeros(self.spec.num_classes, np.float64)
        for raw in progress(raw_samples(self.source.shards), desc="class frequencies", total=len(self.source),
                            unit="img", disable=quiet or None):
            labels = decode_sample(raw, self.spec, self.task)[2]
            counts += np.bincount(labels.ravel(), minlength=self.spec.num_classes)[:self.spec.num_classes]
        return counts

    def clean_images(self, max_images: int, seed: int = 0) -> list[torch.Tensor]:
        """Up to ``max_images`` un-augmented ``[3, R, R]`` images, from the shards in an order drawn
        from ``seed`` (so that only the first few shards are read)."""
        order = np.random.default_rng((seed, 7)).permutation(len(self.source.shards))
        clean = LabelledImages([], self.spec, self.resolution, augment=None, seed=self.seed)
        images = []
        for raw in raw_samples([self.source.shards[i] for i in order]):
            if len(images) >= max_images:
                break
            sample_seed, pixels, labels, keypoints = decode_sample(raw, self.spec, self.task)
            images.append(clean.sample(sample_seed, pixels, labels, keypoints)["image"])
        return images

"""Labelled images for the downstream networks: where they come from and how they are augmented.

Two sources: a ``synthesize`` output folder (read by its files only:
``dataset.json``, ``images/``, ``labels/`` and, for keypoints, per-image
``keypoints/<stem>.json`` or a COCO keypoints JSON), or any folder of images
with a folder of labels and a spec file. Items are read lazily, so a data
set of 10,000 synthetic images never has to fit in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from datasetgan.core.errors import LabelError, UserError
from datasetgan.core.fileio import read_json
from datasetgan.labels import (IMAGE_SUFFIXES, KEYPOINT_SUFFIXES, MASK_SUFFIXES, Item, LabelSpec, load_label_spec,
                               match_images_labels, read_keypoints, read_label_map)


@dataclass(frozen=True)
class Augment:
    """Training augmentation: a random square box, resized to the training side, then flips and
    colour jitter. The box side is drawn from ``[crop_min, zoom_out]`` times the image side: below 1
    it crops (zooms in); above 1 the whole image shrinks to a random place inside the frame, and
    the margin repeats the border pixels of image and labels alike (DeepLab's random scaling: it
    teaches objects smaller than those of the training images)."""

    flip: bool = True
    crop_min: float = 0.7
    zoom_out: float = 1.0
    jitter: float = 0.2   # brightness, contrast and saturation factors drawn from [1 - j, 1 + j]


def spec_from_dataset_json(path: Path) -> LabelSpec:
    """The label spec inside a ``synthesize`` folder's ``dataset.json`` (other keys are ignored)."""
    meta = read_json(path, "data set description")
    if not isinstance(meta, dict):
        raise UserError(f"{path}: expected a JSON object")
    keys = ("classes", "palette", "keypoints", "keypoint_flip", "ignore_index", "ignore_colour")
    return LabelSpec.from_dict({k: meta[k] for k in keys if k in meta and meta[k] is not None}, where=str(path))


def is_webdataset(root: str | Path) -> bool:
    """Whether a ``synthesize`` folder was written with ``--format webdataset`` (``dataset.json``'s ``layout``)."""
    meta = read_json(Path(root) / "dataset.json", "data set description")
    return isinstance(meta, dict) and meta.get("layout") == "webdataset"


def _coco_keypoints(path: Path, spec: LabelSpec) -> dict[str, np.ndarray]:
    """``{stem: [K, 3]}`` from a COCO keypoints file (one annotation per image)."""
    data = read_json(path, "COCO keypoints file")
    try:
        names = {img["id"]: Path(img["file_name"]).stem for img in data.get("images", [])}
        annotations = [(ann["image_id"], np.asarray(ann.get("keypoints", []), np.float64).reshape(-1, 3))
                       for ann in data.get("annotations", [])]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise LabelError(path, f"not a COCO keypoints file: 'images' needs 'id' and 'file_name', "
                               f"'annotations' 'image_id' and x, y, v triples in 'keypoints' ({exc!r})") from None
    out: dict[str, np.ndarray] = {}
    for image_id, kp in annotations:
        if len(kp) != spec.num_keypoints:
            raise LabelError(path, f"annotation for image id {image_id}: {len(kp)} keypoints, "
                                   f"the spec names {spec.num_keypoints}")
        if image_id not in names:
            raise LabelError(path, f"annotation for image id {image_id}: no such id in 'images'")
        out[names[image_id]] = kp
    return out


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except OSError as exc:
        raise UserError(f"{path}: not a readable image ({exc})") from None


def _label_size(path: Path) -> tuple[int, int]:
    if path.suffix.lower() == ".npy":
        try:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        except (OSError, ValueError) as exc:
            raise LabelError(path, f"not a readable .npy mask ({exc})") from None
        if len(shape) < 2:
            raise LabelError(path, f"mask has shape {tuple(shape)}; expected [H, W]")
        return tuple(shape[:2])  # type: ignore[return-value]
    return _image_size(path)


def collect_items(task: str, data: str | Path | None = None, images: str | Path | None = None,
                  labels: str | Path | None = None, spec: str | Path | LabelSpec | None = None,
                  check_sizes: bool = True) -> tuple[list[Item], LabelSpec]:
    """Find labelled images for ``task`` ("segmentation" or "keypoints").

    Either ``data`` (a ``synthesize`` folder) or ``images`` + ``labels`` +
    ``spec``. Pairing is exact: an image without a label or a label without an
    image is an error naming them. Mask sizes are checked against image sizes
    from the file headers (cheap); keypoints are read and checked in full.
    """
    if data is not None:
        if images is not None or labels is not None:
            raise UserError("--data cannot be combined with --images/--labels")
        root = Path(data)
        if not (root / "dataset.json").exists():
            raise UserError(f"--data {root}: no dataset.json (expected a `datasetgan synthesize` output folder)")
        if is_webdataset(root):
            raise UserError(f"--data {root}: holds WebDataset shards (synthesize --format webdataset), which are "
                            "streamed rather than listed: read it with segmenter.streaming.read_data")
        label_spec = spec if isinstance(spec, LabelSpec) else (
            load_label_spec(spec) if spec is not None else spec_from_dataset_json(root / "dataset.json"))
        images, labels = root / "images", root / "labels"
        # Keypoints: labels/<stem>.json (what synthesize writes), else keypoints/<stem>.json, else COCO JSON.
        has_json = labels.is_dir() and any(p.suffix == ".json" for p in labels.iterdir())
        if task == "keypoints" and not has_json and not (root / "keypoints").is_dir():
            cocos = [p for p in sorted(root.glob("*.json")) if p.name != "dataset.json"]
            if not cocos:
                raise UserError(f"--data {root}: no keypoints/ folder and no COCO keypoints JSON")
            table = _coco_keypoints(cocos[0], label_spec)
            found = {p.stem: p for p in sorted(Path(images).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
            missing = sorted(set(found) - set(table))
            if missing:
                raise UserError(f"{cocos[0]}: no keypoints for {len(missing)} image(s), e.g. {missing[0]}")
            items = [Item(s, found[s], keypoints=table[s]) for s in sorted(found)]
            return _checked(items, label_spec, check_sizes), label_spec
        if task == "keypoints" and not has_json:
            labels = root / "keypoints"
    else:
        if images is None or labels is None or spec is None:
            raise UserError("give either --data DIR, or all of --images DIR --labels DIR --spec SPEC")
        label_spec = spec if isinstance(spec, LabelSpec) else load_label_spec(spec)
    if task == "keypoints":
        if label_spec.keypoints is None:
            raise UserError("the label spec has no 'keypoints' list; train-keypoints needs one")
        pairs = match_images_labels(images, labels, suffixes=KEYPOINT_SUFFIXES)
        items = [Item(s, i, keypoints=None, label=l) for s, i, l in pairs]
    else:
        if label_spec.num_classes < 2:
            raise UserError("the label spec needs at least 2 classes for segmentation")
        pairs = match_images_labels(images, labels, suffixes=MASK_SUFFIXES)
        items = [Item(s, i, label=l) for s, i, l in pairs]
    return _checked(items, label_spec, check_sizes), label_spec


def _checked(items: list[Item], spec: LabelSpec, check_sizes: bool) -> list[Item]:
    out = []
    for item in items:
        size = _image_size(item.image) if check_sizes or item.keypoints is not None or item.label is None else None
        if item.label is not None and item.label.suffix.lower() in KEYPOINT_SUFFIXES:
            item = Item(item.stem, item.image, keypoints=read_keypoints(item.label, spec, size=size))
        elif item.keypoints is not None:
            kp = item.keypoints
            h, w = size
            bad = (kp[:, 2] > 0) & ((kp[:, 0] < -0.5) | (kp[:, 0] > w - 0.5) | (kp[:, 1] < -0.5) | (kp[:, 1] > h - 0.5))
            if bad.any():
                raise LabelError(item.image, f"keypoint {int(np.flatnonzero(bad)[0])} lies outside the {w}x{h} image")
        elif check_sizes and item.label is not None:
            lsize = _label_size(item.label)
            if tuple(lsize) != tuple(size):
                raise LabelError(item.label, f"label is {lsize[0]}x{lsize[1]} (HxW) but its image "
                                             f"{item.image.name} is {size[0]}x{size[1]}")
        out.append(item)
    return out


class LabelledImages(Dataset):
    """Items resized to ``resolution`` squared, optionally augmented.

    ``__getitem__`` returns ``image [3, R, R]`` float in [0, 1] and either
    ``target [R, R]`` int64 class ids or ``keypoints [K, 3]`` (x, y, visible)
    in the resized frame. Augmentation draws from a generator seeded by
    ``(seed, epoch, index)``, so a batch does not depend on worker count or
    on resuming. Decoded images and labels are kept in memory (each process
    its own copy) up to ``cache_bytes`` in all: later epochs skip the PNG
    decoding and the label checks.
    """

    def __init__(self, items: list[Item], spec: LabelSpec, resolution: int, augment: Augment | None = None,
                 seed: int = 0, cache_bytes: int = 1 << 30):
        self.items, self.spec, self.resolution, self.augment, self.seed = items, spec, resolution, augment, seed
        self.epoch = 0
        self.flip_perm = spec.flip_permutation() if spec.keypoints else None
        self.cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self.cache_left = cache_bytes

    def decoded(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``(image [H, W, 3] uint8, class ids [H, W] uint8 or None)`` of item ``index``."""
        if index in self.cache:
            return self.cache[index]
        item = self.items[index]
        with Image.open(item.image) as im:
            image = np.asarray(im.convert("RGB"))
        labels = None
        if item.keypoints is None:
            labels = read_label_map(item.label, self.spec, size=image.shape[:2]).astype(np.uint8)
        size = image.nbytes + (labels.nbytes if labels is not None else 0)
        if size <= self.cache_left:
            self.cache[index], self.cache_left = (image, labels), self.cache_left - size
        return image, labels

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict:
        pixels, labels = self.decoded(index)
        return self.sample(index, pixels, labels, self.items[index].keypoints)

    def sample(self, index: int, pixels: np.ndarray, labels: np.ndarray | None, keypoints: np.ndarray | None,
               key: int | None = None) -> dict:
        """One training sample from decoded data: ``pixels [H, W, 3]`` uint8, and ``labels [H, W]``
        class ids or ``keypoints [K, 3]``. Augmentation draws from ``(seed, epoch, key)``, ``key``
        defaulting to ``index`` (a streamed data set passes each sample's own seed)."""
        r = self.resolution
        image = Image.fromarray(pixels)
        w, h = image.size
        box, flip, jitter = (0.0, 0.0, float(w), float(h)), False, (1.0, 1.0, 1.0)
        pad = 0
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index if key is None else key))
            side = rng.uniform(self.augment.crop_min, max(1.0, self.augment.zoom_out))
            cw, ch = side * w, side * h
            x0, y0 = rng.uniform(min(0, w - cw), max(0, w - cw)), rng.uniform(min(0, h - ch), max(0, h - ch))
            box = (x0, y0, x0 + cw, y0 + ch)
            pad = max(0, math.ceil(max(cw - w, ch - h)))
            # Keypoints flip only when the spec says which points swap sides.
            flip = self.augment.flip and bool(rng.random() < 0.5) and (keypoints is None or bool(self.spec.keypoint_flip))
            j = self.augment.jitter
            jitter = tuple(rng.uniform(1 - j, 1 + j, size=3))
        # A box beyond the image reads a margin of ``pad`` pixels (image and labels alike).
        padded_box = (box[0] + pad, box[1] + pad, box[2] + pad, box[3] + pad)
        img = np.asarray(_pad_edges(image, pad).resize((r, r), Image.BILINEAR, box=padded_box), np.float32) / 255.0
        out: dict = {"index": index}
        if keypoints is None:
            lab = _pad_edges(Image.fromarray(labels, mode="L"), pad)
            lab = lab.resize((r, r), Image.NEAREST, box=padded_box)
            target = np.asarray(lab, np.int64)
            if flip:
                target = target[:, ::-1]
            out["target"] = torch.from_numpy(target.copy())
        else:
            kp = keypoints.astype(np.float32).copy()
            kp[:, 0] = (kp[:, 0] + 0.5 - box[0]) * r / (box[2] - box[0]) - 0.5
            kp[:, 1] = (kp[:, 1] + 0.5 - box[1]) * r / (box[3] - box[1]) - 0.5
            off = (kp[:, 0] < -0.5) | (kp[:, 0] > r - 0.5) | (kp[:, 1] < -0.5) | (kp[:, 1] > r - 0.5)
            kp[off, 2] = 0
            if flip:
                kp[:, 0] = r - 1 - kp[:, 0]
                kp = kp[self.flip_perm]
            out["keypoints"] = torch.from_numpy(kp)
        if flip:
            img = img[:, ::-1]
        if jitter != (1.0, 1.0, 1.0):
            img = _colour_jitter(img, *jitter)
        out["image"] = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return out


def _pad_edges(image: Image.Image, pad: int) -> Image.Image:
    """``image`` with a margin of ``pad`` pixels on every side that repeats its border pixels."""
    if pad == 0:
        return image
    a = np.asarray(image)
    widths = ((pad, pad), (pad, pad)) + ((0, 0),) * (a.ndim - 2)
    return Image.fromarray(np.pad(a, widths, mode="edge"))


def _colour_jitter(x: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """``x [H, W, 3]`` float32 in [0, 1]; factors of 1 leave it unchanged. (numpy: on a
    small image torch's per-op overhead costs more than the arithmetic.)"""
    x = x * np.float32(brightness)
    mean = x.mean(dtype=np.float32)
    x = (x - mean) * np.float32(contrast) + mean
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = grey[..., None] + (x - grey[..., None]) * np.float32(saturation)
    return np.clip(x, 0, 1, out=x)

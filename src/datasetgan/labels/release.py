"""The DatasetGAN release's annotations: its experiment files, masks and test sets as this project's labels.

The release (nv-tlabs/datasetGAN_release) describes each domain by an experiment
file (``datasetGAN/experiments/face_34.json``, ``car_20.json``, ``cat_16.json``,
...) naming, relative to its ``datasetGAN/`` folder, the StyleGAN1 checkpoint,
the average latent, the annotated images' latents, the annotation folder
(``image_mask{i}.npy`` + ``image_{i}.jpg``) and the testing folder (images and
``.npy`` masks, paired in sorted order). This module reads the label side
(numpy files only, no pickles); ``generator.release_import`` adds the generator
and the samples, and ``datasetgan import-release`` runs both.

What the release does to its annotations, and is done here the same way:

- masks are resized to ``dim[0] x dim[1]`` with OpenCV's nearest neighbour
  (source pixel ``floor(i * src / dst)``);
- annotated regions of fewer than 30 pixels (class ids 1-49) become class 0
  ("clean up artifacts in the annotation, must do"), optional here;
- class names and palettes are its ``utils/data_util.py`` tables where it has
  them (face, car), numbered classes otherwise (its cat and bedroom palettes).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datasetgan.core.errors import UserError
from datasetgan.labels.masks import write_label_map
from datasetgan.core.images import default_palette
from datasetgan.labels.spec import LabelSpec

SMALL_REGION_PIXELS = 30      # the release: (mask == target).sum() < 30 -> 0
SMALL_REGION_IDS = range(1, 50)

FACE_CLASSES = (
    "background", "head", "head***cheek", "head***chin", "head***ear", "head***ear***helix",
    "head***ear***lobule", "head***eye***botton lid", "head***eye***eyelashes", "head***eye***iris",
    "head***eye***pupil", "head***eye***sclera", "head***eye***tear duct", "head***eye***top lid",
    "head***eyebrow", "head***forehead", "head***frown", "head***hair", "head***hair***sideburns",
    "head***jaw", "head***moustache", "head***mouth***inferior lip", "head***mouth***oral comisure",
    "head***mouth***superior lip", "head***mouth***teeth", "head***neck", "head***nose",
    "head***nose***ala of nose", "head***nose***bridge", "head***nose***nose tip", "head***nose***nostril",
    "head***philtrum", "head***temple", "head***wrinkles")
# The release lists face colours as fractions and uses int(x * 255).
_FACE_FRACTIONS = (
    1.0000, 1.0000, 1.0000, 0.4420, 0.5100, 0.4234, 0.8562, 0.9537, 0.3188, 0.2405, 0.4699, 0.9918,
    0.8434, 0.9329, 0.7544, 0.3748, 0.7917, 0.3256, 0.0190, 0.4943, 0.3782, 0.7461, 0.0137, 0.5684,
    0.1644, 0.2402, 0.7324, 0.0200, 0.4379, 0.4100, 0.5853, 0.8880, 0.6137, 0.7991, 0.9132, 0.9720,
    0.6816, 0.6237, 0.8562, 0.9981, 0.4692, 0.3849, 0.5351, 0.8242, 0.2731, 0.1747, 0.3626, 0.8345,
    0.5323, 0.6668, 0.4922, 0.2122, 0.3483, 0.4707, 0.6844, 0.1238, 0.1452, 0.3882, 0.4664, 0.1003,
    0.2296, 0.0401, 0.3030, 0.5751, 0.5467, 0.9835, 0.1308, 0.9628, 0.0777, 0.2849, 0.1846, 0.2625,
    0.9764, 0.9420, 0.6628, 0.3893, 0.4456, 0.6433, 0.8705, 0.3957, 0.0963, 0.6117, 0.9702, 0.0247,
    0.3668, 0.6694, 0.3117, 0.6451, 0.7302, 0.9542, 0.6171, 0.1097, 0.9053, 0.3377, 0.4950, 0.7284,
    0.1655, 0.9254, 0.6557, 0.9450, 0.6721, 0.6162)
FACE_PALETTE = tuple(int(v * 255) for v in _FACE_FRACTIONS)
CAR_20_CLASSES = (
    "background", "back_bumper", "bumper", "car_body", "car_lights", "door", "fender", "grilles", "handles",
    "hoods", "licensePlate", "mirror", "roof", "running_boards", "tailLight", "tire", "trunk_lids", "wheelhub",
    "window", "windshield")
CAR_20_PALETTE = (
    255, 255, 255, 238, 229, 102, 0, 0, 0, 124, 99, 34, 193, 127, 15, 248, 213, 42, 220, 147, 77, 99, 83, 3,
    116, 116, 138, 200, 226, 37, 225, 184, 161, 142, 172, 248, 153, 112, 146, 38, 112, 254, 229, 30, 141,
    52, 83, 84, 194, 87, 125, 225, 96, 18, 31, 102, 211, 104, 131, 101)
CAT_PALETTE = (
    255, 255, 255, 220, 220, 0, 190, 153, 153, 250, 170, 30, 220, 220, 0, 107, 142, 35, 102, 102, 156,
    152, 251, 152, 119, 11, 32, 244, 35, 232, 220, 20, 60, 52, 83, 84, 194, 87, 125, 225, 96, 18, 31, 102, 211,
    104, 131, 101)
BEDROOM_PALETTE = (
    255, 255, 255, 238, 229, 102, 255, 72, 69, 124, 99, 34, 193, 127, 15, 106, 177, 21, 248, 213, 42,
    252, 155, 83, 220, 147, 77, 99, 83, 3, 116, 116, 138, 63, 182, 24, 200, 226, 37, 225, 184, 161, 233, 5, 219,
    142, 172, 248, 153, 112, 146, 38, 112, 254, 229, 30, 141, 238, 229, 12, 255, 72, 6, 124, 9, 34, 193, 17, 15,
    106, 17, 21, 28, 213, 2, 252, 155, 3, 20, 147, 77, 9, 83, 3, 11, 16, 138, 6, 12, 24, 20, 22, 37, 225, 14, 16,
    23, 5, 29, 14, 12, 28, 15, 11, 16, 3, 12, 24, 22, 3, 11)


@dataclass(frozen=True)
class Category:
    """What the release's ``train_interpreter.py`` hard-codes per ``category``."""

    max_layer: int                              # its Truncation(max_layer): psi 0.7 on the first max_layer ws
    classes: tuple[str, ...] | None             # class names, where the release has them
    palette: tuple[int, ...]                    # flat r, g, b


CATEGORIES = {
    "face": Category(8, FACE_CLASSES, FACE_PALETTE),
    "car": Category(8, CAR_20_CLASSES, CAR_20_PALETTE),
    "cat": Category(7, None, CAT_PALETTE),
    "bedroom": Category(7, None, BEDROOM_PALETTE),
}
TRUNCATION_PSI = 0.7    # the release's Truncation(threshold=0.7)


@dataclass(frozen=True)
class ReleaseExperiment:
    """One experiment file, its paths resolved under the release folder ``root``."""

    path: Path
    category: str
    dim: tuple[int, int, int]          # label height, label width, feature width
    number_class: int
    testing_number_class: int
    max_training: int
    from_w: bool                       # annotation_data_from_w: the latents are ws, not zs
    checkpoint: Path
    average_latent: Path
    latents: Path
    annotations: Path
    testing: Path | None
    model_num: int
    upsample_mode: str

    @property
    def max_layer(self) -> int:
        return CATEGORIES[self.category].max_layer


def _resolve(root: Path, value: Any, key: str, source: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise UserError(f"{source}: key '{key}': expected a path")
    p = Path(value)
    return p if p.is_absolute() else (root / p)


def read_experiment(path: str | Path, root: str | Path) -> ReleaseExperiment:
    """Read a release experiment file; its relative paths are taken under ``root`` (the release's
    ``datasetGAN/`` folder, where they point into ``dataset_release/``)."""
    path, root = Path(path), Path(root)
    if not path.is_file():
        raise UserError(f"{path}: experiment file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")

    def get(key: str, kind: type, default: Any = None) -> Any:
        value = data.get(key, default)
        if value is None or (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise UserError(f"{path}: key '{key}': expected {kind.__name__}, got {value!r}")
        return value

    if str(data.get("stylegan_ver", "1")) != "1":
        raise UserError(f"{path}: key 'stylegan_ver' is {data['stylegan_ver']!r}; only the release's StyleGAN1 "
                        "experiments are supported")
    category = get("category", str)
    if category not in CATEGORIES:
        raise UserError(f"{path}: key 'category': {category!r}; the release knows {', '.join(CATEGORIES)}")
    dim = get("dim", list)
    if len(dim) != 3 or not all(isinstance(v, int) and v > 0 for v in dim):
        raise UserError(f"{path}: key 'dim': expected [height, width, feature width], got {dim!r}")
    if dim[0] != dim[1]:
        raise UserError(f"{path}: key 'dim' {dim}: a cropped label size (the release crops car images to rows "
                        "64-448) is not supported; only square label sizes are")
    testing = data.get("testing_path")
    number_class = get("number_class", int)
    return ReleaseExperiment(
        path=path, category=category, dim=(dim[0], dim[1], dim[2]), number_class=number_class,
        testing_number_class=int(data.get("testing_data_number_class", number_class)),
        max_training=get("max_training", int), from_w=bool(data.get("annotation_data_from_w", False)),
        checkpoint=_resolve(root, data.get("stylegan_checkpoint"), "stylegan_checkpoint", path),
        average_latent=_resolve(root, data.get("average_latent"), "average_latent", path),
        latents=_resolve(root, data.get("annotation_image_latent_path"), "annotation_image_latent_path", path),
        annotations=_resolve(root, data.get("annotation_mask_path"), "annotation_mask_path", path),
        testing=_resolve(root, testing, "testing_path", path) if testing else None,
        model_num=int(data.get("model_num", 10)), upsample_mode=str(data.get("upsample_mode", "bilinear")))


def release_spec(exp: ReleaseExperiment) -> tuple[LabelSpec, list[str]]:
    """The label spec: the release's names and colours where it has them. Returns ``(spec, notes)``;
    a colour the release gives two classes (cat: 1 and 4) is replaced by an unused one, in ``notes``."""
    cat = CATEGORIES[exp.category]
    n = exp.number_class
    names = cat.classes if cat.classes is not None and len(cat.classes) == n else tuple(
        ["background"] + [f"class_{i}" for i in range(1, n)])
    colours = [tuple(cat.palette[3 * i:3 * i + 3]) for i in range(min(n, len(cat.palette) // 3))]
    spare = [tuple(c) for c in default_palette(n + 64) if tuple(c) not in set(colours)]
    notes, seen = [], set()
    for i in range(n):
        if i >= len(colours) or colours[i] in seen:
            new = spare.pop(0)
            if i < len(colours):
                notes.append(f"class {i}: the release's colour {list(colours[i])} is another class's; "
                             f"{list(new)} instead")
                colours[i] = new
            else:
                colours.append(new)
        seen.add(colours[i])
    return LabelSpec(classes=names, palette=tuple(colours)), notes


def resize_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[h, w] -> size`` as OpenCV's ``INTER_NEAREST`` (what the release uses): row ``i`` of the
    result is source row ``floor(i * h / H)``."""
    h, w = mask.shape
    rows = np.minimum((np.arange(size[0]) * (h / size[0])).astype(np.int64), h - 1)
    cols = np.minimum((np.arange(size[1]) * (w / size[1])).astype(np.int64), w - 1)
    return mask[rows][:, cols]


def clean_small_regions(mask: np.ndarray, min_pixels: int = SMALL_REGION_PIXELS) -> np.ndarray:
    """The release's clean-up: every class id 1-49 with fewer than ``min_pixels`` pixels becomes 0."""
    out = mask.copy()
    for target in SMALL_REGION_IDS:
        hit = out == target
        if 0 < hit.sum() < min_pixels:
            out[hit] = 0
    return out


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{path}: not found")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:   # noqa: BLE001 - numpy raises several types for damaged files
        raise UserError(f"{path}: not a readable .npy array ({type(exc).__name__}: {exc})") from None


def read_mask(path: Path, exp: ReleaseExperiment, resolution: int, num_classes: int) -> np.ndarray:
    """One annotation: ``[dim0, dim1]`` class ids (the release's resize). The file must be
    ``[dim0, dim1]`` or the generator's ``[R, R]``, with ids below ``num_classes``."""
    mask = np.squeeze(_load_npy(path))
    sizes = {(exp.dim[0], exp.dim[1]), (resolution, resolution)}
    if mask.ndim != 2 or tuple(mask.shape) not in sizes:
        raise UserError(f"{path}: a mask of shape {list(mask.shape)}; expected "
                        f"{' or '.join(str(list(s)) for s in sorted(sizes))}")
    if not np.issubdtype(mask.dtype, np.number) or not np.all(np.mod(mask, 1) == 0):
        raise UserError(f"{path}: expected integer class ids")
    mask = mask.astype(np.int64)
    if mask.min() < 0 or mask.max() >= num_classes:
        raise UserError(f"{path}: class id {int(mask.max() if mask.max() >= num_classes else mask.min())} "
                        f"outside 0..{num_classes - 1} (number_class {num_classes} in {exp.path})")
    return resize_nearest(mask, (exp.dim[0], exp.dim[1]))


def import_annotations(exp: ReleaseExperiment, stems: list[str], out_labels: Path, out_images: Path,
                       spec: LabelSpec, resolution: int, clean: bool = True) -> dict[str, int]:
    """``image_mask{i}.npy`` -> ``out_labels/<stems[i]>.png`` (indexed, the spec's palette) and
    ``image_{i}.jpg`` -> ``out_images/<stems[i]>.jpg``, for ``i < max_training``. Every file is
    checked before anything is written. Returns counts (``cleaned``: pixels set to 0)."""
    masks, images = [], []
    for i in range(len(stems)):
        masks.append(read_mask(exp.annotations / f"image_mask{i}.npy", exp, resolution, exp.number_class))
        image = exp.annotations / f"image_{i}.jpg"
        if not image.is_file():
            raise UserError(f"{image}: not found (the annotated image of image_mask{i}.npy)")
        images.append(image)
    out_labels.mkdir(parents=True, exist_ok=True)
    out_images.mkdir(parents=True, exist_ok=True)
    cleaned = 0
    for stem, mask, image in zip(stems, masks, images):
        if clean:
            kept = clean_small_regions(mask)
            cleaned += int((kept != mask).sum())
            mask = kept
        write_label_map(out_labels / f"{stem}.png", mask.astype(np.uint8), spec)
        shutil.copyfile(image, out_images / f"{stem}.jpg")
    return {"masks": len(masks), "cleaned_pixels": cleaned}


def import_test_set(exp: ReleaseExperiment, out: Path, spec: LabelSpec) -> int:
    """The testing folder -> ``out/images/<stem><suffix>`` (copied) and ``out/labels/<stem>.png``,
    the layout ``evaluate --images --labels`` reads. As the release, images are the files that
    are not ``.npy``, masks the ``.npy`` files, paired in sorted order."""
    if exp.testing is None:
        return 0
    if not exp.testing.is_dir():
        raise UserError(f"{exp.testing}: testing folder not found (testing_path in {exp.path})")
    files = sorted(p for p in exp.testing.iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() != ".npy"]
    labels = [p for p in files if p.suffix.lower() == ".npy"]
    if len(images) != len(labels) or not images:
        raise UserError(f"{exp.testing}: {len(images)} images and {len(labels)} .npy masks; expected one mask "
                        "per image")
    if exp.testing_number_class != spec.num_classes:
        raise UserError(f"{exp.path}: testing_data_number_class {exp.testing_number_class} differs from "
                        f"number_class {spec.num_classes}; such test sets are not supported")
    arrays = []
    for label in labels:
        mask = np.squeeze(_load_npy(label))
        if mask.ndim != 2:
            raise UserError(f"{label}: a mask of shape {list(mask.shape)}; expected [H, W]")
        if mask.min() < 0 or mask.max() >= spec.num_classes:
            raise UserError(f"{label}: class ids outside 0..{spec.num_classes - 1}")
        arrays.append(mask.astype(np.uint8))
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    for image, mask in zip(images, arrays):
        shutil.copyfile(image, out / "images" / image.name)
        write_label_map(out / "labels" / f"{image.stem}.png", mask, spec)
    return len(images)

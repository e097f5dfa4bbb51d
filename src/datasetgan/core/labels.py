"""Label specs, label maps and keypoint files: the one reader every stage uses.

Formats (see issue 3, "Labels in"):

- **Spec** (YAML or JSON): ``classes`` (names, index = class id), ``palette``
  (optional ``[r, g, b]`` per class), ``keypoints`` (optional names),
  ``keypoint_flip`` (optional ``[left, right]`` name pairs that swap under a
  horizontal flip), and for masks with unlabelled ("void") pixels
  ``ignore_index`` (the id such pixels carry in id masks, e.g. 255 as in
  PASCAL VOC) and/or ``ignore_colour`` (their ``[r, g, b]`` in colour-coded
  masks). Ignored pixels are read as ``IGNORE`` (255) and take no part in
  training or scoring.
- **Label map**: ``<stem>.npy`` (integer ids), an 8-bit grey PNG of ids, an
  indexed ('P') PNG, or a colour-coded RGB PNG mapped through the palette.
  Colour-coded masks drawn with anti-aliasing (FASSEG) carry blends of two
  neighbouring class colours along borders; each pixel snaps to the nearest
  palette colour (see ``read_label_map`` for the tolerance).
- **Keypoints**: ``<stem>.json`` holding ``[[x, y, visible], ...]`` in pixels,
  ``(0, 0)`` = centre of the top-left pixel; ``visible > 0`` means the
  position is known and used.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image

from datasetgan.core.config import read_mapping
from datasetgan.core.errors import LabelError, UserError
from datasetgan.core.images import default_palette

LABEL_SUFFIXES = (".png", ".npy", ".json")
MASK_SUFFIXES = (".png", ".npy")
KEYPOINT_SUFFIXES = (".json",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

# Colour snapping defaults, measured on FASSEG V2+V3 (348 masks): every pixel
# lies within 48 (Euclidean RGB) of a blend of two class colours except at most
# 0.09% of a file's pixels (resampling noise such as (54, 38, 16)); a class
# colour missing from the spec covers far more than 0.2% of a face mask.
DEFAULT_TOLERANCE = 48.0
DEFAULT_MAX_OFF_FRACTION = 0.002

_SPEC_KEYS = ("classes", "palette", "keypoints", "keypoint_flip", "ignore_index", "ignore_colour")
# The id ``read_label_map`` gives pixels that carry no label (the spec's ignore_index / ignore_colour);
# every consumer skips it: interpreter pixel sampling, the segmenter's loss, the evaluation's counts.
IGNORE = 255


@dataclass(frozen=True)
class LabelSpec:
    """What the labels mean.

    ``classes[i]`` names class id ``i``; ``palette[i]`` is its colour (a
    default palette is filled in when absent); ``keypoints`` names the ``K``
    keypoints in file order; ``keypoint_flip`` lists index pairs that swap
    under a horizontal flip (e.g. left eye <-> right eye).
    """

    classes: tuple[str, ...] = ()
    palette: tuple[tuple[int, int, int], ...] | None = None
    keypoints: tuple[str, ...] | None = None
    keypoint_flip: tuple[tuple[int, int], ...] = ()
    ignore_index: int | None = None                      # id of unlabelled pixels in id masks
    ignore_colour: tuple[int, int, int] | None = None    # colour of unlabelled pixels in colour masks

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if self.palette is None:
            object.__setattr__(self, "palette", tuple(tuple(c) for c in default_palette(len(self.classes))[:len(self.classes)]))
        else:
            object.__setattr__(self, "palette", tuple(tuple(int(v) for v in c) for c in self.palette))
        if self.keypoints is not None:
            object.__setattr__(self, "keypoints", tuple(str(k) for k in self.keypoints))
        object.__setattr__(self, "keypoint_flip", tuple((int(a), int(b)) for a, b in self.keypoint_flip))
        if self.ignore_colour is not None:
            object.__setattr__(self, "ignore_colour", tuple(int(v) for v in self.ignore_colour))
        _validate(self, "label spec")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def has_ignore(self) -> bool:
        """Whether label maps may hold unlabelled pixels (read as ``IGNORE``)."""
        return self.ignore_index is not None or self.ignore_colour is not None

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints or ())

    def flip_permutation(self) -> list[int]:
        """Index map for a horizontal flip: keypoint ``i`` becomes ``perm[i]``."""
        perm = list(range(self.num_keypoints))
        for a, b in self.keypoint_flip:
            perm[a], perm[b] = b, a
        return perm

    def to_dict(self) -> dict:
        """JSON-ready form; ``from_dict(to_dict())`` round-trips."""
        out: dict[str, Any] = {"classes": list(self.classes),
                               "palette": [list(c) for c in (self.palette or ())]}
        if self.keypoints is not None:
            out["keypoints"] = list(self.keypoints)
            if self.keypoint_flip:
                out["keypoint_flip"] = [[self.keypoints[a], self.keypoints[b]] for a, b in self.keypoint_flip]
        if self.ignore_index is not None:
            out["ignore_index"] = self.ignore_index
        if self.ignore_colour is not None:
            out["ignore_colour"] = list(self.ignore_colour)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "label spec") -> "LabelSpec":
        """Build from a mapping with the keys of ``_SPEC_KEYS`` (see the module docstring).

        ``where`` (usually the file name) prefixes every error.
        """
        if not isinstance(data, Mapping):
            raise LabelError(where, f"expected a mapping with keys {', '.join(_SPEC_KEYS)}")
        unknown = [k for k in data if k not in _SPEC_KEYS]
        if unknown:
            raise LabelError(where, f"unknown key '{unknown[0]}' (known: {', '.join(_SPEC_KEYS)})")
        classes = data.get("classes") or []
        keypoints = data.get("keypoints")
        if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
            raise LabelError(where, "key 'classes': expected a list of class names")
        if keypoints is not None and (not isinstance(keypoints, (list, tuple))
                                      or not all(isinstance(k, str) for k in keypoints)):
            raise LabelError(where, "key 'keypoints': expected a list of keypoint names")
        if not classes and not keypoints:
            raise LabelError(where, "key 'classes': at least one class (or a 'keypoints' list) is required")
        palette = data.get("palette")
        if palette is not None:
            if not isinstance(palette, (list, tuple)) or not all(
                    isinstance(c, (list, tuple)) and len(c) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                      for v in c) for c in palette):
                raise LabelError(where, "key 'palette': expected a list of [r, g, b] integer triples")
        flip = []
        for pair in data.get("keypoint_flip") or []:
            if keypoints is None:
                raise LabelError(where, "key 'keypoint_flip': needs a 'keypoints' list")
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise LabelError(where, f"key 'keypoint_flip': expected [left, right] name pairs, got {pair!r}")
            idx = []
            for name in pair:
                if isinstance(name, int) and 0 <= name < len(keypoints):
                    idx.append(name)
                elif name in keypoints:
                    idx.append(list(keypoints).index(name))
                else:
                    raise LabelError(where, f"key 'keypoint_flip': {name!r} is not a keypoint name")
            flip.append(tuple(idx))
        ignore_index, ignore_colour = data.get("ignore_index"), data.get("ignore_colour")
        if ignore_index is not None and (not isinstance(ignore_index, int) or isinstance(ignore_index, bool)):
            raise LabelError(where, f"key 'ignore_index': expected an integer id, got {ignore_index!r}")
        if ignore_colour is not None and not (
                isinstance(ignore_colour, (list, tuple)) and len(ignore_colour) == 3
                and all(isinstance(v, int) and not isinstance(v, bool) for v in ignore_colour)):
            raise LabelError(where, f"key 'ignore_colour': expected an [r, g, b] integer triple, got {ignore_colour!r}")
        try:
            return cls(classes=tuple(classes), palette=None if palette is None else tuple(map(tuple, palette)),
                       keypoints=None if keypoints is None else tuple(keypoints), keypoint_flip=tuple(flip),
                       ignore_index=ignore_index, ignore_colour=None if ignore_colour is None else tuple(ignore_colour))
        except LabelError as exc:
            raise LabelError(where, str(exc).split(": ", 1)[1]) from None


def _validate(spec: LabelSpec, where: str) -> None:
    if len(set(spec.classes)) != len(spec.classes):
        dup = next(c for c in spec.classes if spec.classes.count(c) > 1)
        raise LabelError(where, f"key 'classes': duplicate class name {dup!r}")
    if spec.num_classes > 256:
        raise LabelError(where, f"key 'classes': at most 256 classes are supported, got {spec.num_classes}")
    palette = spec.palette or ()
    if len(palette) != spec.num_classes:
        raise LabelError(where, f"key 'palette': {len(palette)} colours for {spec.num_classes} classes "
                                "(one [r, g, b] per class expected)")
    for i, colour in enumerate(palette):
        if len(colour) != 3 or any(not 0 <= v <= 255 for v in colour):
            raise LabelError(where, f"key 'palette': colour {i} {list(colour)} is not three values in 0..255")
    seen: dict[tuple, int] = {}
    for i, colour in enumerate(palette):
        if colour in seen:
            raise LabelError(where, f"key 'palette': classes {seen[colour]} and {i} share the colour {list(colour)}")
        seen[colour] = i
    if spec.keypoints is not None and len(set(spec.keypoints)) != len(spec.keypoints):
        raise LabelError(where, "key 'keypoints': duplicate keypoint names")
    if spec.has_ignore and spec.num_classes > IGNORE:
        raise LabelError(where, f"at most {IGNORE} classes with 'ignore_index' or 'ignore_colour' "
                                f"(id {IGNORE} marks unlabelled pixels), got {spec.num_classes}")
    if spec.ignore_index is not None and not spec.num_classes <= spec.ignore_index <= 255:
        raise LabelError(where, f"key 'ignore_index': {spec.ignore_index} must not be a class id; expected "
                                f"{spec.num_classes}..255")
    if spec.ignore_colour is not None:
        if any(not 0 <= v <= 255 for v in spec.ignore_colour):
            raise LabelError(where, f"key 'ignore_colour': {list(spec.ignore_colour)} is not three values in 0..255")
        if spec.ignore_colour in seen:
            raise LabelError(where, f"key 'ignore_colour': {list(spec.ignore_colour)} is the colour of class "
                                    f"{seen[spec.ignore_colour]}")
    used: set[int] = set()
    for a, b in spec.keypoint_flip:
        if not (0 <= a < spec.num_keypoints and 0 <= b < spec.num_keypoints) or a == b or used & {a, b}:
            raise LabelError(where, f"key 'keypoint_flip': bad pair ({a}, {b})")
        used |= {a, b}


def frequency_weights_from_counts(counts: np.ndarray, power: float) -> np.ndarray:
    """Cross-entropy weights ``[C]`` from per-class pixel counts ``[C]``: ``freq_c ** -power``,
    scaled so that the weighted mean over all counted pixels is 1 (a loss keeps its unweighted
    scale). Absent classes get the rarest present class's weight. ``power`` 0 gives all ones."""
    counts = np.asarray(counts, dtype=np.float64)
    freq = counts / max(counts.sum(), 1.0)
    present = freq > 0
    if not present.any():
        return np.ones_like(freq)
    weights = np.zeros_like(freq)
    weights[present] = freq[present] ** -power
    weights[~present] = weights[present].max()
    return weights / (freq * weights).sum()


def load_label_spec(path: str | Path) -> LabelSpec:
    """Read a spec file (``.yaml``/``.yml``/``.json``, or a CVAT/Datumaro
    ``labelmap.txt``); errors name the file and key (or line)."""
    if Path(path).suffix == ".txt":
        return LabelSpec.from_dict(read_labelmap(path), where=str(path))
    return LabelSpec.from_dict(read_mapping(path), where=str(path))


def read_labelmap(path: str | Path) -> dict:
    """The ``labelmap.txt`` that CVAT's and Datumaro's "Segmentation mask"
    exports write beside their colour-coded masks, one class per line as
    ``name:r,g,b:parts:actions`` (``#`` starts a comment), as spec keys
    ``classes`` and ``palette``, in the file's order."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise LabelError(path, f"not a text file ({exc})") from None
    classes, palette = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        colour = rest.split(":")[0].split(",")
        try:
            rgb = [int(v) for v in colour]
        except ValueError:
            rgb = []
        if not name.strip() or len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise LabelError(path, f"line {number}: expected 'name:r,g,b:parts:actions', got {line.strip()!r}")
        classes.append(name.strip())
        palette.append(rgb)
    return {"classes": classes, "palette": palette}


def save_label_spec(path: str | Path, spec: LabelSpec) -> None:
    """Write ``spec`` as JSON (atomically)."""
    from datasetgan.core.fileio import write_json
    write_json(path, spec.to_dict())


# ----------------------------------------------------------------------------- label maps

def read_label_map(path: str | Path, spec: LabelSpec, size: tuple[int, int] | None = None,
                   tolerance: float = DEFAULT_TOLERANCE,
                   max_off_fraction: float = DEFAULT_MAX_OFF_FRACTION) -> np.ndarray:
    """Read one label map as class ids, ``[H, W]`` int64; unlabelled pixels (the spec's
    ``ignore_index`` in id masks, ``ignore_colour`` in colour masks) read as ``IGNORE``.

    ``size`` is the expected ``(H, W)`` (the image's). Colour-coded pixels
    snap to the nearest palette colour; a pixel is *off-palette* when it lies
    farther than ``tolerance`` (Euclidean RGB) from every palette colour and
    from every straight blend of two palette colours (anti-aliased borders).
    Up to ``max_off_fraction`` of the pixels may be off-palette (they snap
    too); more is an error naming the file, the commonest off colour and its
    pixel count.
    """
    path = Path(path)
    if not path.exists():
        raise LabelError(path, "label file not found")
    if path.suffix.lower() == ".npy":
        labels, ignored = _read_npy(path), None
    elif path.suffix.lower() == ".png":
        labels, ignored = _read_png(path, spec, tolerance, max_off_fraction)
    else:
        raise LabelError(path, f"unsupported label format {path.suffix!r} (expected .png or .npy)")
    if size is not None and tuple(labels.shape) != tuple(size):
        raise LabelError(path, f"label is {labels.shape[0]}x{labels.shape[1]} (HxW) but its image is "
                               f"{size[0]}x{size[1]}")
    if ignored is None and spec.ignore_index is not None:   # an id mask
        ignored = labels == spec.ignore_index
    invalid = (labels < 0) | (labels >= spec.num_classes)
    if ignored is not None:
        invalid &= ~ignored
    if invalid.any():
        values = labels[invalid]
        bad = int(values.max()) if values.max() >= spec.num_classes else int(values.min())
        count = int((values == bad).sum())
        also = f", nor the ignore_index {spec.ignore_index}" if spec.ignore_index is not None else ""
        raise LabelError(path, f"class id {bad} ({count} pixels) is outside the spec's "
                               f"{spec.num_classes} classes (0..{spec.num_classes - 1}{also})")
    if ignored is not None:
        labels[ignored] = IGNORE
    return labels


def _read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise LabelError(path, f"not a readable .npy array ({exc})") from None
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise LabelError(path, f"expected a 2-D array of class ids, got shape {tuple(arr.shape)}")
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.round()
        else:
            raise LabelError(path, f"expected integer class ids, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _read_png(path: Path, spec: LabelSpec, tolerance: float,
              max_off_fraction: float) -> tuple[np.ndarray, np.ndarray | None]:
    """``(ids [H, W] int64, ignored [H, W] bool)``; ``ignored`` is None for masks of ids (grey,
    or indexed with the spec's palette or a grey ramp), where ``ignore_index`` applies instead."""
    try:
        image = Image.open(path)
        image.load()
    except OSError as exc:
        raise LabelError(path, f"not a readable PNG ({exc})") from None
    mode = image.mode
    if mode in ("L", "I", "I;16", "1", "LA"):
        if mode == "LA":
            image = image.getchannel(0)
        return np.asarray(image).astype(np.int64), None
    if mode == "P":
        indices = np.asarray(image).astype(np.int64)
        file_palette = np.asarray(image.getpalette() or [], np.int64).reshape(-1, 3)
        used = np.unique(indices)
        spec_palette = np.asarray(spec.palette, np.int64).reshape(-1, 3)
        if used.max(initial=0) < len(file_palette):
            # The ignore_index's own entry may hold any colour (PASCAL VOC: 255 is (224, 224, 192)).
            classes = used if spec.ignore_index is None else used[used != spec.ignore_index]
            colours = file_palette[classes]
            # The file's palette agrees with the spec's at every index in use: the indices are class ids.
            if classes.max(initial=0) < len(spec_palette) and np.array_equal(colours, spec_palette[classes]):
                return indices, None
            # A plain grey ramp (i, i, i) carries no colour meaning: the indices are class ids.
            if np.array_equal(colours, np.repeat(classes[:, None], 3, axis=1)):
                return indices, None
            rgb = file_palette[indices]
        else:
            return indices, None
        return _snap_colours(path, rgb.astype(np.uint8), spec, tolerance, max_off_fraction)
    rgb = np.asarray(image.convert("RGB"))
    return _snap_colours(path, rgb, spec, tolerance, max_off_fraction)


def _blend_distance(colours: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Distance ``[U]`` of each colour ``[U, 3]`` to the nearest palette colour or two-colour blend."""
    best = np.sqrt(((colours[:, None, :] - palette[None]) ** 2).sum(-1)).min(1)
    for i, j in itertools.combinations(range(len(palette)), 2):
        a, ab = palette[i], palette[j] - palette[i]
        t = np.clip(((colours - a) @ ab) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(colours - (a + t[:, None] * ab), axis=1))
    return best


def _snap_colours(path: Path, rgb: np.ndarray, spec: LabelSpec, tolerance: float,
                  max_off_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Colour-coded ``rgb [H, W, 3]`` -> ``(class ids, ignored)``: each pixel snaps to the nearest
    palette colour or the ``ignore_colour`` (anti-aliased borders lie between two of them); an
    ignored pixel's id is ``num_classes`` here, and ``read_label_map`` makes it ``IGNORE``."""
    if spec.num_classes == 0:
        raise LabelError(path, "the label spec has no classes to map colours to")
    h, w = rgb.shape[:2]
    flat = rgb.reshape(-1, 3)
    # Work on the distinct colours only: a mask has a few hundred at most.
    # (np.unique on packed 24-bit integers is ~20x faster than with axis=0.)
    packed = (flat[:, 0].astype(np.int32) << 16) | (flat[:, 1].astype(np.int32) << 8) | flat[:, 2]
    keys, inverse, counts = np.unique(packed, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    colours = np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], axis=1)
    palette = np.asarray(list(spec.palette) + ([spec.ignore_colour] if spec.ignore_colour else []), np.float64)
    c = colours.astype(np.float64)
    nearest = np.sqrt(((c[:, None, :] - palette[None]) ** 2).sum(-1)).argmin(1)
    off = _blend_distance(c, palette) > tolerance
    off_count = int(counts[off].sum())
    if off_count > max_off_fraction * flat.shape[0]:
        worst = np.flatnonzero(off)[np.argmax(counts[off])]
        raise LabelError(path, f"{off_count} of {flat.shape[0]} pixels have colours that are not in the spec's "
                               f"palette (beyond tolerance {tolerance:g}), e.g. {colours[worst].tolist()} on "
                               f"{int(counts[worst])} pixels; palette: {[list(p) for p in spec.palette]}"
                               + (f", ignore_colour {list(spec.ignore_colour)}" if spec.ignore_colour else ""))
    ids = nearest[inverse].reshape(h, w).astype(np.int64)
    return ids, ids == spec.num_classes    # the ignore colour's row of the extended palette


# ----------------------------------------------------------------------------- keypoints

def read_keypoints(path: str | Path, spec: LabelSpec, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a keypoint file as ``[K, 3]`` float64 ``(x, y, visible)``.

    Accepts a JSON list of ``[x, y, visible]`` (or ``[x, y]``, visible = 1), or
    a mapping with a ``keypoints`` list. With ``size = (H, W)``, a visible
    keypoint must lie on the image: ``-0.5 <= x <= W - 0.5`` and likewise y.
    """
    path = Path(path)
    if spec.keypoints is None:
        raise LabelError(path, "the label spec has no 'keypoints' list, so keypoint files cannot be read")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabelError(path, "keypoint file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LabelError(path, f"not valid JSON ({exc})") from None
    if isinstance(data, dict):
        data = data.get("keypoints")
    if not isinstance(data, list):
        raise LabelError(path, "expected a list of [x, y, visible] entries")
    if len(data) != spec.num_keypoints:
        raise LabelError(path, f"{len(data)} keypoints, but the spec names {spec.num_keypoints}")
    out = np.zeros((len(data), 3), np.float64)
    for k, entry in enumerate(data):
        name = spec.keypoints[k]
        if not isinstance(entry, (list, tuple)) or len(entry) not in (2, 3):
            raise LabelError(path, f"keypoint {k} ({name}): expected [x, y, visible], got {entry!r}")
        vis = entry[2] if len(entry) == 3 else 1
        try:
            vis = float(vis)
            x = float(entry[0]) if entry[0] is not None else 0.0
            y = float(entry[1]) if entry[1] is not None else 0.0
        except (TypeError, ValueError):
            raise LabelError(path, f"keypoint {k} ({name}): expected numbers, got {entry!r}") from None
        if vis > 0 and (entry[0] is None or entry[1] is None or not np.isfinite([x, y]).all()):
            raise LabelError(path, f"keypoint {k} ({name}): visible but has no finite position")
        if vis > 0 and size is not None:
            h, w = size
            if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
                raise LabelError(path, f"keypoint {k} ({name}) at ({x:g}, {y:g}) lies outside the "
                                       f"{w}x{h} (WxH) image")
        out[k] = (x, y, vis)
    return out


# ----------------------------------------------------------------------------- pairing

def _files_by_stem(folder: Path, suffixes: Sequence[str], what: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() not in suffixes:
            continue
        if p.stem in found:
            raise UserError(f"{folder}: two {what} files share the stem {p.stem!r}: {found[p.stem].name}, {p.name}")
        found[p.stem] = p
    return found


def _name_list(names: Iterable[str], limit: int = 5) -> str:
    names = sorted(names)
    head = ", ".join(names[:limit])
    return head + (f" and {len(names) - limit} more" if len(names) > limit else "")


def match_labels(stems: Iterable[str], label_dir: str | Path,
                 suffixes: Sequence[str] = LABEL_SUFFIXES) -> dict[str, Path]:
    """Pair sample stems with ``label_dir/<stem>.<suffix>``.

    A sample without a label is fine (it is simply not used); a label without
    a sample, or a folder without any label, is an error naming the file or
    folder. Returns ``{stem: label_path}`` in sorted stem order.
    """
    label_dir = Path(label_dir)
    if not label_dir.is_dir():
        raise UserError(f"{label_dir}: label folder not found")
    labels = _files_by_stem(label_dir, suffixes, "label")
    if not labels:
        raise UserError(f"{label_dir}: no label files ({'/'.join(suffixes)}) in this folder")
    stems = set(stems)
    orphans = [p for s, p in labels.items() if s not in stems]
    if orphans:
        raise LabelError(orphans[0], f"label without a sample (no sample has the stem {orphans[0].stem!r}); "
                                     f"{len(orphans)} such file(s): {_name_list(p.name for p in orphans)}")
    return dict(sorted(labels.items()))


def match_images_labels(image_dir: str | Path, label_dir: str | Path,
                        suffixes: Sequence[str] = MASK_SUFFIXES) -> list[tuple[str, Path, Path]]:
    """Exactly pair ``image_dir/<stem>.<image ext>`` with ``label_dir/<stem>.<suffix>``.

    Returns ``[(stem, image_path, label_path)]`` sorted by stem. Any image
    without a label or label without an image is an error listing them.
    """
    image_dir, label_dir = Path(image_dir), Path(label_dir)
    for folder, what in ((image_dir, "image"), (label_dir, "label")):
        if not folder.is_dir():
            raise UserError(f"{folder}: {what} folder not found")
    images = _files_by_stem(image_dir, IMAGE_SUFFIXES, "image")
    labels = _files_by_stem(label_dir, suffixes, "label")
    if not images:
        raise UserError(f"{image_dir}: no images ({'/'.join(IMAGE_SUFFIXES)}) in this folder")
    if not labels:
        raise UserError(f"{label_dir}: no label files ({'/'.join(suffixes)}) in this folder")
    no_label = sorted(set(images) - set(labels))
    no_image = sorted(set(labels) - set(images))
    if no_label or no_image:
        parts = []
        if no_label:
            parts.append(f"{len(no_label)} image(s) in {image_dir} without a label: "
                         f"{_name_list(images[s].name for s in no_label)}")
        if no_image:
            parts.append(f"{len(no_image)} label(s) in {label_dir} without an image: "
                         f"{_name_list(labels[s].name for s in no_image)}")
        raise UserError("; ".join(parts))
    return [(s, images[s], labels[s]) for s in sorted(images)]

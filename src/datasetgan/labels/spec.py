"""The label spec: what the classes and keypoints of a label set mean.

A spec file (YAML or JSON) holds ``classes`` (names, index = class id),
``palette`` (optional ``[r, g, b]`` per class), ``keypoints`` (optional
names), ``keypoint_flip`` (optional ``[left, right]`` name pairs that swap
under a horizontal flip), and for masks with unlabelled ("void") pixels
``ignore_index`` (the id such pixels carry in id masks, e.g. 255 as in
PASCAL VOC) and/or ``ignore_colour`` (their ``[r, g, b]`` in colour-coded
masks). Ignored pixels are read as ``IGNORE`` (255) and take no part in
training or scoring. A CVAT/Datumaro ``labelmap.txt`` is read as a spec too
(see ``cvat.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from datasetgan.core.config import read_mapping
from datasetgan.core.errors import LabelError
from datasetgan.core.fileio import write_json
from datasetgan.core.images import default_palette
from datasetgan.labels.cvat import read_cvat_labelmap

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


def load_label_spec(path: str | Path) -> LabelSpec:
    """Read a spec file (``.yaml``/``.yml``/``.json``, or a CVAT/Datumaro
    ``labelmap.txt``); errors name the file and key (or line)."""
    if Path(path).suffix == ".txt":
        return LabelSpec.from_dict(read_cvat_labelmap(path), where=str(path))
    return LabelSpec.from_dict(read_mapping(path), where=str(path))


def save_label_spec(path: str | Path, spec: LabelSpec) -> None:
    """Write ``spec`` as JSON (atomically)."""
    write_json(path, spec.to_dict())

"""Pairing files by stem: samples with their labels, images with their labels."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from datasetgan.core.errors import LabelError, UserError

LABEL_SUFFIXES = (".png", ".npy", ".json")
MASK_SUFFIXES = (".png", ".npy")
KEYPOINT_SUFFIXES = (".json",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


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

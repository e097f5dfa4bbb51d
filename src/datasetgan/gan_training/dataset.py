"""Training images: a folder (searched recursively) or a zip, decoded once into memory.

Every file PIL can read is centre-cropped to a square, resized to R x R
(Lanczos) and converted to RGB (grayscale is replicated; transparency is
composited over white). Files that are not readable images are skipped and
counted. The decoded set is one ``uint8`` tensor ``[N, 3, R, R]`` (64x64:
12 KB per image), so a batch is a single index operation, on the GPU when it
fits: no loader workers, and the data order is a pure function of
``(seed, epoch)``, which makes resuming exact.
"""

from __future__ import annotations

import io
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from datasetgan.core.errors import UserError
from datasetgan.core.progress import progress


@dataclass
class ImageDataset:
    """``images [N, 3, R, R]`` uint8 plus where they came from and what was skipped."""

    images: torch.Tensor
    source: str
    skipped: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])


def centre_square(width: int, height: int) -> tuple[int, int, int]:
    """``(left, top, side)`` of the centred square crop ``prepare_image`` takes of a ``width x height`` image."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side


def prepare_image(image: Image.Image, resolution: int) -> np.ndarray:
    """PIL image -> ``[3, R, R]`` uint8: RGB, centre-cropped square (``centre_square``), Lanczos-resized."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert("RGB")
    left, top, s = centre_square(*image.size)
    image = image.crop((left, top, left + s, top + s))
    if s != resolution:
        image = image.resize((resolution, resolution), Image.LANCZOS)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()


def _decode(read: Callable[[], bytes], resolution: int) -> np.ndarray | None:
    try:
        with Image.open(io.BytesIO(read())) as image:
            image.load()
            return prepare_image(image, resolution)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _list_sources(path: Path) -> tuple[list[str], Callable[[str], bytes], Callable[[], None]]:
    """Names of candidate files and a reader for one name (folder or zip)."""
    if path.is_dir():
        names = sorted(str(p.relative_to(path)) for p in path.rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
        return names, lambda name: (path / name).read_bytes(), lambda: None
    if path.is_file() and zipfile.is_zipfile(path):
        zf = zipfile.ZipFile(path)
        names = sorted(i.filename for i in zf.infolist()
                       if not i.is_dir() and not any(part.startswith(".") or part == "__MACOSX"
                                                     for part in Path(i.filename).parts))
        return names, zf.read, zf.close
    if path.is_file():
        what = "not a readable .zip archive" if path.suffix.lower() == ".zip" else "not a folder or a .zip file"
        raise UserError(f"--data {path}: {what}")
    raise UserError(f"--data {path}: not found")


def load_dataset(path: str | Path, resolution: int, workers: int = 4, quiet: bool = False) -> ImageDataset:
    """Decode every readable image under ``path`` at ``resolution``.

    Raises ``UserError`` for a missing path, an empty folder, or a folder in
    which no file is a readable image.
    """
    path = Path(path)
    names, read, close = _list_sources(path)
    if not names:
        raise UserError(f"--data {path}: contains no files (expected images in any format PIL reads)")
    arrays: list[np.ndarray | None] = [None] * len(names)
    # zipfile readers are not thread-safe: decode zips in one thread.
    n_threads = max(1, min(workers, os.cpu_count() or 1)) if path.is_dir() else 1
    try:
        with ThreadPoolExecutor(n_threads) as pool:
            jobs = pool.map(lambda n: _decode(lambda: read(n), resolution), names)
            for i, arr in enumerate(progress(jobs, desc=f"loading {path.name}", total=len(names),
                                             unit="img", disable=quiet)):
                arrays[i] = arr
    finally:
        close()
    skipped = [n for n, a in zip(names, arrays) if a is None]
    kept = [(n, a) for n, a in zip(names, arrays) if a is not None]
    if not kept:
        raise UserError(f"--data {path}: none of its {len(names)} file(s) is a readable image "
                        f"(e.g. {names[0]!r})")
    images = torch.from_numpy(np.stack([a for _, a in kept]))
    return ImageDataset(images=images, source=str(path), skipped=skipped, names=[n for n, _ in kept])


class DataOrder:
    """Which images form global step ``s``: shuffled epochs, a pure function of ``(seed, epoch)``.

    With ``flip``, the epoch runs over ``2 N`` indices; index ``i >= N`` is image ``i - N`` x-flipped.
    The position (``epoch``, ``offset``) is saved in checkpoints.
    """

    def __init__(self, num_images: int, seed: int, flip: bool = False, epoch: int = 0, offset: int = 0):
        self.num_images, self.seed, self.flip = num_images, seed, flip
        self.size = num_images * (2 if flip else 1)
        self.epoch, self.offset = epoch, offset
        self._perm = self._permutation(epoch)

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % (2 ** 63))
        return torch.randperm(self.size, generator=g)

    def next(self, batch: int) -> torch.Tensor:
        """The next ``batch`` indices ``[batch]`` (int64, into the virtual 2N set with flipped copies)."""
        out = []
        need = batch
        while need:
            take = min(need, self.size - self.offset)
            out.append(self._perm[self.offset:self.offset + take])
            self.offset += take
            need -= take
            if self.offset == self.size:
                self.epoch, self.offset = self.epoch + 1, 0
                self._perm = self._permutation(self.epoch)
        return torch.cat(out)

    def state(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}


class BatchSource:
    """Turns indices into float images ``[B, 3, R, R]`` in [-1, 1] on ``device``."""

    def __init__(self, dataset: ImageDataset, device: torch.device, max_device_bytes: int = 4 << 30):
        images = dataset.images
        self.n = len(dataset)
        self.device = device
        # Keep the uint8 set on the GPU when it fits comfortably: a batch is then one gather.
        if device.type == "cuda" and images.numel() <= max_device_bytes:
            images = images.to(device)
        elif device.type == "cuda":
            images = images.pin_memory()
        self.images = images

    def __call__(self, indices: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        """``indices [B]`` (CPU int64, into the virtual set with flipped copies) -> ``[B, 3, R, R]`` float."""
        flip = indices >= self.n
        idx = indices % self.n
        any_flip = bool(flip.any())                          # CPU tensor: no device sync
        if self.images.device.type == "cuda":
            # A pageable host->device copy would wait for the GPU queue; pinned + async does not.
            idx = idx.pin_memory().to(self.images.device, non_blocking=True)
            flip = flip.pin_memory().to(self.images.device, non_blocking=True)
        x = self.images[idx]
        if x.device.type != self.device.type:      # pinned host set -> GPU ("cuda" vs "cuda:0" is no move)
            x = x.pin_memory().to(self.device, non_blocking=True)
        if any_flip:
            x = torch.where(flip.to(self.device)[:, None, None, None], x.flip(-1), x)
        x = x.float().mul_(1 / 127.5).sub_(1)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def iterate_chunks(x: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    yield from x.split(size)

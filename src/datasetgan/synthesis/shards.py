"""WebDataset output (``synthesize --format webdataset``): the kept samples as tar shards.

``OUT/shards/synth-000000.tar``, ``synth-000001.tar``, ... hold ``--shard-size``
samples each, in seed order. A sample is three members sharing a key (the seed,
zero-padded): ``<key>.png`` (the image), ``<key>.label.png`` (the indexed mask;
segmentation only) and ``<key>.json`` (seed, uncertainty, and the class pixel
counts or the keypoints). Image and mask bytes are those of the PNG layout's
``images/`` and ``labels/`` files.

Each shard is written under a temporary name and renamed, so a shard that
exists is complete; an interrupted finishing step writes only the shards that
are missing. The tar headers carry no times or owners, so a shard's bytes
depend on its samples alone. Written with the standard library: only readers
need the ``webdataset`` package.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Sequence

from datasetgan.core.fileio import atomic_path

SHARD_DIR = "shards"
SHARD_PATTERN = "synth-%06d.tar"


def shard_path(index: int) -> str:
    """The path of shard ``index`` relative to the data set folder."""
    return f"{SHARD_DIR}/{SHARD_PATTERN % index}"


def sample_key(seed: int) -> str:
    return f"{seed:06d}"


def sample_json(entry: dict) -> bytes:
    """``<key>.json``: the manifest entry without its file locations."""
    record = {k: v for k, v in entry.items() if k not in ("image", "label", "shard", "key")}
    return (json.dumps(record) + "\n").encode("utf-8")


def write_shard(path: Path, members: Sequence[tuple[str, Path | bytes]]) -> None:
    """A tar of ``members`` (name, and the bytes or the file that holds them), in that
    order, written atomically; files are copied in a stream, not read whole."""
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.mode, info.mtime = 0o644, 0
                if isinstance(data, Path):
                    info.size = data.stat().st_size
                    with open(data, "rb") as f:
                        tar.addfile(info, f)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def shard_count(kept: int, shard_size: int) -> int:
    return -(-kept // shard_size)

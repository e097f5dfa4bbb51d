"""Pack UTKFace crop_part1 as 64x64 JPEGs (quality 95) in one zip for the device call of scripts/gpu_checks.sh.

The 70 MB folder is over the 64 MiB a device call carries; the resized zip is about 30 MB.
Writes ``gpu_data/utkface64.zip`` (ignored through .git/info/exclude; never commit it).

Usage: .venv/bin/python scripts/prepare_gpu_data.py [SRC] [--size 64]
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

from PIL import Image

from datasetgan.core.fileio import atomic_path
from datasetgan.core.progress import progress


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", nargs="?", default="../shared/data/utkface/crop_part1")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--out", default="gpu_data/utkface64.zip")
    args = ap.parse_args()
    src, out = Path(args.src), Path(args.out)
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"{src}: no images found")
    out.parent.mkdir(parents=True, exist_ok=True)
    exclude = Path(".git/info/exclude")
    exclude.parent.mkdir(parents=True, exist_ok=True)
    if out.parts[0] not in (exclude.read_text().split() if exclude.exists() else []):
        with exclude.open("a") as f:
            f.write(f"\n{out.parts[0]}\n")
    skipped = 0
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for p in progress(files, desc="pack", unit="img"):
            try:
                im = Image.open(p).convert("RGB")
            except OSError:
                skipped += 1
                continue
            s = min(im.size)
            left, top = (im.width - s) // 2, (im.height - s) // 2
            buf = io.BytesIO()
            im.crop((left, top, left + s, top + s)).resize((args.size, args.size), Image.LANCZOS).save(buf, "JPEG", quality=95)
            z.writestr(p.stem + ".jpg", buf.getvalue())
    print(f"{out}: {len(files) - skipped} images ({skipped} unreadable skipped), {out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

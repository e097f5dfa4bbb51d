"""CVAT's and Datumaro's ``labelmap.txt``: the class list their "Segmentation mask" exports write.

The file lies beside the colour-coded masks, one class per line as
``name:r,g,b:parts:actions`` (``#`` starts a comment). ``load_label_spec``
reads it as a spec with ``classes`` and ``palette`` in the file's order.
"""

from __future__ import annotations

from pathlib import Path

from datasetgan.core.errors import LabelError, UserError


def read_cvat_labelmap(path: str | Path) -> dict:
    """The ``labelmap.txt`` at ``path`` as spec keys ``{"classes": [...], "palette": [[r, g, b], ...]}``,
    in the file's order; a malformed line is a ``LabelError`` naming the file and line."""
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

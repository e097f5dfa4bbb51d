"""Tiny HTML reports: a title, tables and images, self-contained next to the JSON."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

from datasetgan.core.fileio import write_text

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
img{image-rendering:pixelated;max-width:100%;border:1px solid #ddd}
figure{display:inline-block;margin:0.5em}figcaption{font-size:0.85em;color:#555}
"""


class HtmlReport:
    """Collects sections and writes one HTML file; image paths are relative to it."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """One table. A float shows 4 decimals; a figure that is also printed in the terminal is
        passed as a string, formatted by the same function as there, so both show the same digits."""
        def cell(v: object, tag: str) -> str:
            text = f"{v:.4f}" if isinstance(v, float) else str(v)
            return f"<{tag}>{html.escape(text)}</{tag}>"
        head = "".join(cell(h, "th") for h in header)
        body = "".join("<tr>" + "".join(cell(v, "td") for v in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def image(self, src: str, caption: str = "", width: int | None = None) -> None:
        w = f' width="{width}"' if width else ""
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f'<figure><img src="{html.escape(src)}"{w}>{cap}</figure>')

    def write(self, path: str | Path) -> None:
        doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
               f"<style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>"
               + "\n".join(self.parts) + "</body></html>\n")
        write_text(path, doc)

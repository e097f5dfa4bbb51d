"""The demo's ``report.html`` shows its figures as the terminal table prints them."""

from __future__ import annotations

import io
import re

from datasetgan.demo.domain import CLASSES
from datasetgan.demo.report import print_table, write_report


def _results() -> dict:
    per = {c: 40.87 + i for i, c in enumerate(CLASSES)}
    return {"datasetgan_miou": 51.34, "baseline_miou": 41.76, "gain_miou": 9.58,
            "finetuned_miou": 52.91, "finetuned_gain_miou": 11.15,
            "datasetgan_per_class_iou": per, "baseline_per_class_iou": {c: 40.87 for c in CLASSES},
            "finetuned_per_class_iou": {c: 3.05 for c in CLASSES},
            "labelled_images": 16, "synthetic_images": 2000, "test_images": 300,
            "seconds": {"sample": 1.4, "total": 565.6},
            # DemoConfig as saved, flat and composed, so that the test does not depend on its shape.
            "config": {"arch": "mobilenet_v3", "truncation": 0.7, "segmenter": {"arch": "mobilenet_v3"},
                       "labelled": {"truncation": 0.7}}}


def test_html_shows_the_terminal_tables_numbers(tmp_path):
    results = _results()
    terminal = io.StringIO()
    print_table(results, file=terminal)
    write_report(tmp_path, results)
    html = (tmp_path / "report.html").read_text()
    cells = set(re.findall(r"<td>([^<]*)</td>", html))
    printed = set(re.findall(r"[+-]?\d+\.\d", terminal.getvalue()))
    for shown in ("51.3", "41.8", "+9.6", "52.9", "+11.2", "40.9", "3.0"):
        assert shown in printed and shown in cells, shown
    # Every mIoU and IoU the terminal prints is a cell of the HTML tables, and no cell has more digits.
    assert printed <= cells
    assert not [c for c in cells if re.fullmatch(r"[+-]?\d+\.\d{2,}", c)]
    assert "566" in cells and "pipeline time: 566 s" in terminal.getvalue()

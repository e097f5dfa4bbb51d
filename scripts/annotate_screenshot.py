"""docs/annotate.png: the annotator's page on the demo domain, with a suggestion hatched.

Samples of the bundled demo generator, 4 of them labelled by the bundled demo annotator, then
a seventh opened in Debian's chromium (``apt-get install chromium``) and 'suggest' pressed.

    .venv/bin/python scripts/annotate_screenshot.py [--out docs/annotate.png]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the tests' live server, from the checkout

import numpy as np
from PIL import Image

from datasetgan.annotate.config import AnnotateConfig
from datasetgan.demo.annotator import Annotator, annotate_folder
from datasetgan.demo.domain import label_spec
from datasetgan.demo.pipeline import bundled
from datasetgan.generator import load_generator
from datasetgan.generator.config import SampleConfig
from datasetgan.generator.samples import sample_to_folder
from datasetgan.labels import LabelSpec
from tests.annotate.conftest import LiveServer, make_app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/annotate.png"))
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        G = load_generator(bundled("demo_generator"))
        samples = sample_to_folder(G, SampleConfig(seeds="0-23"), tmp / "samples", bundled("demo_generator"),
                                   quiet=True)
        stems = [f"{s:06d}" for s in range(24)]
        annotate_folder(Annotator.load(bundled("demo_annotator")), samples / "images", stems[:4], tmp / "truth")
        spec = LabelSpec.from_dict(label_spec())
        app, store, assistant = make_app(samples, tmp / "labels", spec, AnnotateConfig())
        for stem in stems[:4]:
            buf = io.BytesIO()
            Image.fromarray(np.asarray(Image.open(tmp / "truth" / f"{stem}.png")), mode="L").save(buf, format="PNG")
            store.save(stem, buf.getvalue())
        assistant.start()
        server = LiveServer(app)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
                page = browser.new_page(viewport={"width": 1100, "height": 620})
                page.goto(f"{server.url}#{stems[6]}")
                page.wait_for_selector("body[data-ready='1']", state="attached")
                page.click("#suggest")
                page.wait_for_selector("#saved[data-state='saved']", timeout=600_000)
                page.keyboard.press("6")                 # eye: the class a correction would paint
                box = page.evaluate("annotator.toScreen(44, 33)")
                page.mouse.move(box["x"], box["y"])
                png = page.screenshot()
                browser.close()
        finally:
            server.close()
            assistant.stop()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()

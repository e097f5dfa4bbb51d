"""Fixtures of the annotator's tests: a tiny samples folder, specs, the app, and a browser.

Browser tests (``@pytest.mark.browser``) drive Debian's chromium (``apt-get install
chromium``) with Playwright. Where either is missing they are skipped and the session says
so in one line; with DATASETGAN_REQUIRE_BROWSER=1 (``.ci/run``) the session fails instead,
so that CI always runs them.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from datasetgan.annotate.config import AnnotateConfig
from datasetgan.generator.config import SampleConfig
from datasetgan.interpreter.config import InterpreterConfig
from datasetgan.labels import LabelSpec
from tests.conftest import make_tiny_generator

CHROMIUM = os.environ.get("DATASETGAN_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER_ENV = "DATASETGAN_REQUIRE_BROWSER"
NO_BROWSER = "skipped (no browser)"
_NO_BROWSER_KEY = pytest.StashKey[dict]()

SEG_SPEC = LabelSpec(classes=("background", "skin", "hair"), palette=((0, 0, 0), (230, 180, 140), (120, 60, 20)))
KP_SPEC = LabelSpec(classes=(), keypoints=("eye_l", "eye_r", "nose"))
# Quick to train: the assistant's settings, smaller.
TINY_ASSIST = replace(AnnotateConfig(), regions=6, interpreter=InterpreterConfig(
    members=2, pixels_per_image=300, max_epochs=2, min_epochs=2, batch_size=128, max_steps=40, seed=0))


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        return f"no {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "no playwright (pip install playwright)"
    return None


@pytest.hookimpl(trylast=True)   # after -m has deselected: count only the tests that would run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if item.get_closest_marker("browser") is not None]
    why = browser_missing() if marked else None
    if not why:
        return
    if os.environ.get(REQUIRE_BROWSER_ENV, "") not in ("", "0"):
        raise pytest.UsageError(f"{REQUIRE_BROWSER_ENV} is set, but {len(marked)} selected tests need a browser: "
                                f"{why}")
    config.stash[_NO_BROWSER_KEY] = {
        "nodeids": {item.nodeid for item in marked},
        "line": (f"{len(marked)} {'test needs' if len(marked) == 1 else 'tests need'} a browser and did not run: "
                 f"{why}; install it with `apt-get install -y chromium` (.ci/run does)"),
    }
    for item in marked:
        item.add_marker(pytest.mark.skip(reason=f"needs a browser: {why}"))


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    no_browser = config.stash.get(_NO_BROWSER_KEY, None)
    if no_browser and report.skipped and report.nodeid in no_browser["nodeids"]:
        return NO_BROWSER, "s", "SKIPPED (no browser)"
    return None


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    no_browser = config.stash.get(_NO_BROWSER_KEY, None)
    if no_browser:
        terminalreporter.write_line(no_browser["line"], yellow=True)


# --- the data ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def samples_dir(tmp_path_factory) -> Path:
    """A samples folder of 6 seeds of the tiny 32x32 generator (saved beside it)."""
    from datasetgan.generator.samples import sample_to_folder

    root = tmp_path_factory.mktemp("annotate")
    G = make_tiny_generator()
    G.save_pretrained(root / "generator")
    return sample_to_folder(G, SampleConfig(seeds="0-5"), root / "samples", root / "generator", quiet=True)


def make_app(samples: Path, labels: Path, spec: LabelSpec, config: AnnotateConfig = TINY_ASSIST,
             allowed_hosts=None):
    from datasetgan.annotate.assist import Assistant
    from datasetgan.annotate.server import create_app
    from datasetgan.annotate.store import LabelStore, resolve_task

    store = LabelStore(samples, labels, spec, resolve_task(spec, config.task))
    assistant = Assistant(store, config)
    return create_app(store, assistant, config, allowed_hosts=allowed_hosts, suggest_timeout=120), store, assistant


@pytest.fixture
def seg_app(samples_dir, tmp_path):
    """``(TestClient, store, assistant)`` for masks, the assistant running."""
    from starlette.testclient import TestClient

    app, store, assistant = make_app(samples_dir, tmp_path / "labels", SEG_SPEC)
    assistant.start()
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        yield client, store, assistant
    assistant.stop()


@pytest.fixture
def kp_app(samples_dir, tmp_path):
    from starlette.testclient import TestClient

    app, store, assistant = make_app(samples_dir, tmp_path / "labels", KP_SPEC)
    assistant.start()
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        yield client, store, assistant
    assistant.stop()


# --- a real server and a browser ------------------------------------------------------------------


class LiveServer:
    """The app served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        self.server.install_signal_handlers = lambda: None   # not the main thread
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which(CHROMIUM) or CHROMIUM, headless=True)
        yield b
        b.close()

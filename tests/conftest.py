"""Shared fixtures: tiny seeded models on the CPU, and the research data folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(autouse=True)
def _few_threads():
    # CI has 2 cores; keep every test deterministic and light.
    torch.set_num_threads(1)
    yield


# --- The research data (FASSEG, Helen, UTKFace) ------------------------------
#
# These data sets may not be redistributed, so a fresh clone lacks them. A test
# that reads them is marked ``@pytest.mark.shared_data("helen", ...)`` (the
# sub-folders it reads; using the ``shared_data`` fixture implies the mark).
# Where the data is missing such tests are skipped, and the session says so
# in one line; with DATASETGAN_REQUIRE_DATA=1 (``.ci/run``) the session fails
# instead, so that CI always runs them.

DATA_ENV = "DATASETGAN_DATA"
REQUIRE_DATA_ENV = "DATASETGAN_REQUIRE_DATA"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"   # ../shared/data beside the checkout
DATA_SET_NAMES = {"fasseg": "FASSEG", "helen": "Helen", "utkface": "UTKFace"}
NO_DATA = "skipped (no data)"     # these tests' outcome in the summary line
_NO_DATA_KEY = pytest.StashKey[dict]()


def research_data() -> Path:
    """The research data folder: ``$DATASETGAN_DATA``, else ``../shared/data`` beside the checkout."""
    value = os.environ.get(DATA_ENV, "")
    return Path(value).expanduser().absolute() if value else DEFAULT_DATA


def _where() -> str:
    """How the data folder was chosen, for messages."""
    return f"{DATA_ENV}={os.environ[DATA_ENV]}" if os.environ.get(DATA_ENV) else f"{DATA_ENV} unset: ../shared/data"


def _needed(item: pytest.Item) -> list[str]:
    """The sub-folders of the research data that a marked test reads ([] if it names none)."""
    return [str(arg) for mark in item.iter_markers("shared_data") for arg in mark.args]


def pytest_itemcollected(item: pytest.Item) -> None:
    # Before -m selection runs, so that `-m shared_data` finds the fixture's users too.
    if "shared_data" in getattr(item, "fixturenames", ()) and item.get_closest_marker("shared_data") is None:
        item.add_marker(pytest.mark.shared_data)


@pytest.hookimpl(trylast=True)   # after -m has deselected: count only the tests that would run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = research_data()
    without: list[pytest.Item] = []
    missing: set[Path] = set()
    for item in items:
        if item.get_closest_marker("shared_data") is None:
            continue
        gaps = [root] if not root.is_dir() else [root / sub for sub in _needed(item) if not (root / sub).is_dir()]
        if gaps:
            without.append(item)
            missing.update(gaps)
    if not without:
        return
    folders = ", ".join(str(p) for p in sorted(missing))
    if os.environ.get(REQUIRE_DATA_ENV, "") not in ("", "0"):
        raise pytest.UsageError(
            f"{REQUIRE_DATA_ENV} is set, but {len(without)} selected tests need research data that is missing "
            f"({_where()}): no folder {folders}. Point {DATA_ENV} at the folder that holds fasseg/ and helen/.")
    names = sorted({DATA_SET_NAMES.get(sub.split("/")[0], sub) for item in without for sub in _needed(item)})
    what = f"the research data ({', '.join(names)})" if names else "the research data"
    config.stash[_NO_DATA_KEY] = {
        "nodeids": {item.nodeid for item in without},
        "line": (f"{len(without)} {'test needs' if len(without) == 1 else 'tests need'} {what} and did not run: "
                 f"no folder {folders} ({_where()}); "
                 f"set {DATA_ENV}=DIR, e.g. {DATA_ENV}=../shared/data make test"),
    }
    for item in without:
        item.add_marker(pytest.mark.skip(reason=f"needs {what}: no folder {folders}"))


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    # Their own outcome: the summary then gives one line for them all, not one per file.
    no_data = config.stash.get(_NO_DATA_KEY, None)
    if no_data and report.skipped and report.nodeid in no_data["nodeids"]:
        return NO_DATA, "s", "SKIPPED (no data)"
    return None


@pytest.hookimpl(wrapper=True, tryfirst=True)   # around pytest's own: the line comes last, above the counts
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config):
    result = yield
    no_data = config.stash.get(_NO_DATA_KEY, None)
    if no_data:
        terminalreporter.write_line(no_data["line"], yellow=True)
    return result


@pytest.fixture
def shared_data() -> Path:
    """The research data folder (tests using it are skipped where it is missing)."""
    return research_data()


# --- Generator fixtures (generator stage) -----------------------------------

TINY_GENERATOR_KWARGS = dict(z_dim=32, w_dim=32, img_resolution=32, img_channels=3, mapping_layers=2,
                             channel_base=512, channel_max=32)


def make_tiny_generator(seed: int = 0, **overrides):
    """A seeded 32x32 StyleGAN2 (channels 32/32/32/16) in eval mode on the CPU.

    Unlike a freshly initialised network it has non-zero noise strengths and a
    real ``w_avg`` (the mean w of 256 seeded z), so noise modes and truncation
    have visible effects.
    """
    from datasetgan.generator import Generator, GeneratorConfig

    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(**{**TINY_GENERATOR_KWARGS, **overrides}))
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.1)
        z = torch.randn([256, G.z_dim], generator=torch.Generator().manual_seed(seed))
        G.mapping.w_avg.copy_(G.mapping(z, update_w_avg=False)[:, 0].mean(dim=0))
    return G.eval()


@pytest.fixture
def tiny_generator():
    """Seeded 32x32 generator (z_dim = w_dim = 32, 8 ws, 7 feature maps, 192 channels)."""
    return make_tiny_generator()


@pytest.fixture
def tiny_generator_dir(tmp_path, tiny_generator) -> Path:
    """``tiny_generator`` saved in the own format (``config.json`` + ``model.safetensors``)."""
    directory = tmp_path / "tiny_generator"
    tiny_generator.save_pretrained(directory)
    return directory


# --- A tiny labelled image set (segmenter and evaluation stages) -------------

TINY_SET_SPEC = ("classes: [bg, fg]\npalette: [[0, 0, 0], [255, 255, 255]]\n"
                 "keypoints: [left, right, nose]\nkeypoint_flip: [[left, right]]\n")


def make_tiny_set(root: Path, n: int = 4, h: int = 40, w: int = 36) -> Path:
    """``n`` random images whose mask is (red > 128), fixed keypoints, and ``spec.yaml``."""
    rng = np.random.default_rng(0)
    for sub in ("images", "labels", "keypoints"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.integers(0, 255, (h, w, 3), np.uint8)
        Image.fromarray(img).save(root / "images" / f"{i:06d}.png")
        Image.fromarray((img[..., 0] > 128).astype(np.uint8)).save(root / "labels" / f"{i:06d}.png")
        (root / "keypoints" / f"{i:06d}.json").write_text(json.dumps([[5, 6, 1], [30, 8, 1], [18, 30, 0]]))
    (root / "spec.yaml").write_text(TINY_SET_SPEC)
    return root


@pytest.fixture
def tiny_set(tmp_path) -> Path:
    return make_tiny_set(tmp_path / "tiny")

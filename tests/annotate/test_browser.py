"""The page in a real browser (Debian's chromium through Playwright), against a real server.

Every step works through the mouse and the keyboard as a person would, and the checks read
the files on disk. The page's Content-Security-Policy stays on (so waits use selectors: it
forbids the evaluated strings of ``wait_for_function``). Pointer positions are whole CSS pixels and the expectations are computed
from them and the page's view (zoom, offset), so they hold whatever the window's size.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import replace

import numpy as np
import pytest

from datasetgan.labels import read_keypoints, read_label_map
from datasetgan.labels.labelme import _fill_polygon
from tests.annotate.conftest import KP_SPEC, SEG_SPEC, TINY_ASSIST, LiveServer, make_app

SIZE = 32
# The page itself: no assistant thread (region fill does not need it).
NO_ASSIST = replace(TINY_ASSIST, assist=False)


@pytest.fixture
def seg_server(samples_dir, tmp_path):
    app, store, _ = make_app(samples_dir, tmp_path / "labels", SEG_SPEC, NO_ASSIST)
    server = LiveServer(app)
    yield server, store
    server.close()


@pytest.fixture
def kp_server(samples_dir, tmp_path):
    app, store, _ = make_app(samples_dir, tmp_path / "kp_labels", KP_SPEC, NO_ASSIST)
    server = LiveServer(app)
    yield server, store
    server.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


class View:
    """Label coordinates <-> whole viewport pixels, from the page's own view."""

    def __init__(self, page):
        self.page = page
        v = page.evaluate("""() => { const r = document.getElementById('view').getBoundingClientRect();
                                     return {zoom: annotator.zoom, ox: annotator.ox, oy: annotator.oy,
                                             left: r.left, top: r.top}; }""")
        self.zoom, self.ox, self.oy, self.left, self.top = v["zoom"], v["ox"], v["oy"], v["left"], v["top"]
        assert self.zoom >= 4, v

    def screen(self, u: float, v: float) -> tuple[int, int]:
        """The whole viewport pixel nearest label point (u, v)."""
        return (round(self.left + self.ox + u * self.zoom), round(self.top + self.oy + v * self.zoom))

    def label(self, x: int, y: int) -> tuple[float, float]:
        """The label point the page sees at viewport pixel (x, y)."""
        return ((x - self.left - self.ox) / self.zoom, (y - self.top - self.oy) / self.zoom)

    def pixel(self, x: int, y: int) -> tuple[int, int]:
        u, v = self.label(x, y)
        return int(np.floor(u)), int(np.floor(v))

    def click(self, u: float, v: float, **kwargs) -> None:
        self.page.mouse.click(*self.screen(u, v), **kwargs)

    def stroke(self, points: list[tuple[float, float]]) -> list[tuple[int, int]]:
        """Drag through label points; returns the viewport pixels the pointer visited."""
        xy = [self.screen(u, v) for u, v in points]
        self.page.mouse.move(*xy[0])
        self.page.mouse.down()
        for x, y in xy[1:]:
            self.page.mouse.move(x, y, steps=6)
        self.page.mouse.up()
        return xy


def open_page(page, server, stem: str) -> View:
    page.goto(f"{server.url}#{stem}")
    page.wait_for_selector("body[data-ready='1']", state="attached")
    return View(page)


def flush(page) -> None:
    page.evaluate("annotator.flush()")
    page.wait_for_selector("#saved[data-state='saved']")


@pytest.mark.browser
def test_brush_fills_polygon_undo_and_reload(page, seg_server):
    server, store = seg_server
    stem = "000001"
    view = open_page(page, server, stem)
    expected = np.zeros((SIZE, SIZE), np.uint8)

    # A 1-pixel brush stroke of class 1 down column 16 splits the image in two.
    page.keyboard.press("2")                 # class 1 (skin)
    page.keyboard.press("b")
    page.keyboard.press("BracketLeft")
    page.keyboard.press("BracketLeft")       # brush 3 -> 1
    assert page.evaluate("annotator.brush") == 1
    visited = view.stroke([(16.5, 0.5), (16.5, 31.5)])
    column = {view.pixel(x, y)[0] for x, y in visited}
    assert column == {16}
    expected[:, 16] = 1

    # Flood fill the left half with class 2 (hair).
    page.keyboard.press("3")
    page.keyboard.press("f")
    view.click(5.5, 5.5)
    expected[:, :16] = 2

    # Region fill at a pixel of the right half with class 1: its part's connected pixels.
    page.keyboard.press("2")
    page.keyboard.press("r")
    parts = np.frombuffer(http_get(server, f"/api/regions/{stem}?format=raw")[1], np.uint8).reshape(SIZE, SIZE)
    x, y = view.screen(25.5, 25.5)
    i, j = view.pixel(x, y)
    page.mouse.click(x, y)
    expected[component(parts, j, i)] = 1

    # A triangle with the polygon tool, class 0, closed with Enter.
    page.keyboard.press("1")
    page.keyboard.press("p")
    corners = [view.screen(u, v) for u, v in ((2.2, 20.3), (12.7, 21.1), (6.4, 30.6))]
    for x, y in corners:
        page.mouse.click(x, y)
    page.keyboard.press("Enter")
    expected[_fill_polygon(np.array([view.label(x, y) for x, y in corners]), (SIZE, SIZE))] = 0

    # A 3-pixel stroke, undone; redone and undone again.
    page.keyboard.press("b")
    page.keyboard.press("BracketRight")
    page.keyboard.press("BracketRight")
    before = page.evaluate("Array.from(annotator.ids)")
    view.stroke([(3.5, 3.5), (28.5, 3.5)])
    assert page.evaluate("Array.from(annotator.ids)") != before
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+y")
    page.keyboard.press("Control+z")
    assert page.evaluate("Array.from(annotator.ids)") == before

    flush(page)
    np.testing.assert_array_equal(read_label_map(store.labels / f"{stem}.png", SEG_SPEC), expected)
    assert page.locator(f"#samples li[data-stem='{stem}']").get_attribute("class").split().count("labelled") == 1

    # Reload: the page shows what is on disk, and says it is saved.
    view = open_page(page, server, stem)
    assert page.evaluate("document.getElementById('saved').dataset.state") == "saved"
    shown = np.array(page.evaluate("Array.from(annotator.ids)"), np.uint8).reshape(SIZE, SIZE)
    np.testing.assert_array_equal(shown, expected)


@pytest.mark.browser
def test_keypoints_place_drag_toggle_undo_and_reload(page, kp_server):
    server, store = kp_server
    stem = "000004"
    view = open_page(page, server, stem)
    assert page.evaluate("annotator.task") == "keypoints"

    def at(x: int, y: int) -> list[float]:
        u, v = view.label(x, y)
        return [round(u - 0.5, 3), round(v - 0.5, 3)]

    # Place eye_l, then eye_r (the page moves on to the next keypoint by itself).
    a = view.screen(12.5, 7.5)
    page.mouse.click(*a)
    b = view.screen(20.5, 10.5)
    page.mouse.click(*b)
    # Drag eye_l elsewhere.
    c = view.screen(14.5, 9.5)
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move(*c, steps=5)
    page.mouse.up()
    # Hide eye_r, then undo that.
    page.keyboard.press("2")
    page.keyboard.press("v")
    assert page.evaluate("annotator.points[1][2]") == 0
    page.keyboard.press("Control+z")
    flush(page)
    expected = [at(*c) + [1], at(*b) + [1], [0, 0, 0]]
    np.testing.assert_allclose(read_keypoints(store.labels / f"{stem}.json", KP_SPEC), np.array(expected, float))
    # Hidden, saved as invisible.
    page.keyboard.press("v")
    flush(page)
    expected[1][2] = 0
    np.testing.assert_allclose(read_keypoints(store.labels / f"{stem}.json", KP_SPEC), np.array(expected, float))

    view = open_page(page, server, stem)
    assert page.evaluate("annotator.points") == expected
    assert page.locator("#palette li").nth(1).locator(".state").inner_text() == "hidden"


@pytest.mark.browser
def test_a_page_of_another_origin_cannot_write_labels(page, seg_server):
    server, store = seg_server
    page.goto("about:blank")
    result = page.evaluate("""async (url) => {
        try {
            const r = await fetch(url + 'api/labels/000001', {method: 'PUT', body: new Uint8Array([1, 2, 3]),
                                                              headers: {'content-type': 'image/png'}});
            return 'status ' + r.status;
        } catch (e) { return 'blocked'; }
    }""", server.url)
    assert result in ("blocked", "status 403")
    assert not (store.labels / "000001.png").exists()


def component(parts: np.ndarray, row: int, col: int) -> np.ndarray:
    """The 4-connected pixels of ``parts`` with the part id at (row, col)."""
    from scipy import ndimage

    labelled, _ = ndimage.label(parts == parts[row, col])
    return labelled == labelled[row, col]


def http_get(server, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    return r.status, r.read()


def test_traversal_and_foreign_hosts_over_a_real_socket(seg_server):
    server, store = seg_server
    # http.client sends the path exactly as given: nothing between here and the server tidies it.
    for path in ("/api/labels/..%2F..%2Fetc%2Fpasswd", "/api/labels/../../etc/passwd",
                 "/api/samples/..%2Fgenerator.json/image", "/api/samples/../generator.json/image",
                 "/static/..%2F..%2Fannotate%2Fserver.py", "/api/labels/%2e%2e%2fsamples.jsonl"):
        status, body = http_get(server, path)
        assert status == 404, (path, status, body[:200])
    status, body = http_get(server, "/api/samples", {"Host": "evil.example:80"})
    assert status == 403 and "not this machine" in json.loads(body)["error"]
    status, body = http_get(server, "/api/samples")
    assert status == 200 and len(json.loads(body)) == 6

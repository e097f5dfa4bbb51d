"""The annotator's HTTP API, through Starlette's TestClient (no browser, no sockets)."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from datasetgan.labels import read_keypoints, read_label_map
from tests.annotate.conftest import KP_SPEC, SEG_SPEC

SIZE = 32   # the tiny generator's images


def png(array: np.ndarray, mode: str = "L", palette=None) -> bytes:
    image = Image.fromarray(np.asarray(array, np.uint8), mode="L")
    if mode == "P":
        image = image.convert("P")
        image = Image.frombytes("P", image.size, np.asarray(array, np.uint8).tobytes())
        image.putpalette([v for c in palette for v in c] + [0] * (768 - 3 * len(palette)))
    elif mode != "L":
        image = image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def two_part_mask(shift: int = 0) -> np.ndarray:
    ids = np.zeros((SIZE, SIZE), np.uint8)
    ids[8 + shift:24, 6:26] = 1
    ids[:6, :] = 2
    return ids


def test_samples_images_and_labelled_state(seg_app):
    client, store, _ = seg_app
    r = client.get("/api/samples")
    assert r.status_code == 200
    assert r.json() == [{"stem": f"{s:06d}", "labelled": False} for s in range(6)]
    img = client.get("/api/samples/000003/image")
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(img.content)).size == (SIZE, SIZE)
    assert client.get("/api/labels/000003").status_code == 404
    assert client.get("/api/labels/000003").json()["labelled"] is False
    ids = two_part_mask()
    r = client.put("/api/labels/000003", content=png(ids))
    assert r.status_code == 200, r.text
    assert r.json()["saved"] is True
    assert [s["labelled"] for s in client.get("/api/samples").json()] == [False, False, False, True, False, False]
    # The file is the importers' format: an indexed PNG with the spec's palette, the same ids.
    path = store.labels / "000003.png"
    saved = Image.open(path)
    assert saved.mode == "P" and saved.getpalette()[:9] == [0, 0, 0, 230, 180, 140, 120, 60, 20]
    np.testing.assert_array_equal(read_label_map(path, SEG_SPEC), ids)
    got = client.get("/api/labels/000003")
    assert got.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(got.content))), ids)
    raw = client.get("/api/labels/000003?format=raw")
    assert raw.headers["x-width"] == str(SIZE)
    np.testing.assert_array_equal(np.frombuffer(raw.content, np.uint8).reshape(SIZE, SIZE), ids)
    # Mode P bodies are taken by their indices.
    assert client.put("/api/labels/000004", content=png(ids, "P", SEG_SPEC.palette)).status_code == 200
    np.testing.assert_array_equal(read_label_map(store.labels / "000004.png", SEG_SPEC), ids)


@pytest.mark.parametrize("body, message", [
    (b"GIF89a not a png", "not a PNG"),
    (b"\x89PNG\r\n\x1a\n broken", "not a readable PNG"),
])
def test_a_body_that_is_not_a_png_is_a_400(seg_app, body, message):
    client, store, _ = seg_app
    r = client.put("/api/labels/000001", content=body)
    assert r.status_code == 400 and message in r.json()["error"]
    assert not (store.labels / "000001.png").exists()


def test_wrong_size_unknown_class_and_colour_pngs_are_400(seg_app):
    client, store, _ = seg_app
    r = client.put("/api/labels/000001", content=png(np.zeros((SIZE, SIZE + 1))))
    assert r.status_code == 400 and "33x32 (WxH)" in r.json()["error"] and "32x32" in r.json()["error"]
    bad = two_part_mask()
    bad[0, 0] = 7
    r = client.put("/api/labels/000001", content=png(bad))
    assert r.status_code == 400 and "class id 7 (1 pixels)" in r.json()["error"]
    r = client.put("/api/labels/000001", content=png(two_part_mask(), "RGB"))
    assert r.status_code == 400 and "mode RGB" in r.json()["error"]
    assert not list(store.labels.iterdir())


@pytest.mark.parametrize("path", [
    "/api/labels/..%2F..%2Fetc%2Fpasswd", "/api/labels/..%2Fsamples%2Fgenerator", "/api/labels/999999",
    "/api/samples/..%2Fgenerator.json/image", "/api/samples/nope/image", "/api/regions/..%2F000001",
    "/api/labels/%2E%2E", "/api/labels/000001.png",
])
def test_unknown_stems_and_traversal_are_404(seg_app, path):
    client, store, _ = seg_app
    assert client.get(path).status_code == 404
    assert client.put(path, content=png(two_part_mask())).status_code in (404, 405)
    assert not list(store.labels.iterdir())
    assert client.post(path.replace("/labels/", "/suggest/")).status_code in (404, 405)


def test_security_defaults(seg_app, samples_dir, tmp_path):
    client, store, _ = seg_app
    r = client.get("/api/samples")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    # A request for another host name (a DNS-rebinding page) is refused while listening on loopback.
    r = client.get("/api/samples", headers={"host": "attacker.example"})
    assert r.status_code == 403 and "not this machine" in r.json()["error"]
    # A page of another origin may not write labels.
    r = client.put("/api/labels/000001", content=png(two_part_mask()), headers={"origin": "http://attacker.example"})
    assert r.status_code == 403
    assert not (store.labels / "000001.png").exists()
    r = client.put("/api/labels/000001", content=png(two_part_mask()), headers={"origin": "http://127.0.0.1:8765"})
    assert r.status_code == 200
    # The page itself and its static files.
    page = client.get("/")
    assert page.status_code == 200 and "annotate.js" in page.text
    assert client.get("/static/annotate.js").status_code == 200
    assert client.get("/static/..%2F..%2Fserver.py").status_code == 404


def test_the_default_host_is_loopback():
    from datasetgan.annotate.cli import url_of
    from datasetgan.annotate.config import AnnotateConfig, is_loopback
    from datasetgan.cli import build_parser

    assert AnnotateConfig().host == "127.0.0.1" and is_loopback(AnnotateConfig().host)
    args = build_parser().parse_args(["annotate", "--samples", "S", "--spec", "x", "--labels", "L"])
    assert "host" not in vars(args) or args.host == "127.0.0.1"
    assert url_of("127.0.0.1", 8765) == "http://127.0.0.1:8765/"
    assert not is_loopback("0.0.0.0") and is_loopback("localhost") and is_loopback("::1")


def test_dry_run_prints_the_settings(samples_dir, capsys):
    from datasetgan.cli import main

    assert main(["annotate", "--samples", str(samples_dir), "--spec", "s.json", "--labels", "L", "--port", "9000",
                 "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["port"] == 9000 and out["host"] == "127.0.0.1" and out["interpreter"]["members"] == 4


def test_suggest_and_next_follow_the_labels(seg_app):
    client, store, assistant = seg_app
    # Before any label: next is the most typical sample, then the farthest from those labelled.
    first = client.get("/api/next").json()
    assert first["why"] == "diverse" and first["stem"] in store.stems
    r = client.post(f"/api/suggest/{first['stem']}")
    assert r.status_code == 409 and "2 samples are labelled" in r.json()["error"]
    client.put(f"/api/labels/{first['stem']}", content=png(two_part_mask()))
    second = client.get("/api/next").json()["stem"]
    assert second != first["stem"]
    client.put(f"/api/labels/{second}", content=png(two_part_mask(shift=2)))
    target = next(s for s in store.stems if s not in (first["stem"], second))
    r = client.post(f"/api/suggest/{target}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-trained-on"] == "2"
    ids = np.asarray(Image.open(io.BytesIO(r.content)))
    assert ids.shape == (SIZE, SIZE) and ids.max() < 3
    j = client.post(f"/api/suggest/{target}", headers={"accept": "application/json"}).json()
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(j["labels"]), np.uint8).reshape(SIZE, SIZE), ids)
    assert len(base64.b64decode(j["uncertain"])) == SIZE * SIZE and j["version"] == store.version
    status = client.get("/api/status").json()
    assert status["state"] in ("ready", "training") and status["labelled"] == 2
    # A suggestion is for the labels as they are now: a new label makes the next one wait for its training.
    client.put(f"/api/labels/{target}", content=png(ids))
    r = client.post(f"/api/suggest/{second}", headers={"accept": "application/json"})
    assert r.json()["trained_on"] == 3 and r.json()["version"] == store.version
    # Once the unlabelled samples are scored, next picks among them.
    deadline = time.monotonic() + 30
    while assistant.status()["scored"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    nxt = client.get("/api/next").json()
    assert nxt["why"] == "uncertain" and nxt["stem"] not in store.labelled()


def test_regions_cover_the_image_with_few_parts(seg_app):
    client, _, _ = seg_app
    r = client.get("/api/regions/000002?format=raw")
    parts = np.frombuffer(r.content, np.uint8).reshape(SIZE, SIZE)
    assert 2 <= len(np.unique(parts)) <= 6
    again = np.asarray(Image.open(io.BytesIO(client.get("/api/regions/000002").content)))
    np.testing.assert_array_equal(parts, again)


def test_keypoints_round_trip_and_refusals(kp_app):
    client, store, _ = kp_app
    points = [[3.0, 4.5, 1], [20.25, 7.0, 1], [0, 0, 0]]
    r = client.put("/api/labels/000002", content=json.dumps(points))
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(read_keypoints(store.labels / "000002.json", KP_SPEC), np.array(points, float))
    assert client.get("/api/labels/000002").json() == points
    assert client.get("/api/samples").json()[2]["labelled"] is True
    for body, message in [("[[1, 2, 1]]", "expected a list of 3"), ("{nope", "not JSON"),
                          (json.dumps([[40, 4, 1], [1, 1, 1], [0, 0, 0]]), "outside the 32x32"),
                          (json.dumps([[1, 4, 1], ["a", 1, 1], [0, 0, 0]]), "keypoint 1 (eye_r)")]:
        r = client.put("/api/labels/000003", content=body)
        assert r.status_code == 400 and message in r.json()["error"], r.text
    assert not (store.labels / "000003.json").exists()
    # Two labelled samples: the interpreter suggests keypoints.
    client.put("/api/labels/000005", content=json.dumps([[5.0, 6.0, 1], [22.0, 7.5, 1], [14.0, 20.0, 1]]))
    r = client.post("/api/suggest/000001")
    assert r.status_code == 200, r.text
    suggestion = r.json()
    assert len(suggestion) == 3 and all(len(p) == 3 for p in suggestion)
    assert all(-0.5 <= p[0] <= SIZE - 0.5 and -0.5 <= p[1] <= SIZE - 0.5 for p in suggestion if p[2])


def test_the_command_prints_its_url_and_serves(samples_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import urllib.request

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SEG_SPEC.to_dict()))
    proc = subprocess.Popen([sys.executable, "-m", "datasetgan.cli", "annotate", "--samples", str(samples_dir),
                             "--spec", str(spec), "--labels", str(tmp_path / "L"), "--port", "0", "--no-assist"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "6 samples (0 labelled, segmentation) at http://127.0.0.1:" in line, (line, proc.stderr.read())
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "api/samples", timeout=10) as r:
            assert len(json.loads(r.read())) == 6
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert (tmp_path / "L").is_dir()

"""The annotator's web server (Starlette): one page, and the HTTP API it and scripts use.

API (docs/ANNOTATE.md has the details)::

    GET  /api/samples                [{"stem", "labelled"}]
    GET  /api/samples/{stem}/image   the sample's PNG
    GET  /api/labels/{stem}          its label: a PNG of class ids (indexed, the spec's palette), or the
                                     keypoint JSON [[x, y, visible], ...]; 404 while it has none
    PUT  /api/labels/{stem}          save a label: a PNG of class ids (mode L or P), or the keypoint JSON
    POST /api/suggest/{stem}         the interpreter's labels for it (PNG of class ids, or keypoint JSON),
                                     once the interpreter of the current labels is ready
    GET  /api/next                   {"stem": ..., "why": ...}: the sample worth labelling next
    GET  /api/regions/{stem}         its parts for region fill (PNG of part ids)
    GET  /api/spec, /api/status      what the page shows: classes, palette, keypoints; the assistant's state

``?format=raw`` on labels and regions, and ``Accept: application/json`` on
suggest, give the page the ids as plain bytes (one per pixel, row-major).

Refusals are JSON ``{"error": message}``: 404 for a stem that is not in the
samples folder (the stem is looked up in the folder's own list before it
names any file); 400 for a label of the wrong size, an unknown class id or a
body that is not a PNG; 409 while the assistant cannot suggest. Requests
whose ``Host`` is not this machine are refused while the server listens on
a loopback address (a web page elsewhere cannot reach it by a DNS trick), and
so are writes from a page of another origin.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datasetgan.annotate.assist import Assistant, NotReady
from datasetgan.annotate.config import AnnotateConfig, is_loopback
from datasetgan.annotate.store import BadLabel, LabelStore, UnknownStem
from datasetgan.core.errors import UserError

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 64 << 20          # a 4096 x 4096 label map fits many times over
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                                 b"script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                                 b"form-action 'none'"),
]
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers={"cache-control": "no-store"})


class Guard:
    """ASGI middleware: refuse foreign ``Host`` headers (when ``allowed_hosts`` is given) and writes
    from other origins; add the security headers to every answer."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str] | None):
        self.app = app
        self.allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self.allowed is not None and name.lower() not in self.allowed:
            response = _error(403, f"host {host!r} is not this machine; open the page at http://127.0.0.1")
            return await self._send(response, scope, receive, send)
        origin = headers.get("origin")
        if scope["method"] not in SAFE_METHODS and origin is not None:
            if origin.split("://", 1)[-1].lower() != host.lower():
                response = _error(403, f"a page from {origin} may not change labels here")
                return await self._send(response, scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _send(self, response: Response, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)
        await response(scope, receive, send_with_headers)


def _raw(ids: np.ndarray, **headers: str) -> Response:
    h, w = ids.shape
    return Response(np.ascontiguousarray(ids, np.uint8).tobytes(), media_type="application/octet-stream",
                    headers={"x-width": str(w), "x-height": str(h), "cache-control": "no-store", **headers})


def _png(data: bytes, **headers: str) -> Response:
    return Response(data, media_type="image/png", headers={"cache-control": "no-store", **headers})


def _grey_png(ids: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(ids, np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


async def _read_body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise HTTPException(413, f"the body is larger than {MAX_BODY >> 20} MiB")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY:
            raise HTTPException(413, f"the body is larger than {MAX_BODY >> 20} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(store: LabelStore, assistant: Assistant, config: AnnotateConfig,
               allowed_hosts: Sequence[str] | None = None, suggest_timeout: float = 600.0) -> Starlette:
    """The page and the API over ``store`` and ``assistant``.

    ``allowed_hosts``: the ``Host`` names answered (default: this machine's loopback names when
    ``config.host`` is a loopback address, any otherwise).
    """
    if allowed_hosts is None and is_loopback(config.host):
        allowed_hosts = LOOPBACK_HOSTS

    def stem_of(request: Request) -> str:
        stem = request.path_params["stem"]
        try:
            return store.check(stem)
        except UnknownStem:
            raise HTTPException(404, f"no sample {stem!r} in {store.root}") from None

    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"cache-control": "no-store"})

    def spec(request: Request) -> Response:
        s = store.spec
        return JSONResponse({
            "task": store.task, "classes": list(s.classes), "palette": [list(c) for c in s.palette],
            "keypoints": list(s.keypoints or ()), "erase_id": store.erase_id, "unlabelled": store.has_unlabelled,
            "samples": str(store.root), "labels": str(store.labels), "assist": config.assist,
            "min_labels": config.min_labels, "uncertain_above": config.uncertain_above})

    def samples(request: Request) -> Response:
        labelled = set(store.labelled())
        return JSONResponse([{"stem": s, "labelled": s in labelled} for s in store.stems],
                            headers={"cache-control": "no-store"})

    def image(request: Request) -> Response:
        path = store.image_path(stem_of(request))
        if not path.is_file():
            raise HTTPException(404, f"{path}: image not found")
        return FileResponse(path, media_type="image/png")

    def get_label(request: Request) -> Response:
        stem = stem_of(request)
        if not store.is_labelled(stem):
            return _error(404, f"{stem} is not labelled yet", labelled=False)
        try:
            if store.task == "keypoints":
                points = store.read_points(stem)
                return JSONResponse([[round(x, 3), round(y, 3), int(v)] for x, y, v in points.tolist()],
                                    headers={"cache-control": "no-store"})
            ids = store.read_ids(stem)
        except UserError as exc:
            return _error(422, f"the saved label cannot be read: {exc}")
        if request.query_params.get("format") == "raw":
            return _raw(ids)
        return _png(store.ids_png(ids))

    async def put_label(request: Request) -> Response:
        stem = stem_of(request)
        body = await _read_body(request)
        try:
            version = await run_in_threadpool(store.save, stem, body)
        except BadLabel as exc:
            return _error(400, str(exc))
        assistant.notify()
        return JSONResponse({"stem": stem, "saved": True, "version": version,
                             "labelled": len(store.labelled())})

    def suggest(request: Request) -> Response:
        stem = stem_of(request)
        try:
            result = assistant.suggest(stem, timeout=suggest_timeout)
        except NotReady as exc:
            return _error(409, str(exc))
        meta = {"x-labels-version": str(result.version), "x-trained-on": str(result.labelled)}
        wants_json = "application/json" in request.headers.get("accept", "")
        if result.keypoints is not None:
            points = [[round(x, 3), round(y, 3), int(v)] for x, y, v in result.keypoints.tolist()]
            if wants_json:
                return JSONResponse({"keypoints": points, "version": result.version, "trained_on": result.labelled})
            return JSONResponse(points, headers=meta)
        if wants_json:
            h, w = result.labels.shape
            return JSONResponse({
                "width": w, "height": h, "version": result.version, "trained_on": result.labelled,
                "labels": base64.b64encode(result.labels.tobytes()).decode(),
                "uncertain": base64.b64encode(result.uncertain.astype(np.uint8).tobytes()).decode(),
                "uncertain_pixels": int(result.uncertain.sum())})
        return _png(store.ids_png(result.labels), **meta, **{"x-uncertain-pixels": str(int(result.uncertain.sum()))})

    def next_sample(request: Request) -> Response:
        stem, why = assistant.next_stem()
        return JSONResponse({"stem": stem, "why": why}, headers={"cache-control": "no-store"})

    def regions(request: Request) -> Response:
        stem = stem_of(request)
        try:
            parts = assistant.regions(stem)
        except NotReady as exc:
            return _error(409, str(exc))
        if request.query_params.get("format") == "raw":
            return _raw(parts)
        return _png(_grey_png(parts))

    def status(request: Request) -> Response:
        return JSONResponse(assistant.status(), headers={"cache-control": "no-store"})

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail))

    routes = [
        Route("/", index),
        Route("/api/spec", spec),
        Route("/api/samples", samples),
        Route("/api/samples/{stem}/image", image),
        Route("/api/labels/{stem}", get_label, methods=["GET"]),
        Route("/api/labels/{stem}", put_label, methods=["PUT"]),
        Route("/api/suggest/{stem}", suggest, methods=["POST"]),
        Route("/api/next", next_sample),
        Route("/api/regions/{stem}", regions),
        Route("/api/status", status),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.add_middleware(Guard, allowed_hosts=allowed_hosts)
    return app


// datasetgan annotate: the page. Plain JS modules (this file: state, events, saving and the
// panels; draw.js: the canvas; paint.js: the label edits; png.js: the PNG it saves): no build
// step, nothing fetched from elsewhere.
//
// Label coordinates: pixel (i, j) covers [i, i + 1) x [j, j + 1); a keypoint at (x, y) is in the
// project's convention, (0, 0) at the centre of the top-left pixel, so a click at label coordinate
// (u, v) places it at (u - 0.5, v - 0.5). The screen shows label point (u, v) at
// (ox + u * zoom, oy + v * zoom) CSS pixels from the canvas's top-left corner.
import { encodeGreyPNG } from "./png.js";
import * as draw from "./draw.js";
import * as paint from "./paint.js";

(function () {
  const $ = (id) => document.getElementById(id);
  const SAVE_DELAY_MS = 400;
  const HISTORY_MAX = 200;
  const HIT_RADIUS = 9;           // CSS pixels: a keypoint or a polygon's first vertex under the pointer
  const SHORTCUTS = "1234567890";

  const A = {
    spec: null, task: "segmentation", samples: [], stem: null, W: 0, H: 0, image: null,
    ids: null, hatch: null, points: null, regions: null, regionsStem: null,
    history: [], future: [], tool: "brush", cls: 1, kp: 0, brush: 3, opacity: 0.5,
    zoom: 1, ox: 0, oy: 0, dirty: false, saveTimer: null, saving: Promise.resolve(), saveState: "none",
    stroke: null, polygon: [], drag: null, pan: null, spaceDown: false, pointer: null, status: null,
    labelCanvas: document.createElement("canvas"), hatchCanvas: document.createElement("canvas"),
    scratch: document.createElement("canvas"),
  };
  window.annotator = A;
  A.encodeGreyPNG = encodeGreyPNG;
  const view = $("view");
  const ctx = view.getContext("2d");

  // --- small helpers ------------------------------------------------------------------------------

  function api(path) { return "/api/" + path; }
  function stemPath(stem) { return encodeURIComponent(stem); }

  async function fetchJSON(url, options) {
    const r = await fetch(url, options);
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) throw new Error((body && body.error) || (r.status + " " + r.statusText));
    return body;
  }

  let messageTimer = null;
  function say(text, ms) {
    const m = $("message");
    m.textContent = text;
    m.hidden = false;
    clearTimeout(messageTimer);
    messageTimer = setTimeout(() => { m.hidden = true; }, ms || 3000);
  }

  function b64bytes(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // --- drawing ------------------------------------------------------------------------------------

  function resizeCanvas() {
    const dpr = window.devicePixelRatio || 1;
    const r = view.getBoundingClientRect();
    view.width = Math.max(1, Math.round(r.width * dpr));
    view.height = Math.max(1, Math.round(r.height * dpr));
    redraw();
  }

  function fit() {
    if (!A.W) return;
    const r = view.getBoundingClientRect();
    const zoom = Math.max(0.1, Math.min((r.width - 20) / A.W, (r.height - 20) / A.H));
    // Whole CSS pixels per label pixel where there is room, so pixels show as even squares.
    A.zoom = zoom >= 2 ? Math.floor(zoom) : zoom;
    A.ox = Math.round((r.width - A.W * A.zoom) / 2);
    A.oy = Math.round((r.height - A.H * A.zoom) / 2);
    redraw();
  }

  function zoomAt(factor, cx, cy) {
    const z = Math.max(0.25, Math.min(64, A.zoom * factor));
    A.ox = cx - (cx - A.ox) * (z / A.zoom);
    A.oy = cy - (cy - A.oy) * (z / A.zoom);
    A.zoom = z;
    redraw();
  }

  function renderLabels() { if (A.ids && A.task === "segmentation") draw.renderLabels(A); }
  function redraw() {
    draw.redraw(A, view, ctx);
    $("zoom-label").textContent = Math.round(A.zoom * 100) + "%";
  }
  const keypointColour = draw.keypointColour;

  // --- coordinates ----------------------------------------------------------------------------------

  function toCanvas(u, v) { return draw.toCanvas(A, u, v); }
  function fromEvent(e) {
    const r = view.getBoundingClientRect();
    return { u: (e.clientX - r.left - A.ox) / A.zoom, v: (e.clientY - r.top - A.oy) / A.zoom,
             x: e.clientX - r.left, y: e.clientY - r.top };
  }
  // Where a label point lies in the viewport (for scripts and tests driving the page).
  A.toScreen = function (u, v) {
    const r = view.getBoundingClientRect();
    return { x: r.left + A.ox + u * A.zoom, y: r.top + A.oy + v * A.zoom };
  };

  // --- editing --------------------------------------------------------------------------------------

  function snapshot() {
    return A.task === "keypoints" ? { points: A.points.map((p) => p.slice()) }
      : { ids: A.ids.slice(), hatch: A.hatch ? A.hatch.slice() : null };
  }
  function restore(s) {
    if (s.points) A.points = s.points.map((p) => p.slice());
    else { A.ids = s.ids.slice(); A.hatch = s.hatch ? s.hatch.slice() : null; }
  }
  function remember() {
    A.history.push(snapshot());
    if (A.history.length > HISTORY_MAX) A.history.shift();
    A.future = [];
    updateButtons();
  }
  function undo() {
    if (!A.history.length) return;
    A.future.push(snapshot());
    restore(A.history.pop());
    changed();
  }
  function redo() {
    if (!A.future.length) return;
    A.history.push(snapshot());
    restore(A.future.pop());
    changed();
  }
  A.undo = undo; A.redo = redo;

  // After every edit: show it, and save it a moment later.
  function changed() {
    renderLabels();
    redraw();
    updateButtons();
    renderPalette();
    A.dirty = true;
    setSaved("unsaved");
    clearTimeout(A.saveTimer);
    A.saveTimer = setTimeout(() => { A.saveTimer = null; queueSave(); }, SAVE_DELAY_MS);
  }

  function layer() { return { ids: A.ids, hatch: A.hatch, W: A.W, H: A.H }; }

  function inside(u, v) { return u >= 0 && v >= 0 && u < A.W && v < A.H; }

  async function fillRegion(u, v, id, whole) {
    const parts = await loadRegions(A.stem);
    if (!parts) return false;
    remember();
    paint.regionFill(layer(), parts, u, v, id, whole);
    return true;
  }

  function closePolygon() {
    if (A.polygon.length >= 3) {
      remember();
      paint.fillPolygon(layer(), A.polygon, A.cls);
      A.polygon = [];
      changed();
    } else {
      A.polygon = [];
      redraw();
    }
  }

  function eraseId() { return A.spec.unlabelled ? A.spec.erase_id : 0; }

  // --- keypoints --------------------------------------------------------------------------------------

  function keypointAt(x, y) {
    let best = -1, bestD = HIT_RADIUS;
    A.points.forEach((p, k) => {
      if (p[2] === 0 && p[0] === 0 && p[1] === 0) return;
      const s = toCanvas(p[0] + 0.5, p[1] + 0.5);
      const d = Math.hypot(s.x - x, s.y - y);
      if (d <= bestD) { best = k; bestD = d; }
    });
    return best;
  }

  function selectKeypoint(k) {
    if (k < 0 || k >= A.spec.keypoints.length) return;
    A.kp = k;
    renderPalette();
    redraw();
  }

  function toggleVisibility(k) {
    const p = A.points[k];
    remember();
    p[2] = p[2] > 0 ? 0 : 1;
    changed();
  }

  function round3(x) { return Math.round(x * 1000) / 1000; }

  // --- pointer and keys ---------------------------------------------------------------------------

  view.addEventListener("contextmenu", (e) => e.preventDefault());

  view.addEventListener("pointerdown", async (e) => {
    view.focus();
    if (!A.image) return;
    const p = fromEvent(e);
    if (e.button === 1 || e.button === 2 || A.tool === "pan" || A.spaceDown) {
      A.pan = { x: e.clientX, y: e.clientY, ox: A.ox, oy: A.oy };
      view.classList.add("panning");
      view.setPointerCapture(e.pointerId);
      return;
    }
    if (e.button !== 0) return;
    if (A.task === "keypoints") {
      const hit = keypointAt(p.x, p.y);
      remember();
      if (hit >= 0) {
        A.kp = hit;
        A.drag = { k: hit };
      } else if (inside(p.u, p.v)) {
        A.points[A.kp] = [round3(p.u - 0.5), round3(p.v - 0.5), 1];
        A.drag = { k: A.kp, placed: true };
      } else {
        A.history.pop();
        return;
      }
      view.setPointerCapture(e.pointerId);
      redraw();
      return;
    }
    if (!inside(p.u, p.v) && A.tool !== "brush" && A.tool !== "eraser" && A.tool !== "polygon") return;
    if (A.tool === "brush" || A.tool === "eraser") {
      remember();
      const id = A.tool === "eraser" ? eraseId() : A.cls;
      A.stroke = { u: p.u, v: p.v, id };
      paint.stamp(layer(), p.u, p.v, A.brush, id);
      view.setPointerCapture(e.pointerId);
      renderLabels();
      redraw();
    } else if (A.tool === "fill") {
      if (A.ids[paint.pixelAt(layer(), p.u, p.v)] !== A.cls) {
        remember();
        paint.floodFill(layer(), p.u, p.v, A.cls);
        changed();
      }
    } else if (A.tool === "region") {
      if (await fillRegion(p.u, p.v, A.cls, e.shiftKey)) changed();
    } else if (A.tool === "polygon") {
      if (A.polygon.length >= 3) {
        const first = toCanvas(A.polygon[0][0], A.polygon[0][1]);
        if (Math.hypot(first.x - p.x, first.y - p.y) <= HIT_RADIUS) { closePolygon(); return; }
      }
      A.polygon.push([p.u, p.v]);
      redraw();
    }
  });

  view.addEventListener("pointermove", (e) => {
    const p = fromEvent(e);
    A.pointer = p;
    if (A.pan) {
      A.ox = A.pan.ox + e.clientX - A.pan.x;
      A.oy = A.pan.oy + e.clientY - A.pan.y;
      redraw();
      return;
    }
    if (A.stroke) {
      paint.line(layer(), A.stroke, p, A.brush, A.stroke.id);
      A.stroke = { u: p.u, v: p.v, id: A.stroke.id };
      renderLabels();
    }
    if (A.drag) {
      const k = A.drag.k;
      const u = Math.max(0, Math.min(A.W, p.u)), v = Math.max(0, Math.min(A.H, p.v));
      A.points[k] = [round3(u - 0.5), round3(v - 0.5), A.points[k][2] > 0 ? A.points[k][2] : 1];
      A.drag.moved = true;
    }
    redraw();
  });

  function pointerUp() {
    if (A.pan) { A.pan = null; view.classList.remove("panning"); return; }
    if (A.stroke) { A.stroke = null; changed(); }
    if (A.drag) {
      const d = A.drag;
      A.drag = null;
      if (d.placed) {                           // on to the next keypoint not yet placed
        const next = A.points.findIndex((q, k) => k > d.k && q[0] === 0 && q[1] === 0 && q[2] === 0);
        if (next >= 0) A.kp = next;
      }
      if (d.placed || d.moved) changed(); else { A.history.pop(); renderPalette(); redraw(); }
    }
  }
  view.addEventListener("pointerup", pointerUp);
  view.addEventListener("pointercancel", pointerUp);
  view.addEventListener("pointerleave", () => { A.pointer = null; redraw(); });
  view.addEventListener("dblclick", (e) => { if (A.tool === "polygon") { A.polygon.pop(); closePolygon(); } });

  view.addEventListener("wheel", (e) => {
    e.preventDefault();
    const p = fromEvent(e);
    zoomAt(Math.pow(1.0015, -e.deltaY), p.x, p.y);
  }, { passive: false });

  document.addEventListener("keydown", (e) => {
    if (e.target && (e.target.tagName === "INPUT" || e.target.tagName === "TEXTAREA")) return;
    const key = e.key.toLowerCase();
    const mod = e.ctrlKey || e.metaKey;
    if (mod && key === "z" && !e.shiftKey) { e.preventDefault(); undo(); return; }
    if (mod && (key === "y" || (key === "z" && e.shiftKey))) { e.preventDefault(); redo(); return; }
    if (mod) return;
    if (e.key === " ") { A.spaceDown = true; e.preventDefault(); return; }
    const digit = e.code && e.code.startsWith("Digit") ? e.code.slice(5) : null;
    if (digit !== null) {
      const index = SHORTCUTS.indexOf(digit) + (e.shiftKey ? 10 : 0);
      if (A.task === "keypoints") selectKeypoint(index); else selectClass(index);
      return;
    }
    const tools = { b: "brush", e: "eraser", p: "polygon", f: "fill", r: "region", h: "pan" };
    if (tools[key] && A.task === "segmentation") { setTool(tools[key]); return; }
    if (key === "h") { setTool("pan"); return; }
    if (key === "k" && A.task === "keypoints") { setTool("keypoint"); return; }
    if (key === "v" && A.task === "keypoints") { toggleVisibility(A.kp); return; }
    if (key === "[") { setBrush(A.brush - 1); return; }
    if (key === "]") { setBrush(A.brush + 1); return; }
    if (key === "s") { suggest(); return; }
    if (key === "n") { nextSample(); return; }
    if (key === "=" || key === "+") { const r = view.getBoundingClientRect(); zoomAt(1.25, r.width / 2, r.height / 2); return; }
    if (key === "-") { const r = view.getBoundingClientRect(); zoomAt(0.8, r.width / 2, r.height / 2); return; }
    if (e.key === "Home") { fit(); return; }
    if (e.key === "Enter" && A.tool === "polygon") { closePolygon(); return; }
    if (e.key === "Escape") { A.polygon = []; redraw(); return; }
    if (e.key === "Backspace" && A.polygon.length) { A.polygon.pop(); redraw(); }
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const i = A.samples.findIndex((s) => s.stem === A.stem) + (e.key === "ArrowDown" ? 1 : -1);
      if (i >= 0 && i < A.samples.length) openSample(A.samples[i].stem);
    }
  });
  document.addEventListener("keyup", (e) => { if (e.key === " ") A.spaceDown = false; });

  // --- saving ---------------------------------------------------------------------------------------

  function setSaved(state, detail) {
    A.saveState = state;
    const el = $("saved");
    el.dataset.state = state;
    el.textContent = { saved: "saved", unsaved: "unsaved changes", saving: "saving\u2026", none: "not labelled yet",
                       error: "not saved: " + (detail || "") }[state] || state;
    el.title = state === "saved" ? "saved to " + A.spec.labels : (detail || "");
  }

  function body() {
    return A.task === "keypoints" ? JSON.stringify(A.points) : encodeGreyPNG(A.ids, A.W, A.H);
  }

  async function saveNow() {
    if (!A.dirty || !A.stem) return;
    const stem = A.stem, data = body();
    A.dirty = false;
    setSaved("saving");
    try {
      await fetchJSON(api("labels/" + stemPath(stem)), {
        method: "PUT", body: data,
        headers: { "content-type": A.task === "keypoints" ? "application/json" : "image/png" } });
      const s = A.samples.find((x) => x.stem === stem);
      if (s && !s.labelled) { s.labelled = true; renderSamples(); }
      if (!A.dirty && A.stem === stem) setSaved("saved");
    } catch (err) {
      if (A.stem === stem) { A.dirty = true; setSaved("error", err.message); }
      say("not saved: " + err.message, 6000);
    }
  }
  function queueSave() { A.saving = A.saving.then(saveNow); return A.saving; }

  // Everything changed so far is on disk when this resolves.
  A.flush = function () {
    if (A.saveTimer) { clearTimeout(A.saveTimer); A.saveTimer = null; return queueSave(); }
    return A.saving.then(() => (A.dirty ? queueSave() : undefined));
  };

  window.addEventListener("beforeunload", () => {
    if (!A.dirty || !A.stem) return;
    const data = body();
    try {
      fetch(api("labels/" + stemPath(A.stem)), { method: "PUT", body: data, keepalive: true,
        headers: { "content-type": A.task === "keypoints" ? "application/json" : "image/png" } });
    } catch (e) { /* too large for a keepalive request: the last autosave stands */ }
  });
  document.addEventListener("visibilitychange", () => { if (document.hidden) A.flush(); });

  // --- samples ----------------------------------------------------------------------------------------

  function renderSamples() {
    const ul = $("samples");
    ul.textContent = "";
    for (const s of A.samples) {
      const li = document.createElement("li");
      li.textContent = s.stem;
      li.dataset.stem = s.stem;
      if (s.labelled) li.classList.add("labelled");
      if (s.stem === A.stem) li.classList.add("current");
      li.addEventListener("click", () => openSample(s.stem));
      ul.appendChild(li);
    }
    const done = A.samples.filter((s) => s.labelled).length;
    $("count").textContent = done + " / " + A.samples.length;
  }

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("cannot load " + url));
      img.src = url;
    });
  }

  async function loadRegions(stem) {
    if (A.regionsStem === stem && A.regions) return A.regions;
    try {
      const r = await fetch(api("regions/" + stemPath(stem)) + "?format=raw");
      if (!r.ok) { const j = await r.json(); say("region fill: " + j.error, 5000); return null; }
      const parts = new Uint8Array(await r.arrayBuffer());
      if (A.stem === stem) { A.regions = parts; A.regionsStem = stem; }
      return parts;
    } catch (err) { say("region fill: " + err.message, 5000); return null; }
  }

  async function openSample(stem) {
    if (!stem) return;
    await A.flush();
    A.loading = true;
    const image = await loadImage(api("samples/" + stemPath(stem) + "/image"));
    A.stem = stem; A.image = image; A.W = image.naturalWidth; A.H = image.naturalHeight;
    A.history = []; A.future = []; A.polygon = []; A.hatch = null; A.regions = null; A.regionsStem = null;
    let labelled = false;
    if (A.task === "keypoints") {
      const r = await fetch(api("labels/" + stemPath(stem)));
      A.points = r.ok ? (await r.json()).map((p) => p.slice()) : A.spec.keypoints.map(() => [0, 0, 0]);
      labelled = r.ok;
      const first = A.points.findIndex((p) => p[0] === 0 && p[1] === 0 && p[2] === 0);
      A.kp = first >= 0 ? first : 0;
    } else {
      const r = await fetch(api("labels/" + stemPath(stem)) + "?format=raw");
      A.ids = r.ok ? new Uint8Array(await r.arrayBuffer()) : new Uint8Array(A.W * A.H);
      labelled = r.ok;
      loadRegions(stem);                                  // in the background: ready by the first click
    }
    $("stem").textContent = stem;
    history.replaceState(null, "", "#" + encodeURIComponent(stem));
    setSaved(labelled ? "saved" : "none");
    renderSamples();
    renderPalette();
    renderLabels();
    fit();
    updateButtons();
    A.loading = false;
  }
  A.openSample = openSample;

  // --- the assistant ------------------------------------------------------------------------------------

  async function suggest() {
    if (!A.stem) return;
    const stem = A.stem;
    say("waiting for the interpreter of the current labels\u2026", 60000);
    $("suggest").disabled = true;
    try {
      await A.flush();
      const j = await fetchJSON(api("suggest/" + stemPath(stem)), { method: "POST", headers: { accept: "application/json" } });
      if (A.stem !== stem) return;
      remember();
      if (A.task === "keypoints") {
        A.points = j.keypoints.map((p) => p.slice());
      } else {
        A.ids = b64bytes(j.labels);
        A.hatch = b64bytes(j.uncertain);
      }
      changed();
      say("suggestion of the interpreter trained on " + j.trained_on + " labels" +
          (A.task === "keypoints" ? "" : "; " + (j.uncertain_pixels || 0) + " uncertain pixels hatched"), 4000);
    } catch (err) {
      say("suggest: " + err.message, 5000);
    } finally {
      updateButtons();
    }
  }

  async function nextSample() {
    try {
      await A.flush();
      const j = await fetchJSON(api("next"));
      if (!j.stem) { say("every sample is labelled"); return; }
      await openSample(j.stem);
      say("next: " + j.stem + " (" + j.why + ")", 2500);
    } catch (err) { say("next: " + err.message, 5000); }
  }

  async function pollStatus() {
    try {
      const s = await fetchJSON(api("status"));
      A.status = s;
      const el = $("assist");
      el.dataset.state = s.state;
      const text = {
        off: "assistant off", "no generator": "assistant: no generator",
        training: "assistant: training\u2026", queued: "assistant: about to train",
        ready: "assistant: ready (" + s.model_labelled + " labels)",
        "waiting for labels": "assistant: starts at " + s.min_labels + " labels (" + s.labelled + " so far)",
      }[s.state] || s.state;
      el.textContent = text;
      el.title = s.error || "";
    } catch (e) { /* the server may be restarting */ }
    updateButtons();
  }

  // --- panel --------------------------------------------------------------------------------------------

  function setTool(tool) {
    A.tool = tool;
    if (tool !== "polygon") A.polygon = [];
    for (const b of document.querySelectorAll("#tool-buttons button")) b.classList.toggle("active", b.dataset.tool === tool);
    redraw();
  }
  A.setTool = setTool;

  function setBrush(size) {
    A.brush = Math.max(1, Math.min(40, size));
    $("brush").value = A.brush;
    $("brush-out").textContent = A.brush;
    redraw();
  }
  A.setBrush = setBrush;

  function selectClass(i) {
    if (i < 0 || i >= A.spec.classes.length) return;
    A.cls = i;
    renderPalette();
  }
  A.selectClass = selectClass;
  A.selectKeypoint = selectKeypoint;

  function shortcut(i) { return i < 10 ? SHORTCUTS[i] : i < 20 ? "\u21e7" + SHORTCUTS[i - 10] : ""; }

  function renderPalette() {
    const ul = $("palette");
    ul.textContent = "";
    if (A.task === "keypoints") {
      $("palette-heading").textContent = "Keypoints";
      A.spec.keypoints.forEach((name, k) => {
        const li = document.createElement("li");
        const p = A.points ? A.points[k] : [0, 0, 0];
        const placed = !(p[0] === 0 && p[1] === 0 && p[2] === 0);
        li.innerHTML = '<span class="key"></span><span class="swatch"></span><span class="name"></span>' +
                       '<span class="state"></span><button class="vis" title="toggle visibility (V)">V</button>';
        li.querySelector(".key").textContent = shortcut(k);
        li.querySelector(".swatch").style.background = keypointColour(k);
        li.querySelector(".name").textContent = name;
        li.querySelector(".state").textContent = !placed ? "not placed" : p[2] > 0 ? "visible" : "hidden";
        li.dataset.index = k;
        if (k === A.kp) li.classList.add("active");
        li.addEventListener("click", () => selectKeypoint(k));
        li.querySelector(".vis").addEventListener("click", (ev) => { ev.stopPropagation(); A.kp = k; toggleVisibility(k); });
        ul.appendChild(li);
      });
      return;
    }
    $("palette-heading").textContent = "Classes";
    A.spec.classes.forEach((name, i) => {
      const li = document.createElement("li");
      li.innerHTML = '<span class="key"></span><span class="swatch"></span><span class="name"></span>';
      li.querySelector(".key").textContent = shortcut(i);
      const c = A.spec.palette[i];
      li.querySelector(".swatch").style.background = "rgb(" + c[0] + "," + c[1] + "," + c[2] + ")";
      li.querySelector(".name").textContent = name;
      li.dataset.index = i;
      if (i === A.cls) li.classList.add("active");
      li.addEventListener("click", () => selectClass(i));
      ul.appendChild(li);
    });
  }

  function updateButtons() {
    $("undo").disabled = !A.history.length;
    $("redo").disabled = !A.future.length;
    const s = A.status;
    $("suggest").disabled = !A.stem || !A.spec.assist || !s || s.labelled < s.min_labels || s.state === "no generator";
  }

  function buildPanel() {
    const tools = A.task === "keypoints"
      ? [["keypoint", "Keypoint", "K"], ["pan", "Pan", "H"]]
      : [["brush", "Brush", "B"], ["eraser", "Eraser", "E"], ["polygon", "Polygon", "P"], ["fill", "Flood fill", "F"],
         ["region", "Region fill", "R"], ["pan", "Pan", "H"]];
    const box = $("tool-buttons");
    box.textContent = "";
    for (const [tool, label, key] of tools) {
      const b = document.createElement("button");
      b.dataset.tool = tool;
      b.textContent = label + " (" + key + ")";
      b.addEventListener("click", () => setTool(tool));
      box.appendChild(b);
    }
    const keys = A.task === "keypoints"
      ? [["1\u20260", "pick a keypoint"], ["click", "place it; drag one to move it"], ["V", "visible / hidden"],
         ["Ctrl+Z / Ctrl+Y", "undo / redo"], ["S / N", "suggest / next sample"], ["wheel, H or Space+drag", "zoom, pan"]]
      : [["1\u20260, \u21e7+digit", "class"], ["B E P F R H", "brush, eraser, polygon, fill, region, pan"],
         ["[ ]", "brush size"], ["Enter / dblclick", "close the polygon"], ["Shift+click", "region: the whole cluster"],
         ["Ctrl+Z / Ctrl+Y", "undo / redo"], ["S / N", "suggest / next sample"], ["wheel, Space+drag", "zoom, pan"],
         ["\u2191 \u2193", "previous / next in the list"]];
    const help = $("help");
    help.textContent = "";
    for (const [k, what] of keys) {
      const div = document.createElement("div");
      const kbd = document.createElement("kbd");
      kbd.textContent = k;
      div.appendChild(kbd);
      div.appendChild(document.createTextNode(" " + what));
      help.appendChild(div);
    }
    $("brush").closest("label").hidden = A.task === "keypoints";
    $("opacity").closest("label").hidden = A.task === "keypoints";
    setTool(A.task === "keypoints" ? "keypoint" : "brush");
  }

  $("brush").addEventListener("input", (e) => setBrush(parseInt(e.target.value, 10)));
  $("opacity").addEventListener("input", (e) => {
    A.opacity = parseFloat(e.target.value);
    $("opacity-out").textContent = A.opacity.toFixed(2);
    redraw();
  });
  $("zoom-in").addEventListener("click", () => { const r = view.getBoundingClientRect(); zoomAt(1.25, r.width / 2, r.height / 2); });
  $("zoom-out").addEventListener("click", () => { const r = view.getBoundingClientRect(); zoomAt(0.8, r.width / 2, r.height / 2); });
  $("fit").addEventListener("click", fit);
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("suggest").addEventListener("click", suggest);
  $("next").addEventListener("click", nextSample);
  window.addEventListener("resize", resizeCanvas);

  async function start() {
    A.spec = await fetchJSON(api("spec"));
    A.task = A.spec.task;
    A.cls = A.spec.classes.length > 1 ? 1 : 0;
    A.samples = await fetchJSON(api("samples"));
    buildPanel();
    resizeCanvas();
    renderSamples();
    const wanted = decodeURIComponent(location.hash.slice(1));
    const first = A.samples.find((s) => s.stem === wanted) || A.samples.find((s) => !s.labelled) || A.samples[0];
    if (first) await openSample(first.stem);
    await pollStatus();
    setInterval(pollStatus, 1500);
    A.ready = true;
    document.body.dataset.ready = "1";
  }
  start().catch((err) => say("cannot start: " + err.message, 600000));
})();

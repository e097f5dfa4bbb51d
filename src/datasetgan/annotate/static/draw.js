// Drawing the page's canvas from the annotator's state A (see annotate.js): the image, the label
// overlay, a suggestion's hatching, keypoints, the polygon being drawn and the brush outline.
// Label point (u, v) shows at (A.ox + u * A.zoom, A.oy + v * A.zoom) CSS pixels.

export function toCanvas(A, u, v) { return { x: A.ox + u * A.zoom, y: A.oy + v * A.zoom }; }

// The label layer: class colours at the overlay opacity; class 0 (background) and unlabelled pixels clear.
export function renderLabels(A) {
  if (!A.ids || A.task !== "segmentation") return;
  const c = A.labelCanvas;
  if (c.width !== A.W || c.height !== A.H) { c.width = A.W; c.height = A.H; }
  const g = c.getContext("2d");
  const data = g.createImageData(A.W, A.H);
  const px = data.data, pal = A.spec.palette, n = pal.length;
  for (let i = 0; i < A.ids.length; i++) {
    const id = A.ids[i];
    if (id === 0 || id >= n) continue;
    const col = pal[id];
    px[4 * i] = col[0]; px[4 * i + 1] = col[1]; px[4 * i + 2] = col[2]; px[4 * i + 3] = 255;
  }
  g.putImageData(data, 0, 0);
  renderHatch(A);
}

function renderHatch(A) {
  const c = A.hatchCanvas;
  if (!A.hatch) { c.width = 0; return; }
  if (c.width !== A.W || c.height !== A.H) { c.width = A.W; c.height = A.H; }
  const g = c.getContext("2d");
  const data = g.createImageData(A.W, A.H);
  for (let i = 0; i < A.hatch.length; i++) if (A.hatch[i]) data.data[4 * i + 3] = 255;
  g.putImageData(data, 0, 0);
}

export function redraw(A, view, ctx) {
  const dpr = window.devicePixelRatio || 1;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, view.width, view.height);
  if (!A.image) return;
  ctx.setTransform(dpr * A.zoom, 0, 0, dpr * A.zoom, dpr * A.ox, dpr * A.oy);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(A.image, 0, 0);
  if (A.task === "segmentation") {
    ctx.globalAlpha = A.opacity;
    ctx.drawImage(A.labelCanvas, 0, 0);
    ctx.globalAlpha = 1;
    if (A.hatch && A.hatchCanvas.width) drawHatch(A, view, ctx, dpr);
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  if (A.task === "keypoints") drawKeypoints(A, ctx);
  if (A.polygon.length) drawPolygon(A, ctx);
  if (A.pointer && (A.tool === "brush" || A.tool === "eraser") && A.task === "segmentation") drawBrushOutline(A, ctx);
}

// Uncertain pixels of a suggestion: diagonal stripes in screen space, cut to the pixels' mask.
function drawHatch(A, view, ctx, dpr) {
  const s = A.scratch;
  if (s.width !== view.width || s.height !== view.height) { s.width = view.width; s.height = view.height; }
  const g = s.getContext("2d");
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.globalCompositeOperation = "source-over";
  g.clearRect(0, 0, s.width, s.height);
  g.strokeStyle = "rgba(255, 255, 255, 0.9)";
  g.lineWidth = 1.5 * dpr;
  g.beginPath();
  const step = 6 * dpr;
  for (let x = -s.height; x < s.width; x += step) { g.moveTo(x, s.height); g.lineTo(x + s.height, 0); }
  g.stroke();
  g.globalCompositeOperation = "destination-in";
  g.setTransform(dpr * A.zoom, 0, 0, dpr * A.zoom, dpr * A.ox, dpr * A.oy);
  g.imageSmoothingEnabled = false;
  g.drawImage(A.hatchCanvas, 0, 0);
  g.globalCompositeOperation = "source-over";
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.drawImage(s, 0, 0);
  ctx.restore();
}

function drawKeypoints(A, ctx) {
  if (!A.points) return;
  const names = A.spec.keypoints;
  ctx.font = "12px system-ui, sans-serif";
  A.points.forEach((p, k) => {
    if (p[2] === 0 && p[0] === 0 && p[1] === 0) return;          // never placed
    const s = toCanvas(A, p[0] + 0.5, p[1] + 0.5);
    const colour = keypointColour(k);
    ctx.beginPath();
    ctx.arc(s.x, s.y, k === A.kp ? 6 : 4.5, 0, 2 * Math.PI);
    ctx.lineWidth = 2;
    ctx.strokeStyle = p[2] > 0 ? "#fff" : "#9ca3af";
    ctx.fillStyle = p[2] > 0 ? colour : "rgba(0, 0, 0, 0)";
    ctx.fill();
    ctx.stroke();
    ctx.fillStyle = p[2] > 0 ? "#fff" : "#9ca3af";
    ctx.fillText(names[k] + (p[2] > 0 ? "" : " (hidden)"), s.x + 8, s.y - 6);
  });
}

function drawPolygon(A, ctx) {
  ctx.beginPath();
  A.polygon.forEach((p, i) => {
    const s = toCanvas(A, p[0], p[1]);
    if (i === 0) ctx.moveTo(s.x, s.y); else ctx.lineTo(s.x, s.y);
  });
  if (A.pointer) { const s = toCanvas(A, A.pointer.u, A.pointer.v); ctx.lineTo(s.x, s.y); }
  ctx.strokeStyle = "#fde047";
  ctx.lineWidth = 1.5;
  ctx.stroke();
  A.polygon.forEach((p, i) => {
    const s = toCanvas(A, p[0], p[1]);
    ctx.fillStyle = i === 0 ? "#f97316" : "#fde047";
    ctx.fillRect(s.x - 3, s.y - 3, 6, 6);
  });
}

function drawBrushOutline(A, ctx) {
  const r = A.brush / 2;
  const cx = Math.floor(A.pointer.u) + 0.5, cy = Math.floor(A.pointer.v) + 0.5;
  const s = toCanvas(A, cx, cy);
  ctx.beginPath();
  ctx.arc(s.x, s.y, Math.max(1, r * A.zoom), 0, 2 * Math.PI);
  ctx.strokeStyle = "rgba(255, 255, 255, 0.8)";
  ctx.lineWidth = 1;
  ctx.stroke();
}

export function keypointColour(k) {
  const hue = (k * 137.5) % 360;
  return "hsl(" + hue + ", 85%, 55%)";
}

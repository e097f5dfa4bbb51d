// Label-map edits, as pure functions of a layer {ids, hatch, W, H}: ids holds one class id per pixel
// and hatch (or null) marks a suggestion's uncertain pixels, both Uint8Array, row-major. Pixel
// (i, j) covers [i, i + 1) x [j, j + 1) in label coordinates (u, v). A painted pixel loses its hatch.

export function paint(layer, i, id) {
  layer.ids[i] = id;
  if (layer.hatch) layer.hatch[i] = 0;
}

// A brush of `size` pixels centred on the pixel under (u, v): the pixels within size / 2 of it
// (size 1: that pixel alone).
export function stamp(layer, u, v, size, id) {
  const pi = Math.floor(u), pj = Math.floor(v);
  const r = size / 2, reach = Math.ceil(r);
  for (let dj = -reach; dj <= reach; dj++) {
    for (let di = -reach; di <= reach; di++) {
      if (di * di + dj * dj > r * r && !(di === 0 && dj === 0)) continue;
      const i = pi + di, j = pj + dj;
      if (i < 0 || j < 0 || i >= layer.W || j >= layer.H) continue;
      paint(layer, j * layer.W + i, id);
    }
  }
}

// Stamps every half pixel from `from` (excluded) to `to`, so a fast stroke leaves no gaps.
export function line(layer, from, to, size, id) {
  const du = to.u - from.u, dv = to.v - from.v;
  const steps = Math.max(1, Math.ceil(2 * Math.max(Math.abs(du), Math.abs(dv))));
  for (let s = 1; s <= steps; s++) stamp(layer, from.u + du * s / steps, from.v + dv * s / steps, size, id);
}

// The 4-connected pixels around `start` for which `same(i)` holds.
export function component(W, H, start, same) {
  const seen = new Uint8Array(W * H), stack = [start], out = [];
  seen[start] = 1;
  while (stack.length) {
    const i = stack.pop();
    out.push(i);
    const x = i % W, y = (i - x) / W;
    if (x > 0 && !seen[i - 1] && same(i - 1)) { seen[i - 1] = 1; stack.push(i - 1); }
    if (x < W - 1 && !seen[i + 1] && same(i + 1)) { seen[i + 1] = 1; stack.push(i + 1); }
    if (y > 0 && !seen[i - W] && same(i - W)) { seen[i - W] = 1; stack.push(i - W); }
    if (y < H - 1 && !seen[i + W] && same(i + W)) { seen[i + W] = 1; stack.push(i + W); }
  }
  return out;
}

export function pixelAt(layer, u, v) { return Math.floor(v) * layer.W + Math.floor(u); }

// The connected pixels of the clicked pixel's class, in class `id`.
export function floodFill(layer, u, v, id) {
  const start = pixelAt(layer, u, v), old = layer.ids[start];
  for (const i of component(layer.W, layer.H, start, (k) => layer.ids[k] === old)) paint(layer, i, id);
}

// The clicked pixel's part (`parts`: a part id per pixel) in class `id`: its connected pixels, or
// with `whole` every pixel of the part.
export function regionFill(layer, parts, u, v, id, whole) {
  const start = pixelAt(layer, u, v), part = parts[start];
  if (whole) {
    for (let i = 0; i < parts.length; i++) if (parts[i] === part) paint(layer, i, id);
  } else {
    for (const i of component(layer.W, layer.H, start, (k) => parts[k] === part)) paint(layer, i, id);
  }
}

// The pixels whose centres lie inside the polygon `pts` ([[u, v], ...], even-odd rule), in class
// `id`: the LabelMe importer's rule, so a polygon here and there covers the same pixels.
export function fillPolygon(layer, pts, id) {
  for (let row = 0; row < layer.H; row++) {
    const yc = row + 0.5, xs = [];
    for (let k = 0; k < pts.length; k++) {
      const [x0, y0] = pts[k], [x1, y1] = pts[(k + 1) % pts.length];
      if (Math.min(y0, y1) <= yc && yc < Math.max(y0, y1)) xs.push(x0 + (yc - y0) / (y1 - y0) * (x1 - x0));
    }
    xs.sort((a, b) => a - b);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      const from = Math.max(0, Math.ceil(xs[k] - 0.5)), to = Math.min(layer.W, Math.ceil(xs[k + 1] - 0.5));
      for (let col = from; col < to; col++) paint(layer, row * layer.W + col, id);
    }
  }
}

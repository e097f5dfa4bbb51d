// A PNG encoder for class ids: 8-bit grey (mode L), in stored deflate blocks, so no compressor is needed.

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function encodeGreyPNG(ids, W, H) {
  const raw = new Uint8Array((W + 1) * H);
  for (let y = 0; y < H; y++) raw.set(ids.subarray(y * W, (y + 1) * W), y * (W + 1) + 1);  // filter 0
  const blocks = Math.max(1, Math.ceil(raw.length / 65535));
  const z = new Uint8Array(2 + raw.length + 5 * blocks + 4);
  z[0] = 0x78; z[1] = 0x01;
  let o = 2;
  for (let b = 0; b < blocks; b++) {
    const start = b * 65535, len = Math.min(65535, raw.length - start);
    z[o++] = b === blocks - 1 ? 1 : 0;
    z[o++] = len & 0xff; z[o++] = len >>> 8; z[o++] = ~len & 0xff; z[o++] = (~len >>> 8) & 0xff;
    z.set(raw.subarray(start, start + len), o); o += len;
  }
  let a = 1, bsum = 0;
  for (let i = 0; i < raw.length; i++) { a = (a + raw[i]) % 65521; bsum = (bsum + a) % 65521; }
  const adler = ((bsum << 16) | a) >>> 0;
  z[o++] = adler >>> 24; z[o++] = (adler >>> 16) & 0xff; z[o++] = (adler >>> 8) & 0xff; z[o++] = adler & 0xff;
  const chunks = [];
  function chunk(type, data) {
    const out = new Uint8Array(12 + data.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, data.length);
    for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
    out.set(data, 8);
    dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    chunks.push(out);
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, W); dv.setUint32(4, H);
  ihdr[8] = 8; ihdr[9] = 0; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;   // 8-bit grey, no interlace
  chunk("IHDR", ihdr);
  chunk("IDAT", z);
  chunk("IEND", new Uint8Array(0));
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  const total = sig.length + chunks.reduce((s, c) => s + c.length, 0);
  const png = new Uint8Array(total);
  png.set(sig, 0);
  let p = sig.length;
  for (const c of chunks) { png.set(c, p); p += c.length; }
  return png;
}

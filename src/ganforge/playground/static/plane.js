// 2-D mode: D's P(real) over the plane as a heat-map, real and fake points, G's warped manifold grid and
// the gradient arrows, all on one <canvas>. The heat-map is written into an ImageData buffer of res x res
// pixels and scaled up with one drawImage, so a redraw costs the same at any canvas size.

const LUT = (() => {
  // P(real) -> colour: purple (fake) through white to green (real), as GAN Lab.
  const t = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const p = i / 255;
    const a = Math.abs(p - 0.5) * 2;
    const [r, g, b] = p >= 0.5 ? [64, 160, 90] : [150, 90, 190];
    t[i * 3] = 255 + (r - 255) * a;
    t[i * 3 + 1] = 255 + (g - 255) * a;
    t[i * 3 + 2] = 255 + (b - 255) * a;
  }
  return t;
})();

export class PlaneView {
  constructor(canvas, { onDraw } = {}) {
    this.canvas = canvas;
    this.g = canvas.getContext("2d");
    this.off = document.createElement("canvas");
    this.image = null;
    this.bounds = [-1.5, 1.5, -1.5, 1.5];
    this.last = null;
    this.drawn = null; // points of a drawn distribution, shown while no session runs
    this.show = { heat: true, real: true, fake: true, manifold: true, grad: true };
    this.onDraw = onDraw;
    this.drawing = false;
    this.brush = false;
    this.frames = 0;
    canvas.addEventListener("pointerdown", (e) => { if (this.brush) { this.drawing = true; this.paint(e); } });
    canvas.addEventListener("pointermove", (e) => { if (this.drawing) this.paint(e); });
    window.addEventListener("pointerup", () => { this.drawing = false; });
  }

  toPlane(px, py) {
    const [x0, x1, y0, y1] = this.bounds;
    // px, py are from the border box's corner: take off the border so they count from the drawing area's
    px -= this.canvas.clientLeft;
    py -= this.canvas.clientTop;
    return [x0 + (px / this.canvas.clientWidth) * (x1 - x0), y1 - (py / this.canvas.clientHeight) * (y1 - y0)];
  }

  toCanvas(x, y) {
    const [x0, x1, y0, y1] = this.bounds;
    return [((x - x0) / (x1 - x0)) * this.canvas.width, ((y1 - y) / (y1 - y0)) * this.canvas.height];
  }

  paint(e) {
    const r = this.canvas.getBoundingClientRect();
    const [x, y] = this.toPlane(e.clientX - r.left, e.clientY - r.top);
    const span = this.bounds[1] - this.bounds[0];
    const pts = [];
    for (let k = 0; k < 4; k++) {
      const a = Math.random() * 2 * Math.PI, d = Math.random() * span * 0.02;
      pts.push([+(x + d * Math.cos(a)).toFixed(4), +(y + d * Math.sin(a)).toFixed(4)]);
    }
    if (this.onDraw) this.onDraw(pts);
  }

  // plane: the `plane` object of an update (or null to draw only the drawn points).
  draw(plane) {
    if (plane) { this.last = plane; this.bounds = plane.bounds || this.bounds; }
    const p = this.last;
    const c = this.canvas, g = this.g;
    const W = c.width, H = c.height;
    g.clearRect(0, 0, W, H);
    if (p && p.d && this.show.heat) {
      const res = p.d.length, cols = p.d[0].length;
      if (!this.image || this.image.width !== cols || this.image.height !== res) {
        this.off.width = cols;
        this.off.height = res;
        this.image = new ImageData(cols, res);
      }
      const buf = this.image.data;
      for (let i = 0; i < res; i++) {
        const row = p.d[res - 1 - i]; // row 0 of d is the bottom (ymin) of the plane
        for (let j = 0; j < cols; j++) {
          const q = ((Math.max(0, Math.min(1, row[j])) * 255) | 0) * 3, o = (i * cols + j) * 4;
          buf[o] = LUT[q]; buf[o + 1] = LUT[q + 1]; buf[o + 2] = LUT[q + 2]; buf[o + 3] = 255;
        }
      }
      this.off.getContext("2d").putImageData(this.image, 0, 0);
      g.imageSmoothingEnabled = true;
      g.drawImage(this.off, 0, 0, W, H);
    }
    if (p && p.manifold && this.show.manifold) this.drawManifold(p.manifold);
    if (p && p.grad && this.show.grad) this.drawGrad(p.grad);
    const real = p && p.real ? p.real : this.drawn;
    if (real && this.show.real) this.dots(real, "#1b7f3a");
    if (p && p.fake && this.show.fake) this.dots(p.fake, "#7b3fa8");
    this.frames++;
  }

  dots(pts, color) {
    const g = this.g;
    g.fillStyle = color;
    for (const [x, y] of pts) {
      const [X, Y] = this.toCanvas(x, y);
      g.fillRect(X - 1.5, Y - 1.5, 3, 3);
    }
  }

  drawManifold(rows) {
    const g = this.g;
    g.strokeStyle = "rgba(60, 60, 60, 0.45)";
    g.lineWidth = 1;
    const line = (pts) => {
      g.beginPath();
      pts.forEach(([x, y], k) => { const [X, Y] = this.toCanvas(x, y); if (k) g.lineTo(X, Y); else g.moveTo(X, Y); });
      g.stroke();
    };
    for (const row of rows) line(row);
    const n = rows[0] ? rows[0].length : 0;
    for (let j = 0; j < n; j++) line(rows.map((r) => r[j]));
  }

  drawGrad(arrows) {
    const g = this.g;
    let m = 1e-12;
    for (const a of arrows) m = Math.max(m, Math.hypot(a[2], a[3]));
    const span = this.bounds[1] - this.bounds[0];
    const k = (span * 0.06) / m; // the longest arrow is 6% of the plane
    g.strokeStyle = "rgba(30, 30, 30, 0.7)";
    g.lineWidth = 1;
    for (const [x, y, dx, dy] of arrows) {
      const [X0, Y0] = this.toCanvas(x, y);
      const [X1, Y1] = this.toCanvas(x + dx * k, y + dy * k);
      const ang = Math.atan2(Y1 - Y0, X1 - X0), h = Math.min(4, Math.hypot(X1 - X0, Y1 - Y0) / 2);
      g.beginPath();
      g.moveTo(X0, Y0); g.lineTo(X1, Y1);
      g.lineTo(X1 - h * Math.cos(ang - 0.5), Y1 - h * Math.sin(ang - 0.5));
      g.moveTo(X1, Y1);
      g.lineTo(X1 - h * Math.cos(ang + 0.5), Y1 - h * Math.sin(ang + 0.5));
      g.stroke();
    }
  }
}

// Points from CSV text: one "x,y" per line; a header line and blank lines are skipped.
export function parseCsvPoints(text) {
  const pts = [];
  for (const line of text.split(/\r?\n/)) {
    const parts = line.split(/[,;\s]+/).filter(Boolean);
    if (parts.length < 2) continue;
    const x = Number(parts[0]), y = Number(parts[1]);
    if (Number.isFinite(x) && Number.isFinite(y)) pts.push([x, y]);
  }
  return pts;
}

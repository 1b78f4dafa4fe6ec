// Small line charts on <canvas>: one chart, several series over a shared x (the step).

export class LineChart {
  // series: [{key, label, color}]; range: [min, max] fixed, or null to fit the data.
  constructor(canvas, series, { range = null, title = "" } = {}) {
    this.canvas = canvas;
    this.series = series;
    this.range = range;
    this.title = title;
  }

  draw(xs, data) {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || c.width, h = c.clientHeight || c.height;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const pad = { l: 38, r: 6, t: 16, b: 14 };
    const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
    let lo = Infinity, hi = -Infinity;
    if (this.range) [lo, hi] = this.range;
    else {
      for (const s of this.series) {
        for (const v of data[s.key] || []) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      }
      if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
      if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
    }
    const n = xs ? xs.length : 0;
    const x0 = n ? xs[0] : 0, x1 = n ? xs[n - 1] : 1;
    const sx = (x) => pad.l + (x1 > x0 ? ((x - x0) / (x1 - x0)) * pw : pw);
    const sy = (v) => pad.t + ph - ((v - lo) / (hi - lo)) * ph;
    g.strokeStyle = "#ccc";
    g.lineWidth = 1;
    g.strokeRect(pad.l, pad.t, pw, ph);
    g.fillStyle = "#555";
    g.font = "10px sans-serif";
    g.textAlign = "right";
    g.fillText(fmt(hi), pad.l - 3, pad.t + 8);
    g.fillText(fmt(lo), pad.l - 3, pad.t + ph);
    g.textAlign = "left";
    if (n) g.fillText("step " + x1, pad.l + 2, h - 3);
    let lx = pad.l + 2;
    g.fillStyle = "#222";
    if (this.title) { g.fillText(this.title, lx, 11); lx += g.measureText(this.title).width + 10; }
    for (const s of this.series) {
      const vals = data[s.key] || [];
      g.fillStyle = s.color;
      g.fillText("■ " + s.label, lx, 11);
      lx += g.measureText("■ " + s.label).width + 8;
      g.strokeStyle = s.color;
      g.lineWidth = 1.5;
      g.beginPath();
      let started = false;
      for (let i = 0; i < Math.min(n, vals.length); i++) {
        const v = vals[i];
        if (!Number.isFinite(v)) { started = false; continue; }
        const X = sx(xs[i]), Y = sy(Math.min(hi, Math.max(lo, v)));
        if (started) g.lineTo(X, Y); else { g.moveTo(X, Y); started = true; }
      }
      g.stroke();
    }
  }
}

function fmt(v) {
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
}

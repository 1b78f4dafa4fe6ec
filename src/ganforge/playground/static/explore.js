// The Explore tab: load a ganforge run, then render samples with seed, truncation, class, principal
// directions (GANSpace), the run's named directions (`ganforge directions`), interpolation between two
// seeds and style mixing (StyleGAN only).

import { clearError, get, post } from "./api.js";

const $ = (id) => document.getElementById(id);

export class Explorer {
  constructor() {
    this.id = null;
    this.info = null;
    this.timer = null;
    this.busy = false;
    this.again = false;
    $("ex-refresh").addEventListener("click", () => this.listRuns());
    $("ex-load").addEventListener("click", () => this.load());
    for (const id of ["ex-seed", "ex-psi", "ex-class", "ex-interp-on", "ex-seed-b", "ex-t", "ex-mix-on",
      "ex-mix-seed", "ex-mix-layer", "ex-space"]) {
      // both: a select may report a choice only as "change"; the debounce renders once
      for (const ev of ["input", "change"]) $(id).addEventListener(ev, () => this.schedule());
    }
    $("ex-random").addEventListener("click", () => {
      $("ex-seed").value = Math.floor(Math.random() * 100000);
      this.schedule();
    });
    $("ex-reset-dirs").addEventListener("click", () => {
      for (const s of $("ex-dirs").querySelectorAll("input")) s.value = 0;
      for (const s of $("ex-named").querySelectorAll("input")) s.value = 0;
      this.schedule();
    });
  }

  async listRuns() {
    const data = await get("/api/runs");
    const sel = $("ex-runs");
    const runs = (data && data.runs) || [];
    sel.replaceChildren(...runs.map((r) => {
      const o = document.createElement("option");
      o.value = r.name;
      o.textContent = `${r.name} (${r.family}${r.resolution ? ", " + r.resolution + "px" : ""}${r.conditional ? ", conditional" : ""})`;
      return o;
    }));
    $("ex-none").hidden = runs.length > 0;
    return runs;
  }

  async load(name) {
    const run = name || $("ex-runs").value;
    if (!run) return;
    const data = await post("/api/explore", { run });
    clearError();
    this.id = data.id;
    this.info = data.info;
    const info = data.info;
    $("ex-info").textContent = `${run}: ${info.family}, z ${info.z_dim}` +
      (info.num_classes ? `, ${info.num_classes} classes` : "") + (info.stylegan ? `, StyleGAN (${info.num_ws} ws)` : "");
    const cls = $("ex-class");
    const names = info.classes && info.classes.length ? info.classes : [...Array(info.num_classes || 0).keys()];
    cls.replaceChildren(...names.map((c, i) => {
      const o = document.createElement("option");
      o.value = i;
      o.textContent = String(c);
      return o;
    }));
    $("ex-class-row").hidden = !info.num_classes;
    $("ex-mix-row").hidden = !info.stylegan;
    $("ex-space-row").hidden = !info.stylegan;
    $("ex-mix-layer").max = Math.max(0, (info.num_ws || 1) - 1);
    const dirs = $("ex-dirs");
    dirs.replaceChildren();
    for (let k = 0; k < (info.directions || 0); k++) {
      const s = document.createElement("input");
      Object.assign(s, { type: "range", min: -3, max: 3, step: 0.1, value: 0 });
      s.addEventListener("input", () => this.schedule());
      const lab = document.createElement("label");
      lab.append(`PC ${k + 1} `, s);
      dirs.append(lab);
    }
    this.namedSliders(info.named || [], info.named_skipped || []);
    $("ex-controls").hidden = false;
    await this.render();
  }

  // One slider per named direction of the run's directions files, labelled with its name; the file,
  // method, space and layers are in its tooltip, files left out in a note below.
  namedSliders(named, skipped) {
    const box = $("ex-named");
    box.replaceChildren();
    for (const d of named) {
      const s = document.createElement("input");
      Object.assign(s, { type: "range", min: -3, max: 3, step: 0.1, value: 0 });
      s.dataset.key = d.key;
      s.addEventListener("input", () => this.schedule());
      const lab = document.createElement("label");
      const where = d.space === "w" && d.layers && d.layers.length
        ? `w, layers ${d.layers[0]}-${d.layers[d.layers.length - 1]}` : d.space;
      lab.title = `${d.file}: ${d.method}, ${where}`;
      lab.append(`${d.name} `, s);
      box.append(lab);
    }
    $("ex-named-row").hidden = named.length === 0 && skipped.length === 0;
    $("ex-named-none").hidden = named.length > 0;
    $("ex-named-skipped").textContent = skipped.length ? "left out: " + skipped.join("; ") : "";
  }

  body() {
    const num = (id) => Number($(id).value);
    return {
      seed: num("ex-seed"),
      n: 1,
      psi: num("ex-psi"),
      class: this.info && this.info.num_classes ? num("ex-class") : null,
      directions: [...$("ex-dirs").querySelectorAll("input")].map((s) => Number(s.value)),
      named: Object.fromEntries([...$("ex-named").querySelectorAll("input")]
        .filter((s) => Number(s.value) !== 0).map((s) => [s.dataset.key, Number(s.value)])),
      mix: this.info && this.info.stylegan && $("ex-mix-on").checked
        ? { seed: num("ex-mix-seed"), from_layer: num("ex-mix-layer") } : null,
      interp: $("ex-interp-on").checked ? { seed_b: num("ex-seed-b"), t: num("ex-t") } : null,
      space: this.info && this.info.stylegan ? $("ex-space").value : "z",
    };
  }

  schedule() {
    $("ex-psi-val").textContent = $("ex-psi").value;
    $("ex-t-val").textContent = $("ex-t").value;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.render(), 120);
  }

  // One render in flight at a time; a change meanwhile renders once more after it.
  async render() {
    if (!this.id) return;
    if (this.busy) { this.again = true; return; }
    this.busy = true;
    try {
      const data = await post(`/api/explore/${this.id}/render`, this.body());
      $("ex-image").src = data.image;
      const a = $("ex-download");
      a.href = data.image;
      a.download = `ganforge-seed${$("ex-seed").value}.png`;
      a.hidden = false;
    } catch {
      // shown in #message by the api module
    } finally {
      this.busy = false;
      if (this.again) { this.again = false; this.render(); }
    }
  }
}

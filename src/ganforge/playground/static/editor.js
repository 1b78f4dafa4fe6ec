// The layer-list editor for one network (G or D): add, remove, move, edit parameters, GAN Lab's ± buttons;
// each row shows its output shape from /api/check, and a row whose shape fails is marked `layer-error`.

const FILL = { out: 16, shape: [1, 28, 28] }; // values for required parameters of a newly added layer
const MODES = ["nearest", "bilinear"];

function fmtValue(v) {
  if (Array.isArray(v)) return v.join(", ");
  return v === null || v === undefined ? "" : String(v);
}

// Text from an input back to a layer value; anything that does not parse is kept as typed, so the
// server's check names the problem on that layer.
function parseValue(name, text, def) {
  const s = text.trim();
  if (name === "shape" || Array.isArray(def)) {
    const parts = s.split(/[\s,]+/).filter(Boolean);
    const nums = parts.map(Number);
    return parts.length && nums.every(Number.isInteger) ? nums : s;
  }
  if (name === "padding" && s === "same") return s;
  if (name === "mode") return s;
  if (s === "") return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : s;
}

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

export class LayerEditor {
  // list: the <ol>; getLayers(): the setup's array for this net; onChange(structural): after every edit.
  constructor(list, net, { layerTypes, getLayers, onChange }) {
    this.list = list;
    this.net = net;
    this.types = layerTypes;
    this.getLayers = getLayers;
    this.onChange = onChange;
  }

  newLayer(type) {
    const layer = { type };
    for (const [k, v] of Object.entries(this.types[type] || {})) {
      if (v === null) layer[k] = JSON.parse(JSON.stringify(FILL[k] ?? 1));
    }
    return layer;
  }

  changed(structural) {
    if (structural) this.render();
    this.onChange(structural);
  }

  add(type, at) {
    const layers = this.getLayers();
    layers.splice(at ?? layers.length, 0, this.newLayer(type));
    this.changed(true);
  }

  remove(i) { this.getLayers().splice(i, 1); this.changed(true); }

  move(i, by) {
    const layers = this.getLayers();
    const j = i + by;
    if (j < 0 || j >= layers.length) return;
    [layers[i], layers[j]] = [layers[j], layers[i]];
    this.changed(true);
  }

  // GAN Lab's "+ layer" / "- layer": a hidden block is a layer with `out` and the activation after it;
  // the last such layer is the output layer and stays.
  hiddenBlocks() {
    const layers = this.getLayers();
    const idx = layers.map((l, i) => ("out" in l ? i : -1)).filter((i) => i >= 0);
    return idx.slice(0, -1);
  }

  addBlock() {
    const layers = this.getLayers();
    const blocks = this.hiddenBlocks();
    if (!blocks.length) {
      this.add("fc", Math.max(0, layers.length - 1));
      return;
    }
    const i = blocks[blocks.length - 1];
    const act = layers[i + 1] && !("out" in layers[i + 1]) ? [layers[i + 1]] : [];
    const copy = JSON.parse(JSON.stringify([layers[i], ...act]));
    layers.splice(i + 1 + act.length, 0, ...copy);
    this.changed(true);
  }

  removeBlock() {
    const layers = this.getLayers();
    const blocks = this.hiddenBlocks();
    if (!blocks.length) return;
    const i = blocks[blocks.length - 1];
    const n = layers[i + 1] && !("out" in layers[i + 1]) ? 2 : 1;
    layers.splice(i, n);
    this.changed(true);
  }

  render() {
    const layers = this.getLayers();
    this.list.replaceChildren(...layers.map((layer, i) => this.row(layer, i)));
  }

  row(layer, i) {
    const typeSel = el("select", { class: "ltype", title: "layer type" },
      ...Object.keys(this.types).map((t) => el("option", { value: t }, t)));
    typeSel.value = layer.type;
    typeSel.addEventListener("change", () => {
      this.getLayers()[i] = this.newLayer(typeSel.value);
      this.changed(true);
    });
    const params = el("span", { class: "params" });
    const defs = this.types[layer.type] || {};
    for (const [name, def] of Object.entries(defs)) {
      const value = name in layer ? layer[name] : def;
      let input;
      if (name === "mode") {
        input = el("select", {}, ...MODES.map((m) => el("option", { value: m }, m)));
        input.value = value;
      } else {
        input = el("input", { type: "text", size: name === "shape" ? 8 : 3, value: fmtValue(value) });
      }
      input.dataset.param = name;
      input.addEventListener(name === "mode" ? "change" : "input", () => {
        const v = parseValue(name, input.value, def);
        if (v === null && def !== null) delete layer[name];
        else layer[name] = v;
        this.changed(false);
      });
      params.append(el("label", {}, name + " ", input));
    }
    const kids = [el("span", { class: "idx" }, String(i)), typeSel, params];
    if ("out" in defs) {
      const bump = (d) => () => {
        const cur = Number.isInteger(layer.out) ? layer.out : 1;
        layer.out = Math.max(1, cur + d);
        this.render();
        this.onChange(false);
      };
      kids.push(el("span", { class: "pm" },
        el("button", { class: "small", title: "one neuron/channel fewer", onclick: bump(-1) }, "−"),
        el("button", { class: "small", title: "one neuron/channel more", onclick: bump(1) }, "+")));
    }
    kids.push(el("span", { class: "shape", title: "output shape (batch left out)" }, ""),
      el("span", { class: "btns" },
        el("button", { class: "small up", title: "move up", onclick: () => this.move(i, -1) }, "↑"),
        el("button", { class: "small down", title: "move down", onclick: () => this.move(i, 1) }, "↓"),
        el("button", { class: "small remove", title: "remove", onclick: () => this.remove(i) }, "✕")),
      el("div", { class: "layer-msg" }));
    return el("li", { class: "layer", "data-index": String(i) }, ...kids);
  }

  // shapes: [{type, shape|null}] from /api/check; errors: [{index, error}] for this net.
  showCheck(shapes, errors) {
    const rows = this.list.querySelectorAll("li.layer");
    rows.forEach((row, i) => {
      const s = shapes && shapes[i];
      row.querySelector(".shape").textContent = s && s.shape ? "→ [" + s.shape.join(", ") + "]" : "";
      row.classList.remove("layer-error");
      row.querySelector(".layer-msg").textContent = "";
    });
    for (const e of errors || []) this.markError(e.index, e.error);
  }

  markError(index, text) {
    const row = this.list.querySelector(`li.layer[data-index="${index}"]`);
    if (!row) return;
    row.classList.add("layer-error");
    row.querySelector(".layer-msg").textContent = text;
  }
}

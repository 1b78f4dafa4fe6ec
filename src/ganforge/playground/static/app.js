// The playground page: setup editing (data, layers, hyperparameters), the training session and its live
// views, export, share and the Explore tab. Plain ES modules; the server's API is in the contract.

import { api, clearError, clearMessage, del, get, post, report, setLayerErrorHook, showMessage, token, withToken } from "./api.js";
import { LineChart } from "./charts.js";
import { LayerEditor } from "./editor.js";
import { Explorer } from "./explore.js";
import { parseCsvPoints, PlaneView } from "./plane.js";
import { clone, downloadJson, setupFromHash, shareUrl, writeHash } from "./setup.js";

const $ = (id) => document.getElementById(id);
const NETS = ["g", "d"];

const st = {
  meta: null,
  setup: null,
  perMode: {},           // the last setup of the other mode, so switching back keeps it
  session: null,         // {id, setup: JSON string it was made from}
  events: null,
  check: null,
  checkOk: false,
  checkSeq: 0,
  checkTimer: null,
  checkMsg: false,       // #message holds a check error (cleared when the check passes)
  uploads: {},           // "upload:u1" -> stats
  pending: null,         // the latest update, drawn on the next animation frame
  last: null,
  divergence: { step: [], kl: [], js: [] },
  timeline: [],
  nextSnap: 1,
  editors: {},
  charts: {},
};

// ---------- setup <-> controls ----------

function presetFor(mode) {
  const presets = st.meta.presets;
  const pick = mode === "2d" ? ["toy-2d"] : ["gan-playground"];
  for (const name of pick) if (presets[name]) return [name, presets[name]];
  const any = Object.entries(presets).find(([, s]) => (s.mode || "images") === mode);
  return any || Object.entries(presets)[0];
}

// Fill what a hand-written or older setup leaves out from the preset of its mode.
function completeSetup(setup) {
  const mode = setup.mode === "2d" ? "2d" : "images";
  const base = clone(presetFor(mode)[1]);
  const out = { ...base, ...setup, mode };
  out.data = { ...base.data, ...(setup.data || {}) };
  out.data2d = { ...(base.data2d || { distribution: "ring", points: null }), ...(setup.data2d || {}) };
  for (const n of NETS) out[n] = { ...base[n], ...(setup[n] || {}) };
  return out;
}

function fillSelect(sel, options) {
  sel.replaceChildren(...options.map(([value, text]) => {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    return o;
  }));
}

function renderData() {
  const s = st.setup;
  const images = s.mode !== "2d";
  $("data-images").hidden = !images;
  $("data-2d").hidden = images;
  $("view-images").hidden = !images;
  $("view-2d").hidden = images;
  $("mode-images").classList.toggle("active", images);
  $("mode-2d").classList.toggle("active", !images);
  $("btn-export").disabled = !images;
  const sources = Object.keys(st.meta.datasets).map((k) => [k, k]);
  for (const u of Object.keys(st.uploads)) if (st.uploads[u].kind === "images") sources.push([u, u + " (uploaded)"]);
  if (s.data.source && !sources.some(([v]) => v === s.data.source)) sources.push([s.data.source, s.data.source]);
  fillSelect($("data-source"), sources);
  $("data-source").value = s.data.source;
  $("data-normalize").value = s.data.normalize;
  $("conditional").checked = !!s.conditional;
  const dists = (st.meta.distributions || []).map((d) => [d, d]);
  if (!dists.some(([d]) => d === "drawn")) dists.push(["drawn", "drawn"]);
  for (const u of Object.keys(st.uploads)) if (st.uploads[u].kind === "points") dists.push([u, u + " (uploaded)"]);
  if (s.data2d.distribution && !dists.some(([v]) => v === s.data2d.distribution)) {
    dists.push([s.data2d.distribution, s.data2d.distribution]);
  }
  fillSelect($("dist"), dists);
  $("dist").value = s.data2d.distribution;
  $("drawn-count").textContent = s.data2d.points ? `${s.data2d.points.length} points` : "";
  renderStats();
}

function renderStats() {
  const s = st.setup;
  const box = $("data-stats");
  const up = st.uploads[s.data.source];
  const stats = (up && up.stats) || (st.check && st.check.data) || null;
  const shape = st.check && st.check.input && st.check.input.d;
  const desc = st.meta.datasets[s.data.source];
  const parts = [];
  if (typeof desc === "string") parts.push(desc);
  if (stats) {
    if (stats.examples !== undefined) parts.push(`examples: ${stats.examples}`);
    if (stats.shape) parts.push(`input shape: [${stats.shape.join(", ")}]`);
    if (stats.classes) parts.push(`classes: ${stats.classes.length} (${stats.classes.slice(0, 12).join(", ")}${stats.classes.length > 12 ? ", …" : ""})`);
    if (stats.skipped) parts.push(`skipped: ${stats.skipped}`);
  } else if (shape && s.mode !== "2d") {
    parts.push(`input shape: [${shape.join(", ")}]`);
  } else if (desc && typeof desc === "object") {
    for (const [k, v] of Object.entries(desc)) parts.push(`${k}: ${Array.isArray(v) ? v.join(", ") : v}`);
  }
  box.replaceChildren(...parts.map((p) => { const d = document.createElement("div"); d.textContent = p; return d; }));
}

function renderHyper(net) {
  const box = $(net + "-hyper");
  const h = st.setup[net];
  const opts = st.meta.optimizers;
  const sel = document.createElement("select");
  fillSelect(sel, Object.keys(opts).map((k) => [k, k]));
  sel.value = h.opt;
  sel.id = net + "-opt";
  sel.addEventListener("change", () => { h.opt = sel.value; renderHyper(net); changed(); });
  const lab = document.createElement("label");
  lab.append("optimizer ", sel);
  const kids = [lab];
  for (const f of opts[h.opt] || []) {
    const l = document.createElement("label");
    if (f === "betas") {
      const b = Array.isArray(h.betas) ? h.betas : [0.9, 0.999];
      h.betas = b;
      l.append("betas ");
      for (const k of [0, 1]) {
        const inp = numInput(`${net}-beta${k + 1}`, b[k], 0.01, (v) => { h.betas[k] = v; });
        l.append(inp);
      }
    } else {
      if (h[f] === undefined) h[f] = f === "lr" ? 0.001 : 0;
      l.append(f === "lr" ? "learning rate " : f + " ", numInput(`${net}-${f}`, h[f], "any", (v) => { h[f] = v; }));
    }
    kids.push(l);
  }
  box.replaceChildren(...kids);
}

function numInput(id, value, step, set) {
  const inp = document.createElement("input");
  Object.assign(inp, { type: "number", step, value, id });
  inp.className = "num";
  inp.addEventListener("input", () => {
    if (inp.value === "" || !Number.isFinite(Number(inp.value))) return;
    set(Number(inp.value));
    changed();
  });
  return inp;
}

function renderTraining() {
  const s = st.setup;
  $("batch-size").value = s.batch_size;
  $("loss").value = s.loss;
  $("d-steps").value = s.d_steps;
  $("g-steps").value = s.g_steps ?? 1;
  $("seed").value = s.seed;
  $("z-dim").value = s.z_dim;
}

function renderAll() {
  renderData();
  for (const n of NETS) { st.editors[n].render(); renderHyper(n); }
  renderTraining();
  const match = Object.entries(st.meta.presets).find(([, p]) => JSON.stringify(completeSetup(p)) === JSON.stringify(st.setup));
  $("preset").value = match ? match[0] : "";
  changed({ keepPreset: true });
}

// Every edit lands here: the URL, the share link, the shape check; a later TRAIN makes a new session.
function changed({ keepPreset = false } = {}) {
  writeHash(st.setup);
  $("share-link").href = shareUrl(st.setup);
  if (!keepPreset) $("preset").value = "";
  if (st.session && st.session.setup !== JSON.stringify(st.setup)) {
    $("run-state").textContent = "setup changed: TRAIN or STEP starts afresh";
  }
  scheduleCheck();
}

function setSetup(setup) {
  const old = st.setup;
  st.setup = completeSetup(setup);
  if (old && old.mode !== st.setup.mode) dropSession();
  renderAll();
}

// ---------- shape check ----------

function scheduleCheck() {
  clearTimeout(st.checkTimer);
  st.checkOk = false;
  updateButtons();
  st.checkTimer = setTimeout(runCheck, 200);
}

async function runCheck() {
  const seq = ++st.checkSeq;
  let data;
  try {
    data = await post("/api/check", { setup: st.setup }, { quiet: true });
  } catch (err) {
    if (seq !== st.checkSeq) return;
    st.check = null;
    st.checkOk = false;
    for (const n of NETS) st.editors[n].showCheck(null, []);
    report(err);
    st.checkMsg = true;
    updateButtons();
    return;
  }
  if (seq !== st.checkSeq) return; // a newer edit is being checked
  st.check = data;
  st.checkOk = !!data.ok;
  for (const n of NETS) st.editors[n].showCheck(data[n], (data.errors || []).filter((e) => e.net === n));
  for (const n of NETS) {
    const inp = data.input && data.input[n];
    $(n + "-input").textContent = inp ? `input [${inp.join(", ")}]` : "";
    const p = data.params && data.params[n];
    $(n + "-params").textContent = p !== undefined && p !== null ? `${p.toLocaleString("en")} parameters` : "";
  }
  if (data.errors && data.errors.length) {
    showMessage(data.errors[0].error);
    st.checkMsg = true;
  } else if (st.checkMsg) {
    clearMessage();
    st.checkMsg = false;
  }
  renderStats();
  updateButtons();
}

function updateButtons() {
  $("btn-train").disabled = !st.checkOk;
  for (const id of ["btn-step", "btn-step-g", "btn-step-d"]) $(id).disabled = !st.checkOk;
  const running = st.last && st.last.state === "running";
  $("btn-train").classList.toggle("active", !!running);
}

// ---------- session ----------

async function ensureSession() {
  const key = JSON.stringify(st.setup);
  if (st.session && st.session.setup === key) return st.session.id;
  dropSession();
  const data = await post("/api/sessions", { setup: st.setup });
  st.session = { id: data.id, setup: key };
  document.body.dataset.session = data.id;
  resetViews();
  connect(data.id);
  $("timeline-gif").href = withToken(`/api/sessions/${data.id}/timeline.gif`);
  return data.id;
}

function dropSession() {
  if (st.events) { st.events.close(); st.events = null; }
  if (st.session) {
    const id = st.session.id;
    st.session = null;
    delete document.body.dataset.session;
    del(`/api/sessions/${id}`, { quiet: true }).catch(() => {});
  }
  st.last = null;
  $("run-state").textContent = "no session";
  $("timeline-gif").hidden = true;
  updateButtons();
}

function connect(id) {
  const es = new EventSource(withToken(`/api/sessions/${id}/events`));
  st.events = es;
  es.addEventListener("update", (e) => {
    if (st.events !== es) return;
    st.pending = JSON.parse(e.data);
    requestAnimationFrame(drawPending);
  });
  es.addEventListener("error", () => {
    if (st.events === es && es.readyState === EventSource.CLOSED) {
      // the server ended the session (idle timeout, restart): the next TRAIN or STEP makes a new one
      st.events = null;
      st.session = null;
      delete document.body.dataset.session;
      showMessage("live updates stopped: the session has ended on the server; press TRAIN for a new one");
    }
  });
}

async function control(action) {
  try {
    if (action === "stop" && !st.session) return;
    if (action !== "stop") await ensureSession();
    const data = await post(`/api/sessions/${st.session.id}/control`,
      { action, delay_ms: Number($("slowmo").value) });
    $("run-state").textContent = data.state;
    if (st.checkMsg === false && $("message").className === "error") clearMessage();
  } catch {
    // the api module has shown the error
  }
}

async function exportRun() {
  const out = $("export-result");
  if (!st.session) { showMessage("nothing to export yet: press TRAIN (or STEP) first"); return; }
  const name = $("export-name").value.trim();
  out.textContent = "exporting…";
  try {
    const data = await post(`/api/sessions/${st.session.id}/export`, name ? { name } : {});
    out.textContent = `written: ${data.run}`;
    out.dataset.run = data.run;
    clearError();
  } catch {
    out.textContent = "";
  }
}

// ---------- live views ----------

function resetViews() {
  st.divergence = { step: [], kl: [], js: [] };
  st.timeline = [];
  st.nextSnap = 1;
  $("timeline").replaceChildren();
  st.plane.last = null;
  st.plane.drawn = st.setup.data2d.points;
  st.plane.draw(null);
}

const num = (v, d = 1) => (v === undefined || v === null || !Number.isFinite(v) ? "–" : v.toFixed(d));

function drawPending() {
  const u = st.pending;
  if (!u) return;
  st.pending = null;
  st.last = u;
  $("step-count").textContent = String(u.step);
  $("examples-count").textContent = String(u.examples ?? "–");
  $("steps-per-s").textContent = num(u.steps_per_s);
  $("examples-per-s").textContent = num(u.examples_per_s, 0);
  $("infer-rate").textContent = num(u.inferences_per_s, 0);
  $("infer-ms").textContent = num(u.infer_ms, 2);
  $("gen-rate").textContent = num(u.generations_per_s, 0);
  $("gen-ms").textContent = num(u.gen_ms, 2);
  $("run-state").textContent = u.state;
  if (u.error) showMessage(u.error); // training stopped on a failure: say why
  updateButtons();
  if (u.images) drawImages(u.images, u.step);
  if (u.plane) {
    st.plane.draw(u.plane);
    if (u.plane.kl !== undefined) {
      const d = st.divergence;
      if (!d.step.length || d.step[d.step.length - 1] !== u.step) {
        d.step.push(u.step); d.kl.push(u.plane.kl); d.js.push(u.plane.js);
        if (d.step.length > 500) for (const k of Object.keys(d)) d[k].shift();
      }
      $("kl-val").textContent = num(u.plane.kl, 3);
      $("js-val").textContent = num(u.plane.js, 3);
      st.charts.div.draw(d.step, d);
    }
  }
  const h = u.history;
  if (h && h.step) for (const c of ["loss", "d", "acc"]) st.charts[c].draw(h.step, h);
}

function labels(box, probs, cols) {
  const n = probs ? probs.length : 0;
  const rows = Math.max(1, Math.ceil(n / (cols || 8)));
  box.style.gridTemplateColumns = `repeat(${cols || 8}, 1fr)`;
  box.style.gridTemplateRows = `repeat(${rows}, 1fr)`;
  const cells = box.children;
  while (cells.length > n) box.lastChild.remove();
  while (cells.length < n) { const d = document.createElement("div"); d.className = "cell"; d.append(document.createElement("span")); box.append(d); }
  for (let i = 0; i < n; i++) {
    const span = cells[i].firstChild;
    span.className = "plabel " + (probs[i] >= 0.5 ? "says-real" : "says-fake");
    span.textContent = `real ${(probs[i] * 100).toFixed(1)}%`;
  }
}

function drawImages(im, step) {
  const cols = im.cols || 8;
  if (im.real) $("real-images").src = im.real;
  if (im.fake) $("fake-images").src = im.fake;
  if (im.fixed) $("fixed-grid").src = im.fixed;
  for (const id of ["real-images", "fake-images"]) $(id).style.width = `${cols * 52}px`;
  labels($("p-real-real"), im.p_real, cols);
  labels($("p-real-fake"), im.p_fake, cols);
  // "results over time": the fixed-latent grid at steps spaced ever wider apart (1, 2, 3, 5, 8, ...)
  if (im.fixed && step >= st.nextSnap) {
    st.nextSnap = Math.max(step + 1, Math.ceil(step * 1.5));
    const fig = document.createElement("figure");
    const img = new Image();
    img.src = im.fixed;
    const cap = document.createElement("figcaption");
    cap.textContent = "step " + step;
    fig.append(img, cap);
    $("timeline").append(fig);
    while ($("timeline").children.length > 12) $("timeline").children[1].remove();
    $("timeline-gif").hidden = false;
  }
}

// ---------- uploads ----------

async function upload(files, kind) {
  if (!files.length) return null;
  const form = new FormData();
  // a picked folder's files carry their path inside it, whose sub-folders are the classes
  for (const f of files) form.append("file", f, f.webkitRelativePath || f.name);
  form.append("kind", kind);
  if (kind === "images") {
    form.append("resolution", $("upload-res").value);
    if ($("upload-channels").value) form.append("channels", $("upload-channels").value);
  }
  showMessage(`uploading ${files.length} file(s)…`, "info");
  try {
    const data = await api("POST", "/api/uploads", undefined, { form });
    const key = "upload:" + data.id;
    st.uploads[key] = data;
    const s = data.stats || {};
    showMessage(`uploaded ${s.examples ?? "?"} ${kind === "points" ? "points" : "images"}` +
      (s.skipped ? `, skipped ${s.skipped}` : ""), "info");
    return key;
  } catch {
    return null;
  }
}

// ---------- wiring ----------

function wire() {
  for (const n of NETS) {
    st.editors[n] = new LayerEditor($(n + "-layers"), n, {
      layerTypes: st.meta.layer_types,
      getLayers: () => st.setup[n + "_layers"],
      onChange: () => changed(),
    });
    fillSelect($(n + "-add-type"), Object.keys(st.meta.layer_types).map((t) => [t, t]));
    $(n + "-add").addEventListener("click", () => st.editors[n].add($(n + "-add-type").value));
    $(n + "-plus").addEventListener("click", () => st.editors[n].addBlock());
    $(n + "-minus").addEventListener("click", () => st.editors[n].removeBlock());
  }
  setLayerErrorHook((net, index, text) => st.editors[net] && st.editors[net].markError(index, text));

  fillSelect($("preset"), [["", "(custom)"], ...Object.keys(st.meta.presets).map((k) => [k, k])]);
  $("preset").addEventListener("change", () => {
    const name = $("preset").value;
    if (name) setSetup(clone(st.meta.presets[name]));
  });
  fillSelect($("loss"), st.meta.losses.map((l) => [l, l]));

  const mode = (m) => () => {
    if (st.setup.mode === m) return;
    st.perMode[st.setup.mode] = clone(st.setup);
    setSetup(st.perMode[m] || clone(presetFor(m)[1]));
  };
  $("mode-images").addEventListener("click", mode("images"));
  $("mode-2d").addEventListener("click", mode("2d"));

  const onInt = (id, set) => $(id).addEventListener("input", () => {
    const v = Number($(id).value);
    if ($(id).value !== "" && Number.isInteger(v)) { set(v); changed(); }
  });
  onInt("batch-size", (v) => { st.setup.batch_size = v; });
  onInt("d-steps", (v) => { st.setup.d_steps = v; });
  onInt("g-steps", (v) => { st.setup.g_steps = v; });
  onInt("seed", (v) => { st.setup.seed = v; });
  onInt("z-dim", (v) => { st.setup.z_dim = v; });
  const bumpD = (d) => () => { st.setup.d_steps = Math.max(1, (st.setup.d_steps || 1) + d); renderTraining(); changed(); };
  $("dsteps-minus").addEventListener("click", bumpD(-1));
  $("dsteps-plus").addEventListener("click", bumpD(1));
  $("loss").addEventListener("change", () => { st.setup.loss = $("loss").value; changed(); });
  $("data-source").addEventListener("change", () => { st.setup.data.source = $("data-source").value; renderStats(); changed(); });
  $("data-normalize").addEventListener("change", () => { st.setup.data.normalize = $("data-normalize").value; changed(); });
  $("conditional").addEventListener("change", () => { st.setup.conditional = $("conditional").checked; changed(); });
  for (const id of ["upload-images", "upload-folder"]) {
    $(id).addEventListener("change", async (e) => {
      const key = await upload([...e.target.files], "images");
      e.target.value = "";
      if (key) { st.setup.data.source = key; renderData(); changed(); }
    });
  }

  $("dist").addEventListener("change", () => {
    st.setup.data2d.distribution = $("dist").value;
    if ($("dist").value !== "drawn") st.setup.data2d.points = null;
    renderData();
    changed();
  });
  $("btn-brush").addEventListener("click", () => {
    st.plane.brush = !st.plane.brush;
    $("btn-brush").classList.toggle("active", st.plane.brush);
    $("heatmap").classList.toggle("brush", st.plane.brush);
  });
  $("btn-clear-drawn").addEventListener("click", () => {
    st.setup.data2d.points = [];
    st.setup.data2d.distribution = "drawn";
    st.plane.drawn = [];
    st.plane.draw(null);
    renderData();
    changed();
  });
  $("btn-csv-use").addEventListener("click", () => {
    const pts = parseCsvPoints($("csv-text").value);
    if (!pts.length) { showMessage("no points in the pasted text: give one x,y pair per line"); return; }
    st.setup.data2d = { distribution: "drawn", points: pts };
    st.plane.drawn = pts;
    st.plane.draw(null);
    renderData();
    changed();
  });
  $("upload-csv").addEventListener("change", async (e) => {
    const key = await upload([...e.target.files], "points");
    e.target.value = "";
    if (key) { st.setup.data2d = { distribution: key, points: null }; renderData(); changed(); }
  });

  $("btn-train").addEventListener("click", () => control("train"));
  $("btn-stop").addEventListener("click", () => control("stop"));
  $("btn-step").addEventListener("click", () => control("step"));
  $("btn-step-g").addEventListener("click", () => control("step_g"));
  $("btn-step-d").addEventListener("click", () => control("step_d"));
  $("btn-reset").addEventListener("click", async () => {
    if (!st.session || st.session.setup !== JSON.stringify(st.setup)) { dropSession(); resetViews(); return; }
    resetViews();
    await control("reset");
  });
  $("slowmo").addEventListener("input", () => {
    $("slowmo-val").textContent = $("slowmo").value + " ms";
    if (st.session && st.last && st.last.state === "running") control("train");
  });
  $("btn-export").addEventListener("click", exportRun);

  $("btn-copy-link").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($("share-link").href); showMessage("link copied", "info"); }
    catch { showMessage("copy failed: right-click the Share link and copy it"); }
  });
  $("share-link").addEventListener("click", (e) => { e.preventDefault(); $("btn-copy-link").click(); });
  $("btn-save-setup").addEventListener("click", () => downloadJson(st.setup, "ganforge-setup.json"));
  $("load-setup").addEventListener("change", async (e) => {
    const f = e.target.files[0];
    e.target.value = "";
    if (!f) return;
    try { setSetup(JSON.parse(await f.text())); showMessage(`setup loaded from ${f.name}`, "info"); }
    catch (err) { showMessage(`${f.name} is not a setup JSON file (${err.message}): save one with "Save setup"`); }
  });

  for (const [id, key] of [["show-heat", "heat"], ["show-real", "real"], ["show-fake", "fake"],
    ["show-manifold", "manifold"], ["show-grad", "grad"]]) {
    $(id).addEventListener("change", () => { st.plane.show[key] = $(id).checked; st.plane.draw(null); });
  }

  for (const b of document.querySelectorAll(".tab")) {
    b.addEventListener("click", () => {
      for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === b);
      $("page-train").hidden = b.dataset.tab !== "train";
      $("page-explore").hidden = b.dataset.tab !== "explore";
      if (b.dataset.tab === "explore") st.explorer.listRuns().catch(() => {});
    });
  }

  // Closing the tab ends its session (the server also times out sessions with no event stream).
  window.addEventListener("pagehide", () => {
    if (!st.session) return;
    // sendBeacon is delivered after the page is gone in every browser (fetch's keepalive only in newer ones)
    // but can only POST: the server takes POST .../close as the same request.
    const url = withToken(`/api/sessions/${st.session.id}/close`);
    if (!(navigator.sendBeacon && navigator.sendBeacon(url))) fetch(url, { method: "POST", keepalive: true });
  });
}

function askToken() {
  const form = $("token-form");
  form.hidden = false;
  showMessage("missing token: open the URL that `ganforge playground` printed");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("token-input").value.trim();
    const m = /[?&]token=([^&#\s]+)/.exec(text);
    const t = m ? decodeURIComponent(m[1]) : text;
    if (t) location.href = location.pathname + "?token=" + encodeURIComponent(t) + location.hash;
  });
}

async function main() {
  st.plane = new PlaneView($("heatmap"), {
    onDraw: (pts) => {
      const d = st.setup.data2d;
      if (d.distribution !== "drawn" || !Array.isArray(d.points)) { d.distribution = "drawn"; d.points = []; }
      d.points.push(...pts);
      st.plane.drawn = d.points;
      if (!st.session) st.plane.draw(null);
      $("dist").value = "drawn";
      $("drawn-count").textContent = `${d.points.length} points`;
      changed();
    },
  });
  st.charts.loss = new LineChart($("chart-loss"), [
    { key: "loss_g", label: "loss G", color: "#c0392b" }, { key: "loss_d", label: "loss D", color: "#2471a3" }]);
  st.charts.d = new LineChart($("chart-d"), [
    { key: "d_real", label: "D(x)", color: "#1e8449" }, { key: "d_fake", label: "D(G(z))", color: "#8e44ad" }],
  { range: [0, 1] });
  st.charts.acc = new LineChart($("chart-acc"), [{ key: "d_acc", label: "D accuracy", color: "#d68910" }],
    { range: [0, 1] });
  st.charts.div = new LineChart($("chart-div"), [
    { key: "kl", label: "KL", color: "#c0392b" }, { key: "js", label: "JS", color: "#2471a3" }]);
  if (!token) { askToken(); return; }
  try {
    st.meta = await get("/api/meta");
  } catch {
    return;
  }
  wire();
  st.explorer = new Explorer();
  let setup = null;
  try {
    setup = setupFromHash();
  } catch (err) {
    showMessage(`the link's #setup= part cannot be read (${err.message}): starting from the default preset`);
  }
  setSetup(setup || clone(presetFor("images")[1]));
  // A shared link pasted into this tab changes only the hash: load its setup (our own writes use
  // history.replaceState, which fires no hashchange).
  window.addEventListener("hashchange", () => {
    try {
      const next = setupFromHash();
      if (next && JSON.stringify(completeSetup(next)) !== JSON.stringify(st.setup)) setSetup(next);
    } catch (err) {
      showMessage(`the link's #setup= part cannot be read (${err.message}): keeping the current setup`);
    }
  });
  document.body.dataset.ready = "1"; // for tests: the page has its meta and setup
}

main();

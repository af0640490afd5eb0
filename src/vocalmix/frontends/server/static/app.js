// vocalmix studio: upload, mix, look, listen, adjust. Plain JS, no build step, no network
// access beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { mix: null, ab: "mix", presets: [], methods: null };

// --- controls from the server's parameter declaration ------------------------------------
// GET /api/params/spec gives every numeric parameter's range, unit, label, step, log scale
// and default view: the page writes no range of its own. A control is
// [path, label, slider min, max, step, unit, options] in *shown* units, where
// options.scale: shown value = stored value * scale; options.log: logarithmic slider;
// options.lo/hi: what the params document allows (the number box accepts all of it);
// options.title: a tooltip; options.fixed: shown but not editable.
let SPEC = null;  // the body of GET /api/params/spec
const UNIT_SHOWN = { ratio: ": 1" };  // how a unit reads beside a number
// presentation only: labels, tooltips and percent display of some parameters
const SHOWN = {
  "vocal.reverb.room_size": { unit: "%", scale: 100 },
  "vocal.reverb.damping": { unit: "%", scale: 100 },
  "vocal.reverb.width": { unit: "%", scale: 100, title: "0 % mono, 100 % fully decorrelated channels" },
  "vocal.eq_bands[].q": { label: "Width", unit: "Q" },
  "vocal.reverb.band_decay_ratios[]": { unit: "×" },
  "targets.vocal_momentary_range_lu": { label: "Momentary range" },
};

function control(path, key, more = {}) {
  const s = SPEC.params[key || path];
  if (!s) throw new Error(`the server declares no parameter ${key || path}`);
  const o = { ...SHOWN[key || path], ...more };
  const k = o.scale || 1;
  return [path, o.label || s.label, s.view[0] * k, s.view[1] * k, s.step * k,
    o.unit ?? (UNIT_SHOWN[s.unit] ?? s.unit),
    { scale: o.scale, log: s.log, lo: (o.lo ?? s.min) * k, hi: (o.hi ?? s.max) * k, title: o.title ?? s.doc, fixed: o.fixed }];
}

function bandName(f) { return f >= 1000 ? `${f / 1000} kHz` : `${f} Hz`; }
const REVERB_TITLES = {
  freeverb: { target: "T30 the resolver finds a room size for", wet: ["Level", "gain on the reverb's output"] },
  synthetic: { target: "T30 at 1 kHz; the resolver sets the decay time to it", wet: ["Wet vs dry", "energy of the reverb against the dry vocal's (reverberant-to-direct ratio)"] },
};
const specs = {
  targets: () => [control("targets.vocal_to_mix_lu")],
  // the vocal's dynamics: the momentary range (when on) or the loudness range (LRA)
  dynamics: () => [control("targets.vocal_momentary_range_lu"), control("targets.vocal_lra_lu")],
  decay: (type) => [control("targets.reverb_decay_s", null, { title: REVERB_TITLES[type].target })],
  levels: () => ["vocal.gain_db", "vocal.offset_ms", "backing.gain_db", "master.gain_db", "master.ceiling_dbtp", "master.lookahead_ms", "master.release_ms"].map((p) => control(p)),
  mixLufs: () => [control("targets.mix_lufs")],
  amount: () => [control("amount")],
  deesser: () => ["threshold_db", "freq_hz", "depth_db", "release_ms"].map((f) => control(`vocal.deesser.${f}`)),
  delay: () => [control("vocal.delay.tempo_bpm"),
    control("vocal.delay.time_ms", null, { title: "the delay time; set by the note and the tempo unless the note is free" }),
    ...["feedback", "wet_level_db", "highcut_hz"].map((f) => control(`vocal.delay.${f}`))],
  compressor: () => ["threshold_db", "ratio", "attack_ms", "release_ms", "makeup_db"].map((f) => control(`vocal.compressor.${f}`)),
  reverb: (type) => {
    const [wetLabel, wetTitle] = REVERB_TITLES[type].wet;
    const wet = control("vocal.reverb.wet_level_db", null, { label: wetLabel, title: wetTitle });
    const common = [control("vocal.reverb.width"), control("vocal.reverb.pre_delay_ms")];
    return type === "synthetic" ? [control("vocal.reverb.decay_s", null, { title: "T30 at 1 kHz: how long the reverb takes to fade by 60 dB" }), wet, ...common]
      : [wet, control("vocal.reverb.room_size"), control("vocal.reverb.damping"), ...common];
  },
  // the synthetic reverb's octave bands; the reference band (1 kHz) is fixed at 1
  bandRatios: () => SPEC.decay_bands_hz.map((f, i) => control(`vocal.reverb.band_decay_ratios.${i}`, "vocal.reverb.band_decay_ratios[]",
    i === SPEC.reference_band ? { label: bandName(f), lo: 1, hi: 1, fixed: true, title: "the reference band: its decay time is the decay time above" }
      : { label: bandName(f), title: `decay time at ${bandName(f)} over the one at 1 kHz` })),
  highpass: () => [control("vocal.highpass.cutoff_frequency_hz")],
  band: () => ["freq_hz", "gain_db", "q"].map((f) => control(f, `vocal.eq_bands[].${f}`)),
};
const specReady = fetch("/api/params/spec").then((r) => {
  if (!r.ok) throw new Error(`the server answered ${r.status} for its parameter ranges`);
  return r.json();
}).then((body) => { SPEC = body; });
// who chose an EQ band: [label, tooltip, colour of its marker on the spectrum]
const SOURCES = {
  masking: ["against masking", "chosen by the masking rule: lifts the vocal where the backing covers it", "#ffd166"],
  correction: ["tonal correction", "chosen by the model to correct the vocal's tone", "#4ade80"],
  manual: ["by hand", "added or set by hand", "#e9eef5"],
};
function sourceInfo(src) { return SOURCES[src] || [String(src || "unknown"), "", "#c3cdda"]; }
const GROUP_SWITCH = { "vocal.compressor.": "vocal.compressor.enabled",
  "vocal.reverb.": "vocal.reverb.enabled", "vocal.highpass.": "vocal.highpass.enabled",
  "vocal.deesser.": "vocal.deesser.enabled", "vocal.delay.": "vocal.delay.enabled" };
// what made a mix (params.provenance.method), for a person
const MADE_BY = {
  baseline: "rules from the literature",
  model: "learned from professionally mixed songs",
  reference: "matched to the reference mix's stems",
  manual: "settings given by hand",
};

// --- locks and reasons ----------------------------------------------------------------------
// A lock names a setting or target (or a group of them); the server keeps it through a
// re-resolve. A resolved setting of a group solved together (the compressor's threshold,
// ratio and make-up; the reverb's decay) is also kept when another of the group is locked.
function lockedBy(locks, path) { return locks.filter((lk) => path === lk || path.startsWith(`${lk}.`)); }
function heldBy(locks, path) {
  if (!SPEC.resolved_paths.includes(path)) return [];
  const group = path.slice(0, path.lastIndexOf("."));
  if (!group.includes(".")) return [];  // a setting of its own (vocal.gain_db, master.gain_db)
  return locks.filter((lk) => lk !== path && (lk === group || lk.startsWith(`${group}.`)));
}
function lockable(path) { return SPEC.lockable_paths.includes(path); }

function lockButton(path) {
  const b = document.createElement("button");
  b.type = "button"; b.className = "lock"; b.dataset.path = path;
  b.setAttribute("aria-pressed", "false"); b.setAttribute("aria-label", `lock ${path}`);
  b.addEventListener("click", () => toggleLock(path));
  locks.set(path, b);
  return b;
}

function toggleLock(path) {
  queueEdit(`lock ${path}`, (p) => {
    const by = lockedBy(p.locks, path);
    return { locks: by.length ? p.locks.filter((lk) => !by.includes(lk)) : [...p.locks, path] };
  });
}

function showLock(b, p) {
  const path = b.dataset.path, by = lockedBy(p.locks, path), held = heldBy(p.locks, path);
  b.classList.toggle("on", by.length > 0);
  b.classList.toggle("held", !by.length && held.length > 0);
  b.setAttribute("aria-pressed", String(by.length > 0));
  b.title = by.length ? `locked${by[0] !== path ? ` (with ${by[0]})` : ""}: a target change keeps it; click to let vocalmix choose it again`
    : held.length ? `kept: ${held[0]} is locked, and these settings are solved together; click to lock this one too`
      : "unlocked: a target change may move it; click to lock it";
}

// the reason of a setting: its own, or its nearest group's unless the group shows it
function reasonFor(p, path, shownByGroup) {
  let best = null;
  for (const r of p.reasons || []) {
    if (path !== r.path && !path.startsWith(`${r.path}.`)) continue;
    if (r.path !== path && shownByGroup.has(r.path)) continue;
    if (!best || r.path.length > best.path.length) best = r;
  }
  return best;
}
function reasonHtml(r) {
  const src = SPEC.reason_sources.includes(r.source) ? r.source : "other";
  const conf = r.confidence == null ? "" : ` · ${Math.round(100 * r.confidence)} %`;
  return `<span class="why-src s-${src}">${esc(r.source)}${conf}</span> <span class="why-text">${esc(r.text)}</span>`;
}
function reasonTitle(r) {
  const inputs = (r.inputs || []).map(([k, v]) => `${k} = ${Number(v).toPrecision(4)}`).join(", ");
  return `${r.source}: ${r.text}${inputs ? ` (from ${inputs})` : ""}`;
}
function showReason(el, r) {
  el.hidden = !r;
  if (r) { el.innerHTML = reasonHtml(r); el.title = reasonTitle(r); }
}

// --- small helpers ------------------------------------------------------------------------
function get(obj, path) { return path.split(".").reduce((o, k) => (o == null ? o : o[k]), obj); }
function put(obj, path, v) {
  const ks = path.split("."); const last = ks.pop();
  ks.reduce((o, k) => o[k], obj)[last] = v;
}
function decimals(step) { const s = String(step); return s.includes(".") ? s.split(".")[1].length : 0; }
function signed(v, nd) { const s = Number(v).toFixed(nd); return v > 0 ? `+${s}` : s.replace("-", "−"); }
function fmtTime(s) { const m = Math.floor(s / 60); return `${m}:${String(Math.floor(s % 60)).padStart(2, "0")}`; }
function pretty(name) { return name.replace(/_/g, " "); }
function esc(s) { return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }

let toastTimer = null;
function showError(msg, where) {
  const el = where === "start" ? $("error") : $("toast");
  if (!msg) { el.hidden = true; return; }
  el.textContent = msg; el.hidden = false;
  if (el.id === "toast") { clearTimeout(toastTimer); toastTimer = setTimeout(() => { el.hidden = true; }, 9000); }
}

function showProgress(text, fraction) {
  $("progress").hidden = false;
  $("progress-text").textContent = text;
  $("progress-bar").style.width = `${Math.round(100 * Math.max(0.02, Math.min(1, fraction)))}%`;
}
function hideProgress() { $("progress").hidden = true; }

function request(method, url, body, onUpload) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.responseType = "json";
    if (onUpload) xhr.upload.onprogress = (e) => e.lengthComputable && onUpload(e.loaded / e.total);
    xhr.onload = () => {
      if (xhr.status < 300) resolve(xhr.response);
      else reject(new Error((xhr.response && xhr.response.detail) || `the server answered ${xhr.status}`));
    };
    xhr.onerror = () => reject(new Error("the server cannot be reached (is vocalmix serve still running?)"));
    if (body && !(body instanceof FormData)) {
      xhr.setRequestHeader("Content-Type", "application/json");
      body = JSON.stringify(body);
    }
    xhr.send(body || null);
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- making a mix -------------------------------------------------------------------------
async function startMix(formData) {
  showError("", "start");
  $("mix-button").disabled = true; $("demo-button").disabled = true;
  try {
    let res;
    if (formData) {
      formData.append("wait", "false");
      showProgress("uploading… 0 %", 0);
      res = await request("POST", "/api/mixes", formData, (f) => {
        showProgress(f < 1 ? `uploading… ${Math.round(100 * f)} %` : "decoding the uploads…", f < 1 ? f : 0.04);
      });
    } else {
      showProgress("synthesising the demo song…", 0.04);
      const method = $("method").value;
      res = await request("POST", `/api/demo?wait=false${method ? `&method=${encodeURIComponent(method)}` : ""}`);
    }
    await specReady;  // the controls are built from the server's parameter ranges
    while (res.status === "mixing") {
      showProgress(`mixing: ${res.progress.message || res.progress.stage}…`, res.progress.fraction);
      await sleep(250);
      res = await request("GET", res.links.self);
    }
    if (res.status === "failed") throw new Error(res.error ? res.error.detail : "the mix failed");
    showProgress("done", 1);
    show(res, true);
  } catch (e) { showError(e.message, "start"); }
  $("mix-button").disabled = false; $("demo-button").disabled = false;
  setTimeout(hideProgress, 400);
}

// --- showing a mix ------------------------------------------------------------------------
function audioUrl(kind) { return `${state.mix.links[kind]}?rev=${state.mix.revision}`; }

function show(res, fresh) {
  state.mix = res;
  document.body.dataset.revision = String(res.revision);
  document.body.dataset.mixId = res.id;
  $("result").hidden = false; $("controls").hidden = false;
  const p = res.params;
  $("mix-name").textContent = `${res.name} · ${res.sample_rate} Hz · ${fmtTime(res.duration_s)}`;
  const method = p.provenance.method;
  $("made-by").innerHTML = `made by <b>${esc(method)}</b>`;
  $("made-by").dataset.method = method;
  $("made-by").title = MADE_BY[method] || "";
  $("mix-link").href = mixUrl(res.id);
  if (location.pathname !== "/" || new URLSearchParams(location.search).get("mix") !== res.id) {
    history.replaceState(null, "", mixUrl(res.id));
  }
  remember(res);
  $("params-json").textContent = JSON.stringify(p, null, 2);
  $("notes").textContent = (res.notes || []).join(" · ");
  // what may be wrong with the inputs (a take of noise, a vocal heard for a moment, a
  // backing that ends early...) is shown above the player, not only in the notes line
  const warnings = res.warnings || [];
  $("warnings").replaceChildren(...warnings.map((n) => {
    const li = document.createElement("li");
    li.textContent = n;
    return li;
  }));
  $("warnings").hidden = warnings.length === 0;
  $("ab-note").textContent = p.achieved.mix_integrated_lufs == null ? ""
    : `A and B both at ${p.achieved.mix_integrated_lufs.toFixed(1).replace("-", "−")} LUFS`;
  showAchieved(p);
  showReasons(p);
  setDownloads();
  $("dl-params").href = `${res.links.params_file}?rev=${res.revision}`;
  syncControls(p, fresh);
  setPlayer();
  drawWaves();
  drawSpectrum();
  if (fresh) $("result").scrollIntoView({ behavior: "smooth", block: "start" });
}

function setDownloads() {
  const rate = state.mix.sample_rate || 0;
  const mp3 = $("dl-format").querySelector("option[value=mp3]");
  mp3.disabled = rate > 48000;  // MP3 holds 8-48 kHz
  mp3.title = mp3.disabled ? "MP3 holds audio at up to 48 kHz; this mix is at a higher rate" : "";
  const ogg = $("dl-format").querySelector("option[value=ogg]");
  if (ogg) {
    ogg.disabled = rate > 192000;  // OGG is written at up to 192 kHz
    ogg.title = ogg.disabled ? "OGG is written at up to 192 kHz; this mix is at a higher rate" : "";
  }
  if ((mp3.disabled && $("dl-format").value === "mp3")
      || (ogg && ogg.disabled && $("dl-format").value === "ogg")) $("dl-format").value = "flac";
  const fmt = $("dl-format").value;
  for (const k of ["mix", "vocal", "vocal_dry", "backing"]) {
    $(`dl-${k}`).href = audioUrl(k) + (fmt === "wav" ? "" : `&format=${fmt}`);
  }
  $("dl-mix").textContent = `Mix (${$("dl-format").selectedOptions[0].textContent})`;
}

function showAchieved(p) {
  const a = p.achieved, t = p.targets;
  const tile = (value, label, sub) => `<div><b>${value}</b><span>${label}</span>${sub ? `<span class="target">${sub}</span>` : ""}</div>`;
  const lu = (v, unit, nd = 2) => (v == null ? "n/a" : `${signed(v, nd)} ${unit}`);
  $("achieved").innerHTML = [
    tile(lu(a.vocal_to_mix_lu, "LU"), "vocal vs mix", `target ${signed(t.vocal_to_mix_lu, 1)} LU`),
    tile(lu(a.vocal_to_backing_lu, "LU"), "vocal vs backing", ""),
    // the dynamics the compressor was resolved to: the momentary range when it is the target
    t.vocal_momentary_range_lu != null
      ? tile(a.vocal_momentary_range_lu == null ? "n/a" : `${a.vocal_momentary_range_lu.toFixed(1)} LU`, "vocal momentary range",
        `target ${t.vocal_momentary_range_lu.toFixed(1)} LU · LRA ${a.vocal_lra_lu == null ? "n/a" : a.vocal_lra_lu.toFixed(1)}`)
      : tile(a.vocal_lra_lu == null ? "n/a" : `${a.vocal_lra_lu.toFixed(1)} LU`, "vocal loudness range", `target ${t.vocal_lra_lu.toFixed(1)} LU`),
    tile(`${p.vocal.reverb.decay_s.toFixed(2)} s`, p.vocal.reverb.type === "synthetic" ? "reverb T30 at 1 kHz" : "reverb time (T30)", `target ${t.reverb_decay_s.toFixed(2)} s`),
    tile(lu(a.mix_integrated_lufs, "LUFS", 1), "mix loudness", ""),
    tile(lu(a.mix_true_peak_dbtp, "dBTP"), "mix true peak", a.master_gain_reduction_db ? `limiter ${signed(-a.master_gain_reduction_db, 1)} dB` : "limiter idle"),
  ].join("");
}

function setPlayer() {
  const p = $("player"); const src = audioUrl(state.ab);
  if (p.getAttribute("src") === src) return;
  const t = p.currentTime || 0; const playing = !p.paused && !p.ended;
  p.setAttribute("src", src);
  p.addEventListener("loadedmetadata", () => {
    try { p.currentTime = Math.min(t, p.duration || t); } catch (e) { /* not seekable yet */ }
    if (playing) p.play().catch(() => {});
  }, { once: true });
}

function setAB(which) {
  state.ab = which;
  $("ab-mix").classList.toggle("on", which === "mix");
  $("ab-plain").classList.toggle("on", which === "plain");
  if (state.mix) setPlayer();
}

// --- controls -----------------------------------------------------------------------------
const controls = new Map();  // key -> {input, num, spec, value(setter)}
const locks = new Map();  // locked path -> its button
let eqShape = "";
let reverbType = "";

function toSlider(v, spec) {
  const o = spec[6] || {}; const x = v * (o.scale || 1);
  return o.log ? Math.log(Math.max(x, 1e-9)) : x;
}
function fromSlider(s, spec) {
  const o = spec[6] || {};
  return o.log ? Math.exp(s) : Number(s);
}

function makeControl(key, spec, onCommit) {
  const [, rawLabel, lo, hi, step, rawUnit, o = {}] = spec;
  const label = esc(rawLabel), unit = esc(rawUnit);
  const id = `c-${key.replace(/\./g, "-")}`;
  const div = document.createElement("div"); div.className = "ctl";
  const nd = decimals(step);
  const sMin = o.log ? Math.log(lo) : lo, sMax = o.log ? Math.log(hi) : hi;
  const sStep = o.log ? (sMax - sMin) / 400 : step;
  div.innerHTML = `<label for="${id}">${label}</label>
    <input type="range" id="${id}" min="${sMin}" max="${sMax}" step="${sStep}" aria-label="${label} (${unit})">
    <span class="num"><input type="number" id="${id}-num" min="${o.lo ?? lo}" max="${o.hi ?? hi}" step="${step}"
      aria-label="${label} in ${unit}"><span class="unit">${unit}</span></span>`;
  const range = div.querySelector("input[type=range]"); const num = div.querySelector("input[type=number]");
  if (o.title) div.title = o.title;
  const lockPath = key.startsWith("eq.") ? null : key;
  if (lockPath && lockable(lockPath)) div.appendChild(lockButton(lockPath));
  else div.appendChild(document.createElement("span"));
  const why = document.createElement("p"); why.className = "why"; why.hidden = true; div.appendChild(why);
  const scale = o.scale || 1;
  const shown = (v) => Number(v).toFixed(nd);
  const ctl = {
    range, num, spec, why, div,
    set(v) {
      if (document.activeElement === num || range.dataset.dragging) return;
      range.value = toSlider(v, spec); num.value = shown(v * scale);
    },
    enable(on) { range.disabled = !on; num.disabled = !on; div.classList.toggle("fixed", !on); },
  };
  if (o.fixed) ctl.enable(false);
  range.addEventListener("pointerdown", () => { range.dataset.dragging = "1"; });
  for (const ev of ["pointerup", "pointercancel", "blur"]) range.addEventListener(ev, () => { delete range.dataset.dragging; });
  range.addEventListener("input", () => { num.value = shown(fromSlider(range.value, spec)); });
  range.addEventListener("change", () => {
    delete range.dataset.dragging;
    const v = Number(shown(fromSlider(range.value, spec))) / scale;
    num.value = shown(v * scale); onCommit(v);
  });
  num.addEventListener("change", () => {
    const v = Number(num.value) / scale;
    if (!Number.isFinite(v)) return;
    range.value = toSlider(v, spec); onCommit(v);
  });
  // Enter commits: leaving the box fires its (single) change event
  num.addEventListener("keydown", (e) => { if (e.key === "Enter") num.blur(); });
  controls.set(key, ctl);
  return div;
}

// a setting moved by hand: rendered exactly, and locked if a re-resolve would move it
function settingEdit(path) {
  return (v) => queueEdit(path, (p) => {
    put(p, path, v);
    for (const [prefix, sw] of Object.entries(GROUP_SWITCH)) if (path.startsWith(prefix)) put(p, sw, true);
    if (SPEC.resolved_paths.includes(path) && !lockedBy(p.locks, path).length) p.locks.push(path);
    return { params: p };
  });
}
const targetEdit = (path) => (v) => queueEdit(path, () => ({ targets: { [path.split(".")[1]]: v } }));

// a nullable target switched on: what the mix measures now, on the control's step and
// within its range; the declared default, or the middle of its view, if nothing was measured
function switchedOn(key, measured) {
  const s = SPEC.params[key];
  const v = measured ?? s.default ?? (s.view[0] + s.view[1]) / 2;
  return Math.min(s.max, Math.max(s.min, Math.round(v / s.step) * s.step));
}

// all controls but the EQ bands'; the reverb's depend on its type
function buildControls(p) {
  controls.clear(); locks.clear();
  reverbType = p.vocal.reverb.type;
  const type = REVERB_TITLES[reverbType] ? reverbType : "freeverb";
  const add = (el, list, commit) => { el.innerHTML = ""; for (const s of list) el.appendChild(makeControl(s[0], s, commit(s[0]))); };
  add($("amount"), specs.amount(), () => (v) => queueEdit("amount", () => ({ amount: v })));
  add($("targets"), specs.targets(), targetEdit);
  add($("dynamics-targets"), specs.dynamics(), targetEdit);
  add($("decay-target"), specs.decay(type), targetEdit);
  add($("mix-lufs"), specs.mixLufs(), targetEdit);
  add($("levels"), specs.levels(), settingEdit);
  add($("deesser"), specs.deesser(), settingEdit);
  add($("delay"), specs.delay(), settingEdit);
  $("eq-lock").innerHTML = ""; $("eq-lock").appendChild(lockButton("vocal.eq_bands"));
  add($("compressor"), specs.compressor(), settingEdit);
  add($("reverb"), specs.reverb(type), settingEdit);
  add($("reverb-band-ctls"), type === "synthetic" ? specs.bandRatios() : [], settingEdit);
  $("reverb-bands").hidden = type !== "synthetic";
  $("reverb").dataset.type = type;
  add($("highpass"), specs.highpass(), settingEdit);
}

function buildEq(p) {
  const e = $("eq"); e.innerHTML = "";
  for (const k of [...controls.keys()]) if (k.startsWith("eq.")) controls.delete(k);
  const bands = p.vocal.eq_bands;
  eqShape = shapeOf(bands);
  if (!bands.length) {
    e.innerHTML = "<p class='eq-empty'>No EQ bands: the backing does not mask the vocal enough to need any. Add one by hand if you like.</p>";
  }
  const grid = document.createElement("div"); grid.className = "bands"; e.appendChild(grid);
  bands.forEach((b, i) => {
    const box = document.createElement("div"); box.className = "band";
    const head = document.createElement("div"); head.className = "band-head";
    head.innerHTML = `<h4>Band ${i + 1}</h4><select id="eq-${i}-kind" aria-label="band ${i + 1} type">${SPEC.eq_kinds.map((k) => `<option value="${esc(k)}"${k === b.kind ? " selected" : ""}>${esc(pretty(k))}</option>`).join("")}</select>
      <span class="src src-${SOURCES[b.source] ? b.source : "other"}" title="${esc(sourceInfo(b.source)[1])}">${esc(sourceInfo(b.source)[0])}</span>
      <button type="button" class="icon" title="remove this band" aria-label="remove band ${i + 1}">✕</button>`;
    head.querySelector("select").addEventListener("change", (ev) => queueEdit(`eq.${i}.kind`, (q) => {
      if (q.vocal.eq_bands[i]) q.vocal.eq_bands[i].kind = ev.target.value; return { params: q };
    }));
    head.querySelector("button").addEventListener("click", () => queueEdit(`eq.${i}.remove`, (q) => {
      q.vocal.eq_bands.splice(i, 1); return { params: q };
    }));
    box.appendChild(head);
    for (const spec of specs.band()) {
      const key = `eq.${i}.${spec[0]}`;
      box.appendChild(makeControl(key, spec, (v) => queueEdit(key, (q) => {
        if (q.vocal.eq_bands[i]) q.vocal.eq_bands[i][spec[0]] = v; return { params: q };
      })));
    }
    grid.appendChild(box);
  });
  $("eq-add").disabled = bands.length >= SPEC.max_eq_bands;
}

function shapeOf(bands) { return bands.map((b) => `${b.kind}:${b.source}`).join(","); }

function syncControls(p, fresh) {
  if (fresh || !controls.size || reverbType !== p.vocal.reverb.type) { buildControls(p); buildEq(p); }
  else if (eqShape !== shapeOf(p.vocal.eq_bands)) buildEq(p);
  const byGroup = new Set([...document.querySelectorAll("fieldset[data-group]")].map((f) => f.dataset.group));
  for (const [key, ctl] of controls) {
    const v = key.startsWith("eq.") ? get(p.vocal.eq_bands, key.slice(3)) : get(p, key);
    if (v != null) ctl.set(v);
    showReason(ctl.why, reasonFor(p, key.startsWith("eq.") ? `vocal.eq_bands.${key.slice(3)}` : key, byGroup));
  }
  for (const b of locks.values()) showLock(b, p);
  for (const f of document.querySelectorAll("fieldset[data-group]")) {
    let el = f.querySelector(":scope > .group-why");
    if (!el) { el = document.createElement("p"); el.className = "why group-why"; f.querySelector("legend").after(el); }
    showReason(el, (p.reasons || []).find((r) => r.path === f.dataset.group));
  }
  // the mix loudness: off (null) shows where the mix is and waits for the switch
  const lufs = controls.get("targets.mix_lufs"), ls = SPEC.params["targets.mix_lufs"];
  const on = p.targets.mix_lufs != null;
  $("sw-mix_lufs").checked = on;
  lufs.enable(on);
  if (!on && p.achieved.mix_integrated_lufs != null) lufs.set(Math.min(ls.max, Math.max(ls.min, p.achieved.mix_integrated_lufs)));
  // the vocal's dynamics: the compressor follows the momentary range (on) or the LRA (off);
  // off shows the momentary range the mix has and waits for the switch
  const mr = controls.get("targets.vocal_momentary_range_lu"), lra = controls.get("targets.vocal_lra_lu");
  const momentary = p.targets.vocal_momentary_range_lu != null;
  $("sw-momentary").checked = momentary;
  mr.enable(momentary); lra.enable(!momentary);
  if (!momentary && p.achieved.vocal_momentary_range_lu != null) {
    mr.set(switchedOn("targets.vocal_momentary_range_lu", p.achieved.vocal_momentary_range_lu));
  }
  $("dynamics-note").textContent = momentary
    ? "The compressor follows the momentary range; the loudness range target is not used."
    : "The compressor follows the loudness range; switch the momentary range on to follow it instead.";
  // the delay: its time follows the note and the tempo unless the note is free
  const dl = p.vocal.delay;
  controls.get("vocal.delay.time_ms").enable(dl.note === "free");
  $("delay-note").value = dl.note;
  $("sw-delay").checked = dl.enabled;
  $("sw-deesser").checked = p.vocal.deesser.enabled;
  $("delay-note-text").textContent = !dl.enabled ? "Off: no echo."
    : `${dl.note === "free" ? "Free time" : `A ${dl.note} note at ${dl.tempo_bpm.toFixed(1)} BPM`}: repeats every ${dl.time_ms.toFixed(0)} ms, the first ${Math.abs(dl.wet_level_db).toFixed(0)} dB ${dl.wet_level_db <= 0 ? "under" : "over"} the dry vocal.`;
  const c = p.vocal.compressor, rv = p.vocal.reverb;
  $("compressor-note").textContent = !c.enabled ? "Off: the vocal keeps its own dynamics."
    : c.ratio <= 1 ? `Ratio 1 : 1, so not compressing: the vocal's ${momentary ? "momentary range" : "loudness range"} is already within the target.`
      : `Turns the vocal down above ${c.threshold_db.toFixed(1)} dB by ${c.ratio.toFixed(1)} : 1, then ${signed(c.makeup_db, 1)} dB make-up.`;
  const wet = `${Math.abs(rv.wet_level_db).toFixed(0)} dB ${rv.wet_level_db <= 0 ? "under" : "over"}`;
  $("reverb-note").textContent = !rv.enabled ? "Off: a dry vocal."
    : rv.type === "synthetic"
      ? `Fades by 60 dB in ${rv.decay_s.toFixed(2)} s at 1 kHz (${rv.band_decay_ratios.every((r) => r === 1) ? "the same in every band"
        : `T30 per band: ${rv.band_decay_ratios.map((r, i) => `${bandName(SPEC.decay_bands_hz[i])} ${(r * rv.decay_s).toFixed(2)} s`).join(" · ")}`}); its energy is ${wet} the dry vocal's, after a ${rv.pre_delay_ms.toFixed(0)} ms pre-delay.`
      : `These settings give a reverb time (T30) of ${rv.decay_s.toFixed(2)} s, ${wet} the dry vocal, after a ${rv.pre_delay_ms.toFixed(0)} ms pre-delay.`;
  $("reverb-type").value = rv.type;
  $("sw-compressor").checked = p.vocal.compressor.enabled;
  $("sw-reverb").checked = p.vocal.reverb.enabled;
  $("sw-highpass").checked = p.vocal.highpass.enabled;
  p.vocal.eq_bands.forEach((b, i) => { const s = $(`eq-${i}-kind`); if (s) s.value = b.kind; });
}

// --- edits: applied one after the other, each to the newest params ------------------------
const pending = new Map();  // key -> (params copy) => request body
let flushing = false;

function queueEdit(key, makeBody) {
  if (!state.mix) return;
  pending.delete(key); pending.set(key, makeBody);  // a newer edit of one control replaces the older
  flush();
}

async function flush() {
  if (flushing) return;
  flushing = true; $("busy").hidden = false; document.body.dataset.busy = "1";
  while (pending.size) {
    const [key, makeBody] = pending.entries().next().value;
    pending.delete(key);
    try {
      const body = makeBody(structuredClone(state.mix.params));
      const res = await request("PUT", state.mix.links.edit, body);
      show(res, false);
      showMoved(res, !("params" in body) || body.resolve);
      // the preset menu names the room only until a reverb knob moves away from it
      if (key !== "vocal.reverb.preset" && (key.startsWith("vocal.reverb.") || key === "load")) $("reverb-preset").value = "";
    } catch (e) {
      showError(e.message);
      syncControls(state.mix.params, false);  // put the controls back where the mix is
    }
  }
  flushing = false; $("busy").hidden = true; delete document.body.dataset.busy;
}

// what a re-resolve moved: listed, and the controls flash
function showMoved(res, resolved) {
  const el = $("moved");
  if (!resolved) { el.hidden = true; return; }
  const moved = res.moved || [];
  const fmt = (path, v) => {
    const s = SPEC.params[path];
    if (v == null || !s) return "n/a";
    return `${signed(v, decimals(s.step))} ${UNIT_SHOWN[s.unit] ?? s.unit}`.trim();
  };
  const p = res.params;
  const kept = SPEC.resolved_paths.filter((path) => lockedBy(p.locks, path).length || heldBy(p.locks, path).length);
  const label = (path) => esc(SPEC.params[path] ? SPEC.params[path].label : path);
  el.hidden = false;
  el.innerHTML = (moved.length ? `<b>Moved by this change:</b> ${moved.map((m) => `<span class="moved-item" data-path="${esc(m.path)}">${label(m.path)} ${esc(fmt(m.path, m.before))} → ${esc(fmt(m.path, m.after))}</span>`).join(" · ")}`
    : "<b>Nothing moved</b> by this change.")
    + (kept.length ? ` <span class="kept"><b>Kept (locked):</b> ${kept.map((path) => `<span class="kept-item" data-path="${esc(path)}">${label(path)}</span>`).join(", ")}</span>` : "");
  for (const m of moved) {
    const ctl = controls.get(m.path);
    if (ctl) { ctl.div.classList.remove("flash"); void ctl.div.offsetWidth; ctl.div.classList.add("flash"); }
  }
}

function showReasons(p) {
  $("reasons-list").innerHTML = (p.reasons || []).map((r) => `<li><code>${esc(r.path)}</code> ${reasonHtml(r)}</li>`).join("")
    || "<li>No reasons recorded.</li>";
}

// --- this browser's mixes, and a URL per mix ------------------------------------------------
const MIXES_KEY = "vocalmix.mixes";
const ID_RE = /^[A-Za-z0-9_-]{24}$/;  // the server's ids (secrets.token_urlsafe(18))
const MIXES_KEPT = 30;
function mixUrl(id) { return `/?mix=${encodeURIComponent(id)}`; }
function listMixes() {
  try {
    const list = JSON.parse(localStorage.getItem(MIXES_KEY) || "[]");
    return Array.isArray(list) ? list.filter((e) => e && typeof e.id === "string" && ID_RE.test(e.id)).slice(0, MIXES_KEPT) : [];
  } catch (e) { return []; }
}
function saveMixes(list) {
  try { localStorage.setItem(MIXES_KEY, JSON.stringify(list.slice(0, MIXES_KEPT))); } catch (e) { /* storage full or off */ }
  renderMixes();
}
function remember(res) {
  const list = listMixes();
  const entry = { id: res.id, name: String(res.name || "vocalmix"), method: res.params.provenance.method, made: Date.now() };
  const i = list.findIndex((e) => e.id === res.id);
  if (i >= 0) list[i] = { ...list[i], name: entry.name, method: entry.method };
  else list.unshift(entry);
  saveMixes(list);
}
function forget(id) { saveMixes(listMixes().filter((e) => e.id !== id)); }
function renderMixes() {
  const list = listMixes();
  $("my-mixes").hidden = !list.length;
  const current = state.mix && state.mix.id;
  $("mix-list").innerHTML = list.map((e) => `<li class="${e.id === current ? "current" : ""}" data-id="${esc(e.id)}">
    <a href="${esc(mixUrl(e.id))}">${esc(e.name)}</a>
    <span class="badge" data-method="${esc(e.method || "")}">${esc(e.method || "?")}</span>
    <span class="when">${esc(new Date(Number(e.made) || 0).toLocaleString())}</span>
    <button type="button" class="icon" title="forget this mix on this browser" aria-label="forget ${esc(e.name)}">✕</button></li>`).join("");
  for (const li of $("mix-list").querySelectorAll("li")) {
    li.querySelector("button").addEventListener("click", () => forget(li.dataset.id));
    li.querySelector("a").addEventListener("click", (ev) => {
      if (ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;  // a new tab: the browser's
      ev.preventDefault(); openMix(li.dataset.id);
    });
  }
}
// drop the mixes the server no longer has (expired or deleted)
async function pruneMixes() {
  for (const e of listMixes()) {
    try {
      const r = await fetch(`/api/mixes/${encodeURIComponent(e.id)}`, { method: "GET" });
      if (r.status === 404) forget(e.id);
    } catch (err) { return; }  // the server is away: keep the list as it is
  }
}

function idFromUrl() {
  const q = new URLSearchParams(location.search).get("mix");
  const h = location.hash.replace(/^#/, "");
  const id = q || h;
  return id && ID_RE.test(id) ? id : null;
}

async function openMix(id) {
  showError("", "start");
  try {
    await specReady;
    let res = await fetchMix(id);
    while (res.status === "mixing") {
      showProgress(`mixing: ${res.progress.message || res.progress.stage}…`, res.progress.fraction);
      await sleep(250);
      res = await fetchMix(id);
    }
    hideProgress();
    if (res.status === "failed") throw new Error(res.error ? res.error.detail : "this mix failed");
    show(res, true);
  } catch (e) { hideProgress(); showError(e.message, "start"); }
}

async function fetchMix(id) {
  const r = await fetch(`/api/mixes/${encodeURIComponent(id)}`);
  if (r.status === 404) {
    forget(id);
    if (state.mix && state.mix.id === id) state.mix = null;
    throw new Error("That mix is gone: it expired or was deleted (mixes are kept for a while after their last change). Make it again from its files.");
  }
  const body = await r.json();
  if (!r.ok) throw new Error(body.detail || `the server answered ${r.status}`);
  return body;
}

// --- methods --------------------------------------------------------------------------------
async function loadMethods() {
  try {
    const m = await (await fetch("/api/methods")).json();
    state.methods = m;
    const sel = $("method");
    for (const x of m.methods) {
      const o = document.createElement("option"); o.value = x.name;
      o.textContent = `${x.name}${x.name === m.default ? " (default)" : ""}`;
      o.title = `${x.description}${x.vocal_to_mix_mae_lu == null ? "" : ` · cross-validated level error ${x.vocal_to_mix_mae_lu.toFixed(2)} LU`}`;
      sel.appendChild(o);
    }
    sel.value = m.default;
    const g = $("genre");
    for (const name of m.genres) { const o = document.createElement("option"); o.value = name; o.textContent = name; g.appendChild(o); }
  } catch (e) { /* the server's default method is used */ }
}

// --- waveforms ----------------------------------------------------------------------------
function fitCanvas(c) {
  const r = c.getBoundingClientRect(); const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(r.width * dpr)), h = Math.max(1, Math.round(r.height * dpr));
  if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
  const g = c.getContext("2d"); g.setTransform(dpr, 0, 0, dpr, 0, 0);
  return [g, r.width, r.height];
}

let peaks = null;
async function drawWaves() {
  const rev = state.mix.revision;
  try {
    const res = await fetch(`${state.mix.links.peaks}?rev=${rev}`);
    if (!res.ok) return;
    const data = await res.json();
    if (!state.mix || rev !== state.mix.revision) return;
    peaks = data;
  } catch (e) { return; }
  paintWaves();
}

function paintWaves() {
  if (!peaks) return;
  for (const [kind, id, color] of [["vocal", "wave-vocal", "#4cc9f0"], ["backing", "wave-backing", "#a98bff"], ["mix", "wave-mix", "#ff8a3d"]]) {
    const [g, W, H] = fitCanvas($(id));
    g.clearRect(0, 0, W, H);
    g.fillStyle = "#1c2430"; g.fillRect(0, H / 2, W, 1);
    const pk = peaks[kind].peak, rms = peaks[kind].rms, n = pk.length;
    for (let x = 0; x < W; x++) {
      const i0 = Math.floor(x / W * n), i1 = Math.max(i0 + 1, Math.floor((x + 1) / W * n));
      let p = 0, r = 0;
      for (let i = i0; i < i1 && i < n; i++) { p = Math.max(p, pk[i]); r = Math.max(r, rms[i]); }
      const hp = Math.min(1, p) * (H / 2 - 2), hr = Math.min(1, r) * (H / 2 - 2);
      g.globalAlpha = 0.45; g.fillStyle = color; g.fillRect(x, H / 2 - hp, 1, 2 * hp || 1);
      g.globalAlpha = 1; g.fillRect(x, H / 2 - hr, 1, 2 * hr || 1);
    }
    g.globalAlpha = 1;
  }
  const tl = $("timeline"); const d = peaks.duration_s; tl.innerHTML = "";
  const step = [1, 2, 5, 10, 15, 30, 60, 120].find((s) => d / s <= 12) || 300;
  for (let t = 0; t <= d + 1e-9; t += step) {
    const s = document.createElement("span"); s.style.left = `${100 * t / d}%`; s.textContent = fmtTime(t); tl.appendChild(s);
  }
}

function movePlayhead() {
  const p = $("player"), head = $("playhead"), c = $("wave-mix");
  if (state.mix && c.offsetWidth) {
    const dur = p.duration || state.mix.duration_s || 1;
    const box = $("waves").getBoundingClientRect(), r = c.getBoundingClientRect();
    head.style.left = `${r.left - box.left + Math.min(1, (p.currentTime || 0) / dur) * r.width}px`;
  }
  requestAnimationFrame(movePlayhead);
}

function seekFrom(ev) {
  const p = $("player"); const r = ev.currentTarget.getBoundingClientRect();
  const dur = p.duration || (state.mix && state.mix.duration_s);
  if (!dur) return;
  p.currentTime = Math.max(0, Math.min(1, (ev.clientX - r.left) / r.width)) * dur;
}

// --- spectrum -----------------------------------------------------------------------------
let analysis = null;
async function drawSpectrum() {
  const rev = state.mix.revision;
  try {
    const res = await fetch(`${state.mix.links.analysis}?rev=${rev}`);
    if (!res.ok) return;
    const data = await res.json();
    if (!state.mix || rev !== state.mix.revision) return;
    analysis = data;
  } catch (e) { return; }
  paintSpectrum();
}

function paintSpectrum() {
  const a = analysis; if (!a) return;
  const [g, W, H] = fitCanvas($("spectrum"));
  g.clearRect(0, 0, W, H);
  const L = 48, R = 54, T = 16, B = 24;
  const fLo = 20, fHi = 20000;
  const fx = (f) => L + (W - L - R) * Math.log(f / fLo) / Math.log(fHi / fLo);
  const levels = a.vocal_db.concat(a.backing_db, a.vocal_after_eq_db);
  const top = Math.ceil(Math.max(...levels) / 10) * 10, bottom = top - 60;
  const ly = (db) => T + (H - T - B) * Math.min(1, Math.max(0, (top - db) / (top - bottom)));
  const eqMax = Math.max(12, Math.ceil(Math.max(...a.eq_bands.map((b) => Math.abs(b.gain_db)), 0) / 6) * 6);
  const ey = (db) => T + (H - T - B) * (0.5 - Math.max(-eqMax, Math.min(eqMax, db)) / (2 * eqMax));
  g.font = "11px system-ui, sans-serif"; g.textBaseline = "middle";
  // grid
  g.strokeStyle = "#1f2836"; g.lineWidth = 1; g.fillStyle = "#8d9bb0";
  for (const f of [50, 100, 200, 500, 1000, 2000, 5000, 10000]) {
    const x = Math.round(fx(f)) + 0.5; g.beginPath(); g.moveTo(x, T); g.lineTo(x, H - B); g.stroke();
    g.textAlign = "center"; g.fillText(f >= 1000 ? `${f / 1000}k` : `${f}`, x, H - B / 2 + 2);
  }
  g.textAlign = "right";
  for (let db = top; db >= bottom; db -= 10) {
    const y = Math.round(ly(db)) + 0.5; g.beginPath(); g.moveTo(L, y); g.lineTo(W - R, y); g.stroke();
    g.fillText(`${db}`, L - 8, y);
  }
  g.save(); g.translate(12, (H - B + T) / 2); g.rotate(-Math.PI / 2); g.textAlign = "center";
  g.fillText("band level, dB", 0, 0); g.restore();
  g.textAlign = "center"; g.fillText("Hz", W - R + 18, H - B / 2 + 2);
  // masking: the bands where the backing is louder than the vocal and the vocal matters there
  const e = a.band_edges_hz;
  for (let i = 0; i < a.masking_db.length; i++) {
    const m = a.masking_db[i], w = a.weight[i];
    if (m <= 0 || w * m < 0.5) continue;
    g.fillStyle = `rgba(255, 93, 108, ${0.06 + 0.44 * w * Math.min(1, m / 12)})`;
    g.fillRect(fx(Math.max(e[i], fLo)), T, fx(e[i + 1]) - fx(Math.max(e[i], fLo)), H - T - B);
    if (a.proposed_gain_db[i] >= 0.5) {  // where the masking rule boosts the vocal
      g.fillStyle = "#ff9aa3"; g.textAlign = "center";
      g.fillText(`+${m.toFixed(0)}`, fx(a.band_centres_hz[i]), T + 8);
    }
  }
  // band levels
  const line = (xs, ys, color, dash, width) => {
    g.strokeStyle = color; g.lineWidth = width || 2; g.setLineDash(dash || []); g.beginPath();
    xs.forEach((x, i) => (i ? g.lineTo(fx(x), ys[i]) : g.moveTo(fx(x), ys[i]))); g.stroke(); g.setLineDash([]);
  };
  const c = a.band_centres_hz;
  line(c, a.backing_db.map(ly), "#a98bff");
  line(c, a.vocal_db.map(ly), "#4cc9f0");
  line(c, a.vocal_after_eq_db.map(ly), "#4cc9f0", [5, 4], 1.5);
  for (const [ys, color] of [[a.vocal_db, "#4cc9f0"], [a.backing_db, "#a98bff"]]) {
    g.fillStyle = color; c.forEach((f, i) => { g.beginPath(); g.arc(fx(f), ly(ys[i]), 2.2, 0, 7); g.fill(); });
  }
  // EQ response (right axis)
  g.strokeStyle = "rgba(255, 209, 102, .35)"; g.setLineDash([3, 4]); g.lineWidth = 1;
  g.beginPath(); g.moveTo(L, ey(0)); g.lineTo(W - R, ey(0)); g.stroke(); g.setLineDash([]);
  line(a.eq_freqs_hz, a.eq_response_db.map(ey), "#ffd166", [], 2.5);
  g.fillStyle = "#ffd166"; g.textAlign = "left";
  for (const db of [eqMax, eqMax / 2, 0, -eqMax / 2, -eqMax]) g.fillText(`${db > 0 ? "+" : ""}${db} dB`, W - R + 6, ey(db));
  const shownSources = new Set();
  a.eq_bands.forEach((b, i) => {
    if (!b.gain_db) return;
    const x = fx(b.freq_hz), y = ey(b.gain_db);
    shownSources.add(b.source);
    g.beginPath(); g.arc(x, y, 6, 0, 7); g.fillStyle = sourceInfo(b.source)[2]; g.fill();
    g.fillStyle = "#1a1208"; g.textAlign = "center"; g.font = "bold 9px system-ui, sans-serif";
    g.fillText(`${i + 1}`, x, y + 0.5); g.font = "11px system-ui, sans-serif";
  });
  $("eq-sources").innerHTML = shownSources.size ? ` · bands: ${[...shownSources].map((src) => {
    const [label, tip, color] = sourceInfo(src);
    return `<span title="${esc(tip)}"><i class="l-dot" data-color="${esc(color)}"></i>${esc(label)}</span>`;
  }).join(" ")}` : "";
  // colours through the CSSOM: the page's Content-Security-Policy allows no inline styles
  for (const dot of $("eq-sources").querySelectorAll("i.l-dot")) dot.style.background = dot.dataset.color;
}

// --- presets ------------------------------------------------------------------------------
async function loadPresets() {
  try {
    const list = await (await fetch("/api/presets")).json();
    state.presets = list;
    const sel = $("reverb-preset");
    const types = new Set(list.map((p) => p.type));
    const groups = new Map();  // origin -> <optgroup> (only when the presets name one)
    for (const p of list) {
      const o = document.createElement("option"); o.value = p.name;
      o.textContent = `${pretty(p.name)} · ${p.decay_s.toFixed(1)} s${types.size > 1 ? ` · ${p.type}` : ""}`;
      if (p.source) o.title = `fitted to ${p.source}`;
      let parent = sel;
      if (p.origin) {
        if (!groups.has(p.origin)) {
          const gr = document.createElement("optgroup");
          gr.label = p.origin === "real" ? "measured rooms" : `${p.origin} reverb`;
          groups.set(p.origin, gr); sel.appendChild(gr);
        }
        parent = groups.get(p.origin);
      }
      parent.appendChild(o);
    }
  } catch (e) { /* presets are optional */ }
}

// --- wiring -------------------------------------------------------------------------------
function pickFile(kind) {
  const input = $(`${kind}-file`); const f = input.files[0];
  $(`${kind}-name`).textContent = f ? `${f.name} · ${(f.size / 1048576).toFixed(1)} MB` : "choose or drop a file";
  $(`drop-${kind}`).classList.toggle("has", !!f);
}

function init() {
  const toast = document.createElement("div"); toast.id = "toast"; toast.className = "toast error";
  toast.setAttribute("role", "alert"); toast.hidden = true; document.body.appendChild(toast);

  for (const kind of ["vocal", "backing", "reference_vocal", "reference_backing"]) {
    $(`${kind}-file`).addEventListener("change", () => pickFile(kind));
    const drop = $(`drop-${kind}`);
    drop.addEventListener("dragenter", () => drop.classList.add("over"));
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", () => { drop.classList.remove("over"); setTimeout(() => pickFile(kind), 0); });
  }
  $("dl-format").addEventListener("change", () => { if (state.mix) setDownloads(); });
  $("upload-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("vocal-file").files[0], b = $("backing-file").files[0];
    if (!v || !b) { showError("Choose a vocal and a backing file first (or press Try the demo).", "start"); return; }
    const rv = $("reference_vocal-file").files[0], rb = $("reference_backing-file").files[0];
    if (!!rv !== !!rb) { showError("A reference needs both its stems: choose its vocal and its backing (or clear them).", "start"); return; }
    const fd = new FormData(); fd.append("vocal", v); fd.append("backing", b);
    if (rv) { fd.append("reference_vocal", rv); fd.append("reference_backing", rb); }
    if ($("method").value) fd.append("method", $("method").value);
    if ($("genre").value) fd.append("genre", $("genre").value);
    startMix(fd);
  });
  $("demo-button").addEventListener("click", () => startMix(null));
  $("reference-clear").addEventListener("click", () => {
    for (const kind of ["reference_vocal", "reference_backing"]) { $(`${kind}-file`).value = ""; pickFile(kind); }
  });
  $("ab-mix").addEventListener("click", () => setAB("mix"));
  $("ab-plain").addEventListener("click", () => setAB("plain"));
  for (const [sw, path] of [["sw-compressor", "vocal.compressor.enabled"], ["sw-reverb", "vocal.reverb.enabled"],
    ["sw-highpass", "vocal.highpass.enabled"], ["sw-deesser", "vocal.deesser.enabled"], ["sw-delay", "vocal.delay.enabled"]]) {
    $(sw).addEventListener("change", (ev) => queueEdit(path, (p) => { put(p, path, ev.target.checked); return { params: p }; }));
  }
  $("sw-mix_lufs").addEventListener("change", (ev) => {
    const ctl = controls.get("targets.mix_lufs");
    const v = ev.target.checked ? Number(ctl.num.value) : null;
    queueEdit("targets.mix_lufs", () => ({ targets: { mix_lufs: v } }));
  });
  $("sw-momentary").addEventListener("change", (ev) => {
    const key = "targets.vocal_momentary_range_lu";
    const v = ev.target.checked ? switchedOn(key, state.mix.params.achieved.vocal_momentary_range_lu) : null;
    queueEdit(key, () => ({ targets: { vocal_momentary_range_lu: v } }));
  });
  $("delay-note").addEventListener("change", (ev) => {
    const note = ev.target.value;
    if (!SPEC || !SPEC.delay_notes.includes(note)) return;
    queueEdit("vocal.delay.note", (p) => { p.vocal.delay.note = note; p.vocal.delay.enabled = true; return { params: p }; });
  });
  $("reverb-type").addEventListener("change", (ev) => {
    const type = ev.target.value;
    if (!SPEC || !SPEC.reverb_types.includes(type)) return;
    queueEdit("vocal.reverb.type", (p) => { p.vocal.reverb.type = type; p.vocal.reverb.enabled = true; return { params: p }; });
  });
  $("reverb-preset").addEventListener("change", (ev) => {
    if (ev.target.value) queueEdit("vocal.reverb.preset", () => ({ reverb_preset: ev.target.value }));
  });
  $("timing-auto").addEventListener("click", () => queueEdit("vocal.offset_ms", () => ({ vocal_offset_ms: "auto" })));
  $("eq-add").addEventListener("click", () => queueEdit("eq.add", (p) => {
    const d = (f) => SPEC.params[`vocal.eq_bands[].${f}`].default;  // a new document's band
    p.vocal.eq_bands.push({ kind: SPEC.eq_kinds[0], freq_hz: d("freq_hz"), gain_db: d("gain_db"), q: d("q"), source: "manual" });
    return { params: p };
  }));
  $("params-file").addEventListener("change", async () => {
    const f = $("params-file").files[0]; if (!f) return;
    let doc;
    try { doc = JSON.parse(await f.text()); } catch (e) { showError(`${f.name} is not a params file: ${e.message}`); return; }
    queueEdit("load", () => ({ params: doc }));
    $("params-file").value = "";
  });
  for (const id of ["wave-vocal", "wave-backing", "wave-mix"]) $(id).addEventListener("click", seekFrom);
  document.addEventListener("keydown", (ev) => {
    if (ev.target.closest && ev.target.closest("input, select, textarea, button, audio")) return;
    if (!state.mix) return;
    if (ev.key === " ") { ev.preventDefault(); const p = $("player"); if (p.paused) p.play(); else p.pause(); }
    if (ev.key === "a" || ev.key === "A") setAB("plain");
    if (ev.key === "b" || ev.key === "B") setAB("mix");
  });
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => { paintWaves(); paintSpectrum(); }, 100); });
  loadPresets();
  loadMethods();
  specReady.then(() => {
    for (const n of SPEC.delay_notes) { const o = document.createElement("option"); o.value = n; o.textContent = n; $("delay-note").appendChild(o); }
  });
  renderMixes();
  const id = idFromUrl();
  if (id) openMix(id);
  pruneMixes();
  window.addEventListener("hashchange", () => { const h = idFromUrl(); if (h && (!state.mix || state.mix.id !== h)) openMix(h); });
  requestAnimationFrame(movePlayhead);
}

init();

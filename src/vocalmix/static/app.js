// vocalmix studio: upload, mix, look, listen, adjust. Plain JS, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
let state = { id: null, params: null, links: null, version: 0, ab: "mix" };

const TARGETS = [
  ["vocal_to_mix_lu", "Vocal vs mix", -20, -0.5, 0.1, "LU"],
  ["vocal_lra_lu", "Vocal loudness range", 1, 30, 0.5, "LU"],
  ["reverb_decay_s", "Reverb time (T30)", 0.6, 9.5, 0.1, "s"],
];
const SETTINGS = [
  ["vocal.gain_db", "Vocal gain", -40, 40, 0.1, "dB"],
  ["backing.gain_db", "Backing gain", -30, 12, 0.1, "dB"],
  ["vocal.highpass.cutoff_frequency_hz", "High-pass", 20, 400, 1, "Hz"],
  ["vocal.compressor.threshold_db", "Comp. threshold", -80, 0, 0.5, "dB"],
  ["vocal.compressor.ratio", "Comp. ratio", 1, 20, 0.1, ": 1"],
  ["vocal.compressor.attack_ms", "Comp. attack", 0.1, 100, 0.1, "ms"],
  ["vocal.compressor.release_ms", "Comp. release", 5, 1000, 1, "ms"],
  ["vocal.compressor.makeup_db", "Comp. make-up", -12, 36, 0.1, "dB"],
  ["vocal.reverb.room_size", "Reverb room size", 0, 1, 0.01, ""],
  ["vocal.reverb.damping", "Reverb damping", 0, 1, 0.01, ""],
  ["vocal.reverb.width", "Reverb width", 0, 1, 0.01, ""],
  ["vocal.reverb.wet_level_db", "Reverb level", -60, 0, 0.5, "dB"],
  ["vocal.reverb.pre_delay_ms", "Reverb pre-delay", 0, 200, 1, "ms"],
  ["master.ceiling_dbtp", "Master ceiling", -6, 0, 0.1, "dBTP"],
];

function get(obj, path) { return path.split(".").reduce((o, k) => o[k], obj); }
function set(obj, path, v) {
  const ks = path.split("."); const last = ks.pop();
  ks.reduce((o, k) => o[k], obj)[last] = v;
}
function fmt(v, unit) {
  if (v === null || v === undefined) return "n/a";
  return `${Number(v).toFixed(Math.abs(v) < 10 ? 2 : 1)} ${unit}`.trim();
}

function showProgress(text, pct) {
  $("progress").hidden = false;
  $("progress-text").textContent = text;
  const bar = $("progress-bar");
  if (pct === null) { bar.classList.add("busy"); bar.style.width = ""; }
  else { bar.classList.remove("busy"); bar.style.width = `${pct}%`; }
}
function hideProgress() { $("progress").hidden = true; }
function showError(msg) { $("error").hidden = !msg; $("error").textContent = msg || ""; }

function request(method, url, body, onUpload) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.responseType = "json";
    if (onUpload) xhr.upload.onprogress = (e) => e.lengthComputable && onUpload(e.loaded / e.total);
    xhr.onload = () => (xhr.status < 300 ? resolve(xhr.response)
      : reject(new Error((xhr.response && xhr.response.detail) || `HTTP ${xhr.status}`)));
    xhr.onerror = () => reject(new Error("network error"));
    if (body && !(body instanceof FormData)) {
      xhr.setRequestHeader("Content-Type", "application/json");
      body = JSON.stringify(body);
    }
    xhr.send(body || null);
  });
}

async function startMix(formData) {
  showError("");
  try {
    let res;
    if (formData) {
      showProgress("uploading…", 0);
      res = await request("POST", "/api/mixes", formData, (f) => {
        if (f < 1) showProgress(`uploading… ${Math.round(100 * f)}%`, 100 * f);
        else showProgress("analysing and mixing…", null);
      });
    } else {
      showProgress("synthesising the demo song and mixing…", null);
      res = await request("POST", "/api/demo");
    }
    await show(res);
  } catch (e) { showError(e.message); }
  hideProgress();
}

async function show(res) {
  state.id = res.id; state.params = res.params; state.links = res.links; state.version++;
  $("result").hidden = false; $("controls").hidden = false;
  buildControls();
  $("params-json").textContent = JSON.stringify(res.params, null, 2);
  $("notes").textContent = (res.notes || []).join(" · ");
  const a = res.params.achieved;
  $("achieved").innerHTML = [
    ["vocal vs mix", fmt(a.vocal_to_mix_lu, "LU")],
    ["vocal vs backing", fmt(a.vocal_to_backing_lu, "LU")],
    ["vocal LRA", fmt(a.vocal_lra_lu, "LU")],
    ["mix loudness", fmt(a.mix_integrated_lufs, "LUFS")],
    ["mix true peak", fmt(a.mix_true_peak_dbtp, "dBTP")],
    ["master reduction", fmt(a.master_gain_reduction_db, "dB")],
  ].map(([k, v]) => `<div><b>${v}</b><span>${k}</span></div>`).join("");
  for (const k of ["mix", "vocal", "vocal_dry", "backing"]) $(`dl-${k}`).href = url(k);
  $("dl-params").href = `${state.links.params}?v=${state.version}`;
  setPlayer();
  drawWaves();
  drawSpectrum();
}

function url(kind) { return `${state.links[kind]}?v=${state.version}`; }

function setPlayer() {
  const p = $("player"); const t = p.currentTime || 0; const playing = !p.paused;
  p.src = url(state.ab);
  p.addEventListener("loadedmetadata", () => { p.currentTime = Math.min(t, p.duration || t);
    if (playing) p.play(); }, { once: true });
}

function control(prefix, [path, label, lo, hi, step, unit], value, onChange) {
  const id = `${prefix}-${path}`;
  const div = document.createElement("div"); div.className = "ctl";
  div.innerHTML = `<label for="${id}">${label}</label>
    <input type="range" id="${id}" min="${lo}" max="${hi}" step="${step}" value="${value}">
    <output id="${id}-out">${Number(value).toFixed(2)} ${unit}</output>`;
  const input = div.querySelector("input"); const out = div.querySelector("output");
  input.addEventListener("input", () => { out.textContent = `${Number(input.value).toFixed(2)} ${unit}`; });
  input.addEventListener("change", () => onChange(Number(input.value)));
  return div;
}

let timer = null;
function debounced(fn) { clearTimeout(timer); timer = setTimeout(fn, 250); }

function buildControls() {
  const p = state.params;
  const t = $("targets"); t.innerHTML = "";
  for (const spec of TARGETS) t.appendChild(control("t", spec, p.targets[spec[0]],
    (v) => debounced(() => update({ targets: { [spec[0]]: v } }))));
  const s = $("settings"); s.innerHTML = "";
  for (const spec of SETTINGS) s.appendChild(control("s", spec, get(p, spec[0]), (v) => debounced(() => {
    const np = structuredClone(state.params); set(np, spec[0], v);
    if (spec[0] === "vocal.compressor.ratio" || spec[0] === "vocal.compressor.threshold_db") np.vocal.compressor.enabled = true;
    update({ params: np });
  })));
  const e = $("eq"); e.innerHTML = "";
  if (!p.vocal.eq_bands.length) e.innerHTML = "<p class='notes'>No EQ bands: the backing does not mask the vocal enough to need any.</p>";
  p.vocal.eq_bands.forEach((b, i) => {
    const h = document.createElement("h3"); h.textContent = `Band ${i + 1}: ${b.kind} (${b.source})`; e.appendChild(h);
    for (const [key, label, lo, hi, step, unit] of [["freq_hz", "Frequency", 20, 16000, 1, "Hz"],
      ["gain_db", "Gain", -12, 12, 0.1, "dB"], ["q", "Q", 0.1, 8, 0.05, ""]]) {
      e.appendChild(control(`eq${i}`, [key, label, lo, hi, step, unit], b[key], (v) => debounced(() => {
        const np = structuredClone(state.params); np.vocal.eq_bands[i][key] = v; update({ params: np });
      })));
    }
  });
}

async function update(body) {
  showError(""); showProgress("re-rendering…", null);
  try { await show(await request("PUT", `/api/mixes/${state.id}/params`, body)); }
  catch (e) { showError(e.message); buildControls(); }
  hideProgress();
}

async function decode(kind) {
  const buf = await (await fetch(url(kind))).arrayBuffer();
  const ctx = new OfflineAudioContext(1, 1, 44100);
  return ctx.decodeAudioData(buf);
}

async function drawWaves() {
  const v = state.version;
  for (const [kind, canvas, color] of [["vocal", "wave-vocal", "#5cc8ff"],
    ["backing", "wave-backing", "#b48cff"], ["mix", "wave-mix", "#ff8a3d"]]) {
    try {
      const audio = await decode(kind);
      if (v !== state.version) return;
      const c = $(canvas); const g = c.getContext("2d"); const W = c.width, H = c.height;
      g.clearRect(0, 0, W, H); g.fillStyle = color;
      const d = audio.getChannelData(0); const step = Math.max(1, Math.floor(d.length / W));
      for (let x = 0; x < W; x++) {
        let m = 0; for (let i = x * step; i < (x + 1) * step && i < d.length; i++) m = Math.max(m, Math.abs(d[i]));
        const h = Math.max(1, m * H); g.fillRect(x, (H - h) / 2, 1, h);
      }
    } catch (e) { /* a waveform is decoration; the audio still plays */ }
  }
}

async function drawSpectrum() {
  const v = state.version;
  const a = await (await fetch(`/api/mixes/${state.id}/analysis`)).json();
  if (v !== state.version) return;
  const c = $("spectrum"); const g = c.getContext("2d"); const W = c.width, H = c.height;
  g.clearRect(0, 0, W, H);
  const fx = (f) => 40 + (W - 80) * Math.log(f / 20) / Math.log(20000 / 20);
  const ly = (db) => 10 + (H - 30) * Math.min(1, Math.max(0, -db / 50));  // 0..-50 dB
  const ey = (db) => H / 2 - db * (H - 40) / 40;  // EQ: +-20 dB
  g.font = "11px system-ui"; g.fillStyle = "#93a1b3";
  for (const f of [50, 100, 200, 500, 1000, 2000, 5000, 10000]) {
    g.fillText(f >= 1000 ? `${f / 1000}k` : `${f}`, fx(f) - 8, H - 4);
    g.fillStyle = "#222b38"; g.fillRect(fx(f), 0, 1, H - 16); g.fillStyle = "#93a1b3";
  }
  const n = a.band_centres_hz.length;
  const edges = a.band_centres_hz.map((f, i) => i < n - 1 ? Math.sqrt(f * a.band_centres_hz[i + 1]) : f * 1.2);
  for (let i = 0; i < n; i++) {
    const x0 = fx(i ? edges[i - 1] : a.band_centres_hz[0] / 1.2), x1 = fx(edges[i]);
    if (a.masking_db[i] > 0 && a.vocal_db[i] > -30 && a.band_centres_hz[i] > 150) {
      g.fillStyle = "rgba(255,92,92,0.35)"; g.fillRect(x0, 0, x1 - x0, H - 16);
    }
  }
  const line = (ys, color, xs) => { g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    ys.forEach((y, i) => (i ? g.lineTo(fx(xs[i]), y) : g.moveTo(fx(xs[i]), y))); g.stroke(); };
  line(a.vocal_db.map(ly), "#5cc8ff", a.band_centres_hz);
  line(a.backing_db.map(ly), "#b48cff", a.band_centres_hz);
  g.setLineDash([5, 4]); g.strokeStyle = "#3a475b"; g.beginPath(); g.moveTo(40, ey(0)); g.lineTo(W - 40, ey(0)); g.stroke(); g.setLineDash([]);
  line(a.eq_response_db.map(ey), "#ffd23f", a.eq_freqs_hz);
  g.fillStyle = "#ffd23f"; g.fillText("+10 dB", W - 38, ey(10) + 4); g.fillText("-10 dB", W - 38, ey(-10) + 4);
  g.fillStyle = "#93a1b3"; g.fillText("band level re total, dB", 44, 12);
}

$("upload-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const v = $("vocal-file").files[0], b = $("backing-file").files[0];
  if (!v || !b) { showError("Choose a vocal and a backing file first (or press Try the demo)."); return; }
  const fd = new FormData(); fd.append("vocal", v); fd.append("backing", b);
  startMix(fd);
});
$("demo-button").addEventListener("click", () => startMix(null));
$("ab-mix").addEventListener("click", () => { state.ab = "mix"; $("ab-mix").classList.add("on"); $("ab-plain").classList.remove("on"); setPlayer(); });
$("ab-plain").addEventListener("click", () => { state.ab = "plain"; $("ab-plain").classList.add("on"); $("ab-mix").classList.remove("on"); setPlayer(); });
$("params-file").addEventListener("change", async () => {
  const f = $("params-file").files[0]; if (!f) return;
  try { update({ params: JSON.parse(await f.text()) }); } catch (e) { showError(`Not a params file: ${e.message}`); }
});

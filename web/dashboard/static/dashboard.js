// The dashboard's progressive enhancement: live logs and build output (Server-Sent
// Events), metrics charts (SVG from a JSON endpoint) and typed confirmations (delete,
// transfer).
// Every page reads fine without it; nothing here is needed to change an app.
"use strict";

const MAX_LOG_LINES = 5000;

function followInto(pre, onEnd) {
  let skip = Number(pre.dataset.skip || 0);
  const source = new EventSource(pre.dataset.stream);
  source.onopen = () => {
    const live = document.getElementById("log-live");
    if (live) live.hidden = false;
  };
  source.onmessage = (event) => {
    if (skip > 0) { skip -= 1; return; }  // lines the page already shows
    const nearBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
    pre.append(document.createTextNode(event.data + "\n"));
    while (pre.childNodes.length > MAX_LOG_LINES) pre.removeChild(pre.firstChild);
    if (nearBottom) pre.scrollTop = pre.scrollHeight;
  };
  source.addEventListener("end", (event) => {
    source.close();
    if (onEnd) onEnd(JSON.parse(event.data));
  });
  return source;
}

function setUpLogs() {
  const pre = document.getElementById("log-lines");
  if (!pre || !pre.dataset.stream) return;
  pre.scrollTop = pre.scrollHeight;
  // The server renders the recent lines as one text node; follow from there.
  followInto(pre);
}

function setUpBuild() {
  const pre = document.getElementById("build-output");
  if (!pre || !pre.dataset.stream) return;
  followInto(pre, () => window.location.reload());
}

function setUpDeleteConfirm() {
  for (const input of document.querySelectorAll("input[data-must-equal]")) {
    const button = input.form.querySelector("button[type=submit]");
    const check = () => { button.disabled = input.value.trim() !== input.dataset.mustEqual; };
    input.addEventListener("input", check);
    check();
  }
}

// --- charts -------------------------------------------------------------------------
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600, HEIGHT = 180, LEFT = 40, BOTTOM = 20, TOP = 8;

function svgEl(name, attrs, parent) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.append(el);
  return el;
}

function frame(container, maxValue, buckets) {
  container.replaceChildren();
  const svg = svgEl("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img" }, container);
  const plotH = HEIGHT - BOTTOM - TOP;
  svgEl("line", { x1: LEFT, y1: HEIGHT - BOTTOM, x2: WIDTH, y2: HEIGHT - BOTTOM, class: "axis" }, svg);
  for (const fraction of [0.5, 1]) {
    const y = HEIGHT - BOTTOM - plotH * fraction;
    svgEl("line", { x1: LEFT, y1: y, x2: WIDTH, y2: y, class: "axis" }, svg);
    svgEl("text", { x: 2, y: y + 4 }, svg).textContent = String(Math.round(maxValue * fraction));
  }
  const step = (WIDTH - LEFT) / buckets.length;
  const last = buckets.length - 1;
  for (const i of [0, last]) {
    const label = new Date(buckets[i].t * 1000).toISOString().slice(11, 16) + (i ? " UTC" : "");
    svgEl("text", { x: i ? WIDTH : LEFT, y: HEIGHT - 4, "text-anchor": i ? "end" : "start" }, svg)
      .textContent = label;
  }
  const y = (v) => HEIGHT - BOTTOM - (maxValue ? (v / maxValue) * plotH : 0);
  return { svg, step, y };
}

function bars(container, buckets, series) {
  const max = Math.max(1, ...buckets.map((b) => series.reduce((sum, s) => sum + (b[s] || 0), 0)));
  const { svg, step, y } = frame(container, max, buckets);
  buckets.forEach((b, i) => {
    let base = 0;
    for (const s of series) {
      const v = b[s] || 0;
      if (!v) continue;
      const top = y(base + v);
      svgEl("rect", { x: LEFT + i * step + 1, y: top, width: Math.max(1, step - 2),
                      height: y(base) - top, class: `s-${s}` }, svg)
        .append(Object.assign(document.createElementNS(SVG, "title"), { textContent: `${s}: ${v}` }));
      base += v;
    }
  });
}

function lines(container, buckets, series) {
  const max = Math.max(1, ...buckets.flatMap((b) => series.map((s) => b[s] || 0)));
  const { svg, step, y } = frame(container, max, buckets);
  for (const s of series) {
    const points = buckets.map((b, i) => (b[s] === null ? null : `${LEFT + i * step + step / 2},${y(b[s])}`))
      .filter((p) => p !== null);
    if (points.length) svgEl("polyline", { points: points.join(" "), class: `l-${s}` }, svg);
    // A minute with traffic between quiet ones has no line to draw: a dot shows it.
    for (const p of points) {
      const [cx, cy] = p.split(",");
      svgEl("circle", { cx, cy, r: 3, class: `d-${s}` }, svg);
    }
  }
}

function drawCharts(section, data) {
  const chart = (name) => section.querySelector(`[data-chart="${name}"]`);
  bars(chart("requests"), data.buckets, ["requests"]);
  lines(chart("latency"), data.buckets, ["p50", "p95"]);
  bars(chart("status"), data.buckets, ["2xx", "3xx", "4xx", "5xx"]);
  const memory = section.querySelector("[data-memory]");
  if (data.memory.length) {
    memory.hidden = false;
    memory.querySelector("ul").replaceChildren(...data.memory.map((m) => Object.assign(
      document.createElement("li"), { textContent: `${m.dyno}: ${Math.round(m.bytes / 1048576)} MB` })));
  }
}

function setUpCharts() {
  const section = document.getElementById("charts");
  if (!section) return;
  const refresh = () => fetch(section.dataset.source, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
    .then((data) => drawCharts(section, data))
    .catch(() => {});
  refresh();
  setInterval(refresh, 15000);
}

document.addEventListener("DOMContentLoaded", () => {
  setUpLogs();
  setUpBuild();
  setUpDeleteConfirm();
  setUpCharts();
});

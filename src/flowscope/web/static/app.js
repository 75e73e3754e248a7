// flowscope dashboard page: plain ES module, no build step.
//
// Data flow: the first state of every view comes from the REST API (so a reload shows
// what the store holds); afterwards the WebSocket /api/live pushes status, new flows
// and new alerts. Pushes never render directly: they only mark views "dirty", and a
// scheduler renders each dirty view at most every MIN_INTERVAL ms inside
// requestAnimationFrame. A flood therefore costs the page a bounded amount of work per
// second, however many messages arrive.
//
// Safety: every string that may come from a packet (addresses, signatures, flow keys,
// EVE fields, anything in "extra") reaches the page as text: textContent for DOM we
// build, esc() for the HTML strings DataTables inserts, and esc() for Plotly labels
// (Plotly reads a small HTML subset in labels; escaped text is shown literally).

const Plotly = window.Plotly; // classic script (plotly.min.js) loaded before this module
let DataTable = null;
try {
  DataTable = (await import("/vendor/datatables.mjs")).default;
} catch (err) {
  console.error("DataTables bundle missing", err);
}

// ---------------------------------------------------------------- small helpers
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const CSRF = $('meta[name="csrf-token"]')?.content ?? "";

/** Escape text for the few places an HTML string is unavoidable (DataTables cells). */
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

/** Create an element with text content (never HTML) and optional class/attributes. */
function el(tag, text, cls, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

const nf = new Intl.NumberFormat("en-US");
const fmtInt = (n) => (n === null || n === undefined ? "–" : nf.format(Math.round(Number(n))));
function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = Number(n);
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return `${i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}
function fmtRate(n, unit) {
  if (!n) return `0 ${unit}/s`;
  return `${n >= 100 ? nf.format(Math.round(n)) : Number(n).toFixed(1)} ${unit}/s`;
}
function fmtDur(us) {
  if (us === null || us === undefined) return "–";
  const s = Number(us) / 1e6;
  if (s < 0.001) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1000).toFixed(1)} ms`;
  if (s < 120) return `${s.toFixed(2)} s`;
  return `${(s / 60).toFixed(1)} min`;
}
/** EVE time text (UTC) → "YYYY-MM-DD HH:MM:SS" (UTC, like the log files). */
function fmtTs(text) {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})/.exec(String(text ?? ""));
  return m ? `${m[1]} ${m[2]}` : String(text ?? "–");
}
const fmtNs = (ns) => (ns ? new Date(Number(ns) / 1e6).toISOString().slice(0, 19).replace("T", " ") : "–");
const fmtScore = (s) => (s === null || s === undefined ? "–" : Number(s).toFixed(3));
const fmtNum = (v) => {
  if (v === null || v === undefined) return "–";
  const x = Number(v);
  if (Number.isInteger(x)) return nf.format(x);
  return Math.abs(x) >= 1000 ? nf.format(Math.round(x)) : x.toPrecision(4);
};

// Classes come from these fixed maps, never from data.
const LEVEL_CLASS = { low: "lvl-low", medium: "lvl-medium", high: "lvl-high", critical: "lvl-critical" };
const RISK_CLASS = { low: "risk-low", medium: "risk-medium", high: "risk-high", critical: "risk-critical" };
const isMalicious = (row) => /^malicious$/i.test(String(row?.verdict ?? ""));

// ---------------------------------------------------------------- REST
async function api(path, options = {}) {
  const opts = { credentials: "same-origin", ...options };
  if (opts.method && opts.method !== "GET") {
    opts.headers = { "Content-Type": "application/json", "X-CSRF-Token": CSRF, ...(opts.headers ?? {}) };
    opts.body = JSON.stringify(opts.json ?? {});
  }
  const res = await fetch(path, opts);
  const type = res.headers.get("content-type") ?? "";
  const body = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) {
    let detail = body?.detail ?? body;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg ?? JSON.stringify(d)).join("; ");
    throw new Error(typeof detail === "string" ? detail : `HTTP ${res.status}`);
  }
  return body;
}
const post = (path, json) => api(path, { method: "POST", json });

function banner(message, kind = "error") {
  const b = $("#banner");
  if (!message) { b.hidden = true; return; }
  b.textContent = message;
  b.className = `banner ${kind === "info" ? "info" : ""}`;
  b.hidden = false;
}

// ---------------------------------------------------------------- render scheduler
// Each view has a renderer and a minimum interval; mark() asks for a render, flush()
// runs the due ones in one animation frame. Work per second is bounded by the
// intervals, not by the message rate.
const views = new Map(); // name → {fn, every, last, busy}
const dirty = new Set();
let timer = null;

function view(name, every, fn) { views.set(name, { fn, every, last: 0, busy: false }); }
function mark(...names) {
  for (const n of names) dirty.add(n);
  schedule();
}
function schedule() {
  if (timer !== null || dirty.size === 0) return;
  const now = performance.now();
  let wait = Infinity;
  for (const n of dirty) {
    const v = views.get(n);
    wait = Math.min(wait, v ? Math.max(0, v.last + v.every - now) : 0);
  }
  timer = setTimeout(() => requestAnimationFrame(flush), Math.min(wait, 2000));
}
function flush() {
  timer = null;
  const now = performance.now();
  for (const n of Array.from(dirty)) {
    const v = views.get(n);
    if (!v) { dirty.delete(n); continue; }
    if (v.busy || now - v.last < v.every) continue;
    dirty.delete(n);
    v.last = now;
    try {
      const r = v.fn();
      if (r && typeof r.then === "function") {
        v.busy = true;
        r.catch((e) => console.warn(n, e)).finally(() => { v.busy = false; schedule(); });
      }
    } catch (e) {
      console.warn(n, e);
    }
  }
  schedule();
}

// ---------------------------------------------------------------- state
const state = {
  status: null,
  model: null,
  demo: false,
  live: { flows: 0, alerts: 0, dropped: 0 },
  tables: {},
};

// ---------------------------------------------------------------- counters + sensor
function setText(id, text) {
  const node = document.getElementById(id);
  if (node && node.textContent !== text) node.textContent = text;
}

function renderCounters() {
  const st = state.status;
  if (!st) return;
  const c = st.counters ?? {};
  const r = st.rates ?? {};
  const loss = c.loss ?? {};
  setText("c-packets", fmtInt(c.packets));
  setText("c-pps", `${fmtRate(r.packets_per_s, "pkt")} capture rate`);
  setText("c-bytes", fmtBytes(c.bytes));
  setText("c-bps", fmtRate(r.bytes_per_s ? r.bytes_per_s / 1000 : 0, "kB"));
  setText("c-flows", fmtInt(c.flows));
  setText("c-fps", fmtRate(r.flows_per_s, "flows"));
  setText("c-open", fmtInt(c.open_flows));
  setText("c-malicious", fmtInt(c.malicious));
  const fams = Object.entries(c.malicious_by_family ?? {}).filter(([, n]) => n > 0);
  fams.sort((a, b) => b[1] - a[1]);
  setText("c-malfam", fams.slice(0, 3).map(([f, n]) => `${f} ${fmtInt(n)}`).join(" · "));
  setText("c-alerts", fmtInt(c.alerts));
  setText("c-active", `${fmtInt(c.active_alerts)} active`);
  setText("d-kernel", fmtInt(loss.kernel_drops ?? 0));
  setText("d-bad", fmtInt(loss.capture_bad_headers ?? 0));
  setText("d-queue", fmtInt(loss.queue_dropped_packets ?? 0));
  setText("d-evicted", fmtInt(loss.evicted_flows ?? 0));
  setText("n-flows", fmtInt(c.flows));
  setText("n-alerts", fmtInt(c.alerts));
  setText("n-detections", fmtInt(c.malicious));
}

function renderSensor() {
  const s = state.status?.sensor;
  if (!s) return;
  const pill = $("#sensor-state");
  pill.textContent = s.state;
  pill.className = `pill pill-${["idle", "running", "stopping", "error"].includes(s.state) ? s.state : "idle"}`;
  const where = s.source === "live" ? `live on ${s.interface ?? "?"}${s.bpf ? ` (${s.bpf})` : ""}`
    : s.source === "demo" ? "demo capture (loop)" : s.source === "replay" ? "replay" : "";
  setText("sensor-source", `${where}${where ? " · " : ""}session ${s.session}`);
  const running = s.state === "running" || s.state === "stopping";
  $("#btn-start").disabled = running;
  $("#btn-stop").disabled = !running;
  if (s.state === "error" && s.error) banner(`Sensor stopped: ${s.error}`);
  if (s.source === "demo" && !state.demo) { state.demo = true; addDemoOption(); }
}

// ---------------------------------------------------------------- live push
function connectLive() {
  let retry = 1000;
  const pill = $("#live-state");
  const open = () => {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/api/live`);
    ws.onopen = () => { retry = 1000; pill.textContent = "live"; pill.className = "pill pill-on"; };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      onPush(msg);
    };
    ws.onclose = () => {
      pill.textContent = "offline";
      pill.className = "pill pill-off";
      setTimeout(open, retry);
      retry = Math.min(retry * 2, 10000);
    };
    ws.onerror = () => ws.close();
  };
  open();
}

function onPush(msg) {
  switch (msg.type) {
    case "status":
      state.status = msg;
      mark("counters", "sensor");
      break;
    case "flows": {
      const rows = Array.isArray(msg.rows) ? msg.rows : [];
      state.live.flows += rows.length;
      state.live.dropped += Number(msg.dropped) || 0;
      mark("flows", "timeseries", "talkers");
      if (rows.some(isMalicious) || msg.dropped) mark("detections");
      break;
    }
    case "alerts":
      state.live.alerts += Array.isArray(msg.rows) ? msg.rows.length : 0;
      mark("alerts");
      break;
    case "cleared":
      resetView();
      break;
    default:
      break;
  }
}

function resetView() {
  state.live = { flows: 0, alerts: 0, dropped: 0 };
  for (const t of Object.values(state.tables)) t.page(0);
  mark("flows", "alerts", "detections", "timeseries", "talkers", "status");
}

// ---------------------------------------------------------------- tables
/** A DataTables column whose cell is always escaped text (optionally in a fixed class). */
function col(data, title, { fmt = (v) => v ?? "–", sort = null, cls = "", klass = null } = {}) {
  return {
    data,
    title,
    name: sort ?? "",
    orderable: Boolean(sort),
    className: cls,
    defaultContent: "–",
    render: (v, type, row) => {
      if (type !== "display") return v;
      const text = esc(fmt(v, row));
      const k = klass ? klass(v, row) : null;
      return k ? `<span class="${k}">${text}</span>` : text;
    },
  };
}

const FLOW_COLUMNS = [
  col("timestamp", "First seen (UTC)", { fmt: fmtTs, sort: "time", cls: "mono" }),
  col("src_ip", "Source", { sort: "src_ip", cls: "mono" }),
  col("src_port", "Port", { sort: "src_port", cls: "mono dt-right" }),
  col("dst_ip", "Destination", { sort: "dst_ip", cls: "mono" }),
  col("dst_port", "Port", { sort: "dst_port", cls: "mono dt-right" }),
  col("proto", "Proto", { sort: "protocol" }),
  col("duration_us", "Duration", { fmt: fmtDur, sort: "duration", cls: "dt-right" }),
  col("packets", "Packets", { fmt: fmtInt, sort: "packets", cls: "mono dt-right" }),
  col("bytes", "Bytes", { fmt: fmtBytes, sort: "bytes", cls: "mono dt-right" }),
  col("verdict", "Verdict", {
    sort: "verdict", klass: (v, row) => (isMalicious(row) ? "verdict-malicious" : "verdict-benign"),
  }),
  col("family", "Family", { sort: "family" }),
  col("score", "Score", { fmt: fmtScore, sort: "score", cls: "mono dt-right" }),
  col("risk", "Risk", { sort: "risk", klass: (v) => LEVEL_CLASS[v] ?? "lvl-none" }),
];

const ALERT_COLUMNS = [
  // Sorted by when the incident last changed (the API's default), shown as its last event.
  col("last_ts", "Last seen (UTC)", { fmt: fmtTs, sort: "updated", cls: "mono" }),
  col("signature", "Signature", { sort: "signature", cls: "wrap" }),
  col("family", "Family"),
  col("level", "Level", { sort: "level", klass: (v) => LEVEL_CLASS[v] ?? "lvl-none" }),
  col("state", "State", { sort: "state" }),
  col("src_ip", "Attacker", { cls: "mono" }),
  col("dest_ip", "Victim", { cls: "mono" }),
  col("dest_port", "Port", { cls: "mono dt-right" }),
  col("proto", "Proto"),
  col("events", "Events", { fmt: fmtInt, sort: "events", cls: "mono dt-right" }),
  col("first_ts", "First seen (UTC)", { fmt: fmtTs, sort: "time", cls: "mono" }),
];

function formFilters(form) {
  const out = {};
  for (const [k, v] of new FormData(form).entries()) {
    const s = String(v).trim();
    if (s) out[k] = s;
  }
  return out;
}

/** A server-side DataTable paging through `url` (the store), sorted by our API's keys. */
function serverTable(name, selector, url, columns, order, filters) {
  const node = $(selector);
  if (!DataTable) {
    node.replaceWith(el("p", "The table library (itables) is not installed: pip install itables.", "banner"));
    return null;
  }
  const table = new DataTable(node, {
    serverSide: true,
    processing: false,
    searching: false,
    deferRender: true,
    pageLength: 25,
    lengthMenu: [25, 50, 100, 250, 500],
    order,
    columns,
    autoWidth: false,
    language: { emptyTable: "Nothing yet", zeroRecords: "Nothing matches" },
    ajax: (data, callback) => {
      const params = new URLSearchParams(filters ? filters() : {});
      params.set("page", String(Math.floor(data.start / data.length) + 1));
      params.set("page_size", String(data.length));
      const o = data.order?.[0];
      const key = o ? data.columns[o.column]?.name : "";
      if (key) params.set("sort", `${o.dir === "desc" ? "-" : ""}${key}`);
      api(`${url}?${params}`)
        .then((r) => callback({ draw: data.draw, recordsTotal: r.total, recordsFiltered: r.total, data: r.rows }))
        .catch((e) => {
          banner(`${name}: ${e.message}`);
          callback({ draw: data.draw, recordsTotal: 0, recordsFiltered: 0, data: [] });
        });
    },
  });
  state.tables[name] = table;
  return table;
}

/** Reload a table from the store if the user is on its first page (reading page 5
 * should not shift under them); returns a promise so the scheduler knows it is busy. */
function refreshTable(name, panel) {
  const t = state.tables[name];
  if (!t || $(panel).hidden) return null;
  if (t.page() !== 0) return null;
  return new Promise((resolve) => t.ajax.reload(() => resolve(), false));
}

function initTables() {
  const flowFilters = $("#flow-filters");
  const detFilters = $("#det-filters");
  const flows = serverTable("flows", "#t-flows", "/api/flows", FLOW_COLUMNS, [[0, "desc"]],
    () => formFilters(flowFilters));
  const dets = serverTable("detections", "#t-detections", "/api/detections", FLOW_COLUMNS,
    [[0, "desc"]], () => formFilters(detFilters));
  const alerts = serverTable("alerts", "#t-alerts", "/api/alerts", ALERT_COLUMNS, [[0, "desc"]], null);
  for (const [form, table] of [[flowFilters, flows], [detFilters, dets]]) {
    form.addEventListener("submit", (e) => { e.preventDefault(); table?.ajax.reload(); });
    form.addEventListener("reset", () => setTimeout(() => table?.ajax.reload(), 0));
  }
  for (const t of [flows, dets]) {
    t?.on("click", "tbody tr", function onRow() {
      const row = t.row(this).data();
      if (row?.id) openFlow(row.id);
    });
  }
  alerts?.on("click", "tbody tr", function onRow() {
    const row = alerts.row(this).data();
    if (row) openAlert(row);
  });
}

// ---------------------------------------------------------------- charts
const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
const BASE_LAYOUT = {
  margin: { l: 50, r: 50, t: 8, b: 36 },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
  font: { family: "system-ui, sans-serif", size: 12, color: "#1f2933" },
  legend: { orientation: "h", y: 1.12, x: 0 },
};
const COLORS = { benign: "#7fa7d1", malicious: "#c0392b", bytes: "#3b4b5c" };
/** The colour a share in [0, 1] gets between two "#rrggbb" colours (bar colouring). */
function mix(from, to, share) {
  const t = Math.min(1, Math.max(0, Number(share) || 0));
  const a = from.match(/\w\w/g).map((h) => parseInt(h, 16));
  const b = to.match(/\w\w/g).map((h) => parseInt(h, 16));
  return `rgb(${a.map((v, i) => Math.round(v + (b[i] - v) * t)).join(",")})`;
}
const utcAxis = (t) => new Date(t * 1000).toISOString().slice(0, 19).replace("T", " ");

const EMPTY_NOTE = {
  text: "no flows yet", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5,
  font: { size: 13, color: "#66788a" },
};

function plot(id, traces, layout) {
  if (!Plotly) return;
  const empty = traces.every((t) => !(t.x?.length));
  const full = { ...BASE_LAYOUT, ...layout, annotations: empty ? [EMPTY_NOTE] : [] };
  if (empty) {
    full.xaxis = { ...(full.xaxis ?? {}), visible: false };
    full.yaxis = { ...(full.yaxis ?? {}), visible: false };
    full.yaxis2 = full.yaxis2 ? { ...full.yaxis2, visible: false } : undefined;
  }
  Plotly.react(id, traces, full, PLOT_CONFIG);
}

async function renderTimeseries() {
  const bucket = $("#ts-bucket").value;
  const rows = await api(`/api/timeseries?bucket=${encodeURIComponent(bucket)}&max_buckets=300`);
  const x = rows.map((r) => utcAxis(r.t));
  plot("chart-time", [
    { type: "bar", name: "benign flows", x, y: rows.map((r) => r.flows - r.malicious), marker: { color: COLORS.benign } },
    { type: "bar", name: "malicious flows", x, y: rows.map((r) => r.malicious), marker: { color: COLORS.malicious } },
    {
      type: "scatter", mode: "lines", name: `bytes per ${bucket} s`, x, y: rows.map((r) => r.bytes), yaxis: "y2",
      line: { color: COLORS.bytes, width: 1.5 },
    },
  ], {
    barmode: "stack",
    bargap: 0.1,
    xaxis: { type: "date", title: { text: "first packet (UTC)", font: { size: 11 } } },
    yaxis: { title: { text: "flows", font: { size: 11 } }, rangemode: "tozero" },
    yaxis2: { overlaying: "y", side: "right", rangemode: "tozero", showgrid: false, title: { text: "bytes", font: { size: 11 } } },
  });
}

async function renderTalkers() {
  const [byBytes, byFlows] = await Promise.all([
    api("/api/top-talkers?by=bytes&limit=10"),
    api("/api/top-talkers?by=flows&limit=10"),
  ]);
  const yb = byBytes.map((r) => esc(r.address)).reverse();
  const rb = [...byBytes].reverse();
  plot("chart-top-bytes", [{
    type: "bar", orientation: "h", y: yb, x: rb.map((r) => r.bytes),
    marker: { color: rb.map((r) => mix(COLORS.benign, COLORS.malicious, r.malicious_share)) },
    customdata: rb.map((r) => [fmtBytes(r.bytes), fmtInt(r.flows), `${(100 * r.malicious_share).toFixed(1)}%`]),
    hovertemplate: "%{y}<br>%{customdata[0]} in %{customdata[1]} flows<br>malicious share %{customdata[2]}<extra></extra>",
  }], { margin: { l: 110, r: 10, t: 8, b: 30 }, xaxis: { title: { text: "bytes", font: { size: 11 } } }, yaxis: { type: "category", automargin: true } });
  const yf = byFlows.map((r) => esc(r.address)).reverse();
  const rf = [...byFlows].reverse();
  plot("chart-top-flows", [
    { type: "bar", orientation: "h", name: "benign", y: yf, x: rf.map((r) => r.flows - r.malicious_flows), marker: { color: COLORS.benign } },
    { type: "bar", orientation: "h", name: "malicious", y: yf, x: rf.map((r) => r.malicious_flows), marker: { color: COLORS.malicious } },
  ], { barmode: "stack", margin: { l: 110, r: 10, t: 8, b: 30 }, xaxis: { title: { text: "flows", font: { size: 11 } } }, yaxis: { type: "category", automargin: true } });
}

// ---------------------------------------------------------------- flow detail
let detailTable = null;

function facts(pairs) {
  const dl = el("dl", null, "facts");
  for (const [k, v] of pairs) {
    dl.append(el("dt", k), el("dd", v ?? "–"));
  }
  return dl;
}

function simpleTable(headers, rows) {
  const table = el("table", null, "simple");
  const head = table.createTHead().insertRow();
  for (const h of headers) head.append(el("th", h));
  const body = table.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    for (const cell of r) {
      const [text, cls] = Array.isArray(cell) ? cell : [cell, ""];
      tr.append(el("td", text, cls));
    }
  }
  return table;
}

function openDialog(title) {
  if (detailTable) { detailTable.destroy(); detailTable = null; }
  const body = $("#detail-body");
  body.replaceChildren();
  setText("detail-title", title);
  const dlg = $("#detail");
  if (!dlg.open) dlg.showModal();
  return body;
}

async function openFlow(id) {
  const body = openDialog("Flow …");
  body.append(el("p", "Loading…", "muted"));
  let d;
  try {
    d = await api(`/api/flows/${encodeURIComponent(id)}`);
  } catch (e) {
    body.replaceChildren(el("p", e.message, "banner"));
    return;
  }
  const f = d.flow;
  setText("detail-title", `Flow ${f.id}`);
  body.replaceChildren();
  body.append(el("div", `${f.src_ip}:${f.src_port} → ${f.dst_ip}:${f.dst_port} ${f.proto}`, "tuple", { "data-testid": "detail-tuple" }));

  const grid = el("div", null, "detail-grid");
  const left = el("div", null, "card");
  left.append(el("h3", "Risk"));
  const level = d.risk?.level ?? "none";
  left.append(el("span", level, `risk ${RISK_CLASS[level] ?? "risk-none"}`, { "data-testid": "detail-risk" }));
  const reasons = el("ul", null, "reasons");
  for (const r of d.risk?.reasons ?? []) reasons.append(el("li", r));
  left.append(reasons);
  left.append(el("h3", "Verdict"));
  left.append(facts([
    ["verdict", d.verdict], ["family", d.family], ["model score", fmtScore(d.score)],
    ["first packet (UTC)", fmtTs(f.timestamp)], ["last packet (UTC)", fmtNs(f.last_seen)],
    ["duration", fmtDur(f.duration_us)], ["packets", fmtInt(f.packets)], ["bytes", fmtBytes(f.bytes)],
    ["end reason", f.end_reason], ["flow key", f.flow_key], ["EVE flow_id", f.eve_flow_id],
  ]));
  const extra = Object.entries(d.extra ?? {});
  if (extra.length) {
    left.append(el("h3", "Other fields"));
    left.append(facts(extra.map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])));
  }
  const right = el("div", null, "card");
  right.append(el("h3", "Family probabilities"));
  const probs = el("div", null, "chart short", { id: "chart-probs" });
  right.append(probs);
  right.append(el("h3", "What drove the verdict"));
  const expl = d.explanation ?? [];
  if (expl.length) {
    const ex = el("div", null, "chart short", { id: "chart-expl" });
    right.append(ex);
    right.append(simpleTable(["feature", "value", "contribution"],
      expl.map((e) => [e.feature, [fmtNum(e.value), "num"], [fmtNum(e.contribution), "num"]])));
  } else {
    right.append(el("p", "No per-feature explanation was stored for this flow (see [model] explain_top_k).", "muted small"));
  }
  grid.append(left, right);
  body.append(grid);

  const alerts = el("div", null, "card");
  alerts.append(el("h3", `Related rule alerts (${(d.alerts ?? []).length})`));
  if ((d.alerts ?? []).length) {
    alerts.append(simpleTable(["last seen (UTC)", "signature", "family", "level", "state", "attacker", "victim", "events"],
      d.alerts.map((a) => [fmtTs(a.last_ts), a.signature, a.family, a.level, a.state, [a.src_ip, "mono"], [a.dest_ip, "mono"], [fmtInt(a.events), "num"]])));
  } else {
    alerts.append(el("p", "No rule incident involves these hosts in this session.", "muted small"));
  }
  body.append(alerts);

  const feats = el("div", null, "card");
  feats.append(el("h3", `Every feature (${(d.features ?? []).length})`));
  const ft = el("table", null, "display compact stripe");
  feats.append(ft);
  body.append(feats);

  const pairs = Object.entries(d.probabilities ?? {}).sort((a, b) => a[1] - b[1]);
  plot("chart-probs", [{
    type: "bar", orientation: "h", y: pairs.map(([k]) => esc(k)), x: pairs.map(([, p]) => p),
    marker: { color: pairs.map(([k]) => (k === d.family && d.family !== "benign" ? COLORS.malicious : COLORS.benign)) },
    hovertemplate: "%{y}: %{x:.3f}<extra></extra>",
  }], { margin: { l: 90, r: 10, t: 4, b: 30 }, xaxis: { range: [0, 1] }, yaxis: { type: "category", automargin: true } });
  if (expl.length) {
    const items = [...expl].reverse();
    plot("chart-expl", [{
      type: "bar", orientation: "h", y: items.map((e) => esc(e.feature)), x: items.map((e) => e.contribution),
      marker: { color: items.map((e) => ((e.contribution ?? 0) >= 0 ? COLORS.malicious : COLORS.benign)) },
      hovertemplate: "%{y}: %{x:.4f}<extra></extra>",
    }], { margin: { l: 170, r: 10, t: 4, b: 30 }, yaxis: { type: "category", automargin: true } });
  }
  if (DataTable) {
    detailTable = new DataTable(ft, {
      data: d.features ?? [],
      paging: true,
      pageLength: 15,
      lengthMenu: [15, 50, 200],
      order: [],
      columns: [
        col("name", "feature", { sort: "name", cls: "mono" }),
        col("value", "value", { fmt: fmtNum, sort: "value", cls: "mono dt-right" }),
        col("unit", "unit", { sort: "unit" }),
        col("description", "description", { cls: "wrap" }),
      ].map((c) => ({ ...c, orderable: true })),
    });
  }
}

function openAlert(a) {
  const body = openDialog(`Rule alert: ${a.signature ?? a.incident_id}`);
  body.append(facts([
    ["signature", a.signature], ["category", a.category], ["family", a.family], ["level", a.level],
    ["state", a.state], ["attacker", a.src_ip], ["victim", a.dest_ip], ["port", a.dest_port], ["protocol", a.proto],
    ["events", fmtInt(a.events)], ["first seen (UTC)", fmtTs(a.first_ts)], ["last seen (UTC)", fmtTs(a.last_ts)],
    ["incident", a.incident_id], ["rule", a.rule],
  ]));
  if (a.src_ip && a.src_ip !== "many") {
    const b = el("button", `Show flows of ${a.src_ip}`, "btn", { type: "button" });
    b.addEventListener("click", () => {
      $("#detail").close();
      $('#flow-filters input[name="addr"]').value = a.src_ip;
      selectTab("flows");
      state.tables.flows?.ajax.reload();
    });
    body.append(b);
  }
  body.append(el("h3", "Latest EVE event"));
  const pre = el("pre", "Loading…", "card-text");
  body.append(pre);
  const q = a.session_id !== null && a.session_id !== undefined ? `?session=${encodeURIComponent(a.session_id)}` : "";
  api(`/api/alerts/${encodeURIComponent(a.incident_id)}${q}`)
    .then((d) => { pre.textContent = JSON.stringify(d.event, null, 2); })
    .catch((e) => { pre.textContent = e.message; });
}

// ---------------------------------------------------------------- model
async function loadModel() {
  try {
    state.model = await api("/api/model");
  } catch (e) {
    setText("model-link", "model: unavailable");
    return;
  }
  const m = state.model;
  setText("model-link", `model: ${m.name}`);
  setText("model-name", m.name);
  $("#model-facts").replaceWith(Object.assign(facts([
    ["description", m.description], ["algorithm", m.algorithm], ["classes", (m.classes ?? []).join(", ")],
    ["threshold", `${m.threshold}${m.threshold_rule ? ` (${m.threshold_rule})` : ""}`],
    ["explanations", m.explain], ["features", (m.features ?? []).length], ["created", m.created], ["origin", m.origin],
  ]), { id: "model-facts" }));
  $("#model-metrics").replaceWith(Object.assign(facts(
    Object.entries(m.metrics_summary ?? {}).map(([k, v]) => [k, typeof v === "number" ? fmtNum(v) : JSON.stringify(v)]),
  ), { id: "model-metrics" }));
  for (const sel of $$(".family-select")) {
    for (const c of m.classes ?? []) sel.append(el("option", c, null, { value: c }));
  }
  api(m.card_url || "/api/model/card").then((t) => { $("#model-card").textContent = String(t); })
    .catch((e) => { $("#model-card").textContent = e.message; });
}

// ---------------------------------------------------------------- controls
function addDemoOption() {
  const sel = $("#iface");
  if ($('option[value="__demo__"]', sel)) return;
  sel.prepend(el("option", "demo capture (replay in a loop)", null, { value: "__demo__" }));
  sel.value = "__demo__";
}

async function loadInterfaces() {
  const sel = $("#iface");
  try {
    const rows = await api("/api/interfaces");
    for (const r of rows) {
      const label = `${r.name}${r.addresses?.length ? ` (${r.addresses.slice(0, 2).join(", ")})` : ""}${r.up ? "" : " – down"}`;
      const opt = el("option", label, null, { value: r.name });
      if (!r.can_capture) opt.disabled = true;
      sel.append(opt);
    }
  } catch (e) {
    banner(`interfaces: ${e.message}`);
  }
}

async function control(button, fn) {
  button.disabled = true;
  banner(null);
  try {
    const r = await fn();
    if (r?.sensor && state.status) { state.status = { ...state.status, sensor: r.sensor }; renderSensor(); }
  } catch (e) {
    banner(e.message);
  } finally {
    if (button.id === "btn-clear") button.disabled = false; // start/stop follow the sensor state
    mark("status");
  }
}

function initControls() {
  $("#controls").addEventListener("submit", (e) => {
    e.preventDefault();
    const iface = $("#iface").value;
    const body = iface === "__demo__" ? { demo: true } : { interface: iface, bpf: $("#bpf").value.trim() };
    control($("#btn-start"), () => post("/api/capture/start", body));
  });
  $("#btn-stop").addEventListener("click", () => control($("#btn-stop"), () => post("/api/capture/stop", {})));
  const confirmDlg = $("#confirm-clear");
  $("#btn-clear").addEventListener("click", () => confirmDlg.showModal());
  confirmDlg.addEventListener("close", () => {
    if (confirmDlg.returnValue !== "ok") return;
    control($("#btn-clear"), async () => {
      const r = await post("/api/clear", {});
      resetView();
      banner(`Cleared: new session ${r.sensor?.session}. Earlier results and logs are kept.`, "info");
      return r;
    });
  });
  $("#detail-close").addEventListener("click", () => $("#detail").close());
  $("#ts-bucket").addEventListener("change", () => mark("timeseries"));
  $("#model-link").addEventListener("click", (e) => { e.preventDefault(); selectTab("model"); });
}

function selectTab(name) {
  for (const t of $$(".tab")) t.setAttribute("aria-selected", String(t.dataset.tab === name));
  for (const p of $$(".panel")) p.hidden = p.id !== `panel-${name}`;
  const table = state.tables[name];
  if (table) { table.columns.adjust(); mark(name); }
}

// ---------------------------------------------------------------- start
view("counters", 500, renderCounters);
view("sensor", 500, renderSensor);
view("status", 500, async () => { state.status = await api("/api/status"); renderSensor(); renderCounters(); });
view("flows", 1000, () => refreshTable("flows", "#panel-flows"));
view("detections", 1000, () => refreshTable("detections", "#panel-detections"));
view("alerts", 1000, () => refreshTable("alerts", "#panel-alerts"));
view("timeseries", 2000, renderTimeseries);
view("talkers", 3000, renderTalkers);

for (const t of $$(".tab")) t.addEventListener("click", () => selectTab(t.dataset.tab));
initControls();
initTables();
await Promise.all([loadInterfaces(), loadModel()]);
mark("status", "timeseries", "talkers");
connectLive();
document.body.dataset.ready = "1"; // for the browser tests: the page finished its first load

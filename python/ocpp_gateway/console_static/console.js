// The web console: reads the admin API with the bearer token (kept in this tab only).
"use strict";

const state = { token: "", selected: null, tail: null, rows: 0, captures: {} };

function token() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("ocpp-gateway-token", fromHash);
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem("ocpp-gateway-token") || "";
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + state.token }, options.headers || {});
  const answer = await fetch(path, Object.assign({}, options, { headers }));
  if (answer.status === 401) {
    showLogin("wrong token");
    throw new Error("unauthorised");
  }
  return answer;
}

function showLogin(why) {
  document.getElementById("login").hidden = false;
  document.getElementById("status").textContent = why;
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function button(row, text, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.addEventListener("click", action);
  row.insertCell().appendChild(b);
  return b;
}

async function refresh() {
  try {
    const [list, overview] = await Promise.all([
      api("/charge-points").then((r) => r.json()),
      api("/console/api/overview").then((r) => r.json()),
    ]);
    state.captures = overview.capture || {};
    drawChargePoints(list.charge_points || [], overview);
    drawViolations(overview.violations || [], overview.violation_log);
    drawBackends(overview.backends || []);
    document.getElementById("status").textContent = "updated " + new Date().toLocaleTimeString();
    if (state.selected) drawTailHeader();
  } catch (error) {
    if (String(error.message) !== "unauthorised") {
      document.getElementById("status").textContent = "unreachable";
    }
  }
}

function drawChargePoints(list, overview) {
  const body = document.querySelector("#charge-points tbody");
  body.replaceChildren();
  document.getElementById("count").textContent = "(" + list.length + ")";
  for (const cp of list) {
    const extra = (overview.charge_points || {})[cp.id] || {};
    const row = body.insertRow();
    row.dataset.id = cp.id;
    if (cp.id === state.selected) row.className = "selected";
    cell(row, cp.id);
    cell(row, cp.version);
    cell(row, cp.vendor);
    cell(row, cp.model);
    cell(row, cp.firmware);
    cell(row, cp.connected_since);
    cell(row, cp.frames_from_charge_point + cp.frames_to_charge_point);
    cell(row, extra.rejections === undefined ? "" : extra.rejections);
    const capture = state.captures[cp.id];
    cell(row, capture && capture.active ? "on" : "off", "capture");
    button(row, "Watch", () => select(cp.id));
  }
}

function drawViolations(rows, kept) {
  const body = document.querySelector("#violations tbody");
  body.replaceChildren();
  if (!kept) {
    const row = body.insertRow();
    const td = cell(row, "The violation log is off: set validation.violation_log to list them here.");
    td.colSpan = 7;
    return;
  }
  for (const v of rows) {
    const row = body.insertRow();
    for (const key of ["model", "version", "action", "path", "keyword", "error_code", "count"]) {
      cell(row, v[key]);
    }
  }
}

function drawBackends(rows) {
  const body = document.querySelector("#backends tbody");
  body.replaceChildren();
  for (const b of rows) {
    const row = body.insertRow();
    cell(row, b.worker);
    cell(row, b.name);
    cell(row, b.kind);
    cell(row, b.ready ? "ready" : "not ready", b.ready ? "v-forwarded" : "v-dropped");
  }
}

function drawTailHeader() {
  const capture = state.captures[state.selected];
  const on = Boolean(capture && capture.active);
  const toggle = document.getElementById("tail-capture");
  toggle.textContent = on ? "Stop capture" : "Start capture";
  toggle.dataset.on = on ? "1" : "0";
}

async function select(id) {
  state.selected = id;
  document.getElementById("tail-panel").hidden = false;
  document.getElementById("tail-id").textContent = id;
  document.querySelector("#tail tbody").replaceChildren();
  state.rows = 0;
  drawTailHeader();
  await startTail();
  refresh();
}

async function toggleCapture() {
  const on = document.getElementById("tail-capture").dataset.on === "1";
  const path = "/charge-points/" + encodeURIComponent(state.selected) + "/capture";
  const answer = await api(path, { method: on ? "DELETE" : "POST" });
  if (answer.ok) state.captures[state.selected] = await answer.json();
  drawTailHeader();
  if (!on) await startTail();
  await refresh();
}

async function startTail() {
  if (state.tail) state.tail.abort();
  state.tail = null;
  const id = state.selected;
  if (!state.captures[id]) {
    // Nothing was captured: there is no tail to read until capture is switched on.
    document.getElementById("tail-count").textContent = "capture is off";
    return;
  }
  const controller = new AbortController();
  state.tail = controller;
  const path = "/charge-points/" + encodeURIComponent(id) + "/tail?backlog=100";
  let answer;
  try {
    answer = await api(path, { signal: controller.signal });
  } catch (error) {
    return;
  }
  if (answer.status !== 200) {
    document.getElementById("tail-count").textContent = "capture is off";
    return;
  }
  readEvents(answer.body.getReader(), controller).catch(() => {});
}

async function readEvents(reader, controller) {
  const decoder = new TextDecoder();
  let buffer = "";
  while (!controller.signal.aborted) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6));
      if (data.length) addFrame(JSON.parse(data.join("\n")));
    }
  }
}

function addFrame(record) {
  const body = document.querySelector("#tail tbody");
  const row = body.insertRow(0);
  const meta = record.meta || {};
  cell(row, record.timestamp.slice(11, 23));
  cell(row, record.direction === "cp-to-csms" ? "CP → CSMS" : "CSMS → CP");
  cell(row, record.messageType);
  cell(row, record.action);
  cell(row, record.messageId);
  const why = meta.errorCode || meta.rule || meta.reason || "";
  cell(row, meta.verdict + (why ? " " + why : ""), "v-" + meta.verdict);
  const shown = record.payload !== undefined ? record.payload : record.error || record.raw;
  cell(row, JSON.stringify(shown), "payload");
  state.rows += 1;
  document.getElementById("tail-count").textContent = state.rows + " frames";
  while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
}

async function download() {
  const id = state.selected;
  const path = "/charge-points/" + encodeURIComponent(id) + "/trace?download=1&limit=10000";
  const answer = await api(path);
  const blob = await answer.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = id.replace(/[^A-Za-z0-9_-]/g, "_") + ".trace.jsonl";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

function main() {
  state.token = token();
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = document.getElementById("token").value;
    sessionStorage.setItem("ocpp-gateway-token", state.token);
    document.getElementById("login").hidden = true;
    refresh();
  });
  document.getElementById("tail-capture").addEventListener("click", toggleCapture);
  document.getElementById("tail-download").addEventListener("click", download);
  if (!state.token) {
    showLogin("token needed");
  } else {
    refresh();
  }
  setInterval(() => { if (state.token) refresh(); }, 2000);
}

main();

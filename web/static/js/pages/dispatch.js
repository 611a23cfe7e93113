/* The live dispatch map: the queue of new and unassigned incidents (oldest first, counted in the
 * title, a short tone when one arrives; a click draws the nearest on-duty units on the map), units
 * as heading arrows coloured by status (grey when silent for more than two minutes; live units first
 * and those silent for hours collapsed, their labels hidden at low zoom), trails of the last N
 * minutes, red/orange grids without a recent patrol with their legend, a searchable unit list,
 * replay of one unit's shift with a time slider, and "where was everyone at time T".
 *
 * Live updates come from /api/live (Server-Sent Events); EventSource reconnects by itself and sends
 * Last-Event-ID, and position events are applied once per animation frame so a burst never freezes
 * the page. */
import { get, isAbort, newest, post, query, request, watchActivity } from "../lib/api.js";
import { byId, el, fill, setText, svg, text } from "../lib/dom.js";
import { t } from "../lib/i18n.js";
import { createMap, mapConfig } from "../lib/map.js";
import { expose } from "../lib/testhook.js";
import { label } from "../lib/vocabulary.js";
import { attachIncidents } from "../layers/incidents.js";

const STALE_MS = (mapConfig().staleSeconds || 120) * 1000;
const COLOURS = { on_duty: "#2f855a", busy: "#dd6b20", off_duty: "#4a5568", stale: "#a0aec0" };
const GHOST = "#805ad5";
const SILENT_MS = 3600 * 1000;   // silent this long: out of the list's way and drawn small
const LABEL_ZOOM = 14;           // call signs shown from this zoom on
const NEAREST_COLOUR = "#2b6cb0";
const TITLE = document.title;
const RISK_COLOURS = { red: "#e53e3e", orange: "#ed8936", yellow: "#d69e2e", blue: "#3182ce", unknown: "#a0aec0" };

watchActivity((n) => { byId("loading").hidden = n === 0; });

// -- map and layers -----------------------------------------------------------------------------
const renderer = L.canvas({ padding: 0.3 });
const outlineLayer = L.layerGroup();
const gridLayer = L.layerGroup();
const gapLayer = L.layerGroup();
const trailLayer = L.layerGroup();
const incidentLayer = L.layerGroup();
const unitLayer = L.layerGroup();
const ghostLayer = L.layerGroup();
const replayLayer = L.layerGroup();
const coverageLayer = L.layerGroup();
const nearestLayer = L.layerGroup();
const { map } = createMap("map", {
  preferCanvas: true, minZoom: 5, maxZoom: 19,
  overlays: { [t("units")]: unitLayer, [t("trails")]: trailLayer, [t("incidents")]: incidentLayer,
              [t("gaps")]: gapLayer, [t("grids")]: gridLayer, [t("coverage")]: coverageLayer },
});
for (const layer of [outlineLayer, gapLayer, trailLayer, nearestLayer, incidentLayer, unitLayer, ghostLayer, replayLayer]) {
  layer.addTo(map);
}
const showLabels = () => map.getContainer().classList.toggle("unit-labels-off", map.getZoom() < LABEL_ZOOM);
map.on("zoomend", showLabels);
showLabels();

// -- helpers ------------------------------------------------------------------------------------
function toast(words, className, onclick) {
  const box = byId("toasts");
  const note = el("div", { className: ["toast", className], text: words });
  if (onclick) { note.addEventListener("click", onclick); }
  box.append(note);
  setTimeout(() => note.remove(), 8000);
  while (box.children.length > 5) { box.firstChild.remove(); }
}

let skew = 0;   // local clock minus server clock, ms
const now = () => Date.now() - skew;
function ageText(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) { return t("never"); }
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) { return `${s} s`; }
  if (s < 3600) { return `${Math.round(s / 60)} ${t("minutes")}`; }
  return `${Math.round(s / 3600)} h`;
}
const isStale = (u) => !u.seen || now() - u.seen > STALE_MS;
const isSilent = (u) => !u.seen || now() - u.seen > SILENT_MS;
const statusWord = (status) => label("unit_status", status);
// What the list, the popup and the legend all call a unit's state: silent units have no status.
const unitState = (u) => (isStale(u) ? t("stale") : statusWord(u.p.status));
const riskWord = (risk) => (risk === "unknown" ? t("unknown") : label("risk", risk));

// A unit's marker: an arrow turned to its heading (a dot without one) and its call sign beside it.
function unitGlyph(colour, heading, callsign) {
  const shape = heading === null || heading === undefined
    ? svg("circle", { attrs: { r: 6, fill: colour, stroke: "#fff", "stroke-width": 2 } })
    : svg("g", { attrs: { transform: `rotate(${Math.round(heading)})` } },
        svg("path", { attrs: { d: "M0,-11 L7,8 L0,4 L-7,8 Z", fill: colour, stroke: "#fff", "stroke-width": 1.5 } }));
  return el("div", null,
    svg("svg", { attrs: { width: 24, height: 24, viewBox: "-12 -12 24 24" } }, shape),
    el("span", { className: "label", text: callsign }));
}

function unitIcon(colour, heading, callsign, ghost, silent) {
  const className = ["unit-icon", ghost ? "ghost-icon" : "", silent ? "silent-icon" : ""].filter(Boolean).join(" ");
  return L.divIcon({ className, iconSize: [24, 24], iconAnchor: [12, 12],
                     html: unitGlyph(colour, silent ? null : heading, callsign) });
}

// -- units --------------------------------------------------------------------------------------
const units = {};   // id -> {p: properties, lat, lon, seen (ms), marker, trail, line}
let selected = null;
let trailMinutes = Number(byId("trail-minutes").value);
let listDirty = true;

function unitColour(u) {
  return isStale(u) ? COLOURS.stale : COLOURS[u.p.status] || COLOURS.on_duty;
}

function refreshIcon(u) {
  if (!u.marker) { return; }
  const heading = u.p.heading === null || u.p.heading === undefined ? "-" : Math.round(u.p.heading / 5);
  const silent = isSilent(u);
  const key = `${unitColour(u)}|${heading}|${silent}`;
  if (key === u.iconKey) { return; }
  u.iconKey = key;
  u.marker.setIcon(unitIcon(unitColour(u), u.p.heading, u.p.callsign, false, silent));
  u.marker.setZIndexOffset(silent ? -1000 : 0);
  // Off the map (the time-T view hides the live layer) a marker has no element until it returns.
  const element = u.marker.getElement();
  if (element) { element.dataset.callsign = u.p.callsign; }
}

function unitPopup(u) {
  const p = u.p;
  const details = [`${unitState(u)} · ${t("seen")} ${ageText(u.seen ? now() - u.seen : null)} ${t("ago")}`];
  if (p.speed !== null && p.speed !== undefined) { details.push(`${(p.speed * 3.6).toFixed(0)} km/h`); }
  if (p.battery !== null && p.battery !== undefined) { details.push(`🔋${Math.round(p.battery)}%`); }
  return el("div", { className: "unit-popup" },
    el("b", { text: p.callsign }), ` · ${label("unit_kind", p.kind)}`,
    el("br"), details.join(" · "), el("br"),
    el("button", { type: "button", className: "replay-btn", text: t("replay"),
                   on: { click: () => startReplay(p.callsign) } }));
}

function placeUnit(u) {
  if (u.lat === null || u.lat === undefined) { return; }
  if (u.marker) {
    u.marker.setLatLng([u.lat, u.lon]);
  } else {
    u.marker = L.marker([u.lat, u.lon], { icon: unitIcon(unitColour(u), u.p.heading, u.p.callsign, false, isSilent(u)),
                                          keyboard: false, riseOnHover: true });
    u.marker.on("click", () => selectUnit(u.p.id, false));
    u.marker.bindPopup(() => unitPopup(u));
    unitLayer.addLayer(u.marker);
    u.iconKey = null;
  }
  refreshIcon(u);
}

function upsertUnit(p, coords) {
  const u = units[p.id] || (units[p.id] = { p: {}, trail: [] });
  Object.assign(u.p, p);
  if (p.last_seen) { u.seen = Date.parse(p.last_seen); }
  if (coords) { [u.lon, u.lat] = coords; }
  placeUnit(u);
  listDirty = true;
  return u;
}

function drawTrail(u) {
  const cutoff = now() - trailMinutes * 60000;
  while (u.trail.length && u.trail[0][0] < cutoff) { u.trail.shift(); }
  const latlngs = u.trail.map((x) => [x[1], x[2]]);
  if (latlngs.length < 2 || !trailMinutes) {
    if (u.line) { trailLayer.removeLayer(u.line); u.line = null; }
    return;
  }
  if (u.line) { u.line.setLatLngs(latlngs); return; }
  u.line = L.polyline(latlngs, { renderer, color: COLOURS[u.p.status] || "#2b6cb0", weight: 2.5, opacity: 0.7,
                                 interactive: false });
  trailLayer.addLayer(u.line);
}

function addTrailPoint(u, ts, lat, lon) {
  if (!trailMinutes) { return; }
  const last = u.trail[u.trail.length - 1];
  if (last && last[0] >= ts) { return; }
  u.trail.push([ts, lat, lon]);
  drawTrail(u);
}

const trails = newest();
async function loadTrails() {
  for (const u of Object.values(units)) { u.trail = []; drawTrail(u); }
  if (!trailMinutes) { return; }
  let fc;
  try { fc = await trails(`/api/units/trails${query({ minutes: trailMinutes })}`); } catch (error) {
    if (!isAbort(error)) { console.warn(error); }
    return;
  }
  for (const f of fc.features) {
    const u = units[f.properties.id];
    if (!u || !f.geometry) { continue; }
    // Spread the trail's points evenly over the window: only the newest time is known.
    const coords = f.geometry.coordinates;
    const end = Date.parse(f.properties.last);
    const start = end - trailMinutes * 60000 * 0.98;
    u.trail = coords.map((c, i) => [start + (end - start) * (coords.length > 1 ? i / (coords.length - 1) : 1), c[1], c[0]]);
    drawTrail(u);
  }
}

async function loadUnits() {
  try {
    const fc = await get("/api/units");
    for (const f of fc.features) {
      const p = f.properties;
      if (p.last_seen && p.age_s !== null) { skew = Date.now() - (Date.parse(p.last_seen) + p.age_s * 1000); }
      upsertUnit(p, f.geometry ? f.geometry.coordinates : null);
    }
    document.body.dataset.unitsLoaded = "1";
  } catch (error) {
    toast(`${t("load_failed")} ${error.message}`);
  }
}

// -- unit list ----------------------------------------------------------------------------------
function unitItem(u) {
  const stale = isStale(u);
  return el("li", { className: selected === u.p.id ? "selected" : null, dataset: { id: u.p.id } },
    el("span", { className: ["swatch", `status-${stale ? "stale" : u.p.status}`] }),
    el("span", { className: "cs", text: u.p.callsign }),
    el("span", { text: `${label("unit_kind", u.p.kind)} · ${unitState(u)}` }),
    el("span", { className: "age", text: ageText(u.seen ? now() - u.seen : null) }));
}

function renderList() {
  if (!listDirty) { return; }
  listDirty = false;
  const q = byId("unit-search").value.trim().toLowerCase();
  // Live units first, then the recently silent, each alphabetically; units silent for hours go
  // into a collapsed group of their own.
  const rank = (u) => (isStale(u) ? 1 : 0);
  const all = Object.values(units).sort((a, b) => rank(a) - rank(b) || a.p.callsign.localeCompare(b.p.callsign));
  const shown = all.filter((u) => !q || [u.p.callsign, u.p.device_id, u.p.kind, label("unit_kind", u.p.kind),
    u.p.status, statusWord(u.p.status), unitState(u), u.p.area].join(" ").toLowerCase().includes(q)).slice(0, 500);
  const awake = shown.filter((u) => !isSilent(u));
  const silent = shown.filter(isSilent);
  setText(byId("unit-count"), `${shown.length} / ${all.length}`);
  fill(byId("unit-list"), awake.map(unitItem));
  const group = byId("silent-units");
  group.hidden = silent.length === 0;
  setText(byId("silent-count"), silent.length);
  fill(byId("silent-list"), silent.map(unitItem));
  fill(byId("unit-callsigns"), all.map((u) => el("option", { value: u.p.callsign })));
}

function selectUnit(id, pan) {
  selected = id;
  listDirty = true;
  const u = units[id];
  if (u && u.marker && pan) {
    map.setView(u.marker.getLatLng(), Math.max(map.getZoom(), 15));
    u.marker.openPopup();
  }
}

byId("unit-search").addEventListener("input", () => { listDirty = true; renderList(); });
for (const id of ["unit-list", "silent-list"]) {
  byId(id).addEventListener("click", (e) => {
    const item = e.target.closest("li");
    if (item) { selectUnit(Number(item.dataset.id), true); }
  });
}

// -- live events --------------------------------------------------------------------------------
const pendingFixes = {};   // unit id -> newest position event, applied once per frame
let frameQueued = false;
const seenIds = new Set();
const seenOrder = [];

function fresh(id) {
  if (id === undefined || id === null || id === "") { return true; }
  if (seenIds.has(id)) { return false; }
  seenIds.add(id);
  seenOrder.push(id);
  if (seenOrder.length > 5000) { seenIds.delete(seenOrder.shift()); }
  return true;
}

function flush() {
  frameQueued = false;
  for (const id of Object.keys(pendingFixes)) {
    const d = pendingFixes[id];
    delete pendingFixes[id];
    const props = { id: d.unit, callsign: d.callsign, kind: d.kind, status: d.status, last_seen: d.seen_at };
    const located = d.lat !== undefined;
    if (located) { Object.assign(props, { heading: d.heading, speed: d.speed, battery: d.battery, accuracy: d.accuracy, ts: d.ts }); }
    const u = upsertUnit(props, located ? [d.lon, d.lat] : null);
    if (located) { addTrailPoint(u, Date.parse(d.ts), d.lat, d.lon); }
  }
  document.body.dataset.lastUpdate = String(Date.now());
}

function queueFlush() {
  if (!frameQueued) { frameQueued = true; window.requestAnimationFrame(flush); }
}

// Each event once, whichever connection delivered it; the handler gets its decoded data.
function on(source, type, handle) {
  source.addEventListener(type, (e) => { if (fresh(e.lastEventId)) { handle(JSON.parse(e.data)); } });
}

function connect() {
  const source = new EventSource("/api/live");
  source.onopen = () => {
    byId("live-dot").className = "dot on";
    setText(byId("live-text"), t("live"));
    document.body.dataset.live = "open";
  };
  source.onerror = () => {
    byId("live-dot").className = "dot off";
    setText(byId("live-text"), t("reconnecting"));
    document.body.dataset.live = "reconnecting";
  };
  on(source, "position", (d) => {
    const before = pendingFixes[d.unit];
    if (!before || before.lat === undefined || d.lat !== undefined) { pendingFixes[d.unit] = d; } else { before.seen_at = d.seen_at; }
    queueFlush();
  });
  on(source, "unit_status", (d) => {
    const u = units[d.unit];
    if (u) { u.p.status = d.status; refreshIcon(u); listDirty = true; }
  });
  on(source, "incident", (d) => {
    if (d.lon === null || d.lat === null) { return; }
    const known = Boolean(incidents[d.id]);
    addIncident({ id: d.id, category: d.category, severity: d.severity, status: d.status,
                  occurred_at: d.occurred_at, address: d.address, grid: d.grid, open_assignments: 0 },
                [d.lon, d.lat], true);
    if (!known) { chime(); }
    renderQueue();
  });
  on(source, "incidents", (d) => {
    toast(`${d.count} ${t("incidents_bulk")}`);
    loadIncidents();
  });
  on(source, "risk", (d) => {
    toast(`${t("risk_alert")}: ${d.name} → ${label("risk", d.level)}`, "risk");
    loadGaps();
  });
  on(source, "risk_bulk", () => loadGaps());
  on(source, "assignment", (d) => {
    if (currentIncident === d.incident) { loadAssignments(d.incident); }
    loadIncidents();   // the queue follows who is sent where, from any desk
  });
}

// -- incidents and dispatch ---------------------------------------------------------------------
const incidents = {};
let currentIncident = null;

function incidentSummary(p) {
  return `${label("category", p.category)}${p.address ? ` · ${p.address}` : ""}`;
}

function addIncident(p, coords, isNew) {
  if (incidents[p.id]) { Object.assign(incidents[p.id].p, p); return; }
  const m = L.marker([coords[1], coords[0]], {
    icon: L.divIcon({ className: isNew ? "incident-icon fresh" : "incident-icon", iconSize: [20, 20],
                      iconAnchor: [10, 10], html: el("span") }),
    zIndexOffset: 500,
  });
  m.on("click", () => selectIncident(p.id, false));
  m.bindTooltip(() => text(incidentSummary(p)));   // the address is the reporter's text
  incidents[p.id] = { p, marker: m };
  incidentLayer.addLayer(m);
  const element = m.getElement && m.getElement();
  if (element) { element.dataset.incident = p.id; }
}

const incidentList = newest();
async function loadIncidents() {
  let fc;
  try { fc = await incidentList(`/api/dispatch/incidents${query({ hours: 24 })}`); } catch (error) {
    if (!isAbort(error)) { console.warn(error); }
    return;
  }
  const open = new Set();
  for (const f of fc.features) {
    addIncident(f.properties, f.geometry.coordinates, false);
    open.add(f.properties.id);
  }
  // Resolved or older than the window: no longer the dispatcher's to send anyone to.
  for (const [id, incident] of Object.entries(incidents)) {
    if (!open.has(Number(id))) { incident.p.open_assignments = null; }
  }
  renderQueue();
}

// -- the queue: new and unassigned incidents, oldest first ----------------------------------------
let audio = null;
function chime() {
  // A short two-tone chime; browsers keep it silent until the page has been clicked once.
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") { audio.resume().catch(() => {}); }
    const start = audio.currentTime;
    for (const [offset, pitch] of [[0, 880], [0.16, 1175]]) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = pitch;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.2, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.15);
      tone.connect(gain).connect(audio.destination);
      tone.start(start + offset);
      tone.stop(start + offset + 0.16);
    }
    document.body.dataset.chimes = String(Number(document.body.dataset.chimes || 0) + 1);
  } catch { /* no audio output: the queue and the title still show it */ }
}

const queued = () => Object.values(incidents)
  .filter((x) => x.p.open_assignments === 0)
  .sort((a, b) => Date.parse(a.p.occurred_at) - Date.parse(b.p.occurred_at) || a.p.id - b.p.id);

function queueItem(x) {
  const p = x.p;
  return el("li", { className: currentIncident === p.id ? "selected" : null, dataset: { incident: p.id } },
    el("span", { className: "what", text: `${label("category", p.category)} · ${label("status", p.status)}` }),
    el("span", { className: "age", text: ageText(now() - Date.parse(p.occurred_at)) }),
    el("span", { className: "where", text: p.address || p.grid || "—" }));
}

function renderQueue() {
  const items = queued();
  setText(byId("queue-count"), `(${items.length})`);
  fill(byId("queue-list"), items.length ? items.map(queueItem) : el("li", { className: "empty", text: t("queue_empty") }));
  document.title = items.length ? `(${items.length}) ${TITLE}` : TITLE;
}

byId("queue-list").addEventListener("click", (e) => {
  const item = e.target.closest("li[data-incident]");
  if (item) { selectIncident(Number(item.dataset.incident), true); }
});

// The nearest units on the map: a line from the incident to each, labelled with its rank.
function drawNearest(incident, found) {
  nearestLayer.clearLayers();
  if (!incident) { return; }
  const from = incident.marker.getLatLng();
  found.units.forEach((u, i) => {
    const line = L.polyline([from, [u.lat, u.lon]], { renderer, color: NEAREST_COLOUR, weight: 3 - i * 0.4,
                                                      opacity: 0.85, dashArray: i ? "6 4" : null, interactive: false });
    line.bindTooltip(() => text(`${i + 1}. ${u.callsign} · ${(u.distance_m / 1000).toFixed(2)} km`),
                     { permanent: true, direction: "center", className: "nearest-tip" });
    nearestLayer.addLayer(line);
  });
  const bounds = L.latLngBounds([from, ...found.units.map((u) => [u.lat, u.lon])]);
  if (found.units.length) { map.fitBounds(bounds, { padding: [60, 60], maxZoom: 16 }); }
  document.body.dataset.nearestLines = String(found.units.length);
}

function nearestItem(u) {
  return el("li", null,
    el("span", { className: ["swatch", `status-${u.stale ? "stale" : u.status}`] }),
    el("b", { text: u.callsign }),
    ` ${(u.distance_m / 1000).toFixed(2)} km · ${ageText(u.age_s * 1000)} `,
    el("button", { type: "button", dataset: { assign: u.callsign }, text: t("assign") }));
}

const nearest = newest();
async function selectIncident(id, pan) {
  const incident = incidents[id];
  currentIncident = id;
  renderQueue();
  nearestLayer.clearLayers();
  byId("incident-box").hidden = false;
  setText(byId("incident-title"), `#${id}`);
  if (incident) {
    const p = incident.p;
    fill(byId("incident-info"), el("p", null,
      `${label("category", p.category)} · ${t("severity")} ${p.severity} · ${t("status")} ${label("status", p.status)}`,
      el("br"), `${p.address || ""}${p.grid ? ` · ${p.grid}` : ""}`));
    if (pan) { map.setView(incident.marker.getLatLng(), Math.max(map.getZoom(), 15)); }
  }
  const list = byId("nearest-list");
  fill(list, el("li", { text: "…" }));
  loadAssignments(id);
  try {
    const found = await nearest(`/api/dispatch/nearest${query({ incident: id, k: 5 })}`);
    fill(list, found.units.length ? found.units.map(nearestItem) : el("li", { text: t("no_units") }));
    drawNearest(incident, found);
  } catch (error) {
    if (!isAbort(error)) { fill(list, el("li", { className: "error", text: error.message })); }
  }
}

byId("nearest-list").addEventListener("click", async (e) => {
  const callsign = e.target.dataset.assign;
  if (!callsign || currentIncident === null) { return; }
  try {
    await post("/api/dispatch/assign", { incident: currentIncident, unit: callsign });
    selectIncident(currentIncident, false);
  } catch (error) {
    toast(error.message);
  }
});

const NEXT = { assigned: ["acknowledge", "arrive", "cancel"], acknowledged: ["arrive", "cancel"], arrived: ["close"] };
const assignmentsOf = newest();
async function loadAssignments(id) {
  let answer;
  try { answer = await assignmentsOf(`/api/dispatch/assignments${query({ incident: id })}`); } catch (error) {
    if (!isAbort(error)) { console.warn(error); }
    return;
  }
  fill(byId("assignment-list"), answer.assignments.map((a) => el("p", null,
    el("b", { text: a.callsign }), ` ${t(a.status)} `,
    (NEXT[a.status] || []).map((action) => [el("button", { type: "button", dataset: { action, id: a.id }, text: t(action) }), " "]))));
}

byId("assignment-list").addEventListener("click", async (e) => {
  const { action, id } = e.target.dataset;
  if (!action) { return; }
  try {
    await request(`/api/dispatch/assignments/${encodeURIComponent(id)}/${action}`, { method: "POST", json: {} });
    loadAssignments(currentIncident);
  } catch (error) {
    toast(error.message);
  }
});

// -- coverage gaps ------------------------------------------------------------------------------
const gapById = {};
const gaps = newest();
async function loadGaps() {
  const hours = Number(byId("gap-hours").value);
  const list = byId("gap-list");
  gapLayer.clearLayers();
  if (!hours) { fill(list); setText(byId("gap-count"), ""); return; }
  let fc;
  try { fc = await gaps(`/api/coverage/gaps${query({ hours })}`); } catch (error) {
    if (!isAbort(error)) { console.warn(error); }
    return;
  }
  gapLayer.clearLayers();
  const layer = L.geoJSON(fc, {
    renderer,
    style(f) {
      const c = f.properties.risk === "red" ? "#e53e3e" : "#ed8936";
      return { color: c, weight: 2, dashArray: "4 3", fillColor: c, fillOpacity: 0.25 };
    },
    onEachFeature(f, lyr) {
      lyr.bindTooltip(() => text(`${f.properties.name} · ${riskWord(f.properties.risk)} · ${t("gap_hint", { hours })}`));
      gapById[f.id] = lyr;
    },
  });
  gapLayer.addLayer(layer);
  setText(byId("gap-count"), `(${fc.features.length})`);
  fill(list, fc.features.slice(0, 200).map((f) => el("li", { dataset: { id: f.id } },
    el("span", { className: ["swatch", `risk-${f.properties.risk}`] }),
    `${f.properties.name} `, el("span", { className: "muted", text: f.properties.code }))));
}

byId("gap-list").addEventListener("click", (e) => {
  const item = e.target.closest("li");
  const lyr = item && gapById[item.dataset.id];
  if (!lyr) { return; }
  map.fitBounds(lyr.getBounds(), { maxZoom: 16 });
  lyr.openTooltip(lyr.getBounds().getCenter());   // the grid zoomed to says what it is
});
byId("gap-hours").addEventListener("change", () => { loadGaps(); gapLegend.update(); });

// The gap layer's legend: what the red and orange outlines mean, while the layer is on the map.
const gapLegend = L.control({ position: "bottomright" });
gapLegend.onAdd = () => el("div", { className: "map-legend gap-legend", attrs: { id: "gap-legend" } });
gapLegend.update = () => {
  const box = byId("gap-legend");
  if (!box) { return; }
  const hours = Number(byId("gap-hours").value);
  box.hidden = !hours || !map.hasLayer(gapLayer);
  fill(box, el("div", { className: "title", text: t("gaps") }),
    ["red", "orange"].map((risk) => el("div", null, el("i", { className: ["gap-swatch", `risk-${risk}`] }),
                                       `${riskWord(risk)} · ${t("gap_hint", { hours })}`)));
};
gapLegend.addTo(map);
gapLegend.update();
map.on("overlayadd overlayremove", gapLegend.update);

async function loadOutline() {
  try {
    const fc = await get("/api/areas?level=1");
    outlineLayer.addLayer(L.geoJSON(fc, { renderer, interactive: false, style: { color: "#1f2d3d", weight: 3, fill: false } }));
  } catch { /* the map works without its outline */ }
}

// Patrol coverage of the last 24 hours: grids shaded by patrol minutes, outlined in their risk colour.
function coverageTip(p) {
  return el("span", null, `${p.name} · ${riskWord(p.risk)}`, el("br"),
            `${t("visits")} ${p.visits} · ${Math.round(p.minutes)} ${t("minutes")}`);
}

async function loadCoverage() {
  coverageLayer.clearLayers();
  try {
    const fc = await get(`/api/coverage${query({ hours: 24 })}`);
    coverageLayer.addLayer(L.geoJSON(fc, {
      renderer,
      style(f) {
        const minutes = f.properties.minutes || 0;
        return { color: RISK_COLOURS[f.properties.risk] || RISK_COLOURS.unknown, weight: 1.2, fillColor: "#2b6cb0",
                 fillOpacity: minutes <= 0 ? 0 : Math.min(0.6, 0.12 + minutes / 240) };
      },
      onEachFeature: (f, lyr) => lyr.bindTooltip(() => coverageTip(f.properties)),
    }));
  } catch (error) {
    toast(error.message);
  }
}

map.on("overlayadd", async (e) => {
  if (e.layer === coverageLayer) { loadCoverage(); }
  if (e.layer === gridLayer && !gridLayer.getLayers().length) {
    try {
      const fc = await get("/api/areas?level=4");
      gridLayer.addLayer(L.geoJSON(fc, { renderer, interactive: false, style: { color: "#b7791f", weight: 1, fillOpacity: 0.03 } }));
    } catch { /* the grids stay off */ }
  }
});

// -- replay of one unit's shift -----------------------------------------------------------------
let replay = null;
const playButton = byId("replay-play");
const slider = byId("replay-slider");

function ghostIcon(heading, callsign) {
  return unitIcon(GHOST, heading, callsign, true);
}

function showReplayAt(i) {
  if (!replay) { return; }
  const p = replay.points[i];
  replay.ghost.setLatLng([p[2], p[1]]);
  replay.ghost.setIcon(ghostIcon(p[3], replay.callsign));
  setText(byId("replay-time"), new Date(p[0] * 1000).toLocaleString());
}

function stopReplay() {
  if (replay && replay.timer) { clearInterval(replay.timer); }
  replay = null;
  replayLayer.clearLayers();
  byId("replay-box").hidden = true;
  setText(playButton, "▶");
}

async function startReplay(callsign) {
  stopReplay();
  let track;
  try { track = await get(`/api/tracks/replay${query({ unit: callsign })}`); } catch (error) {
    toast(error.message);
    return;
  }
  byId("replay-box").hidden = false;
  setText(byId("replay-title"), callsign);
  setText(byId("replay-stats"), "");
  if (!track.points.length) { setText(byId("replay-time"), t("no_track")); return; }
  const latlngs = track.points.map((p) => [p[2], p[1]]);
  const line = L.polyline(latlngs, { renderer, color: GHOST, weight: 3, opacity: 0.8 });
  const ghost = L.marker(latlngs[0], { icon: ghostIcon(track.points[0][3], callsign) });
  replayLayer.addLayer(line);
  replayLayer.addLayer(ghost);
  map.fitBounds(line.getBounds(), { padding: [30, 30], maxZoom: 16 });
  replay = { points: track.points, ghost, timer: null, callsign };
  slider.max = String(track.points.length - 1);
  slider.value = "0";
  showReplayAt(0);
  try {
    const s = (await get(`/api/tracks${query({ unit: callsign, zoom: map.getZoom() })}`)).properties;
    setText(byId("replay-stats"), `${(s.length_m / 1000).toFixed(2)} km · ${Math.round(s.duration_s / 60)} ${t("minutes")}` +
      ` · ${s.points} ${t("points")}${s.grids && s.grids.length ? ` · ${s.grids.length} ${t("grids")}` : ""}`);
  } catch { /* the replay works without its figures */ }
}

slider.addEventListener("input", (e) => showReplayAt(Number(e.target.value)));
byId("replay-close").addEventListener("click", stopReplay);
playButton.addEventListener("click", () => {
  if (!replay) { return; }
  if (replay.timer) {
    clearInterval(replay.timer);
    replay.timer = null;
    setText(playButton, "▶");
    return;
  }
  setText(playButton, "⏸");
  const step = Math.max(1, Math.round(replay.points.length / 300));
  replay.timer = setInterval(() => {
    const next = Math.min(Number(slider.max), Number(slider.value) + step);
    slider.value = String(next);
    showReplayAt(next);
    if (next >= Number(slider.max)) {
      clearInterval(replay.timer);
      replay.timer = null;
      setText(playButton, "▶");
    }
  }, 100);
});

// -- where was everyone at time T ---------------------------------------------------------------
const pad = (n) => String(n).padStart(2, "0");
{
  const d = new Date(Date.now() - 3600000);
  byId("at-time").value = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

byId("at-show").addEventListener("click", async () => {
  const value = byId("at-time").value;
  if (!value) { return; }
  const at = new Date(value);
  let fc;
  try { fc = await get(`/api/units${query({ at: at.toISOString() })}`); } catch (error) {
    toast(error.message);
    return;
  }
  ghostLayer.clearLayers();
  const located = fc.features.filter((f) => f.geometry);
  for (const f of located) {
    const [lon, lat] = f.geometry.coordinates;
    const m = L.marker([lat, lon], { icon: ghostIcon(f.properties.heading, f.properties.callsign) });
    m.bindTooltip(() => text(`${f.properties.callsign} · ${new Date(f.properties.ts).toLocaleTimeString()}`));
    ghostLayer.addLayer(m);
  }
  map.removeLayer(unitLayer);
  map.removeLayer(trailLayer);
  byId("at-live").hidden = false;
  setText(byId("at-info"), `${t("positions_at")} ${at.toLocaleString()}: ${located.length} ${t("units_shown")}`);
  document.body.dataset.timeAt = String(located.length);
});

byId("at-live").addEventListener("click", () => {
  ghostLayer.clearLayers();
  unitLayer.addTo(map);
  trailLayer.addTo(map);
  byId("at-live").hidden = true;
  setText(byId("at-info"), "");
});

// -- GPX upload ---------------------------------------------------------------------------------
byId("gpx-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const file = byId("gpx-file").files[0];
  if (!file) { return; }
  const form = new FormData();
  form.append("unit", byId("gpx-unit").value);
  form.append("file", file);
  const result = byId("gpx-result");
  try {
    const r = await request("/api/tracks/import", { method: "POST", body: form });
    setText(result, `${t("imported")}: ${r.points} ${t("points")}, ${Math.round(r.length_m)} ${t("metres")}` +
      (r.skipped.length ? ` (${r.skipped.join("; ")})` : ""));
  } catch (error) {
    setText(result, error.message);
  }
});

// -- periodic work ------------------------------------------------------------------------------
byId("trail-minutes").addEventListener("change", () => {
  trailMinutes = Number(byId("trail-minutes").value);
  loadTrails();
});
setInterval(() => {   // grey out silent units
  for (const u of Object.values(units)) { refreshIcon(u); }
  listDirty = true;
}, 5000);
setInterval(() => { if (trailMinutes) { Object.values(units).forEach(drawTrail); } }, 15000);
setInterval(renderList, 1000);
setInterval(renderQueue, 15000);   // the waiting times
setInterval(loadGaps, 60000);
setInterval(() => setText(byId("clock"), new Date(now()).toLocaleTimeString()), 1000);

const findUnit = (callsign) => Object.values(units).find((u) => u.p.callsign === callsign);
expose("dispatch", {
  map, units, incidents, startReplay, selectIncident,
  layers: { gaps: gapLayer, coverage: coverageLayer, nearest: nearestLayer },
  queue: () => queued().map((x) => ({ id: x.p.id, address: x.p.address })),
  unitState(callsign) {
    const u = findUnit(callsign);
    return u ? unitState(u) : null;
  },
  unitLatLng(callsign) {
    const u = findUnit(callsign);
    return u && u.marker ? [u.marker.getLatLng().lat, u.marker.getLatLng().lng] : null;
  },
  unitColour(callsign) {
    const u = findUnit(callsign);
    return u ? unitColour(u) : null;
  },
});

attachIncidents(map);
loadOutline();
loadUnits().then(() => { renderList(); return loadTrails(); });
loadIncidents();
loadGaps();
connect();

/* The grid planner (网格规划): start from the map of the home jurisdiction's townships, click a
 * township and a village (or pick them from the lists), pick an operation, draw with Leaflet-Geoman
 * (snapping to the existing edges, no self-crossing shapes), see the server's preview of every
 * affected grid (area, households, population, entities, open incidents, staff, workload), give a
 * reason and save. History with diff and revert, problems of the village on the map, conflict
 * messages when someone else saved first, and a soft lock others can see.
 *
 * Every check that matters runs on the server: the preview is the real change, rolled back. */
import { get, post, query, remove, request, watchActivity } from "../lib/api.js";
import { byId, clear, el, fill, setText, text } from "../lib/dom.js";
import { locale, t } from "../lib/i18n.js";
import { createMap, mapConfig } from "../lib/map.js";
import { expose } from "../lib/testhook.js";

const NEEDS = { transfer: 2, split: 1, merge: 2, reshape: 1, partition: 0, move: 1 };
const DRAW = { transfer: "Polygon", split: "Line", partition: "Line" };

watchActivity((n) => { byId("loading").hidden = n === 0; });

// -- map ----------------------------------------------------------------------------------------
const { map } = createMap("map", { zoomSnap: 0.25, minZoom: 5, maxZoom: 20 });

// Geoman: snap to every vertex and edge on the map, refuse self-crossing shapes while drawing.
map.pm.setGlobalOptions({ snappable: true, snapDistance: 18, allowSelfIntersection: false,
                          templineStyle: { color: "#c53030" }, hintlineStyle: { color: "#c53030", dashArray: "5,5" } });
map.pm.setLang(locale());

const state = { townships: [], villages: [], village: null, grids: {}, versions: {}, op: null,
                selection: [], drawn: [], reshape: null, preview: null, previewBody: null, lockTimer: null,
                lockMine: false, lockHolder: null, lockVillage: null };

function gridStyle(feature) {
  const picked = state.selection.indexOf(feature.properties.code);
  return { color: picked >= 0 ? "#c53030" : "#975a16", weight: picked >= 0 ? 3 : 1.5,
           fillColor: picked === 0 ? "#feb2b2" : picked > 0 ? "#fbd38d" : "#f6e05e", fillOpacity: picked >= 0 ? 0.35 : 0.12 };
}

// Where the planner starts: the townships of the home jurisdiction, then the chosen township's
// villages; a click on either chooses it (the lists above say the same).
const townshipLayer = L.geoJSON(null, {
  style: { color: "#2c5282", weight: 2, fillColor: "#bee3f8", fillOpacity: 0.25 },
  pmIgnore: true, snapIgnore: true,
  onEachFeature(feature, layer) {
    const p = feature.properties;
    layer.bindTooltip(() => text(p.name), { permanent: true, direction: "center", className: "area-label" });
    layer.on("click", () => { if (!state.op) { byId("township-select").value = p.code; chooseTownship(p.code); } });
  },
}).addTo(map);
const villageLayer = L.geoJSON(null, {
  style: (f) => ({ color: "#2f855a", weight: 2, dashArray: "6,4",
                   fillColor: "#c6f6d5", fillOpacity: state.village && state.village.code === f.properties.code ? 0 : 0.2 }),
  pmIgnore: true, snapIgnore: true,
  onEachFeature(feature, layer) {
    const p = feature.properties;
    layer.bindTooltip(() => text(p.name), { direction: "center", className: "area-label" });
    layer.on("click", () => {
      if (state.op || (state.village && state.village.code === p.code)) { return; }
      byId("village-select").value = p.code;
      chooseVillage(p.code);
    });
  },
}).addTo(map);
const gridLayer = L.geoJSON(null, {
  style: gridStyle,
  onEachFeature(feature, layer) {
    const p = feature.properties;
    // The grid's name is data: a text node, never a string Leaflet would parse as markup.
    layer.bindTooltip(() => text(`${p.code.slice(-3)} ${p.name || ""}`),
                      { permanent: true, direction: "center", className: "grid-label" });
    layer.on("click", () => pick(p.code));
  },
}).addTo(map);
const problemLayer = L.geoJSON(null, {
  style: (f) => ({ color: f.properties.severity === "error" ? "#c53030" : "#dd6b20", weight: 3, dashArray: "4,4", fillOpacity: 0.25 }),
  pointToLayer: (f, latlng) => L.circleMarker(latlng, { radius: 6, color: "#dd6b20" }),
  pmIgnore: true, snapIgnore: true,
}).addTo(map);
const diffLayer = L.geoJSON(null, {
  style: (f) => ({ color: f.properties.kind === "added" ? "#2f855a" : "#c53030", weight: 2, fillOpacity: 0.45 }),
  pmIgnore: true, snapIgnore: true,
}).addTo(map);
const drawnLayer = L.featureGroup().addTo(map);
// The preview's areas as they would be: new ones green, changed ones blue, each with its code.
const PREVIEW_COLOURS = { created: "#2f855a", changed: "#2b6cb0" };
const previewLayer = L.geoJSON(null, {
  style: (f) => ({ color: PREVIEW_COLOURS[f.properties.status], weight: 3, fillColor: PREVIEW_COLOURS[f.properties.status],
                   fillOpacity: 0.3, dashArray: f.properties.status === "created" ? null : "6,3" }),
  pmIgnore: true, snapIgnore: true, interactive: false,
  onEachFeature(feature, layer) {
    const p = feature.properties;
    layer.bindTooltip(() => text(`${p.code.slice(-3)} ${t(p.status)}`),
                      { permanent: true, direction: "center", className: "grid-label preview-label" });
  },
}).addTo(map);

// -- messages -----------------------------------------------------------------------------------
// A 409 in the reader's language: who changed which area since it was loaded (the server's
// details), else the server's own message.
function conflictText(error) {
  const stale = error && error.details && error.details.stale;
  if (!stale || !stale.length) { return `${t("conflict")}: ${error ? error.message : ""}`; }
  const parts = stale.map((d) => {
    const head = d.current_version
      ? t("stale_now", { code: d.code, current: d.current_version, yours: d.your_version })
      : t("stale_gone", { code: d.code, yours: d.your_version });
    return head + (d.changes || []).slice(-2).map((c) => t("list_sep") + t("stale_by", {
      author: c.author || t("someone"), id: c.id, kind: t(c.kind), reason: c.reason || "" })).join("");
  });
  return `${t("conflict")}: ${t("stale_intro")} ${parts.join(t("item_sep"))}${t("stale_redo")}`;
}

function say(words, kind) {
  const box = byId("message");
  box.hidden = !words;
  box.className = `message ${kind || ""}`.trim();
  clear(box);
  if (!words) { return; }
  box.append(text(words));
  if (kind === "conflict") {
    box.append(" ", el("button", { type: "button", text: t("reload"),
                                   on: { click: () => chooseVillage(state.village.code) } }));
  }
}

// An API failure said in the message box: a conflict with its details, anything else as it came.
function sayError(error) {
  if (error.status === 409) { say(conflictText(error), "conflict"); } else { say(error.message, "error"); }
}

function live(words, ok) {
  const box = byId("live-check");
  setText(box, words || "");
  box.className = `live-check ${ok === true ? "ok" : ok === false ? "bad" : ""}`.trim();
}

const hectares = (m2) => (m2 === null || m2 === undefined ? "–" : (m2 / 10000).toFixed(2));
function pair(before, after, format) {
  const f = format || ((v) => (v === null || v === undefined ? "–" : v));
  if (!before) { return f(after); }
  if (!after) { return `${f(before)} → ✕`; }
  return f(before) === f(after) ? f(after) : `${f(before)} → ${f(after)}`;
}
const option = (value, words) => el("option", { value, text: words });

// -- choosing a village -------------------------------------------------------------------------
async function loadTownships() {
  // The townships of the planner's own jurisdiction (their scope, else the home district), not of
  // every jurisdiction ever imported.
  const home = mapConfig().home;
  try {
    let fc = await get(`/api/areas${query({ level: 2, parent: home })}`);
    if (!fc.features.length) {   // the home area is a township itself
      const all = await get("/api/areas?level=2");
      fc = { ...all, features: all.features.filter((f) => f.properties.code === home) };
    }
    state.townships = fc.features;
    byId("township-select").append(...fc.features.map((f) => option(f.properties.code, `${f.properties.name} ${f.properties.code}`)));
    townshipLayer.clearLayers().addData(fc);
    if (townshipLayer.getLayers().length) { map.fitBounds(townshipLayer.getBounds(), { padding: [10, 10], animate: false }); }
  } catch {
    say(t("load_failed"), "error");
  }
}

async function chooseTownship(code) {
  const select = byId("village-select");
  fill(select, option("", "—"));
  select.disabled = !code;
  if (!code) { return; }
  const [villages, locks] = await Promise.all([
    get(`/api/areas${query({ level: 3, parent: code })}`).catch(() => ({ type: "FeatureCollection", features: [] })),
    get(`/api/locks${query({ parent: code })}`).catch(() => ({ locks: [] })),
  ]);
  // Villages someone else is editing carry a lock and that person's name.
  const held = {};
  for (const lock of locks.locks) { held[lock.code] = lock.username; }
  state.villages = villages.features;
  select.append(...state.villages.map((f) => {
    const who = held[f.properties.code];
    return option(f.properties.code, `${f.properties.name} ${f.properties.code}${who ? ` 🔒 ${who}` : ""}`);
  }));
  villageLayer.clearLayers().addData(villages);
  // The chosen township gives way to its villages; the others stay to click.
  townshipLayer.setStyle((f) => ({ color: "#2c5282", weight: f.properties.code === code ? 3 : 2, fillColor: "#bee3f8",
                                   fillOpacity: f.properties.code === code ? 0 : 0.25 }));
  if (state.villages.length) { map.fitBounds(villageLayer.getBounds(), { padding: [10, 10], animate: false }); }
  document.body.dataset.township = code;
}

async function chooseVillage(code) {
  delete document.body.dataset.village;   // set again once the village is shown
  releaseLock();
  resetOperation();
  say("");
  if (!code) { return; }
  const village = state.villages.find((f) => f.properties.code === code);
  state.village = village ? village.properties : { code };
  villageLayer.setStyle(villageLayer.options.style);
  await Promise.all([loadGrids(), loadHistory(), loadProblems(), takeLock()]);
  if (gridLayer.getLayers().length) { map.fitBounds(gridLayer.getBounds(), { padding: [20, 20], animate: false }); }
  document.body.dataset.village = code;
}

async function loadGrids() {
  gridLayer.clearLayers();
  state.grids = {};
  state.versions = {};
  let fc;
  try {
    fc = await get(`/api/areas${query({ level: 4, parent: state.village.code })}`);
  } catch (error) {
    say(error.message || t("load_failed"), "error");
    return;
  }
  for (const f of fc.features) {
    state.grids[f.properties.code] = f;
    state.versions[f.properties.code] = f.properties.version;
  }
  state.versions[state.village.code] = state.village.version;
  gridLayer.addData(fc);
  document.body.dataset.gridCodes = Object.keys(state.grids).sort().join(",");
}

// -- soft lock ----------------------------------------------------------------------------------
async function takeLock() {
  const box = byId("lock-state");
  const override = document.getElementById("lock-override");   // administrators only
  let lock;
  try {
    lock = await post(`/api/areas/${encodeURIComponent(state.village.code)}/lock`);
  } catch (error) {
    // Said as the server said it, in the page's language.
    box.hidden = false;
    box.className = "lock-state theirs";
    setText(box, error.message || t("load_failed"));
    state.lockMine = false;
    return;
  }
  // A lock that changed hands since the last look: ours lapsed and someone took it, or theirs ended.
  if (state.lockVillage === state.village.code) {
    if (state.lockMine && !lock.mine) {
      say(t("lock_lost", { holder: lock.username }), "conflict");
    } else if (!state.lockMine && state.lockHolder && lock.mine) {
      say(t("lock_ended", { holder: state.lockHolder }), "ok");
    }
  }
  state.lockVillage = state.village.code;
  state.lockMine = lock.mine;
  state.lockHolder = lock.mine ? null : lock.username;
  box.hidden = false;
  box.className = `lock-state ${lock.mine ? "mine" : "theirs"}`;
  box.dataset.holder = lock.username;
  setText(box, lock.mine ? t("lock_mine")
    : `🔒 ${lock.username} ${t("locked_by")} ${new Date(lock.acquired_at).toLocaleTimeString()}`);
  if (override) { override.hidden = lock.mine; }
  clearTimeout(state.lockTimer);
  state.lockTimer = setTimeout(takeLock, 60000);   // refresh ours, or see when theirs ends
}

// An administrator releases someone else's lock (audited), then takes it.
async function overrideLock() {
  if (!state.village || state.lockMine) { return; }
  const holder = state.lockHolder;
  try {
    await remove(`/api/areas/${encodeURIComponent(state.village.code)}/lock${query({ override: 1 })}`);
  } catch (error) {
    sayError(error);
    return;
  }
  await takeLock();
  say(t("lock_taken_over", { holder }), "ok");
}

function releaseLock() {
  clearTimeout(state.lockTimer);
  // Someone else's lock is theirs to release: asking would only be refused.
  state.lockVillage = null;
  if (!state.village || !state.lockMine) { return; }
  state.lockMine = false;
  remove(`/api/areas/${encodeURIComponent(state.village.code)}/lock`, { keepalive: true }).catch(() => {});
}
window.addEventListener("pagehide", releaseLock);

// -- operations ---------------------------------------------------------------------------------
function resetOperation() {
  map.pm.disableDraw();
  if (state.reshape) { state.reshape.pm.disable(); map.removeLayer(state.reshape); }
  drawnLayer.clearLayers();
  diffLayer.clearLayers();
  previewLayer.clearLayers();
  Object.assign(state, { op: null, selection: [], drawn: [], reshape: null, preview: null, previewBody: null });
  document.querySelectorAll(".tool").forEach((b) => b.classList.remove("active"));
  setText(byId("tool-help"), t("help_choose"));
  byId("move-target").hidden = true;
  byId("draw-done").hidden = true;
  byId("finish-shape").hidden = true;
  byId("preview-btn").disabled = true;
  byId("preview-box").hidden = true;
  live("");
  gridLayer.setStyle(gridStyle);
  showSelection();
}

function setOp(op) {
  if (!state.village) { say(t("help_choose"), "error"); return; }
  resetOperation();
  state.op = op;
  byId(`tool-${op}`).classList.add("active");
  setText(byId("tool-help"), t(`help_${op}`));
  if (op === "partition") { startDrawing(); }
}

function pick(code) {
  // While a shape is being drawn, a click on a grid is a vertex of that shape, not a choice.
  if (!state.op || state.op === "partition" || map.pm.globalDrawModeEnabled() || state.reshape) { return; }
  const at = state.selection.indexOf(code);
  if (at >= 0) { state.selection.splice(at, 1); }
  else if (state.op === "merge" || state.selection.length < NEEDS[state.op]) { state.selection.push(code); }
  gridLayer.setStyle(gridStyle);
  showSelection();
  if (state.selection.length < NEEDS[state.op]) { return; }
  // Drawing starts after this click has reached the map: else the click that chose the grid
  // would be the line's first vertex, inside the grid.
  if (DRAW[state.op]) { setTimeout(startDrawing, 0); }
  else if (state.op === "reshape") { startReshape(); }
  else if (state.op === "move") { showMoveTargets(); }
  byId("preview-btn").disabled = state.op !== "merge";
}

function showSelection() {
  setText(byId("selection"), `${t("selected")}: ${state.selection.join(" → ") || t("none")}`);
}

function startDrawing() {
  map.pm.enableDraw(DRAW[state.op], { snappable: true, snapDistance: 18, allowSelfIntersection: false, finishOn: null });
  if (state.op === "partition") { byId("draw-done").hidden = false; }
  setText(byId("finish-shape"), t(DRAW[state.op] === "Polygon" ? "finish_polygon" : "finish_line"));
  byId("finish-shape").hidden = true;   // shown once there is something to finish
}

// Finish the shape being drawn, as clicking its last point again would. True when one was finished.
function finishShape() {
  const drawing = map.pm.Draw[DRAW[state.op]];
  const layer = drawing && drawing._layer;
  const points = layer ? layer.getLatLngs().flat(Infinity) : [];
  if (!map.pm.globalDrawModeEnabled() || points.length < (DRAW[state.op] === "Polygon" ? 3 : 2)) { return false; }
  drawing._finishShape();
  return true;
}

// Live validation while drawing: say after each vertex whether the shape reaches what it must.
map.on("pm:drawstart", (e) => {
  if (e.workingLayer) {
    e.workingLayer.on("pm:vertexadded", () => {
      liveCheck(e.workingLayer);
      const n = e.workingLayer.getLatLngs().flat(Infinity).length;
      byId("finish-shape").hidden = state.op === "partition" || n < (DRAW[state.op] === "Polygon" ? 3 : 2);
    });
  }
});
map.on("pm:intersect", () => live(`✕ ${t("live_self_cross")}`, false));

// The grid's rings as [x, y] (lon, lat) arrays, for the live hint's geometry.
function rings(feature) {
  const g = feature.geometry;
  const polygons = g.type === "Polygon" ? [g.coordinates] : g.coordinates;
  return polygons.flat();
}

function inside(point, ringList) {
  // Even-odd ray casting over every ring: holes count as outside.
  let result = false;
  for (const ring of ringList) {
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
      const [xi, yi] = ring[i];
      const [xj, yj] = ring[j];
      if ((yi > point[1]) !== (yj > point[1]) && point[0] < ((xj - xi) * (point[1] - yi)) / (yj - yi) + xi) {
        result = !result;
      }
    }
  }
  return result;
}

function segmentsCross(a, b, c, d) {
  const side = (p, q, r) => Math.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]));
  return side(a, b, c) * side(a, b, d) < 0 && side(c, d, a) * side(c, d, b) < 0;
}

function crossesBoundary(points, ringList) {
  for (let k = 1; k < points.length; k += 1) {
    for (const ring of ringList) {
      for (let i = 1; i < ring.length; i += 1) {
        if (segmentsCross(points[k - 1], points[k], ring[i - 1], ring[i])) { return true; }
      }
    }
  }
  return false;
}

/** What the live hint says of the vertices drawn so far: [words, ok] (ok null while unfinished). */
function liveVerdict(points, feature) {
  const ringList = rings(feature);
  const within = points.map((p) => inside(p, ringList));
  if (state.op === "split") {
    if (within[0]) { return [`✕ ${t("live_start_outside")}`, false]; }
    if (points.length < 2) { return [`… ${t("live_outside")}`, null]; }
    if (within[within.length - 1]) { return [`… ${t("live_end_outside")}`, null]; }
    return crossesBoundary(points, ringList) ? [`✓ ${t("live_crosses")}`, true] : [`… ${t("live_not_yet")}`, null];
  }
  const touches = within.some(Boolean) || crossesBoundary(points.concat([points[0]]), ringList);
  return touches ? [`✓ ${t("live_overlaps")}`, true] : [`… ${t("live_not_yet")}`, null];
}

function liveCheck(layer) {
  const points = layer.getLatLngs().flat(Infinity).map((p) => [p.lng, p.lat]);
  const target = state.selection[0] && state.grids[state.selection[0]];
  if (!target || !points.length) { return; }
  const [words, ok] = liveVerdict(points, target);
  live(words, ok);
}

map.on("pm:create", (e) => {
  byId("finish-shape").hidden = true;
  drawnLayer.addLayer(e.layer);
  e.layer.options.pmIgnore = true;
  state.drawn.push(e.layer.toGeoJSON().geometry);
  if (state.op === "partition") { startDrawing(); return; }   // keep drawing dividing lines until Done
  map.pm.disableDraw();
  preview();
});

function startReshape() {
  const feature = state.grids[state.selection[0]];
  state.reshape = L.geoJSON(feature, { style: { color: "#c53030", weight: 3, fillOpacity: 0.1 } }).getLayers()[0];
  state.reshape.addTo(map);
  state.reshape.pm.enable({ snappable: true, allowSelfIntersection: false, draggable: false });
  let timer = null;
  state.reshape.on("pm:edit", () => {
    clearTimeout(timer);
    live(t("checking"), null);
    timer = setTimeout(preview, 350);   // live validation of the edited outline
  });
}

function showMoveTargets() {
  const others = state.villages.filter((f) => f.properties.code !== state.village.code);
  fill(byId("move-village"), option("", "—"),
       others.map((f) => option(f.properties.code, `${f.properties.name} ${f.properties.code}`)));
  byId("move-target").hidden = false;
}

function changeRequest() {
  const op = state.op;
  const body = { op, areas: state.selection.slice() };
  const lines = () => ({ type: "MultiLineString", coordinates: state.drawn.map((g) => g.coordinates) });
  if (op === "partition") {
    body.areas = [state.village.code];
    body.geometry = lines();
  } else if (op === "transfer") {
    body.geometry = state.drawn[state.drawn.length - 1];
  } else if (op === "split") {
    body.geometry = lines();
  } else if (op === "reshape") {
    body.geometry = state.reshape.toGeoJSON().geometry;
  } else if (op === "move") {
    body.areas.push(byId("move-village").value);
  }
  // Every version the page shows: a change anywhere in the village since is a conflict.
  body.base_versions = { ...state.versions };
  if (op === "move") {
    const target = state.villages.find((f) => f.properties.code === byId("move-village").value);
    if (target) { body.base_versions[target.properties.code] = target.properties.version; }
  }
  return body;
}

async function preview() {
  if (!state.op) { return; }
  const body = { ...changeRequest(), preview: true };
  live(t("checking"), null);
  let result;
  try {
    result = await post("/api/changes", body);
  } catch (error) {
    state.preview = null;
    byId("preview-box").hidden = true;
    live(`✕ ${error.message}`, false);
    if (error.status === 409) { say(conflictText(error), "conflict"); }
    return;
  }
  live(`✓ ${t("valid")}`, true);
  state.preview = result;
  state.previewBody = body;
  renderPreview(result);
  drawPreview(result);
}

function drawPreview(result) {
  previewLayer.clearLayers();
  const shown = result.rows.filter((row) => row.geometry && row.status !== "retired");
  previewLayer.addData({ type: "FeatureCollection", features: shown.map((row) => ({
    type: "Feature", geometry: row.geometry, properties: { code: row.code, status: row.status } })) });
  document.body.dataset.previewShapes = String(shown.length);
}

function renderPreview(result) {
  const rows = result.rows.map((row) => {
    const b = row.before;
    const a = row.after;
    const cells = [`${row.code.slice(-3)} ${row.name || ""}`, t(row.status),
      pair(b && b.area_m2, a && a.area_m2, hectares), pair(b && b.households, a && a.households),
      pair(b && b.population, a && a.population), pair(b && b.entities, a && a.entities),
      pair(b && b.open_incidents, a && a.open_incidents), pair(b && b.staff, a && a.staff),
      pair(b && b.households_per_worker, a && a.households_per_worker)];
    // "before → after" on two lines, so that nine columns fit the panel.
    const cell = (c) => {
      const [was, now] = String(c).split(" → ");
      return now === undefined ? el("td", { text: c }) : el("td", null, was, el("br"), `→ ${now}`);
    };
    return el("tr", { className: `status-${row.status}`, attrs: { title: row.code } }, cells.map(cell));
  });
  fill(byId("preview-table").querySelector("tbody"), rows);
  const range = (x) => `${x.min || "–"}–${x.max || "–"} (${t("cv")} ${x.cv === null || x.cv === undefined ? "–" : x.cv})`;
  setText(byId("balance"), Object.entries(result.balance).map(([code, x]) =>
    `${code} · ${t("balance")} ${t("before")} ${range(x.before)}, ${t("after")} ${range(x.after)}; ` +
    `${x.outside_norms_after} ${t("outside_norms")}`).join(" | "));
  const notes = result.notes.concat(result.problems.map((p) => `⚠ ${p.message}`));
  fill(byId("preview-notes"), notes.map((n) => el("li", { text: n })));
  byId("preview-box").hidden = false;
  updateSave();
}

function updateSave() {
  byId("save-btn").disabled = !state.preview || byId("reason").value.trim().length < 2;
}

async function save() {
  const reason = byId("reason").value.trim();
  if (reason.length < 2) { say(t("reason_needed"), "error"); return; }
  const body = { ...state.previewBody, preview: false, reason };
  if (state.op === "reshape") { body.geometry = state.reshape.toGeoJSON().geometry; }
  byId("save-btn").disabled = true;
  let saved;
  try {
    saved = await post("/api/changes", body);
  } catch (error) {
    sayError(error);
    if (error.status !== 409) { updateSave(); }
    return;
  }
  byId("reason").value = "";
  await chooseVillage(state.village.code);
  say(`${t("saved")} #${saved.change_id}`, "ok");
}

// -- history ------------------------------------------------------------------------------------
function historyItem(c) {
  const kind = c.kind === "revert" ? t("revert_kind") : t(c.kind);
  const head = `#${c.id} ${kind} · ${c.author || "—"} · ${new Date(c.created_at).toLocaleString()}` +
    (c.reverted_by ? ` · ${t("reverted_by")} #${c.reverted_by}` : "");
  return el("li", { dataset: { change: c.id, kind: c.kind } },
    el("div", { text: head }),
    el("div", { className: "why", text: c.reason + (c.codes.length ? ` — ${c.codes.join(", ")}` : "") }),
    el("button", { type: "button", className: "diff", text: t("diff"), on: { click: () => showDiff(c.id) } }),
    !c.reverted_by && c.kind !== "import"
      ? el("button", { type: "button", className: "revert", text: t("revert"), on: { click: () => revert(c.id) } })
      : null);
}

async function loadHistory() {
  const list = byId("history-list");
  let changes = [];
  try {
    changes = (await get(`/api/changes${query({ limit: 30, area: state.village.code })}`)).changes;
  } catch { /* an empty history says as much */ }
  fill(list, changes.length ? changes.map(historyItem) : el("li", { className: "hint", text: t("no_changes") }));
}

async function showDiff(id) {
  diffLayer.clearLayers();
  let change;
  try { change = await get(`/api/changes/${id}`); } catch (error) { say(error.message, "error"); return; }
  diffLayer.addData(change.diff);
  if (diffLayer.getLayers().length) { map.fitBounds(diffLayer.getBounds(), { padding: [40, 40], maxZoom: 17 }); }
}

async function revert(id) {
  const reason = window.prompt(t("revert_reason"));
  if (!reason || reason.trim().length < 2) { return; }
  let reverted;
  try {
    reverted = await request(`/api/changes/${id}/revert`, { method: "POST", json: { reason: reason.trim() } });
  } catch (error) {
    sayError(error);
    return;
  }
  await chooseVillage(state.village.code);
  say(`${t("reverted")} #${reverted.change_id}`, "ok");
}

// -- problems -----------------------------------------------------------------------------------
async function loadProblems() {
  problemLayer.clearLayers();
  const list = clear(byId("problem-list"));
  let found;
  try { found = await get(`/api/areas/${encodeURIComponent(state.village.code)}/problems`); } catch { return; }
  problemLayer.addData({ type: "FeatureCollection", features: found.features.filter((f) => f.geometry) });
  setText(byId("problem-count"), `${found.errors} ${t("errors")}, ${found.warnings} ${t("warnings")}`);
  fill(list, found.features.length
    ? found.features.map((f) => el("li", { className: f.properties.severity, text: f.properties.message }))
    : el("li", { className: "hint", text: t("no_problems") }));
}

// -- wiring -------------------------------------------------------------------------------------
byId("township-select").addEventListener("change", (e) => chooseTownship(e.target.value));
byId("village-select").addEventListener("change", (e) => chooseVillage(e.target.value));
document.querySelectorAll(".tool").forEach((b) => b.addEventListener("click", () => setOp(b.dataset.op)));
byId("move-village").addEventListener("change", () => { if (byId("move-village").value) { preview(); } });
byId("draw-done").addEventListener("click", () => {
  // A dividing line still being drawn is part of the partition: finish it first.
  finishShape();
  map.pm.disableDraw();
  preview();
});
byId("finish-shape").addEventListener("click", finishShape);
byId("preview-btn").addEventListener("click", preview);
byId("cancel-btn").addEventListener("click", resetOperation);
byId("reason").addEventListener("input", updateSave);
document.getElementById("lock-override")?.addEventListener("click", overrideLock);
byId("save-btn").addEventListener("click", save);

expose("planner", {
  map, state, chooseTownship, chooseVillage, liveVerdict, preview: previewLayer, takeLock,
  townships: townshipLayer, villages: villageLayer,
  pixel: (lon, lat) => map.latLngToContainerPoint([lat, lon]),
});
loadTownships().then(() => { document.body.dataset.ready = "1"; });

/* The grid planner (网格规划): choose a village, pick an operation, draw with Leaflet-Geoman
 * (snapping to the existing edges, no self-crossing shapes), see the server's preview of every
 * affected grid (area, households, population, entities, open incidents, staff, workload), give a
 * reason and save. History with diff and revert, problems of the village on the map, conflict
 * messages when someone else saved first, and a soft lock others can see.
 *
 * Every check that matters runs on the server: the preview is the real change, rolled back. */
import { get, post, query, remove, request, watchActivity } from "../lib/api.js";
import { byId, clear, el, fill, setText, text } from "../lib/dom.js";
import { locale, t } from "../lib/i18n.js";
import { createMap } from "../lib/map.js";
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
                lockMine: false };

function gridStyle(feature) {
  const picked = state.selection.indexOf(feature.properties.code);
  return { color: picked >= 0 ? "#c53030" : "#975a16", weight: picked >= 0 ? 3 : 1.5,
           fillColor: picked === 0 ? "#feb2b2" : picked > 0 ? "#fbd38d" : "#f6e05e", fillOpacity: picked >= 0 ? 0.35 : 0.12 };
}

const villageLayer = L.geoJSON(null, {
  style: { color: "#2f855a", weight: 2, fill: false, dashArray: "6,4" }, interactive: false,
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
  try {
    const fc = await get("/api/areas?level=2");
    state.townships = fc.features;
    byId("township-select").append(...fc.features.map((f) => option(f.properties.code, `${f.properties.name} ${f.properties.code}`)));
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
  if (state.villages.length) { map.fitBounds(villageLayer.getBounds(), { padding: [10, 10], animate: false }); }
}

async function chooseVillage(code) {
  delete document.body.dataset.village;   // set again once the village is shown
  releaseLock();
  resetOperation();
  say("");
  if (!code) { return; }
  const village = state.villages.find((f) => f.properties.code === code);
  state.village = village ? village.properties : { code };
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
  let lock;
  try {
    lock = await post(`/api/areas/${encodeURIComponent(state.village.code)}/lock`);
  } catch {
    box.hidden = true;
    state.lockMine = false;
    return;
  }
  state.lockMine = lock.mine;
  box.hidden = false;
  box.className = `lock-state ${lock.mine ? "mine" : "theirs"}`;
  setText(box, lock.mine ? t("lock_mine")
    : `🔒 ${lock.username} ${t("locked_by")} ${new Date(lock.acquired_at).toLocaleTimeString()}`);
  clearTimeout(state.lockTimer);
  state.lockTimer = setTimeout(takeLock, 60000);   // refresh ours, or see when theirs ends
}

function releaseLock() {
  clearTimeout(state.lockTimer);
  // Someone else's lock is theirs to release: asking would only be refused.
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
  Object.assign(state, { op: null, selection: [], drawn: [], reshape: null, preview: null, previewBody: null });
  document.querySelectorAll(".tool").forEach((b) => b.classList.remove("active"));
  setText(byId("tool-help"), t("help_choose"));
  byId("move-target").hidden = true;
  byId("draw-done").hidden = true;
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
  if (DRAW[state.op]) { startDrawing(); }
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
}

// Live validation while drawing: say after each vertex whether the shape reaches what it must.
map.on("pm:drawstart", (e) => {
  if (e.workingLayer) { e.workingLayer.on("pm:vertexadded", () => liveCheck(e.workingLayer)); }
});
map.on("pm:intersect", () => live(`✕ ${t("live_self_cross")}`, false));

function liveCheck(layer) {
  const points = layer.getLatLngs();
  const flat = Array.isArray(points[0]) ? points[0] : points;
  const target = state.selection[0] && state.grids[state.selection[0]];
  if (!target || !flat.length) { return; }
  const bounds = L.geoJSON(target).getBounds();
  const inside = flat.filter((p) => bounds.contains(p)).length;
  if (state.op === "split") {
    const crosses = flat.length >= 2 && !bounds.contains(flat[0]) && !bounds.contains(flat[flat.length - 1]);
    live(crosses ? `✓ ${t("live_crosses")}` : `… ${t("live_outside")}`, crosses);
  } else {
    live(inside ? `✓ ${t("live_overlaps")}` : `… ${t("live_not_yet")}`, inside > 0);
  }
}

map.on("pm:create", (e) => {
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
}

function renderPreview(result) {
  const rows = result.rows.map((row) => {
    const b = row.before;
    const a = row.after;
    const cells = [`${row.code.slice(-6)} ${row.name || ""}`, t(row.status),
      pair(b && b.area_m2, a && a.area_m2, hectares), pair(b && b.households, a && a.households),
      pair(b && b.population, a && a.population), pair(b && b.entities, a && a.entities),
      pair(b && b.open_incidents, a && a.open_incidents), pair(b && b.staff, a && a.staff),
      pair(b && b.households_per_worker, a && a.households_per_worker)];
    return el("tr", { className: `status-${row.status}` }, cells.map((c) => el("td", { text: c })));
  });
  fill(byId("preview-table").querySelector("tbody"), rows);
  const range = (x) => `${x.min || "–"}–${x.max || "–"} (cv ${x.cv === null || x.cv === undefined ? "–" : x.cv})`;
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
byId("draw-done").addEventListener("click", () => { map.pm.disableDraw(); preview(); });
byId("preview-btn").addEventListener("click", preview);
byId("cancel-btn").addEventListener("click", resetOperation);
byId("reason").addEventListener("input", updateSave);
byId("save-btn").addEventListener("click", save);

expose("planner", {
  map, state, chooseTownship, chooseVillage,
  pixel: (lon, lat) => map.latLngToContainerPoint([lat, lon]),
});
loadTownships().then(() => { document.body.dataset.ready = "1"; });

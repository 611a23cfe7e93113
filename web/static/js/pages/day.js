/* The grid worker's day (GET /api/me/day): households due for a visit, the month's progress per
 * grid, open matters of their grids (those waiting for a 回访 first), a report button, the visit
 * form — visits go into the outbox and reach POST /api/visits when there is network — and patrol:
 * while the page is open and on duty, the phone's positions go to the batch positions API. */
import { get } from "../lib/api.js";
import { byId, el, fill, setText, text } from "../lib/dom.js";
import { t } from "../lib/i18n.js";
import { createMap } from "../lib/map.js";
import { showOutbox } from "../lib/outbox.js";
import { startPatrol } from "../lib/patrol.js";
import { areaAt, gridOf, localIso, lonLat, myPosition, nowLocal } from "../lib/place.js";
import { enqueue, entries, flush } from "../lib/queue.js";
import { expose } from "../lib/testhook.js";
import { label } from "../lib/vocabulary.js";

const grids = JSON.parse(byId("grids").textContent);
const form = byId("visit-form");
const status = byId("day-status");
const where = byId("visit-where");
const problem = byId("visit-problem");
const { map } = createMap("map", { minZoom: 5, maxZoom: 19 });

const gridLayer = L.geoJSON(grids, {
  style: { color: "#b7791f", weight: 2, fillOpacity: 0.06 },
  onEachFeature: (f, lyr) => lyr.bindTooltip(() => text(f.properties.name)),
}).addTo(map);
if (gridLayer.getLayers().length) { map.fitBounds(gridLayer.getBounds(), { padding: [10, 10], animate: false }); }
const dots = L.layerGroup().addTo(map);

let today = { due: [], matters: [], grids: [] };
let point = null;
let marker = null;

function say(node, words, className = "hint") {
  setText(node, words);
  node.className = className;
}

function householdName(h) {
  return [`${t("household")} ${h.number || h.id}`, h.head_name || h.name || null, h.address || null]
    .filter(Boolean).join(" · ");
}

function openVisit({ household = null, matter = null } = {}) {
  form.hidden = false;
  form.reset();
  form.elements.occurred_at.value = nowLocal();
  clearPoint();
  say(problem, "", "error");
  if (matter) { form.elements.kind.value = "follow_up"; }
  kindChanged();
  if (household) { form.elements.household_id.value = String(household.id); }
  if (matter) { form.elements.incident_id.value = String(matter.id); }
  form.scrollIntoView({ block: "start" });
}

function renderDay() {
  setText(byId("day-date"), today.date || "");
  fill(byId("due"), today.due.length
    ? today.due.map((h) => el("li", null,
        el("span", { text: `${householdName(h)} · ${h.grid_code} · ${h.last_visit ? `${t("last_visit")} ${h.last_visit.slice(0, 10)}` : t("never")}` }),
        el("button", { type: "button", className: "button", text: t("visit"), on: { click: () => openVisit({ household: h }) } })))
    : el("li", { className: "hint", text: t("nothing_due") }));
  fill(byId("plan"), today.grids.map((g) => el("p", { className: "hint", text: t("plan", {
    name: g.name, visited: g.visited, planned: g.planned, due: g.due_today }) })));
  fill(byId("matters"), today.matters.length
    ? today.matters.map((m) => el("li", { className: m.awaiting_follow_up ? "awaiting" : null },
        el("span", { text: `#${m.id} · ${label("category", m.category)} · ${label("status", m.status)} · ${m.grid_code}${m.awaiting_follow_up ? ` · ${t("awaiting")}` : ""}` }),
        m.awaiting_follow_up
          ? el("button", { type: "button", className: "button", text: t("follow_up"), on: { click: () => openVisit({ matter: m }) } })
          : null))
    : el("li", { className: "hint", text: t("no_matters") }));
  fill(form.elements.household_id, form.elements.household_id.options[0],
    today.due.map((h) => el("option", { value: String(h.id), text: householdName(h) })));
  fill(form.elements.incident_id, today.matters.filter((m) => m.awaiting_follow_up).map((m) =>
    el("option", { value: String(m.id), text: `#${m.id} · ${label("category", m.category)} · ${m.grid_code}` })));
  dots.clearLayers();
  for (const m of today.matters) {
    if (m.lon !== null && m.lat !== null) {
      L.circleMarker([m.lat, m.lon], { radius: 7, color: m.awaiting_follow_up ? "#2f855a" : "#c53030", weight: 2 })
        .bindTooltip(() => text(`#${m.id} · ${label("category", m.category)}`)).addTo(dots);
    }
  }
  document.body.dataset.dayLoaded = "1";
}

async function loadDay() {
  try {
    today = await get("/api/me/day");
    say(status, "");
  } catch {
    say(status, t(navigator.onLine ? "loading_failed" : "offline_day"), "error");
  }
  renderDay();
}

function clearPoint() {
  point = null;
  if (marker) { marker.remove(); marker = null; }
  say(where, t("none"));
}

async function choose(latlng, accuracy = null) {
  const grid = gridOf(gridLayer, latlng);
  if (!grid) {
    say(where, t("outside"), "error");
    const area = await areaAt(latlng);
    if (area) { say(where, t("outside_in", { name: area.name, code: area.code }), "error"); }
    return false;
  }
  point = lonLat(latlng);
  if (marker) { marker.setLatLng(latlng); } else { marker = L.marker(latlng).addTo(map); }
  say(where, `${t("chosen")}: ${grid.properties.name} (${grid.properties.code}) · ${point.lon.toFixed(6)}, ${point.lat.toFixed(6)}` +
    (accuracy !== null ? ` · ${t("accuracy")} ±${Math.round(accuracy)} m` : ""));
  return true;
}

map.on("click", (e) => { if (!form.hidden) { choose(e.latlng); } });

byId("visit-location").addEventListener("click", async () => {
  say(where, t("locating"));
  try {
    const pos = await myPosition();
    map.setView(pos.latlng, Math.max(map.getZoom(), 16), { animate: false });
    await choose(pos.latlng, pos.accuracy);
  } catch {
    say(where, t("no_position"), "error");
  }
});

function kindChanged() {
  byId("matter-field").hidden = form.elements.kind.value !== "follow_up";
}
form.elements.kind.addEventListener("change", kindChanged);
form.elements.issue.addEventListener("change", () => { byId("issue-fields").hidden = !form.elements.issue.checked; });
byId("new-visit").addEventListener("click", () => openVisit());
byId("visit-cancel").addEventListener("click", () => { form.hidden = true; clearPoint(); });

function visitFrom(f) {
  const visit = { kind: f.kind.value, occurred_at: localIso(f.occurred_at.value), people: Number(f.people.value) || 1,
                  notes: f.notes.value };
  if (f.household_id.value) { visit.household_id = Number(f.household_id.value); }
  if (visit.kind === "follow_up" && f.incident_id.value) { visit.incident_id = Number(f.incident_id.value); }
  if (point) { Object.assign(visit, { lon: point.lon, lat: point.lat, crs: "wgs84" }); }
  if (f.issue.checked) {
    visit.issues = [{ category: f.issue_category.value, severity: 1, description: f.issue_description.value,
                      report: f.issue_report.checked }];
  }
  return visit;
}

function wrong(f, visit) {
  if (!f.occurred_at.value) { return t("need_time"); }
  if (visit.kind === "follow_up" && !visit.incident_id) { return t("need_matter"); }
  if (!visit.household_id && !point && !visit.incident_id) { return t("need_place"); }
  return null;
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = form.elements;
  const visit = visitFrom(f);
  const bad = wrong(f, visit);
  if (bad) { say(problem, bad, "error"); return; }
  const household = today.due.find((h) => h.id === visit.household_id);
  const words = [label("visit_kind", visit.kind), household ? householdName(household) : null,
                 f.occurred_at.value.replace("T", " ")].filter(Boolean).join(" · ");
  await enqueue("visit", "/api/visits", visit, words);
  say(problem, t("queued"), "hint");
  form.hidden = true;
  clearPoint();
});

showOutbox(byId("outbox"), byId("outbox-count"));
loadDay();
window.addEventListener("online", loadDay);

const patrol = startPatrol({ token: byId("patrol-token"), toggle: byId("patrol-toggle"), status: byId("patrol-status") });

expose("map", map);
expose("patrol", patrol);
expose("day", { openVisit, choose: (lat, lon) => choose(L.latLng(lat, lon)), flush, entries, today: () => today });

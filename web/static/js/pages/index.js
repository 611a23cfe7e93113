/* The dashboard map: township / village / grid boundaries by zoom or by choice, their names as
 * labels, a click panel (code, name, households, population, staff), the incidents layer and the
 * four-colour layer with the 三零 panels. */
import { get } from "../lib/api.js";
import { byId, el, fill, text } from "../lib/dom.js";
import { t } from "../lib/i18n.js";
import { createMap } from "../lib/map.js";
import { expose } from "../lib/testhook.js";
import { label, levelLabel } from "../lib/vocabulary.js";
import { attachIncidents } from "../layers/incidents.js";
import { attachRisk } from "../layers/risk.js";

const STYLE = {
  1: { color: "#1f2d3d", weight: 3, fill: false },
  2: { color: "#2c5282", weight: 2.5, fillOpacity: 0.04 },
  3: { color: "#2f855a", weight: 1.5, fillOpacity: 0.05 },
  4: { color: "#b7791f", weight: 1, fillOpacity: 0.06 },
};
// 商桥镇's first-level zones (东/南/西/中) are a grouping, shown as tints of their villages.
const GROUP_TINTS = ["#90cdf4", "#fbd38d", "#c6f6d5", "#fed7e2", "#e9d8fd", "#feebc8"];
const LABEL_MIN_ZOOM = { 2: 10, 3: 12, 4: 14 };

const info = byId("area-info");
const levelSelect = byId("level-select");
const loading = byId("loading");
const boundaryGroup = L.layerGroup();
const { map } = createMap("map", { zoomSnap: 0.25, minZoom: 7, maxZoom: 19,
                                   overlays: { [t("boundaries")]: boundaryGroup } });
boundaryGroup.addTo(map);
const risk = attachRisk(map);

const groupTint = {};
const layers = {};    // level -> L.GeoJSON once loaded
const pending = {};   // level -> Promise while loading
let shownLevel = null;
let selected = null;
let townshipContext = null;

function styleFor(feature) {
  const p = feature.properties;
  const style = { ...(STYLE[p.level] || STYLE[4]) };
  if (p.group && p.level === 3) {
    if (!(p.group in groupTint)) {
      groupTint[p.group] = GROUP_TINTS[Object.keys(groupTint).length % GROUP_TINTS.length];
    }
    style.fillColor = groupTint[p.group];
    style.fillOpacity = 0.35;
  }
  return style;
}

function loadLevel(level) {
  if (layers[level]) { return Promise.resolve(layers[level]); }
  if (pending[level]) { return pending[level]; }
  loading.hidden = false;
  pending[level] = get(`/api/areas?level=${level}`).then((fc) => {
    layers[level] = L.geoJSON(fc, {
      style: styleFor,
      onEachFeature(feature, lyr) {
        lyr.on("click", (e) => { L.DomEvent.stopPropagation(e); select(feature, lyr); });
      },
    });
    return layers[level];
  }).catch((error) => {
    fill(info, el("p", { className: "error", text: t("load_failed") }));
    console.warn(error);
    throw error;
  }).finally(() => {
    delete pending[level];
    if (!Object.keys(pending).length) { loading.hidden = true; }
  });
  return pending[level];
}

function wantedLevel() {
  if (levelSelect.value !== "auto") { return Number(levelSelect.value); }
  const zoom = map.getZoom();
  return zoom < 12 ? 2 : zoom < 14 ? 3 : 4;
}

// An area's label is made when the area first comes into view (most grids of a district never
// do), and its name is a text node: Leaflet would read a string as markup.
function bindLabel(lyr) {
  const { name, level } = lyr.feature.properties;
  lyr.bindTooltip(() => text(name), { permanent: true, direction: "center", className: `area-label level-${level}` });
}

function updateLabels() {
  if (!shownLevel || !layers[shownLevel]) { return; }
  const show = map.getZoom() >= LABEL_MIN_ZOOM[shownLevel];
  const bounds = map.getBounds();
  layers[shownLevel].eachLayer((lyr) => {
    const visible = show && bounds.intersects(lyr.getBounds());
    if (visible && !lyr.getTooltip()) { bindLabel(lyr); }
    if (visible && !lyr.isTooltipOpen()) { lyr.openTooltip(); }
    if (!visible && lyr.getTooltip() && lyr.isTooltipOpen()) { lyr.closeTooltip(); }
  });
}

async function showLevel() {
  const level = wantedLevel();
  if (level === shownLevel) { updateLabels(); return; }
  let layer;
  try { layer = await loadLevel(level); } catch { return; }
  if (wantedLevel() !== level) { return; }
  for (const key of Object.keys(layers)) {
    if (Number(key) !== 1) { boundaryGroup.removeLayer(layers[key]); }
  }
  boundaryGroup.addLayer(layer);
  // Below the township level, township borders stay visible as context (not clickable).
  if (level > 2) {
    loadLevel(2).then((townships) => {
      if (!townshipContext) {
        townshipContext = L.geoJSON(townships.toGeoJSON(), {
          style: { color: STYLE[2].color, weight: 2.5, fill: false }, interactive: false,
        });
      }
      if (shownLevel > 2) { boundaryGroup.addLayer(townshipContext); }
    }).catch(() => {});
  } else if (townshipContext) {
    boundaryGroup.removeLayer(townshipContext);
  }
  shownLevel = level;
  updateLabels();
  document.body.dataset.shownLevel = String(level);
}

function row(name, value) {
  const shown = value === null || value === undefined || value === "" ? "—" : value;
  return el("tr", null, el("th", { text: name }), el("td", { text: shown }));
}

const number = (n) => (typeof n === "number" ? n.toLocaleString() : n);

async function select(feature, lyr) {
  if (selected) { selected.setStyle({ weight: (STYLE[selected.feature.properties.level] || STYLE[4]).weight }); }
  selected = lyr;
  lyr.setStyle({ weight: 4 });
  fill(info, el("p", { className: "hint", text: "…" }));
  let area;
  try {
    area = await get(`/api/areas/${encodeURIComponent(feature.properties.code)}`);
  } catch {
    fill(info, el("p", { className: "error", text: t("load_failed") }));
    return;
  }
  const p = area.properties;
  const staff = p.staff && p.staff.length
    ? [el("h3", { text: t("staff") }),
       el("table", { className: "staff" },
          p.staff.map((s) => row(label("staff", s.role), s.name + (s.phone ? ` · ${s.phone}` : ""))))]
    : [];
  fill(info,
    el("h2", null, p.name, " ", el("small", { text: levelLabel(p.level) })),
    el("p", { className: "path", text: p.path.map((a) => a.name).join(" › ") }),
    el("table", null,
      row(t("code"), p.code),
      p.kind ? row(t("kind"), p.kind) : null,
      p.group ? row(t("group"), p.group) : null,
      row(t("households"), number(p.households)),
      row(t("population"), number(p.population)),
      p.children ? row(t("children"), p.children) : null),
    staff);
  info.dataset.code = p.code;
  risk.select(p.code);
}

// The district outline stays on top at every zoom; it takes no clicks and has no label.
loadLevel(1).then((outline) => {
  outline.eachLayer((lyr) => lyr.off("click"));
  outline.addTo(map);
  outline.bringToFront();
  showLevel();
}).catch(() => {});

map.on("zoomend", showLevel);
map.on("moveend", updateLabels);
levelSelect.addEventListener("change", showLevel);
attachIncidents(map);
expose("map", map);

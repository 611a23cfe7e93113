/* The public safety map: counts per grid or 1 km hexagon from /api/public/stats, sums of frozen
 * monthly releases that the server rounded to multiples of 5 (so 0 can mean up to 4); a sequential
 * legend that says so. No login, no points. */
import { isAbort, newest, query } from "../lib/api.js";
import { byId, el, setText, text } from "../lib/dom.js";
import { t } from "../lib/i18n.js";
import { createMap, mapConfig } from "../lib/map.js";
import { expose } from "../lib/testhook.js";

const COLOURS = ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"];
const EMPTY = "#f7fafc";

const levelSelect = byId("public-level");
const monthsSelect = byId("public-months");
const meta = byId("public-meta");
// No login here: without an extent in the page the map stays on the world until data arrives.
const { map } = createMap("public-map", { minZoom: 7, maxZoom: 17, askServer: false });
const stats = newest();
let layer = null;
let legend = null;

function breaks(values) {
  const sorted = values.slice().sort((a, b) => a - b);
  if (!sorted.length) { return [0, 0, 0, 0]; }
  return [0.2, 0.4, 0.6, 0.8].map((q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
}

function colour(n, edges) {
  let i = 0;
  while (i < edges.length && n > edges[i]) { i += 1; }
  return COLOURS[i];
}

function legendControl(edges, base) {
  const control = L.control({ position: "bottomright" });
  // Swatch colours go through the CSSOM (element.style), which the CSP allows.
  const row = (fillColour, words) => el("div", null, el("i", { style: { background: fillColour } }), words);
  control.onAdd = () => {
    const lows = [0].concat(edges);
    return el("div", { className: "map-legend" },
      el("div", { className: "title", text: t("legend") }),
      row(EMPTY, "0"),
      // Every published count is a multiple of the base, so a class starts one base above the last.
      COLOURS.map((c, i) => row(c, i < edges.length ? `${lows[i] + base}–${edges[i]}` : `> ${lows[i]}`)),
      el("div", { className: "note", text: t("rounded") }));
  };
  return control;
}

function draw(fc) {
  const edges = breaks(fc.features.map((f) => f.properties.count).filter((n) => n !== null && n > 0));
  const first = layer === null;
  if (layer) { map.removeLayer(layer); }
  layer = L.geoJSON(fc, {
    style(f) {
      const n = f.properties.count;
      return { color: "#718096", weight: 0.5, fillColor: n ? colour(n, edges) : EMPTY, fillOpacity: 0.7 };
    },
    onEachFeature(f, lyr) {
      const p = f.properties;
      const words = (p.name ? `${p.name} · ` : "") + `${p.count} ${t("incidents")}`;
      lyr.bindTooltip(() => text(words));   // names are text, never markup
    },
  }).addTo(map);
  if (first && !mapConfig().extent && layer.getLayers().length) {
    map.fitBounds(layer.getBounds(), { padding: [10, 10] });
  }
  if (legend) { map.removeControl(legend); }
  legend = legendControl(edges, fc.meta.base).addTo(map);
  const m = fc.meta;
  setText(meta, `${t("period")}: ${m.from} – ${m.to} · ${m.cells} ${t("cells")} · ${m.published_total} ${t("incidents")}`
    + ` · ${t("rounded")} ${t("frozen")}`);
  document.body.dataset.publicLoaded = `${m.level}:${m.months}`;
}

async function load() {
  try {
    draw(await stats(`/api/public/stats${query({ level: levelSelect.value, months: monthsSelect.value })}`));
  } catch (error) {
    if (isAbort(error)) { return; }
    setText(meta, t("load_failed"));
    console.warn(error);
  }
}

levelSelect.addEventListener("change", load);
monthsSelect.addEventListener("change", load);
load();
expose("map", map);

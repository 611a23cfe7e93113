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

/** The legend's classes for these published counts: 0 alone, then up to five classes, each
 * starting one rounding base above the last (every published count is a multiple of the base),
 * with edges at quintiles rounded up to the base and never repeated: [{low, high, colour}]. */
export function classes(values, base) {
  const positive = values.filter((n) => n !== null && n > 0).sort((a, b) => a - b);
  const out = [{ low: 0, high: 0, colour: EMPTY }];
  if (!positive.length) { return out; }
  const top = positive[positive.length - 1];
  const edges = [];
  for (const q of [0.2, 0.4, 0.6, 0.8]) {
    const v = Math.ceil(positive[Math.min(positive.length - 1, Math.floor(q * positive.length))] / base) * base;
    if (v < top && (!edges.length || v > edges[edges.length - 1])) { edges.push(v); }
  }
  edges.push(top);
  // Spread the colours over the classes there are, darkest for the highest.
  const pick = (i) => COLOURS[Math.round((i * (COLOURS.length - 1)) / Math.max(1, edges.length - 1))];
  let low = base;
  edges.forEach((high, i) => {
    out.push({ low, high, colour: edges.length === 1 ? COLOURS[COLOURS.length - 1] : pick(i) });
    low = high + base;
  });
  return out;
}

function colour(n, bands) {
  const band = bands.find((b) => n <= b.high);
  return (band || bands[bands.length - 1]).colour;
}

function legendControl(bands) {
  const control = L.control({ position: "bottomright" });
  // Swatch colours go through the CSSOM (element.style), which the CSP allows.
  const row = (fillColour, words) => el("div", null, el("i", { style: { background: fillColour } }), words);
  control.onAdd = () => el("div", { className: "map-legend", attrs: { id: "public-legend" } },
    el("div", { className: "title", text: t("legend") }),
    bands.map((b) => row(b.colour, b.low === b.high ? String(b.low) : `${b.low}–${b.high}`)),
    el("div", { className: "note", text: t("rounded") }));
  return control;
}

function draw(fc) {
  const bands = classes(fc.features.map((f) => f.properties.count), fc.meta.base);
  const first = layer === null;
  if (layer) { map.removeLayer(layer); }
  layer = L.geoJSON(fc, {
    style(f) {
      const n = f.properties.count;
      return { color: "#718096", weight: 0.5, fillColor: colour(n || 0, bands), fillOpacity: 0.7 };
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
  legend = legendControl(bands).addTo(map);
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
expose("public", { classes, load });

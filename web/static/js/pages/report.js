/* The grid worker's report form: the map shows the worker's own grids; a click (or a located
 * address) sets the point; the report goes to POST /api/incidents. Whatever the server or the
 * reader wrote is shown as text. */
import { ApiError, get, post, query } from "../lib/api.js";
import { byId, el, fill, setText, text } from "../lib/dom.js";
import { t, wordOr } from "../lib/i18n.js";
import { createMap } from "../lib/map.js";
import { expose } from "../lib/testhook.js";
import { label } from "../lib/vocabulary.js";

const grids = JSON.parse(byId("grids").textContent);
const form = byId("report-form");
const where = byId("where");
const result = byId("result");
const { map } = createMap("map", { minZoom: 5, maxZoom: 19 });

const gridLayer = L.geoJSON(grids, {
  style: { color: "#b7791f", weight: 2, fillOpacity: 0.08 },
  onEachFeature: (f, lyr) => lyr.bindTooltip(() => text(f.properties.name)),
}).addTo(map);
// The reader's own grids frame the map more closely than their area's extent.
if (gridLayer.getLayers().length) { map.fitBounds(gridLayer.getBounds(), { padding: [20, 20], animate: false }); }

let marker = null;
let point = null;   // {lon, lat} in WGS84, or null when the address alone is sent

function say(node, words, className = "hint") {
  setText(node, words);
  node.className = className;
}

// Ray casting over every ring of the grid's (multi)polygon; the server checks again.
function pointInLayer(latlng, lyr) {
  const rings = [];
  const collect = (ll) => { if (ll.length && ll[0] instanceof L.LatLng) { rings.push(ll); } else { ll.forEach(collect); } };
  collect(lyr.getLatLngs());
  let inside = false;
  for (const ring of rings) {
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const a = ring[i];
      const b = ring[j];
      if ((a.lat > latlng.lat) !== (b.lat > latlng.lat) &&
          latlng.lng < (b.lng - a.lng) * (latlng.lat - a.lat) / (b.lat - a.lat) + a.lng) {
        inside = !inside;
      }
    }
  }
  return inside;
}

function insideMyGrids(latlng) {
  return gridLayer.getLayers().some((lyr) => lyr.getBounds().contains(latlng) && pointInLayer(latlng, lyr));
}

function choose(latlng, place) {
  if (!insideMyGrids(latlng)) { say(where, t("outside"), "error"); return; }
  point = { lon: Number(latlng.lng.toFixed(7)), lat: Number(latlng.lat.toFixed(7)) };
  if (marker) { marker.setLatLng(latlng); } else { marker = L.marker(latlng).addTo(map); }
  say(where, `${t("chosen")}: ${place ? `${place} · ` : ""}${point.lon.toFixed(6)}, ${point.lat.toFixed(6)}`);
  document.body.dataset.pointChosen = "1";
}

map.on("click", (e) => choose(e.latlng, null));

byId("locate").addEventListener("click", async () => {
  const address = form.elements.address.value.trim();
  if (!address) { return; }
  let found;
  try {
    found = await get(`/api/geocode${query({ q: address })}`);
  } catch {
    say(where, t("not_found"), "error");
    return;
  }
  if (found.status === "ok" && found.best) {
    const latlng = L.latLng(found.best.lat, found.best.lon);
    map.setView(latlng, Math.max(map.getZoom(), 16));
    choose(latlng, `${found.best.matched} (${wordOr(`geo_${found.best.level}`, found.best.level)})`);
  } else if (found.status === "ambiguous") {
    const candidates = found.candidates.map((c) => `${c.address || c.name} [${c.area_code}]`).join("; ");
    say(where, `${t("ambiguous")} ${candidates}`, "error");
  } else {
    say(where, t("not_found"), "error");
  }
});

// datetime-local has no zone: send it with the browser's offset so the server knows the instant.
function localIso(value) {
  if (!value) { return ""; }
  const offset = -new Date(value).getTimezoneOffset();
  const pad = (n) => String(Math.floor(Math.abs(n))).padStart(2, "0");
  return `${value}${value.length === 16 ? ":00" : ""}${offset >= 0 ? "+" : "-"}${pad(offset / 60)}:${pad(offset % 60)}`;
}

function showResult(saved) {
  const p = saved.properties;
  const duplicates = saved.duplicates && saved.duplicates.length
    ? [el("h4", { text: t("duplicates") }),
       el("ul", null, saved.duplicates.map((d) => el("li", {
         text: `#${d.id} · ${label("category", d.category)} · ${d.distance_m} m · ${d.hours_apart} h · ${t("score")} ${d.score}`,
       })))]
    : [];
  fill(result,
    el("h3", { text: `${t("saved")} #${saved.id}` }),
    el("p", { text: `${t("grid")}: ${p.grid_code || p.area_code || "—"} · ${t("level")}: ${wordOr(`geo_${p.geocode_level}`, p.geocode_level)}` }),
    (saved.warnings || []).map((w) => el("p", { className: "hint", text: `${t("warning")}: ${w}` })),
    duplicates);
  result.className = "";
  result.dataset.savedId = String(saved.id);
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = form.elements;
  const report = {
    category: f.category.value, subtype: f.subtype.value, severity: Number(f.severity.value),
    occurred_at: localIso(f.occurred_at.value), address: f.address.value, description: f.description.value,
    reporter: { name: f.reporter_name.value, phone: f.reporter_phone.value }, sensitive: f.sensitive.checked,
  };
  if (point) { Object.assign(report, { lon: point.lon, lat: point.lat, crs: "wgs84" }); }
  try {
    showResult(await post("/api/incidents", report));
    form.reset();
    point = null;
  } catch (error) {
    const field = error instanceof ApiError && error.field ? `[${error.field}] ` : "";
    say(result, `${t("failed")}: ${field}${error.message || ""}`, "error");
  }
});

expose("map", map);

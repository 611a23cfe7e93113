/* The incidents layer: clustered markers (leaflet.markercluster) of /api/incidents for the map's
 * view, the filter form of the page (#incident-filters: category, status, severity, from, to) and
 * popups. Descriptions, addresses and names are the public's and the workers' own words: they go in
 * as text nodes only. */
import { isAbort, newest, query } from "../lib/api.js";
import { el, setText } from "../lib/dom.js";
import { t, wordOr } from "../lib/i18n.js";
import { expose } from "../lib/testhook.js";
import { label } from "../lib/vocabulary.js";

const LIMIT = 3000;
const FILTERS = ["category", "status", "severity", "from", "to"];

function popup(feature) {
  const p = feature.properties;
  const rows = [];
  const row = (name, value) => {
    if (value === null || value === undefined || value === "") { return; }
    rows.push(el("tr", null, el("th", { text: name }), el("td", { text: value })));
  };
  row(t("status"), label("status", p.status));
  row(t("severity"), p.severity);
  row(t("occurred_at"), new Date(p.occurred_at).toLocaleString());
  row(t("grid"), p.area_name ? `${p.area_name} (${p.grid_code || p.area_code})` : p.grid_code);
  row(t("address"), p.address);
  row(t("located_by"), p.geocode_level ? wordOr(`geo_${p.geocode_level}`, p.geocode_level) : null);
  row(t("source"), p.source);
  row(t("reporter"), p.reporter_name ? p.reporter_name + (p.reporter_phone ? ` · ${p.reporter_phone}` : "") : null);
  row(t("resolution_level"), p.resolution_level ? label("resolution", p.resolution_level) : null);
  return el("div", { className: "incident-popup" },
    el("h3", null,
      el("span", { className: ["cat", `cat-${p.category}`], text: label("category", p.category) }),
      ` #${p.id}${p.subtype ? ` · ${p.subtype}` : ""}`),
    el("table", null, rows),
    p.description ? el("p", { className: "description", text: p.description }) : null,
    p.generalised ? el("p", { className: "hint", text: t("generalised") }) : null,
    p.outside_jurisdiction ? el("p", { className: "hint", text: t("outside") }) : null);
}

function marker(feature) {
  const [lon, lat] = feature.geometry.coordinates;
  const p = feature.properties;
  const size = 8 + 2 * Number(p.severity);   // Leaflet sizes the icon through the CSSOM
  const m = L.marker([lat, lon], {
    icon: L.divIcon({ className: `incident-dot cat-${p.category}${p.generalised ? " generalised" : ""}`,
                      iconSize: [size, size] }),
    keyboard: false,
  });
  m.bindPopup(() => popup(feature), { maxWidth: 320 });
  m.feature = feature;
  return m;
}

/** Attach the clustered incidents layer and the page's filter form to `map`; {layer, reload}. */
export function attachIncidents(map) {
  const form = document.getElementById("incident-filters");
  const count = document.getElementById("incident-count");
  const toggle = form.elements.show;
  // Clusters up to street level; from zoom 18 every incident is its own marker.
  const layer = L.markerClusterGroup({ chunkedLoading: true, maxClusterRadius: 50,
                                       showCoverageOnHover: false, disableClusteringAtZoom: 18 });
  const fetchNewest = newest();
  let timer = null;
  let loads = 0;
  let loaded = null;   // what the layer holds: {bounds, filters, complete}
  let openId = null;   // the incident whose popup is open, kept open across reloads

  toggle.checked = form.dataset.on !== "0";
  if (toggle.checked) { layer.addTo(map); }
  layer.on("popupopen", (e) => { openId = e.layer.feature ? e.layer.feature.id : null; });
  layer.on("popupclose", (e) => { if (e.layer.feature && e.layer.feature.id === openId) { openId = null; } });

  const filterKey = () => FILTERS.map((name) => form.elements[name].value).join("|");

  function url(bounds) {
    const clamp = (v, i) => Math.max(i % 2 ? -90 : -180, Math.min(i % 2 ? 90 : 180, v)).toFixed(6);
    const params = { bbox: [bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()]
      .map(clamp).join(","), limit: LIMIT };
    for (const name of FILTERS) { params[name] = form.elements[name].value; }
    return `/api/incidents${query(params)}`;
  }

  async function load(force) {
    if (!toggle.checked) { return; }
    // A view inside what is already loaded, complete and with the same filters, needs nothing new
    // (and keeps open popups and spiderfied clusters alive).
    if (!force && loaded && loaded.complete && loaded.filters === filterKey() &&
        loaded.bounds.contains(map.getBounds())) { return; }
    const bounds = map.getBounds().pad(0.25);
    const filters = filterKey();
    let fc;
    try {
      fc = await fetchNewest(url(bounds), { headers: { Accept: "application/geo+json" } });
    } catch (error) {
      if (!isAbort(error)) { setText(count, t("incidents_load_failed")); }
      return;
    }
    const keep = openId;
    layer.clearLayers();
    const markers = fc.features.filter((f) => f.geometry).map(marker);
    layer.addLayers(markers);
    const again = keep === null ? null : markers.find((m) => m.feature.id === keep);
    if (again && map.getZoom() >= 18) { again.openPopup(); }
    setText(count, fc.numberReturned < fc.numberMatched
      ? `${t("showing")} ${fc.numberReturned} / ${fc.numberMatched}`
      : `${fc.numberMatched} ${t("n_incidents")}`);
    loaded = { bounds, filters, complete: fc.numberReturned >= fc.numberMatched };
    document.body.dataset.incidentsLoaded = String(fc.numberReturned);
    document.body.dataset.incidentsLoads = String(++loads);
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(() => load(false), 250);
  }

  map.on("moveend", later);
  form.addEventListener("change", (e) => {
    if (e.target !== toggle) { later(); return; }
    if (toggle.checked) { layer.addTo(map); load(true); } else { map.removeLayer(layer); setText(count, ""); }
  });
  form.addEventListener("submit", (e) => { e.preventDefault(); load(true); });
  load(true);
  const handle = { layer, reload: () => load(true) };
  expose("incidents", handle);
  return handle;
}

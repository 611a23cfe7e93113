/* The one map factory: every page's Leaflet map gets the same basemaps (the app's own vector
 * basemap, OpenStreetMap, Tianditu when a key is configured, or none), remembers the reader's basemap choice
 * across pages, shows a metric scale, and opens on the reader's own area. */
import { get } from "./api.js";
import { t } from "./i18n.js";
import { expose } from "./testhook.js";
import { localBasemap } from "../layers/basemap.js";

const STORE = "anwang.basemap";

let config = null;

/** The page's map settings (the server's map_config(): basemap, tile URL, Tianditu key, extent). */
export function mapConfig() {
  if (config === null) {
    const block = document.getElementById("map-config");
    config = block ? JSON.parse(block.textContent) : {};
  }
  return config;
}

function basemapLayers(cfg) {
  const layers = { none: L.layerGroup() };
  const tiles = cfg.tiles || {};
  const local = tiles.basemap && localBasemap(tiles.basemap.url, tiles.basemap);
  if (local) { layers.local = local; }
  if (cfg.osmUrl) {
    layers.osm = L.tileLayer(cfg.osmUrl, { maxZoom: 19, attribution: "© OpenStreetMap contributors" });
  }
  if (cfg.tiandituKey) {
    const tile = (layer) => L.tileLayer(cfg.tiandituUrl, { layer, tk: encodeURIComponent(cfg.tiandituKey),
                                                    subdomains: "01234567", maxZoom: 18 });
    const vector = tile("vec");
    vector.options.attribution = "© 天地图";
    layers.tianditu = L.layerGroup([vector, tile("cva")]);   // roads, then their labels
  }
  return layers;
}

function stored() {
  try { return window.localStorage.getItem(STORE); } catch { return null; }   // storage may be refused
}

/** Keep the reader's basemap choice for every page. */
export function rememberBasemap(key) {
  try { window.localStorage.setItem(STORE, key); } catch { /* a sandboxed frame keeps no choice */ }
}

/** The basemap the reader asked for: ?basemap= in the address, else their last choice on any
 * page; null when they never chose. */
export function preferredBasemap() {
  return new URLSearchParams(window.location.search).get("basemap") || stored();
}

// ?basemap= in the address, else the reader's last choice on any page, else the configured one.
function chosenBasemap(cfg, layers) {
  const wanted = [new URLSearchParams(window.location.search).get("basemap"), stored(), cfg.basemap];
  return wanted.find((key) => key && Object.prototype.hasOwnProperty.call(layers, key)) || "none";
}

/** Bounds [[south, west], [north, east]] of an extent [minx, miny, maxx, maxy]. */
function extentBounds(extent) {
  return L.latLngBounds([extent[1], extent[0]], [extent[3], extent[2]]);
}

function openOnHome(map, cfg, askServer) {
  const fit = (extent) => map.fitBounds(extentBounds(extent), { padding: [10, 10], animate: false });
  if (Array.isArray(cfg.extent) && cfg.extent.length === 4) { fit(cfg.extent); return; }
  map.fitWorld({ animate: false });   // nothing loaded yet, or no extent in the page
  if (askServer) {
    get("/api/me").then((me) => { if (Array.isArray(me.extent)) { fit(me.extent); } })
      .catch(() => { /* the world view stays */ });
  }
}

/** Create the page's map in element `id`: {map, control, basemap}; options go to L.map, except
 * `overlays` (for the layer switch) and `askServer` (read /api/me when the page has no extent). */
export function createMap(id, options = {}) {
  const { overlays = {}, askServer = true, ...leafletOptions } = options;
  const cfg = mapConfig();
  const map = L.map(id, { zoomControl: true, ...leafletOptions });
  const layers = basemapLayers(cfg);
  const named = {};
  for (const [key, layer] of Object.entries(layers)) { named[t(`basemap_${key}`)] = layer; }
  const basemap = chosenBasemap(cfg, layers);
  layers[basemap].addTo(map);
  expose("basemap", { key: basemap, layer: layers[basemap] });
  map.on("baselayerchange", (e) => {
    const key = Object.keys(layers).find((k) => layers[k] === e.layer);
    if (key) { rememberBasemap(key); }
  });
  const control = L.control.layers(named, overlays, { collapsed: true }).addTo(map);
  L.control.scale({ imperial: false }).addTo(map);
  openOnHome(map, cfg, askServer);
  return { map, control, basemap };
}

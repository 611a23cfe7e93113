/* The public safety map: counts per grid or 1 km hexagon from /api/public/stats, sums of frozen
 * monthly releases that the server rounded to multiples of 5 (so 0 can mean up to 4); a sequential
 * legend that says so. No login, no points. */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("map-config").textContent);
  const t = JSON.parse(document.getElementById("i18n").textContent);
  const levelSelect = document.getElementById("public-level");
  const monthsSelect = document.getElementById("public-months");
  const meta = document.getElementById("public-meta");
  const COLOURS = ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"];

  const map = L.map("public-map", { minZoom: 7, maxZoom: 17 }).setView([33.62, 113.95], 11);
  if (config.basemap === "osm") {
    L.tileLayer(config.osmUrl, { maxZoom: 19, attribution: "© OpenStreetMap contributors" }).addTo(map);
  }
  L.control.scale({ imperial: false }).addTo(map);
  let layer = null;
  let legend = null;
  let fitted = false;

  function breaks(values) {
    const v = values.slice().sort(function (a, b) { return a - b; });
    if (!v.length) { return [0, 0, 0, 0]; }
    return [0.2, 0.4, 0.6, 0.8].map(function (q) { return v[Math.min(v.length - 1, Math.floor(q * v.length))]; });
  }

  function colour(n, b) {
    let i = 0;
    while (i < b.length && n > b[i]) { i += 1; }
    return COLOURS[i];
  }

  function draw(fc) {
    const counts = fc.features.map(function (f) { return f.properties.count; })
      .filter(function (n) { return n !== null && n > 0; });
    const b = breaks(counts);
    if (layer) { map.removeLayer(layer); }
    layer = L.geoJSON(fc, {
      style: function (f) {
        const n = f.properties.count;
        return { color: "#718096", weight: 0.5, fillColor: n ? colour(n, b) : "#f7fafc", fillOpacity: 0.7 };
      },
      onEachFeature: function (f, lyr) {
        const p = f.properties;
        const label = (p.name ? p.name + " · " : "") + p.count + " " + t.incidents;
        const tip = document.createElement("span");
        tip.textContent = label;   // names are text, never markup
        lyr.bindTooltip(tip);
      },
    }).addTo(map);
    if (!fitted && layer.getLayers().length) { map.fitBounds(layer.getBounds(), { padding: [10, 10] }); fitted = true; }
    const base = fc.meta.base;
    if (legend) { map.removeControl(legend); }
    legend = L.control({ position: "bottomright" });
    legend.onAdd = function () {
      const div = L.DomUtil.create("div", "map-legend");
      L.DomUtil.create("div", "title", div).textContent = t.legend;
      function row(colour, text) {
        const line = L.DomUtil.create("div", "", div);
        L.DomUtil.create("i", "", line).style.background = colour;   // CSSOM, allowed by the CSP
        line.appendChild(document.createTextNode(text));
      }
      const edges = [0].concat(b);
      COLOURS.forEach(function (c, i) {
        const lo = edges[i] + base;   // every published count is a multiple of the base
        const hi = i < b.length ? b[i] : null;
        row(c, hi === null ? "> " + edges[i] : lo + "–" + hi);
      });
      row("#f7fafc", "0");
      L.DomUtil.create("div", "note", div).textContent = t.rounded;
      return div;
    };
    legend.addTo(map);
    const m = fc.meta;
    meta.textContent = t.period + ": " + m.from + " – " + m.to + " · " + m.cells + " " + t.cells +
      " · " + m.published_total + " " + t.incidents + " · " + t.rounded + " " + t.frozen;
    document.body.dataset.publicLoaded = m.level + ":" + m.months;
  }

  function load() {
    const url = "/api/public/stats?level=" + encodeURIComponent(levelSelect.value) +
      "&months=" + encodeURIComponent(monthsSelect.value);
    fetch(url, { headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(url + " → " + r.status); } return r.json(); })
      .then(draw)
      .catch(function (err) { meta.textContent = t.load_failed; console.warn(err); });
  }

  levelSelect.addEventListener("change", load);
  monthsSelect.addEventListener("change", load);
  load();
  window.anwangPublicMap = map;
})();

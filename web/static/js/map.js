/* The dashboard map: township / village / grid boundaries by zoom or by choice, labels, a click
 * panel, and a basemap switch (OpenStreetMap, Tianditu, or none for offline intranets). */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("map-config").textContent);
  const t = JSON.parse(document.getElementById("i18n").textContent);
  const loading = document.getElementById("loading");
  const info = document.getElementById("area-info");
  const levelSelect = document.getElementById("level-select");

  const STYLE = {
    1: { color: "#1f2d3d", weight: 3, fill: false },
    2: { color: "#2c5282", weight: 2.5, fillOpacity: 0.04 },
    3: { color: "#2f855a", weight: 1.5, fillOpacity: 0.05 },
    4: { color: "#b7791f", weight: 1, fillOpacity: 0.06 },
  };
  // 商桥镇's first-level zones (东/南/西/中) are a grouping, shown as tints of their villages.
  const GROUP_TINTS = ["#90cdf4", "#fbd38d", "#c6f6d5", "#fed7e2", "#e9d8fd", "#feebc8"];
  const groupTint = {};
  const LABEL_MIN_ZOOM = { 2: 10, 3: 12, 4: 14 };

  const map = L.map("map", { zoomControl: true, zoomSnap: 0.25, minZoom: 7, maxZoom: 19 });
  map.setView([33.62, 113.95], 11);

  const basemaps = {};
  basemaps[t.basemap_none] = L.layerGroup();
  basemaps[t.basemap_osm] = L.tileLayer(config.osmUrl, {
    maxZoom: 19, attribution: "© OpenStreetMap contributors",
  });
  if (config.tiandituKey) {
    const tk = encodeURIComponent(config.tiandituKey);
    basemaps[t.basemap_tianditu] = L.layerGroup([
      L.tileLayer("https://t{s}.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0" +
        "&LAYER=vec&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=" + tk,
        { subdomains: "01234567", maxZoom: 18, attribution: "© 天地图" }),
      L.tileLayer("https://t{s}.tianditu.gov.cn/cva_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0" +
        "&LAYER=cva&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=" + tk,
        { subdomains: "01234567", maxZoom: 18 }),
    ]);
  }
  // The basemap: ?basemap= in the address, else the user's last choice, else the configured one.
  const BASEMAP_NAMES = { osm: t.basemap_osm, tianditu: t.basemap_tianditu, none: t.basemap_none };
  const chosen = new URLSearchParams(window.location.search).get("basemap") ||
    window.localStorage.getItem("anwang.basemap") || config.basemap;
  (basemaps[BASEMAP_NAMES[chosen]] || basemaps[BASEMAP_NAMES[config.basemap]] ||
    basemaps[t.basemap_none]).addTo(map);
  map.on("baselayerchange", function (e) {
    const key = Object.keys(BASEMAP_NAMES).find(function (k) { return BASEMAP_NAMES[k] === e.name; });
    if (key) { window.localStorage.setItem("anwang.basemap", key); }
  });

  const layers = {};        // level -> L.GeoJSON once loaded
  const pending = {};       // level -> Promise while loading
  let shownLevel = null;
  let selected = null;
  let townshipContext = null;

  const overlays = {};
  const boundaryGroup = L.layerGroup().addTo(map);
  overlays[t.boundaries] = boundaryGroup;
  L.control.layers(basemaps, overlays, { collapsed: true }).addTo(map);
  L.control.scale({ imperial: false }).addTo(map);

  function setLoading(on) { loading.hidden = !on; }

  function styleFor(feature) {
    const p = feature.properties;
    const base = Object.assign({}, STYLE[p.level] || STYLE[4]);
    if (p.group && p.level === 3) {
      if (!(p.group in groupTint)) {
        groupTint[p.group] = GROUP_TINTS[Object.keys(groupTint).length % GROUP_TINTS.length];
      }
      base.fillColor = groupTint[p.group];
      base.fillOpacity = 0.35;
    }
    return base;
  }

  function fetchJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) { throw new Error(url + " → " + r.status); }
        return r.json();
      });
  }

  function loadLevel(level) {
    if (layers[level]) { return Promise.resolve(layers[level]); }
    if (pending[level]) { return pending[level]; }
    setLoading(true);
    pending[level] = fetchJSON("/api/areas?level=" + level).then(function (fc) {
      const layer = L.geoJSON(fc, {
        style: styleFor,
        onEachFeature: function (feature, lyr) {
          lyr.on("click", function (e) { L.DomEvent.stopPropagation(e); select(feature, lyr); });
          lyr.bindTooltip(feature.properties.name, {
            permanent: true, direction: "center", className: "area-label level-" + level,
          });
        },
      });
      layers[level] = layer;
      return layer;
    }).catch(function (err) {
      info.innerHTML = '<p class="error">' + t.load_failed + "</p>";
      console.warn(err);
      throw err;
    }).finally(function () {
      delete pending[level];
      if (!Object.keys(pending).length) { setLoading(false); }
    });
    return pending[level];
  }

  function wantedLevel() {
    if (levelSelect.value !== "auto") { return Number(levelSelect.value); }
    const z = map.getZoom();
    return z < 12 ? 2 : z < 14 ? 3 : 4;
  }

  function updateLabels() {
    if (!shownLevel || !layers[shownLevel]) { return; }
    const show = map.getZoom() >= LABEL_MIN_ZOOM[shownLevel];
    const bounds = map.getBounds();
    layers[shownLevel].eachLayer(function (lyr) {
      const tip = lyr.getTooltip();
      if (!tip) { return; }
      const visible = show && bounds.intersects(lyr.getBounds());
      if (visible && !lyr.isTooltipOpen()) { lyr.openTooltip(); }
      if (!visible && lyr.isTooltipOpen()) { lyr.closeTooltip(); }
    });
  }

  function showLevel() {
    const level = wantedLevel();
    if (level === shownLevel) { updateLabels(); return; }
    loadLevel(level).then(function (layer) {
      if (wantedLevel() !== level) { return; }
      Object.keys(layers).forEach(function (k) {
        if (Number(k) !== 1) { boundaryGroup.removeLayer(layers[k]); }
      });
      boundaryGroup.addLayer(layer);
      // Below the township level, township borders stay visible as context (not clickable).
      if (level > 2) {
        loadLevel(2).then(function (townships) {
          if (!townshipContext) {
            townshipContext = L.geoJSON(townships.toGeoJSON(), {
              style: { color: STYLE[2].color, weight: 2.5, fill: false }, interactive: false,
            });
          }
          if (shownLevel > 2) { boundaryGroup.addLayer(townshipContext); }
        }).catch(function () {});
      } else if (townshipContext) {
        boundaryGroup.removeLayer(townshipContext);
      }
      shownLevel = level;
      updateLabels();
      document.body.dataset.shownLevel = String(level);
    }).catch(function () {});
  }

  function row(label, value) {
    const v = value === null || value === undefined || value === "" ? "—" : value;
    return "<tr><th>" + escapeHtml(label) + "</th><td>" + escapeHtml(String(v)) + "</td></tr>";
  }

  function escapeHtml(s) {
    return s.replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function levelName(level) { return { 1: t.district, 2: t.township, 3: t.village, 4: t.grid }[level] || level; }

  function fmt(n) { return typeof n === "number" ? n.toLocaleString() : n; }

  function select(feature, lyr) {
    if (selected) { selected.setStyle({ weight: (STYLE[selected.feature.properties.level] || STYLE[4]).weight }); }
    selected = lyr;
    lyr.setStyle({ weight: 4 });
    const code = feature.properties.code;
    info.innerHTML = "<p class=\"hint\">…</p>";
    fetchJSON("/api/areas/" + encodeURIComponent(code)).then(function (f) {
      const p = f.properties;
      let html = "<h2>" + escapeHtml(p.name) + " <small>" + escapeHtml(levelName(p.level)) + "</small></h2>";
      html += '<p class="path">' + p.path.map(function (a) { return escapeHtml(a.name); }).join(" › ") + "</p>";
      html += "<table>";
      html += row(t.code, p.code);
      if (p.kind) { html += row(t.kind, p.kind); }
      if (p.group) { html += row(t.group, p.group); }
      html += row(t.households, fmt(p.households));
      html += row(t.population, fmt(p.population));
      if (p.children) { html += row(t.children, p.children); }
      html += "</table>";
      if (p.staff && p.staff.length) {
        html += "<h3>" + escapeHtml(t.staff) + "</h3><table class=\"staff\">";
        p.staff.forEach(function (s) { html += row(t[s.role] || s.role, s.name + (s.phone ? " · " + s.phone : "")); });
        html += "</table>";
      }
      info.innerHTML = html;
      info.dataset.code = p.code;
    }).catch(function () { info.innerHTML = '<p class="error">' + t.load_failed + "</p>"; });
  }

  // The district outline stays on top at every zoom and frames the first view.
  loadLevel(1).then(function (outline) {
    outline.eachLayer(function (lyr) { lyr.unbindTooltip(); lyr.off("click"); });
    outline.addTo(map);
    outline.bringToFront();
    if (outline.getLayers().length) { map.fitBounds(outline.getBounds(), { padding: [10, 10] }); }
    showLevel();
  }).catch(function () {});

  map.on("zoomend", showLevel);
  map.on("moveend", updateLabels);
  levelSelect.addEventListener("change", showLevel);
  window.anwangMap = map;
})();

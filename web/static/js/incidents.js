/* The incidents layer: clustered markers (leaflet.markercluster) from /api/incidents for the map's
 * current view, filters (category, status, severity, time range) and popups. A page includes the
 * filter form (#incident-filters) and calls AnwangIncidents.attach(map, {on: bool}).
 * All text from the server is inserted with textContent, never as HTML: descriptions are user input. */
(function () {
  "use strict";

  const LIMIT = 3000;

  function attach(map, options) {
    const opts = options || {};
    const form = document.getElementById("incident-filters");
    const t = JSON.parse(document.getElementById("incident-i18n").textContent);
    const status = document.getElementById("incident-count");
    // Clusters up to street level; from zoom 18 every incident is its own marker.
    const layer = L.markerClusterGroup({ chunkedLoading: true, maxClusterRadius: 50,
                                         showCoverageOnHover: false, disableClusteringAtZoom: 18 });
    const toggle = form.elements.show;
    toggle.checked = opts.on !== false;
    if (toggle.checked) { layer.addTo(map); }
    let timer = null;
    let generation = 0;
    let loads = 0;
    let openId = null; // the incident whose popup is open, kept open across reloads
    layer.on("popupopen", function (e) { openId = e.layer.feature ? e.layer.feature.id : null; });
    layer.on("popupclose", function (e) { if (e.layer.feature && e.layer.feature.id === openId) { openId = null; } });

    function el(tag, text, cls) {
      const node = document.createElement(tag);
      if (text !== undefined && text !== null) { node.textContent = String(text); }
      if (cls) { node.className = cls; }
      return node;
    }

    function popup(feature) {
      const p = feature.properties;
      const box = el("div", null, "incident-popup");
      const title = el("h3");
      title.appendChild(el("span", t[p.category] || p.category, "cat cat-" + p.category));
      title.appendChild(document.createTextNode(" #" + p.id + (p.subtype ? " · " + p.subtype : "")));
      box.appendChild(title);
      const table = el("table");
      function row(label, value) {
        if (value === null || value === undefined || value === "") { return; }
        const tr = el("tr");
        tr.appendChild(el("th", label));
        tr.appendChild(el("td", value));
        table.appendChild(tr);
      }
      row(t.status, t["status_" + p.status] || p.status);
      row(t.severity, p.severity);
      row(t.occurred_at, new Date(p.occurred_at).toLocaleString());
      row(t.grid, p.area_name ? p.area_name + " (" + (p.grid_code || p.area_code) + ")" : p.grid_code);
      row(t.address, p.address);
      row(t.located_by, t["geo_" + p.geocode_level] || p.geocode_level);
      row(t.source, p.source);
      row(t.reporter, p.reporter_name ? p.reporter_name + (p.reporter_phone ? " · " + p.reporter_phone : "") : null);
      row(t.resolution_level, p.resolution_level ? (t["level_" + p.resolution_level] || p.resolution_level) : null);
      box.appendChild(table);
      if (p.description) { box.appendChild(el("p", p.description, "description")); }
      if (p.generalised) { box.appendChild(el("p", t.generalised, "hint")); }
      if (p.outside_jurisdiction) { box.appendChild(el("p", t.outside, "hint")); }
      return box;
    }

    function marker(feature) {
      const c = feature.geometry.coordinates;
      const p = feature.properties;
      const size = 8 + 2 * Number(p.severity);
      const m = L.marker([c[1], c[0]], {
        icon: L.divIcon({ className: "incident-dot cat-" + p.category + (p.generalised ? " generalised" : ""),
                          iconSize: [size, size] }),
        keyboard: false,
      });
      m.bindPopup(function () { return popup(feature); }, { maxWidth: 320 });
      m.feature = feature;
      return m;
    }

    let loaded = null; // what the layer holds: {bounds, filters, complete}

    function filterKey() {
      return ["category", "status", "severity", "from", "to"].map(function (n) {
        return form.elements[n].value;
      }).join("|");
    }

    function query(b) {
      const params = new URLSearchParams();
      params.set("bbox", [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]
        .map(function (v, i) { return Math.max(i % 2 ? -90 : -180, Math.min(i % 2 ? 90 : 180, v)).toFixed(6); }).join(","));
      params.set("limit", String(LIMIT));
      ["category", "status", "severity"].forEach(function (name) {
        if (form.elements[name].value) { params.set(name, form.elements[name].value); }
      });
      if (form.elements.from.value) { params.set("from", form.elements.from.value); }
      if (form.elements.to.value) { params.set("to", form.elements.to.value); }
      return "/api/incidents?" + params.toString();
    }

    function load(force) {
      if (!toggle.checked) { return; }
      // A view inside what is already loaded, complete and with the same filters, needs nothing new
      // (and keeps open popups and spiderfied clusters alive).
      if (!force && loaded && loaded.complete && loaded.filters === filterKey() &&
          loaded.bounds.contains(map.getBounds())) { return; }
      const bounds = map.getBounds().pad(0.25);
      const filters = filterKey();
      const mine = ++generation;
      fetch(query(bounds), { credentials: "same-origin", headers: { Accept: "application/geo+json" } })
        .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
        .then(function (fc) {
          if (mine !== generation) { return; }
          const keep = openId;
          layer.clearLayers();
          const markers = fc.features.filter(function (f) { return f.geometry; }).map(marker);
          layer.addLayers(markers);
          const again = keep === null ? null : markers.find(function (m) { return m.feature.id === keep; });
          if (again && map.getZoom() >= 18) { again.openPopup(); }
          status.textContent = fc.numberReturned < fc.numberMatched
            ? t.showing + " " + fc.numberReturned + " / " + fc.numberMatched
            : fc.numberMatched + " " + t.incidents;
          loaded = { bounds: bounds, filters: filters, complete: fc.numberReturned >= fc.numberMatched };
          document.body.dataset.incidentsLoaded = String(fc.numberReturned);
          document.body.dataset.incidentsLoads = String(++loads);
        })
        .catch(function () { status.textContent = t.load_failed; });
    }

    function later() { clearTimeout(timer); timer = setTimeout(function () { load(false); }, 250); }

    map.on("moveend", later);
    form.addEventListener("change", function (e) {
      if (e.target === toggle) {
        if (toggle.checked) { layer.addTo(map); load(true); } else { map.removeLayer(layer); status.textContent = ""; }
        return;
      }
      later();
    });
    form.addEventListener("submit", function (e) { e.preventDefault(); load(true); });
    load(true);
    return { layer: layer, reload: function () { load(true); } };
  }

  window.AnwangIncidents = { attach: attach };
})();

/* Attach to the page's map once it exists (the dashboard's or the dispatch page's). */
(function () {
  "use strict";
  const form = document.getElementById("incident-filters");
  if (!form) { return; }
  function mapOfPage() { return window.anwangMap || (window.anwangDispatch && window.anwangDispatch.map); }
  function start() {
    const map = mapOfPage();
    if (!map) { window.setTimeout(start, 50); return; }
    window.anwangIncidents = window.AnwangIncidents.attach(map, { on: form.dataset.on !== "0" });
  }
  start();
})();

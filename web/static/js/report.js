/* The grid worker's report form: the map shows the worker's own grids; a click (or a located
 * address) sets the point; the report goes to POST /api/incidents with the CSRF token. Every piece
 * of text from the server or the user is inserted as text, never as HTML. */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("map-config").textContent);
  const grids = JSON.parse(document.getElementById("grids").textContent);
  const t = JSON.parse(document.getElementById("i18n").textContent);
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const form = document.getElementById("report-form");
  const where = document.getElementById("where");
  const result = document.getElementById("result");

  const map = L.map("map", { minZoom: 5, maxZoom: 19 });
  const basemaps = {};
  basemaps[t.basemap_none] = L.layerGroup();
  basemaps[t.basemap_osm] = L.tileLayer(config.osmUrl, { maxZoom: 19, attribution: "© OpenStreetMap" });
  (config.basemap === "osm" ? basemaps[t.basemap_osm] : basemaps[t.basemap_none]).addTo(map);
  L.control.layers(basemaps, {}, { collapsed: true }).addTo(map);

  const gridLayer = L.geoJSON(grids, {
    style: { color: "#b7791f", weight: 2, fillOpacity: 0.08 },
    onEachFeature: function (f, lyr) { lyr.bindTooltip(f.properties.name); },
  }).addTo(map);
  if (gridLayer.getLayers().length) {
    map.fitBounds(gridLayer.getBounds(), { padding: [20, 20] });
  } else {
    map.setView([33.62, 113.95], 11);
  }

  let marker = null;
  let point = null; // {lon, lat} in WGS84, or null when the address alone is sent

  function setText(el, text, cls) {
    el.textContent = text;
    el.className = cls || "hint";
  }

  function insideMyGrids(latlng) {
    let inside = false;
    gridLayer.eachLayer(function (lyr) {
      if (!inside && lyr.getBounds().contains(latlng) && pointInLayer(latlng, lyr)) { inside = true; }
    });
    return inside;
  }

  // Ray casting over every ring of the grid's (multi)polygon; the server checks again.
  function pointInLayer(latlng, lyr) {
    const rings = [];
    (function collect(ll) {
      if (ll.length && ll[0] instanceof L.LatLng) { rings.push(ll); } else { ll.forEach(collect); }
    })(lyr.getLatLngs());
    let inside = false;
    rings.forEach(function (ring) {
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        const a = ring[i], b = ring[j];
        if ((a.lat > latlng.lat) !== (b.lat > latlng.lat) &&
            latlng.lng < (b.lng - a.lng) * (latlng.lat - a.lat) / (b.lat - a.lat) + a.lng) {
          inside = !inside;
        }
      }
    });
    return inside;
  }

  function choose(latlng, label) {
    if (!insideMyGrids(latlng)) { setText(where, t.outside, "error"); return; }
    point = { lon: Number(latlng.lng.toFixed(7)), lat: Number(latlng.lat.toFixed(7)) };
    if (marker) { marker.setLatLng(latlng); } else { marker = L.marker(latlng).addTo(map); }
    setText(where, t.chosen + ": " + (label ? label + " · " : "") +
      point.lon.toFixed(6) + ", " + point.lat.toFixed(6));
    document.body.dataset.pointChosen = "1";
  }

  map.on("click", function (e) { choose(e.latlng, null); });

  document.getElementById("locate").addEventListener("click", function () {
    const q = form.elements.address.value.trim();
    if (!q) { return; }
    fetch("/api/geocode?q=" + encodeURIComponent(q), { credentials: "same-origin",
      headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        if (body.status === "ok" && body.best) {
          const ll = L.latLng(body.best.lat, body.best.lon);
          map.setView(ll, Math.max(map.getZoom(), 16));
          choose(ll, body.best.matched + " (" + (t["geo_" + body.best.level] || body.best.level) + ")");
        } else if (body.status === "ambiguous") {
          setText(where, t.ambiguous + " " + body.candidates.map(function (c) {
            return (c.address || c.name) + " [" + c.area_code + "]";
          }).join("; "), "error");
        } else {
          setText(where, t.not_found, "error");
        }
      })
      .catch(function () { setText(where, t.not_found, "error"); });
  });

  function localIso(value) {
    // datetime-local has no zone: send it with the browser's offset so the server knows the instant.
    if (!value) { return ""; }
    const d = new Date(value);
    const off = -d.getTimezoneOffset();
    const sign = off >= 0 ? "+" : "-";
    const pad = function (n) { return String(Math.floor(Math.abs(n))).padStart(2, "0"); };
    return value + (value.length === 16 ? ":00" : "") + sign + pad(off / 60) + ":" + pad(off % 60);
  }

  function showResult(body) {
    result.textContent = "";
    const h = document.createElement("h3");
    h.textContent = t.saved + " #" + body.id;
    result.appendChild(h);
    const p = body.properties;
    const dl = document.createElement("p");
    dl.textContent = t.grid + ": " + (p.grid_code || p.area_code || "—") + " · " + t.level + ": " +
      (t["geo_" + p.geocode_level] || p.geocode_level);
    result.appendChild(dl);
    (body.warnings || []).forEach(function (w) {
      const note = document.createElement("p");
      note.className = "hint";
      note.textContent = t.warning + ": " + w;
      result.appendChild(note);
    });
    if (body.duplicates && body.duplicates.length) {
      const h4 = document.createElement("h4");
      h4.textContent = t.duplicates;
      result.appendChild(h4);
      const ul = document.createElement("ul");
      body.duplicates.forEach(function (d) {
        const li = document.createElement("li");
        li.textContent = "#" + d.id + " · " + (t[d.category] || d.category) + " · " + d.distance_m + " m · " +
          d.hours_apart + " h · " + t.score + " " + d.score;
        ul.appendChild(li);
      });
      result.appendChild(ul);
    }
    result.dataset.savedId = String(body.id);
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    const f = form.elements;
    const body = {
      category: f.category.value, subtype: f.subtype.value, severity: Number(f.severity.value),
      occurred_at: localIso(f.occurred_at.value), address: f.address.value,
      description: f.description.value, reporter: { name: f.reporter_name.value, phone: f.reporter_phone.value },
      sensitive: f.sensitive.checked,
    };
    if (point) { body.lon = point.lon; body.lat = point.lat; body.crs = "wgs84"; }
    fetch("/api/incidents", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body),
    }).then(function (r) {
      return r.json().then(function (j) { return { ok: r.ok, body: j }; });
    }).then(function (res) {
      if (res.ok) { showResult(res.body); form.reset(); point = null; return; }
      const err = res.body.error || {};
      setText(result, t.failed + ": " + (err.field ? "[" + err.field + "] " : "") + (err.message || ""), "error");
    }).catch(function () { setText(result, t.failed, "error"); });
  });

  window.anwangReportMap = map;
})();

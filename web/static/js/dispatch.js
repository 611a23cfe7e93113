/* The live dispatch map: units as heading arrows coloured by status (grey when silent for more than
 * two minutes), trails of the last N minutes, incidents as they arrive with the nearest on-duty
 * units and assignment, red/orange grids without a recent patrol, a searchable unit list, replay of
 * one unit's shift with a time slider, and "where was everyone at time T".
 *
 * Live updates come from /api/live (Server-Sent Events); EventSource reconnects by itself and sends
 * Last-Event-ID, and events are applied once per animation frame so a burst never freezes the page.
 */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("map-config").textContent);
  const t = JSON.parse(document.getElementById("i18n").textContent);
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content;
  const STALE_MS = (config.staleSeconds || 120) * 1000;
  const COLOURS = { on_duty: "#2f855a", busy: "#dd6b20", off_duty: "#4a5568", stale: "#a0aec0" };
  const $ = function (id) { return document.getElementById(id); };

  // -- map and layers -------------------------------------------------------------------------
  const renderer = L.canvas({ padding: 0.3 });
  const map = L.map("map", { zoomControl: true, preferCanvas: true, minZoom: 5, maxZoom: 19 });
  map.setView([33.62, 113.95], 11);
  const basemaps = {};
  basemaps[t.basemap_none] = L.layerGroup();
  basemaps[t.basemap_osm] = L.tileLayer(config.osmUrl, { maxZoom: 19, attribution: "© OpenStreetMap contributors" });
  if (config.tiandituKey) {
    const tk = encodeURIComponent(config.tiandituKey);
    basemaps[t.basemap_tianditu] = L.tileLayer("https://t{s}.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile" +
      "&VERSION=1.0.0&LAYER=vec&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=" + tk,
      { subdomains: "01234567", maxZoom: 18, attribution: "© 天地图" });
  }
  const BASEMAP_NAMES = { osm: t.basemap_osm, tianditu: t.basemap_tianditu, none: t.basemap_none };
  const chosen = new URLSearchParams(window.location.search).get("basemap") ||
    window.localStorage.getItem("anwang.basemap") || config.basemap;
  (basemaps[BASEMAP_NAMES[chosen]] || basemaps[t.basemap_none]).addTo(map);
  map.on("baselayerchange", function (e) {
    const key = Object.keys(BASEMAP_NAMES).find(function (k) { return BASEMAP_NAMES[k] === e.name; });
    if (key) { window.localStorage.setItem("anwang.basemap", key); }
  });

  const outlineLayer = L.layerGroup().addTo(map);
  const gridLayer = L.layerGroup();
  const gapLayer = L.layerGroup().addTo(map);
  const trailLayer = L.layerGroup().addTo(map);
  const incidentLayer = L.layerGroup().addTo(map);
  const unitLayer = L.layerGroup().addTo(map);
  const ghostLayer = L.layerGroup().addTo(map);
  const replayLayer = L.layerGroup().addTo(map);
  const coverageLayer = L.layerGroup();
  const overlays = {};
  overlays[t.units] = unitLayer; overlays[t.trails] = trailLayer; overlays[t.incidents] = incidentLayer;
  overlays[t.gaps] = gapLayer; overlays[t.grids] = gridLayer; overlays[t.coverage] = coverageLayer;
  L.control.layers(basemaps, overlays, { collapsed: true }).addTo(map);
  L.control.scale({ imperial: false }).addTo(map);

  // -- helpers --------------------------------------------------------------------------------
  let loadingCount = 0;
  function loading(on) {
    loadingCount = Math.max(0, loadingCount + (on ? 1 : -1));
    $("loading").hidden = loadingCount === 0;
  }
  function api(url, opts) {
    opts = opts || {};
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    if (opts.method && opts.method !== "GET" && csrf) { headers["X-CSRFToken"] = csrf; }
    if (opts.json !== undefined) { headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(opts.json); }
    loading(true);
    return fetch(url, { method: opts.method || "GET", headers: headers, body: opts.body, credentials: "same-origin" })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (!r.ok) { throw new Error((body.error && body.error.message) || (url + " → " + r.status)); }
          return body;
        });
      }).finally(function () { loading(false); });
  }
  function esc(s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function toast(text, cls, onclick) {
    const el = document.createElement("div");
    el.className = "toast " + (cls || "");
    el.textContent = text;
    if (onclick) { el.addEventListener("click", onclick); }
    $("toasts").appendChild(el);
    setTimeout(function () { el.remove(); }, 8000);
    while ($("toasts").children.length > 5) { $("toasts").firstChild.remove(); }
  }
  let skew = 0;   // local clock minus server clock, ms
  function now() { return Date.now() - skew; }
  function ageText(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) { return t.never; }
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) { return s + " s"; }
    if (s < 3600) { return Math.round(s / 60) + " " + t.minutes; }
    return Math.round(s / 3600) + " h";
  }

  // -- units ----------------------------------------------------------------------------------
  const units = {};            // id -> {p: properties, lat, lon, seen (ms), marker, trail, line}
  let selected = null;
  let trailMinutes = Number($("trail-minutes").value);

  function unitColour(u) {
    if (!u.seen || now() - u.seen > STALE_MS) { return COLOURS.stale; }
    return COLOURS[u.p.status] || COLOURS.on_duty;
  }
  function iconHtml(colour, heading, label) {
    const shape = (heading === null || heading === undefined)
      ? '<circle r="6" fill="' + colour + '" stroke="#fff" stroke-width="2"/>'
      : '<g transform="rotate(' + Math.round(heading) + ')"><path d="M0,-11 L7,8 L0,4 L-7,8 Z" fill="' +
        colour + '" stroke="#fff" stroke-width="1.5"/></g>';
    return '<svg width="24" height="24" viewBox="-12 -12 24 24">' + shape + "</svg>" +
      '<span class="label">' + esc(label) + "</span>";
  }
  function unitIcon(u, ghost) {
    return L.divIcon({ className: "unit-icon" + (ghost ? " ghost-icon" : ""), iconSize: [24, 24], iconAnchor: [12, 12],
      html: iconHtml(ghost ? "#805ad5" : unitColour(u), u.p.heading, u.p.callsign) });
  }
  function refreshIcon(u) {
    if (!u.marker) { return; }
    const key = unitColour(u) + "|" + (u.p.heading === null || u.p.heading === undefined ? "-" : Math.round(u.p.heading / 5));
    if (key !== u.iconKey) {
      u.iconKey = key;
      u.marker.setIcon(unitIcon(u));
      u.marker.getElement().dataset.callsign = u.p.callsign;
    }
  }
  function popupHtml(u) {
    const p = u.p;
    return "<b>" + esc(p.callsign) + "</b> · " + esc(t[p.kind] || p.kind) + "<br>" +
      esc(t[p.status] || p.status) + " · " + t.seen + " " + ageText(u.seen ? now() - u.seen : null) + " " + t.ago +
      (p.speed !== null && p.speed !== undefined ? "<br>" + (p.speed * 3.6).toFixed(0) + " km/h" : "") +
      (p.battery !== null && p.battery !== undefined ? " · 🔋" + Math.round(p.battery) + "%" : "") +
      '<br><button type="button" class="replay-btn" data-unit="' + esc(p.callsign) + '">' + esc(t.replay) + "</button>";
  }
  function placeUnit(u) {
    if (u.lat === null || u.lat === undefined) { return; }
    if (!u.marker) {
      u.marker = L.marker([u.lat, u.lon], { icon: unitIcon(u), keyboard: false, riseOnHover: true });
      u.marker.on("click", function () { selectUnit(u.p.id, false); });
      u.marker.bindPopup(function () { return popupHtml(u); });
      unitLayer.addLayer(u.marker);
      u.iconKey = null;
    } else {
      u.marker.setLatLng([u.lat, u.lon]);
    }
    refreshIcon(u);
  }
  function upsertUnit(p, coords) {
    let u = units[p.id];
    if (!u) { u = units[p.id] = { p: {}, trail: [] }; }
    Object.assign(u.p, p);
    if (p.last_seen) { u.seen = Date.parse(p.last_seen); }
    if (coords) { u.lon = coords[0]; u.lat = coords[1]; }
    placeUnit(u);
    listDirty = true;
    return u;
  }
  function addTrailPoint(u, ts, lat, lon) {
    if (!trailMinutes) { return; }
    const last = u.trail[u.trail.length - 1];
    if (last && last[0] >= ts) { return; }
    u.trail.push([ts, lat, lon]);
    drawTrail(u);
  }
  function drawTrail(u) {
    const cutoff = now() - trailMinutes * 60000;
    while (u.trail.length && u.trail[0][0] < cutoff) { u.trail.shift(); }
    const latlngs = u.trail.map(function (x) { return [x[1], x[2]]; });
    if (latlngs.length < 2 || !trailMinutes) {
      if (u.line) { trailLayer.removeLayer(u.line); u.line = null; }
      return;
    }
    if (!u.line) {
      u.line = L.polyline(latlngs, { renderer: renderer, color: COLOURS[u.p.status] || "#2b6cb0", weight: 2.5, opacity: 0.7, interactive: false });
      trailLayer.addLayer(u.line);
    } else {
      u.line.setLatLngs(latlngs);
    }
  }
  function loadTrails() {
    Object.values(units).forEach(function (u) { u.trail = []; drawTrail(u); });
    if (!trailMinutes) { return Promise.resolve(); }
    return api("/api/units/trails?minutes=" + trailMinutes).then(function (fc) {
      fc.features.forEach(function (f) {
        const u = units[f.properties.id];
        if (!u || !f.geometry) { return; }
        // Spread the trail's points evenly over the window: only the newest time is known.
        const coords = f.geometry.coordinates;
        const end = Date.parse(f.properties.last);
        const start = end - trailMinutes * 60000 * 0.98;
        u.trail = coords.map(function (c, i) {
          return [start + (end - start) * (coords.length > 1 ? i / (coords.length - 1) : 1), c[1], c[0]];
        });
        drawTrail(u);
      });
    }).catch(function (e) { console.warn(e); });
  }
  function loadUnits() {
    return api("/api/units").then(function (fc) {
      fc.features.forEach(function (f) {
        const p = f.properties;
        if (p.last_seen && p.age_s !== null) { skew = Date.now() - (Date.parse(p.last_seen) + p.age_s * 1000); }
        upsertUnit(p, f.geometry ? f.geometry.coordinates : null);
      });
      document.body.dataset.unitsLoaded = "1";
    }).catch(function (e) { toast(t.load_failed + " " + e.message); });
  }

  // -- unit list ------------------------------------------------------------------------------
  let listDirty = true;
  function renderList() {
    if (!listDirty) { return; }
    listDirty = false;
    const q = $("unit-search").value.trim().toLowerCase();
    const all = Object.values(units).sort(function (a, b) { return a.p.callsign.localeCompare(b.p.callsign); });
    const shown = all.filter(function (u) {
      if (!q) { return true; }
      const hay = [u.p.callsign, u.p.device_id, u.p.kind, t[u.p.kind], u.p.status, t[u.p.status], u.p.area].join(" ").toLowerCase();
      return hay.indexOf(q) >= 0;
    }).slice(0, 500);
    $("unit-count").textContent = shown.length + " / " + all.length;
    const html = shown.map(function (u) {
      const stale = !u.seen || now() - u.seen > STALE_MS;
      return '<li data-id="' + u.p.id + '" class="' + (selected === u.p.id ? "selected" : "") + '">' +
        '<span class="swatch status-' + (stale ? "stale" : esc(u.p.status)) + '"></span>' +
        '<span class="cs">' + esc(u.p.callsign) + "</span><span>" + esc(t[u.p.kind] || u.p.kind) + " · " +
        esc(stale ? t.stale : (t[u.p.status] || u.p.status)) + '</span><span class="age">' +
        ageText(u.seen ? now() - u.seen : null) + "</span></li>";
    }).join("");
    $("unit-list").innerHTML = html;
    $("unit-callsigns").innerHTML = all.map(function (u) { return '<option value="' + esc(u.p.callsign) + '">'; }).join("");
  }
  $("unit-search").addEventListener("input", function () { listDirty = true; renderList(); });
  $("unit-list").addEventListener("click", function (e) {
    const li = e.target.closest("li");
    if (li) { selectUnit(Number(li.dataset.id), true); }
  });
  function selectUnit(id, pan) {
    selected = id;
    listDirty = true;
    const u = units[id];
    if (u && u.marker && pan) { map.setView(u.marker.getLatLng(), Math.max(map.getZoom(), 15)); u.marker.openPopup(); }
  }
  map.on("popupopen", function (e) {
    const btn = e.popup.getElement().querySelector(".replay-btn");
    if (btn) { btn.addEventListener("click", function () { startReplay(btn.dataset.unit); }); }
  });

  // -- live events ----------------------------------------------------------------------------
  const pending = {};          // unit id -> newest position event, applied once per frame
  let frameQueued = false;
  const seenIds = new Set();
  const seenOrder = [];
  function fresh(id) {
    if (id === undefined || id === null || id === "") { return true; }
    if (seenIds.has(id)) { return false; }
    seenIds.add(id); seenOrder.push(id);
    if (seenOrder.length > 5000) { seenIds.delete(seenOrder.shift()); }
    return true;
  }
  function flush() {
    frameQueued = false;
    Object.keys(pending).forEach(function (id) {
      const d = pending[id];
      delete pending[id];
      const props = { id: d.unit, callsign: d.callsign, kind: d.kind, status: d.status, last_seen: d.seen_at };
      if (d.lat !== undefined) {
        Object.assign(props, { heading: d.heading, speed: d.speed, battery: d.battery, accuracy: d.accuracy, ts: d.ts });
      }
      const u = upsertUnit(props, d.lat !== undefined ? [d.lon, d.lat] : null);
      if (d.lat !== undefined) { addTrailPoint(u, Date.parse(d.ts), d.lat, d.lon); }
    });
    document.body.dataset.lastUpdate = String(Date.now());
  }
  function queue() { if (!frameQueued) { frameQueued = true; window.requestAnimationFrame(flush); } }

  let source = null;
  function connect() {
    source = new EventSource("/api/live");
    source.onopen = function () {
      $("live-dot").className = "dot on"; $("live-text").textContent = t.live;
      document.body.dataset.live = "open";
    };
    source.onerror = function () {
      $("live-dot").className = "dot off"; $("live-text").textContent = t.reconnecting;
      document.body.dataset.live = "reconnecting";
    };
    source.addEventListener("position", function (e) {
      if (!fresh(e.lastEventId)) { return; }
      const d = JSON.parse(e.data);
      const prev = pending[d.unit];
      if (!prev || prev.lat === undefined || d.lat !== undefined) { pending[d.unit] = d; }
      else { prev.seen_at = d.seen_at; }
      queue();
    });
    source.addEventListener("unit_status", function (e) {
      if (!fresh(e.lastEventId)) { return; }
      const d = JSON.parse(e.data);
      const u = units[d.unit];
      if (u) { u.p.status = d.status; refreshIcon(u); listDirty = true; }
    });
    source.addEventListener("incident", function (e) {
      if (!fresh(e.lastEventId)) { return; }
      const d = JSON.parse(e.data);
      if (d.lon === null || d.lat === null) { return; }
      addIncident({ id: d.id, category: d.category, severity: d.severity, status: d.status,
        occurred_at: d.occurred_at, address: d.address, grid: d.grid }, [d.lon, d.lat], true);
      toast(t.new_incident + ": " + (t[d.category] || d.category) + (d.address ? " · " + d.address : ""), "",
        function () { selectIncident(d.id, true); });
    });
    source.addEventListener("incidents", function (e) {
      if (!fresh(e.lastEventId)) { return; }
      const d = JSON.parse(e.data);
      toast(d.count + " " + t.incidents_bulk);
      loadIncidents();
    });
    source.addEventListener("risk", function (e) {
      if (!fresh(e.lastEventId)) { return; }
      const d = JSON.parse(e.data);
      toast(t.risk_alert + ": " + d.name + " → " + (t[d.level] || d.level), "risk");
      loadGaps();
    });
    source.addEventListener("risk_bulk", function (e) { if (fresh(e.lastEventId)) { loadGaps(); } });
    source.addEventListener("assignment", function (e) {
      if (!fresh(e.lastEventId)) { return; }
      const d = JSON.parse(e.data);
      if (currentIncident === d.incident) { loadAssignments(d.incident); }
    });
  }

  // -- incidents and dispatch -----------------------------------------------------------------
  const incidents = {};
  let currentIncident = null;
  function addIncident(p, coords, isNew) {
    if (incidents[p.id]) { return; }
    const m = L.marker([coords[1], coords[0]], { icon: L.divIcon({ className: "incident-icon" + (isNew ? " fresh" : ""),
      iconSize: [20, 20], iconAnchor: [10, 10], html: "<span></span>" }), zIndexOffset: 500 });
    m.on("click", function () { selectIncident(p.id, false); });
    m.bindTooltip((t[p.category] || p.category) + (p.address ? " · " + p.address : ""));
    incidents[p.id] = { p: p, marker: m };
    incidentLayer.addLayer(m);
    m.getElement && m.getElement() && (m.getElement().dataset.incident = p.id);
  }
  function loadIncidents() {
    return api("/api/dispatch/incidents?hours=24").then(function (fc) {
      fc.features.forEach(function (f) { addIncident(f.properties, f.geometry.coordinates, false); });
    }).catch(function (e) { console.warn(e); });
  }
  function selectIncident(id, pan) {
    const inc = incidents[id];
    currentIncident = id;
    $("incident-box").hidden = false;
    $("incident-title").textContent = "#" + id;
    if (inc) {
      const p = inc.p;
      $("incident-info").innerHTML = "<p>" + esc(t[p.category] || p.category) + " · " + t.severity + " " + esc(p.severity) +
        " · " + t.status + " " + esc(p.status) + "<br>" + esc(p.address || "") + (p.grid ? " · " + esc(p.grid) : "") + "</p>";
      if (pan) { map.setView(inc.marker.getLatLng(), Math.max(map.getZoom(), 15)); }
    }
    $("nearest-list").innerHTML = "<li>…</li>";
    api("/api/dispatch/nearest?incident=" + id + "&k=5").then(function (res) {
      if (!res.units.length) { $("nearest-list").innerHTML = "<li>" + esc(t.no_units) + "</li>"; return; }
      $("nearest-list").innerHTML = res.units.map(function (u) {
        return '<li><span class="swatch status-' + (u.stale ? "stale" : esc(u.status)) + '"></span><b>' + esc(u.callsign) +
          "</b> " + (u.distance_m / 1000).toFixed(2) + " km · " + ageText(u.age_s * 1000) +
          ' <button type="button" data-assign="' + esc(u.callsign) + '">' + esc(t.assign) + "</button></li>";
      }).join("");
    }).catch(function (e) { $("nearest-list").innerHTML = '<li class="error">' + esc(e.message) + "</li>"; });
    loadAssignments(id);
  }
  $("nearest-list").addEventListener("click", function (e) {
    const cs = e.target.dataset.assign;
    if (!cs || currentIncident === null) { return; }
    api("/api/dispatch/assign", { method: "POST", json: { incident: currentIncident, unit: cs } })
      .then(function () { loadAssignments(currentIncident); selectIncident(currentIncident, false); })
      .catch(function (err) { toast(err.message); });
  });
  function loadAssignments(id) {
    api("/api/dispatch/assignments?incident=" + id).then(function (res) {
      $("assignment-list").innerHTML = res.assignments.map(function (a) {
        const next = { assigned: ["acknowledge", "arrive", "cancel"], acknowledged: ["arrive", "cancel"], arrived: ["close"] }[a.status] || [];
        return "<p><b>" + esc(a.callsign) + "</b> " + esc(t[a.status] || a.status) + " " +
          next.map(function (n) { return '<button type="button" data-action="' + n + '" data-id="' + a.id + '">' + esc(t[n]) + "</button>"; }).join(" ") + "</p>";
      }).join("");
    }).catch(function (e) { console.warn(e); });
  }
  $("assignment-list").addEventListener("click", function (e) {
    const action = e.target.dataset.action;
    if (!action) { return; }
    api("/api/dispatch/assignments/" + e.target.dataset.id + "/" + action, { method: "POST", json: {} })
      .then(function () { loadAssignments(currentIncident); }).catch(function (err) { toast(err.message); });
  });

  // -- coverage gaps --------------------------------------------------------------------------
  function loadGaps() {
    const hours = Number($("gap-hours").value);
    gapLayer.clearLayers();
    if (!hours) { $("gap-list").innerHTML = ""; $("gap-count").textContent = ""; return Promise.resolve(); }
    return api("/api/coverage/gaps?hours=" + hours).then(function (fc) {
      const layer = L.geoJSON(fc, { renderer: renderer, style: function (f) {
        const c = f.properties.risk === "red" ? "#e53e3e" : "#ed8936";
        return { color: c, weight: 2, dashArray: "4 3", fillColor: c, fillOpacity: 0.25 };
      }, onEachFeature: function (f, lyr) { lyr.bindTooltip(f.properties.name + " · " + (t[f.properties.risk] || f.properties.risk)); } });
      gapLayer.addLayer(layer);
      $("gap-count").textContent = "(" + fc.features.length + ")";
      $("gap-list").innerHTML = fc.features.slice(0, 200).map(function (f) {
        return '<li data-id="' + f.id + '"><span class="swatch risk-' + esc(f.properties.risk) + '"></span>' +
          esc(f.properties.name) + ' <span class="muted">' + esc(f.properties.code) + "</span></li>";
      }).join("");
      layer.eachLayer(function (l) { l.feature && (gapById[l.feature.id] = l); });
    }).catch(function (e) { console.warn(e); });
  }
  const gapById = {};
  $("gap-list").addEventListener("click", function (e) {
    const li = e.target.closest("li");
    const l = li && gapById[li.dataset.id];
    if (l) { map.fitBounds(l.getBounds(), { maxZoom: 16 }); }
  });
  $("gap-hours").addEventListener("change", loadGaps);

  function loadOutline() {
    return api("/api/areas?level=1").then(function (fc) {
      const layer = L.geoJSON(fc, { renderer: renderer, interactive: false, style: { color: "#1f2d3d", weight: 3, fill: false } });
      outlineLayer.addLayer(layer);
      if (layer.getLayers().length) { map.fitBounds(layer.getBounds(), { padding: [10, 10] }); }
    }).catch(function () {});
  }
  // Patrol coverage of the last 24 hours: grids shaded by patrol minutes, outlined in their risk colour.
  const RISK_COLOURS = { red: "#e53e3e", orange: "#ed8936", yellow: "#d69e2e", blue: "#3182ce", unknown: "#a0aec0" };
  function loadCoverage() {
    coverageLayer.clearLayers();
    return api("/api/coverage?hours=24").then(function (fc) {
      coverageLayer.addLayer(L.geoJSON(fc, { renderer: renderer, style: function (f) {
        const m = f.properties.minutes || 0;
        return { color: RISK_COLOURS[f.properties.risk] || "#a0aec0", weight: 1.2,
          fillColor: "#2b6cb0", fillOpacity: m <= 0 ? 0 : Math.min(0.6, 0.12 + m / 240) };
      }, onEachFeature: function (f, lyr) {
        const p = f.properties;
        lyr.bindTooltip(esc(p.name) + " · " + esc(t[p.risk] || p.risk) + "<br>" + t.visits + " " + p.visits +
          " · " + Math.round(p.minutes) + " " + t.minutes);
      } }));
    }).catch(function (e) { toast(e.message); });
  }
  map.on("overlayadd", function (e) {
    if (e.layer === coverageLayer) { loadCoverage(); }
    if (e.layer === gridLayer && !gridLayer.getLayers().length) {
      api("/api/areas?level=4").then(function (fc) {
        gridLayer.addLayer(L.geoJSON(fc, { renderer: renderer, interactive: false, style: { color: "#b7791f", weight: 1, fillOpacity: 0.03 } }));
      }).catch(function () {});
    }
  });

  // -- replay of one unit's shift -------------------------------------------------------------
  let replay = null;
  function startReplay(callsign) {
    stopReplay();
    api("/api/tracks/replay?unit=" + encodeURIComponent(callsign)).then(function (r) {
      $("replay-box").hidden = false;
      $("replay-title").textContent = callsign;
      if (!r.points.length) { $("replay-time").textContent = t.no_track; return; }
      const latlngs = r.points.map(function (p) { return [p[2], p[1]]; });
      const line = L.polyline(latlngs, { renderer: renderer, color: "#805ad5", weight: 3, opacity: 0.8 });
      const ghost = L.marker(latlngs[0], { icon: L.divIcon({ className: "unit-icon ghost-icon", iconSize: [24, 24], iconAnchor: [12, 12],
        html: iconHtml("#805ad5", r.points[0][3], callsign) }) });
      replayLayer.addLayer(line); replayLayer.addLayer(ghost);
      map.fitBounds(line.getBounds(), { padding: [30, 30], maxZoom: 16 });
      replay = { points: r.points, ghost: ghost, timer: null, callsign: callsign };
      const slider = $("replay-slider");
      slider.max = String(r.points.length - 1); slider.value = "0";
      showReplayAt(0);
      api("/api/tracks?unit=" + encodeURIComponent(callsign) + "&zoom=" + map.getZoom()).then(function (f) {
        const s = f.properties;
        $("replay-stats").textContent = (s.length_m / 1000).toFixed(2) + " km · " + Math.round(s.duration_s / 60) + " " + t.minutes +
          " · " + s.points + " " + t.points + (s.grids && s.grids.length ? " · " + s.grids.length + " " + t.grids : "");
      }).catch(function () {});
    }).catch(function (e) { toast(e.message); });
  }
  function showReplayAt(i) {
    if (!replay) { return; }
    const p = replay.points[i];
    replay.ghost.setLatLng([p[2], p[1]]);
    replay.ghost.setIcon(L.divIcon({ className: "unit-icon ghost-icon", iconSize: [24, 24], iconAnchor: [12, 12],
      html: iconHtml("#805ad5", p[3], replay.callsign) }));
    $("replay-time").textContent = new Date(p[0] * 1000).toLocaleString();
  }
  function stopReplay() {
    if (replay && replay.timer) { clearInterval(replay.timer); }
    replay = null;
    replayLayer.clearLayers();
    $("replay-box").hidden = true;
    $("replay-play").textContent = "▶";
  }
  $("replay-slider").addEventListener("input", function (e) { showReplayAt(Number(e.target.value)); });
  $("replay-close").addEventListener("click", stopReplay);
  $("replay-play").addEventListener("click", function () {
    if (!replay) { return; }
    if (replay.timer) { clearInterval(replay.timer); replay.timer = null; $("replay-play").textContent = "▶"; return; }
    $("replay-play").textContent = "⏸";
    const step = Math.max(1, Math.round(replay.points.length / 300));
    replay.timer = setInterval(function () {
      const s = $("replay-slider");
      const next = Math.min(Number(s.max), Number(s.value) + step);
      s.value = String(next); showReplayAt(next);
      if (next >= Number(s.max)) { clearInterval(replay.timer); replay.timer = null; $("replay-play").textContent = "▶"; }
    }, 100);
  });

  // -- where was everyone at time T -----------------------------------------------------------
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  (function initTime() {
    const d = new Date(Date.now() - 3600000);
    $("at-time").value = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  })();
  $("at-show").addEventListener("click", function () {
    const value = $("at-time").value;
    if (!value) { return; }
    const at = new Date(value);
    api("/api/units?at=" + encodeURIComponent(at.toISOString())).then(function (fc) {
      ghostLayer.clearLayers();
      let n = 0;
      fc.features.forEach(function (f) {
        if (!f.geometry) { return; }
        n += 1;
        const c = f.geometry.coordinates;
        const m = L.marker([c[1], c[0]], { icon: L.divIcon({ className: "unit-icon ghost-icon", iconSize: [24, 24], iconAnchor: [12, 12],
          html: iconHtml("#805ad5", f.properties.heading, f.properties.callsign) }) });
        m.bindTooltip(f.properties.callsign + " · " + new Date(f.properties.ts).toLocaleTimeString());
        ghostLayer.addLayer(m);
      });
      map.removeLayer(unitLayer); map.removeLayer(trailLayer);
      $("at-live").hidden = false;
      $("at-info").textContent = t.positions_at + " " + at.toLocaleString() + ": " + n + " " + t.units_shown;
      document.body.dataset.timeAt = String(n);
    }).catch(function (e) { toast(e.message); });
  });
  $("at-live").addEventListener("click", function () {
    ghostLayer.clearLayers();
    unitLayer.addTo(map); trailLayer.addTo(map);
    $("at-live").hidden = true; $("at-info").textContent = "";
  });

  // -- GPX upload -----------------------------------------------------------------------------
  $("gpx-form").addEventListener("submit", function (e) {
    e.preventDefault();
    const file = $("gpx-file").files[0];
    if (!file) { return; }
    const form = new FormData();
    form.append("unit", $("gpx-unit").value);
    form.append("file", file);
    api("/api/tracks/import", { method: "POST", body: form }).then(function (r) {
      $("gpx-result").textContent = t.imported + ": " + r.points + " " + t.points + ", " + Math.round(r.length_m) + " " + t.metres +
        (r.skipped.length ? " (" + r.skipped.join("; ") + ")" : "");
    }).catch(function (err) { $("gpx-result").textContent = err.message; });
  });

  // -- periodic work --------------------------------------------------------------------------
  $("trail-minutes").addEventListener("change", function () { trailMinutes = Number($("trail-minutes").value); loadTrails(); });
  setInterval(function () {
    Object.values(units).forEach(function (u) { refreshIcon(u); });   // grey out silent units
    listDirty = true;
  }, 5000);
  setInterval(function () { if (trailMinutes) { Object.values(units).forEach(drawTrail); } }, 15000);
  setInterval(renderList, 1000);
  setInterval(loadGaps, 60000);
  setInterval(function () { $("clock").textContent = new Date(now()).toLocaleTimeString(); }, 1000);

  window.anwangDispatch = {
    map: map, units: units,
    unitLatLng: function (callsign) {
      const u = Object.values(units).find(function (x) { return x.p.callsign === callsign; });
      return u && u.marker ? [u.marker.getLatLng().lat, u.marker.getLatLng().lng] : null;
    },
    unitColour: function (callsign) {
      const u = Object.values(units).find(function (x) { return x.p.callsign === callsign; });
      return u ? unitColour(u) : null;
    },
    startReplay: startReplay, selectIncident: selectIncident,
  };

  loadOutline();
  loadUnits().then(function () { renderList(); return loadTrails(); });
  loadIncidents();
  loadGaps();
  connect();
})();

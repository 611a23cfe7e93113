/* The grid planner (网格规划): choose a village, pick an operation, draw with Leaflet-Geoman
 * (snapping to the existing edges, no self-crossing shapes), see the server's preview of every
 * affected grid (area, households, population, entities, open incidents, staff, workload), give a
 * reason and save. History with diff and revert, problems of the village on the map, clear
 * conflict messages when someone else saved first, and a soft lock others can see.
 *
 * Every check that matters runs on the server: the preview is the real change, rolled back.
 */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("map-config").textContent);
  const t = JSON.parse(document.getElementById("i18n").textContent);
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content;
  const $ = function (id) { return document.getElementById(id); };
  const NEEDS = { transfer: 2, split: 1, merge: 2, reshape: 1, partition: 0, move: 1 };
  const DRAW = { transfer: "Polygon", split: "Line", partition: "Line" };

  // -- map --------------------------------------------------------------------------------------
  const map = L.map("map", { zoomControl: true, zoomSnap: 0.25, minZoom: 5, maxZoom: 20 });
  map.setView([33.62, 113.95], 11);
  const basemaps = {};
  basemaps[t.basemap_none] = L.layerGroup();
  basemaps[t.basemap_osm] = L.tileLayer(config.osmUrl, { maxZoom: 19, attribution: "© OpenStreetMap contributors" });
  if (config.tiandituKey) {
    basemaps[t.basemap_tianditu] = L.tileLayer("https://t{s}.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile" +
      "&VERSION=1.0.0&LAYER=vec&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=" +
      encodeURIComponent(config.tiandituKey), { subdomains: "01234567", maxZoom: 18, attribution: "© 天地图" });
  }
  const BASEMAP_NAMES = { osm: t.basemap_osm, tianditu: t.basemap_tianditu, none: t.basemap_none };
  const chosen = new URLSearchParams(window.location.search).get("basemap") ||
    window.localStorage.getItem("anwang.basemap") || config.basemap;
  (basemaps[BASEMAP_NAMES[chosen]] || basemaps[t.basemap_none]).addTo(map);
  L.control.layers(basemaps, {}, { collapsed: true }).addTo(map);
  L.control.scale({ imperial: false }).addTo(map);

  // Geoman: snap to every vertex and edge on the map, refuse self-crossing shapes while drawing.
  map.pm.setGlobalOptions({ snappable: true, snapDistance: 18, allowSelfIntersection: false,
                            templineStyle: { color: "#c53030" }, hintlineStyle: { color: "#c53030", dashArray: "5,5" } });
  map.pm.setLang(document.documentElement.lang.startsWith("zh") ? "zh" : "en");

  const villageLayer = L.geoJSON(null, {
    style: { color: "#2f855a", weight: 2, fill: false, dashArray: "6,4" }, pmIgnore: false,
    interactive: false,
  }).addTo(map);
  const gridLayer = L.geoJSON(null, { style: gridStyle, onEachFeature: onGrid }).addTo(map);
  const problemLayer = L.geoJSON(null, {
    style: function (f) { return { color: f.properties.severity === "error" ? "#c53030" : "#dd6b20", weight: 3, dashArray: "4,4", fillOpacity: 0.25 }; },
    pointToLayer: function (f, latlng) { return L.circleMarker(latlng, { radius: 6, color: "#dd6b20" }); },
    pmIgnore: true, snapIgnore: true,
  }).addTo(map);
  const diffLayer = L.geoJSON(null, {
    style: function (f) { return { color: f.properties.kind === "added" ? "#2f855a" : "#c53030", weight: 2, fillOpacity: 0.45 }; },
    pmIgnore: true, snapIgnore: true,
  }).addTo(map);
  const drawnLayer = L.featureGroup().addTo(map);

  // -- state ------------------------------------------------------------------------------------
  const state = { townships: [], villages: [], village: null, grids: {}, versions: {}, op: null,
                  selection: [], drawn: [], reshape: null, preview: null, previewBody: null, lockTimer: null,
                  lockMine: false };

  function gridStyle(feature) {
    const picked = state.selection.indexOf(feature.properties.code);
    return { color: picked >= 0 ? "#c53030" : "#975a16", weight: picked >= 0 ? 3 : 1.5,
             fillColor: picked === 0 ? "#feb2b2" : picked > 0 ? "#fbd38d" : "#f6e05e", fillOpacity: picked >= 0 ? 0.35 : 0.12 };
  }

  function onGrid(feature, layer) {
    const p = feature.properties;
    layer.bindTooltip(p.code.slice(-3) + " " + (p.name || ""), { permanent: true, direction: "center", className: "grid-label" });
    layer.on("click", function () { pick(p.code); });
  }

  // -- helpers ----------------------------------------------------------------------------------
  let loadingCount = 0;
  function loading(on) {
    loadingCount = Math.max(0, loadingCount + (on ? 1 : -1));
    $("loading").hidden = loadingCount === 0;
  }

  function api(method, url, body) {
    const init = { method: method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (method !== "GET") { init.headers["X-CSRFToken"] = csrf; }
    loading(true);
    return fetch(url, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (json) {
        return { ok: r.ok, status: r.status, body: json };
      });
    }).finally(function () { loading(false); });
  }

  // "{name}" in a translated pattern, filled from values (text only: the result goes into textContent).
  function fill(pattern, values) {
    return pattern.replace(/\{(\w+)\}/g, function (all, name) {
      return values[name] === undefined || values[name] === null ? all : String(values[name]);
    });
  }

  // A 409 in the reader's language: who changed which area since it was loaded (the server's
  // details), else the server's own message.
  function conflictText(error) {
    const stale = error && error.details && error.details.stale;
    if (!stale || !stale.length) { return t.conflict + ": " + (error ? error.message : ""); }
    const parts = stale.map(function (d) {
      const head = d.current_version ? fill(t.stale_now, { code: d.code, current: d.current_version, yours: d.your_version })
        : fill(t.stale_gone, { code: d.code, yours: d.your_version });
      return head + (d.changes || []).slice(-2).map(function (c) {
        return t.list_sep + fill(t.stale_by, { author: c.author || t.someone, id: c.id, kind: t[c.kind] || c.kind,
                                              reason: c.reason || "" });
      }).join("");
    });
    return t.conflict + ": " + t.stale_intro + " " + parts.join(t.item_sep) + t.stale_redo;
  }

  function say(text, kind) {
    const box = $("message");
    box.hidden = !text;
    box.className = "message " + (kind || "");
    box.textContent = "";
    if (!text) { return; }
    box.appendChild(document.createTextNode(text));
    if (kind === "conflict") {
      const again = document.createElement("button");
      again.type = "button";
      again.textContent = t.reload;
      again.addEventListener("click", function () { chooseVillage(state.village.code); });
      box.appendChild(document.createTextNode(" "));
      box.appendChild(again);
    }
  }

  function live(text, ok) {
    const el = $("live-check");
    el.textContent = text || "";
    el.className = "live-check " + (ok === true ? "ok" : ok === false ? "bad" : "");
  }

  function ha(m2) { return m2 == null ? "–" : (m2 / 10000).toFixed(2); }
  function pair(b, a, fmt) {
    const f = fmt || function (v) { return v == null ? "–" : v; };
    if (!b) { return f(a); }
    if (!a) { return f(b) + " → ✕"; }
    return f(b) === f(a) ? f(a) : f(b) + " → " + f(a);
  }
  function option(select, value, label) {
    const o = document.createElement("option");
    o.value = value; o.textContent = label;
    select.appendChild(o);
  }

  // -- choosing a village -----------------------------------------------------------------------
  function loadTownships() {
    return api("GET", "/api/areas?level=2").then(function (r) {
      if (!r.ok) { say(t.load_failed, "error"); return; }
      state.townships = r.body.features;
      r.body.features.forEach(function (f) { option($("township-select"), f.properties.code, f.properties.name + " " + f.properties.code); });
    });
  }

  function chooseTownship(code) {
    const select = $("village-select");
    select.innerHTML = "";
    option(select, "", "—");
    select.disabled = !code;
    if (!code) { return Promise.resolve(); }
    return Promise.all([
      api("GET", "/api/areas?level=3&parent=" + encodeURIComponent(code)),
      api("GET", "/api/locks?parent=" + encodeURIComponent(code)),
    ]).then(function (answers) {
      const r = answers[0];
      // Villages someone else is editing carry a lock and that person's name.
      const held = {};
      (answers[1].ok ? answers[1].body.locks : []).forEach(function (l) { held[l.code] = l.username; });
      state.villages = r.ok ? r.body.features : [];
      state.villages.forEach(function (f) {
        const who = held[f.properties.code];
        option(select, f.properties.code, f.properties.name + " " + f.properties.code + (who ? " 🔒 " + who : ""));
      });
      villageLayer.clearLayers().addData(r.body);
      if (state.villages.length) { map.fitBounds(villageLayer.getBounds(), { padding: [10, 10], animate: false }); }
    });
  }

  function chooseVillage(code) {
    delete document.body.dataset.village;  // set again once the village is shown
    releaseLock();
    resetOperation();
    say("");
    if (!code) { return Promise.resolve(); }
    const village = state.villages.find(function (f) { return f.properties.code === code; });
    state.village = village ? village.properties : { code: code };
    return Promise.all([loadGrids(), loadHistory(), loadProblems(), takeLock()]).then(function () {
      if (gridLayer.getLayers().length) { map.fitBounds(gridLayer.getBounds(), { padding: [20, 20], animate: false }); }
      document.body.dataset.village = code;
    });
  }

  function loadGrids() {
    return api("GET", "/api/areas?level=4&parent=" + encodeURIComponent(state.village.code)).then(function (r) {
      gridLayer.clearLayers();
      state.grids = {};
      state.versions = {};
      if (!r.ok) { say(r.body.error ? r.body.error.message : t.load_failed, "error"); return; }
      r.body.features.forEach(function (f) {
        state.grids[f.properties.code] = f;
        state.versions[f.properties.code] = f.properties.version;
      });
      state.versions[state.village.code] = state.village.version;
      gridLayer.addData(r.body);
      document.body.dataset.gridCodes = Object.keys(state.grids).sort().join(",");
    });
  }

  // -- soft lock --------------------------------------------------------------------------------
  function takeLock() {
    const code = state.village.code;
    return api("POST", "/api/areas/" + encodeURIComponent(code) + "/lock").then(function (r) {
      const box = $("lock-state");
      box.hidden = !r.ok;
      state.lockMine = r.ok && r.body.mine;
      if (!r.ok) { return; }
      box.className = "lock-state " + (r.body.mine ? "mine" : "theirs");
      box.textContent = r.body.mine ? t.lock_mine
        : "🔒 " + r.body.username + " " + t.locked_by + " " + new Date(r.body.acquired_at).toLocaleTimeString();
      clearTimeout(state.lockTimer);
      state.lockTimer = setTimeout(takeLock, 60000);  // refresh ours, or see when theirs ends
    });
  }

  function releaseLock() {
    clearTimeout(state.lockTimer);
    // Someone else's lock is theirs to release: asking would only be refused.
    if (!state.village || !state.lockMine) { return; }
    state.lockMine = false;
    fetch("/api/areas/" + encodeURIComponent(state.village.code) + "/lock",
          { method: "DELETE", headers: { "X-CSRFToken": csrf }, credentials: "same-origin", keepalive: true });
  }
  window.addEventListener("pagehide", releaseLock);

  // -- operations -------------------------------------------------------------------------------
  function resetOperation() {
    map.pm.disableDraw();
    if (state.reshape) { state.reshape.pm.disable(); map.removeLayer(state.reshape); }
    drawnLayer.clearLayers();
    diffLayer.clearLayers();
    state.op = null; state.selection = []; state.drawn = []; state.reshape = null;
    state.preview = null; state.previewBody = null;
    document.querySelectorAll(".tool").forEach(function (b) { b.classList.remove("active"); });
    $("tool-help").textContent = t.help_choose;
    $("move-target").hidden = true;
    $("draw-done").hidden = true;
    $("preview-btn").disabled = true;
    $("preview-box").hidden = true;
    live("");
    gridLayer.setStyle(gridStyle);
    showSelection();
  }

  function setOp(op) {
    if (!state.village) { say(t.help_choose, "error"); return; }
    resetOperation();
    state.op = op;
    $("tool-" + op).classList.add("active");
    $("tool-help").textContent = t["help_" + op];
    if (op === "partition") { startDrawing(); }
  }

  function pick(code) {
    // While a shape is being drawn, a click on a grid is a vertex of that shape, not a choice.
    if (!state.op || state.op === "partition" || map.pm.globalDrawModeEnabled() || state.reshape) { return; }
    const at = state.selection.indexOf(code);
    if (at >= 0) { state.selection.splice(at, 1); }
    else if (state.op === "merge" || state.selection.length < NEEDS[state.op]) { state.selection.push(code); }
    gridLayer.setStyle(gridStyle);
    showSelection();
    if (state.selection.length < NEEDS[state.op]) { return; }
    if (DRAW[state.op]) { startDrawing(); }
    else if (state.op === "reshape") { startReshape(); }
    else if (state.op === "move") { showMoveTargets(); }
    $("preview-btn").disabled = state.op !== "merge";
  }

  function showSelection() {
    $("selection").textContent = t.selected + ": " + (state.selection.join(" → ") || t.none);
  }

  function startDrawing() {
    const shape = DRAW[state.op];
    map.pm.enableDraw(shape, { snappable: true, snapDistance: 18, allowSelfIntersection: false, finishOn: null });
    if (state.op === "partition") { $("draw-done").hidden = false; }
  }

  // Live validation while drawing: say after each vertex whether the shape reaches what it must.
  map.on("pm:drawstart", function (e) {
    if (!e.workingLayer) { return; }
    e.workingLayer.on("pm:vertexadded", function () { liveCheck(e.workingLayer); });
  });
  map.on("pm:intersect", function () { live("✕ " + t.live_self_cross, false); });

  function liveCheck(layer) {
    const points = layer.getLatLngs();
    const flat = Array.isArray(points[0]) ? points[0] : points;
    const target = state.selection[0] && state.grids[state.selection[0]];
    if (!target || !flat.length) { return; }
    const bounds = L.geoJSON(target).getBounds();
    const inside = flat.filter(function (p) { return bounds.contains(p); }).length;
    if (state.op === "split") {
      const crosses = flat.length >= 2 && !bounds.contains(flat[0]) && !bounds.contains(flat[flat.length - 1]);
      live(crosses ? "✓ " + t.live_crosses : "… " + t.live_outside, crosses);
    } else {
      live(inside ? "✓ " + t.live_overlaps : "… " + t.live_not_yet, inside > 0);
    }
  }

  map.on("pm:create", function (e) {
    drawnLayer.addLayer(e.layer);
    e.layer.options.pmIgnore = true;
    state.drawn.push(e.layer.toGeoJSON().geometry);
    if (state.op === "partition") {
      startDrawing();  // keep drawing dividing lines until Done
      return;
    }
    map.pm.disableDraw();
    preview();
  });

  function startReshape() {
    const feature = state.grids[state.selection[0]];
    state.reshape = L.geoJSON(feature, { style: { color: "#c53030", weight: 3, fillOpacity: 0.1 } }).getLayers()[0];
    state.reshape.addTo(map);
    state.reshape.pm.enable({ snappable: true, allowSelfIntersection: false, draggable: false });
    let timer = null;
    state.reshape.on("pm:edit", function () {
      clearTimeout(timer);
      live(t.checking, null);
      timer = setTimeout(preview, 350);  // live validation of the edited outline
    });
  }

  function showMoveTargets() {
    const select = $("move-village");
    select.innerHTML = "";
    option(select, "", "—");
    state.villages.forEach(function (f) {
      if (f.properties.code !== state.village.code) { option(select, f.properties.code, f.properties.name + " " + f.properties.code); }
    });
    $("move-target").hidden = false;
  }

  function request() {
    const op = state.op;
    const body = { op: op, areas: state.selection.slice() };
    if (op === "partition") {
      body.areas = [state.village.code];
      body.geometry = { type: "MultiLineString", coordinates: state.drawn.map(function (g) { return g.coordinates; }) };
    } else if (op === "transfer") {
      body.geometry = state.drawn[state.drawn.length - 1];
    } else if (op === "split") {
      body.geometry = { type: "MultiLineString", coordinates: state.drawn.map(function (g) { return g.coordinates; }) };
    } else if (op === "reshape") {
      body.geometry = state.reshape.toGeoJSON().geometry;
    } else if (op === "move") {
      body.areas.push($("move-village").value);
    }
    // Every version the page shows: a change anywhere in the village since is a conflict.
    body.base_versions = Object.assign({}, state.versions);
    if (op === "move") {
      const target = state.villages.find(function (f) { return f.properties.code === $("move-village").value; });
      if (target) { body.base_versions[target.properties.code] = target.properties.version; }
    }
    return body;
  }

  function preview() {
    if (!state.op) { return; }
    const body = request();
    body.preview = true;
    live(t.checking, null);
    return api("POST", "/api/changes", body).then(function (r) {
      if (!r.ok) {
        state.preview = null;
        $("preview-box").hidden = true;
        live("✕ " + (r.body.error ? r.body.error.message : r.status), false);
        if (r.status === 409) { say(conflictText(r.body.error), "conflict"); }
        return;
      }
      live("✓ " + t.valid, true);
      state.preview = r.body;
      state.previewBody = body;
      renderPreview(r.body);
    });
  }

  function renderPreview(result) {
    const tbody = $("preview-table").querySelector("tbody");
    tbody.innerHTML = "";
    result.rows.forEach(function (row) {
      const b = row.before, a = row.after;
      const tr = document.createElement("tr");
      tr.className = "status-" + row.status;
      const cells = [row.code.slice(-6) + " " + (row.name || ""), t[row.status] || row.status,
        pair(b && b.area_m2, a && a.area_m2, ha), pair(b && b.households, a && a.households),
        pair(b && b.population, a && a.population), pair(b && b.entities, a && a.entities),
        pair(b && b.open_incidents, a && a.open_incidents), pair(b && b.staff, a && a.staff),
        pair(b && b.households_per_worker, a && a.households_per_worker)];
      cells.forEach(function (c) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); });
      tbody.appendChild(tr);
    });
    const parts = Object.keys(result.balance).map(function (code) {
      const x = result.balance[code];
      return code + " · " + t.balance + " " + t.before + " " + (x.before.min || "–") + "–" + (x.before.max || "–") +
        " (cv " + (x.before.cv == null ? "–" : x.before.cv) + "), " + t.after + " " + (x.after.min || "–") + "–" +
        (x.after.max || "–") + " (cv " + (x.after.cv == null ? "–" : x.after.cv) + "); " +
        x.outside_norms_after + " " + t.outside_norms;
    });
    $("balance").textContent = parts.join(" | ");
    const notes = $("preview-notes");
    notes.innerHTML = "";
    result.notes.concat(result.problems.map(function (p) { return "⚠ " + p.message; })).forEach(function (n) {
      const li = document.createElement("li"); li.textContent = n; notes.appendChild(li);
    });
    $("preview-box").hidden = false;
    updateSave();
  }

  function updateSave() {
    $("save-btn").disabled = !state.preview || $("reason").value.trim().length < 2;
  }

  function save() {
    const reason = $("reason").value.trim();
    if (reason.length < 2) { say(t.reason_needed, "error"); return; }
    const body = Object.assign({}, state.previewBody, { preview: false, reason: reason });
    if (state.op === "reshape") { body.geometry = state.reshape.toGeoJSON().geometry; }
    $("save-btn").disabled = true;
    return api("POST", "/api/changes", body).then(function (r) {
      if (r.status === 409) { say(conflictText(r.body.error), "conflict"); return; }
      if (!r.ok) { say(r.body.error ? r.body.error.message : String(r.status), "error"); updateSave(); return; }
      $("reason").value = "";
      const code = state.village.code;
      return chooseVillage(code).then(function () { say(t.saved + " #" + r.body.change_id, "ok"); });
    });
  }

  // -- history ----------------------------------------------------------------------------------
  function loadHistory() {
    return api("GET", "/api/changes?limit=30&area=" + encodeURIComponent(state.village.code)).then(function (r) {
      const list = $("history-list");
      list.innerHTML = "";
      const changes = r.ok ? r.body.changes : [];
      if (!changes.length) { const li = document.createElement("li"); li.className = "hint"; li.textContent = t.no_changes; list.appendChild(li); }
      changes.forEach(function (c) {
        const li = document.createElement("li");
        li.dataset.change = c.id;
        li.dataset.kind = c.kind;
        const kind = c.kind === "revert" ? t.revert_kind : (t[c.kind] || c.kind);
        const head = document.createElement("div");
        head.innerHTML = "";
        head.textContent = "#" + c.id + " " + kind + " · " + (c.author || "—") + " · " +
          new Date(c.created_at).toLocaleString() + (c.reverted_by ? " · " + t.reverted_by + " #" + c.reverted_by : "");
        const why = document.createElement("div");
        why.className = "why";
        why.textContent = c.reason + (c.codes.length ? " — " + c.codes.join(", ") : "");
        li.appendChild(head); li.appendChild(why);
        const diff = document.createElement("button");
        diff.type = "button"; diff.textContent = t.diff; diff.className = "diff";
        diff.addEventListener("click", function () { showDiff(c.id); });
        li.appendChild(diff);
        if (!c.reverted_by && c.kind !== "import") {
          const undo = document.createElement("button");
          undo.type = "button"; undo.textContent = t.revert; undo.className = "revert";
          undo.addEventListener("click", function () { revert(c.id); });
          li.appendChild(undo);
        }
        list.appendChild(li);
      });
    });
  }

  function showDiff(id) {
    return api("GET", "/api/changes/" + id).then(function (r) {
      diffLayer.clearLayers();
      if (!r.ok) { say(r.body.error.message, "error"); return; }
      diffLayer.addData(r.body.diff);
      if (diffLayer.getLayers().length) { map.fitBounds(diffLayer.getBounds(), { padding: [40, 40], maxZoom: 17 }); }
    });
  }

  function revert(id) {
    const reason = window.prompt(t.revert_reason);
    if (!reason || reason.trim().length < 2) { return; }
    return api("POST", "/api/changes/" + id + "/revert", { reason: reason.trim() }).then(function (r) {
      if (r.status === 409) { say(conflictText(r.body.error), "conflict"); return; }
      if (!r.ok) { say(r.body.error ? r.body.error.message : String(r.status), "error"); return; }
      return chooseVillage(state.village.code).then(function () { say(t.reverted + " #" + r.body.change_id, "ok"); });
    });
  }

  // -- problems ---------------------------------------------------------------------------------
  function loadProblems() {
    return api("GET", "/api/areas/" + encodeURIComponent(state.village.code) + "/problems").then(function (r) {
      problemLayer.clearLayers();
      const list = $("problem-list");
      list.innerHTML = "";
      if (!r.ok) { return; }
      problemLayer.addData({ type: "FeatureCollection", features: r.body.features.filter(function (f) { return f.geometry; }) });
      $("problem-count").textContent = r.body.errors + " " + t.errors + ", " + r.body.warnings + " " + t.warnings;
      if (!r.body.features.length) { const li = document.createElement("li"); li.className = "hint"; li.textContent = t.no_problems; list.appendChild(li); }
      r.body.features.forEach(function (f) {
        const li = document.createElement("li");
        li.className = f.properties.severity;
        li.textContent = f.properties.message;
        list.appendChild(li);
      });
    });
  }

  // -- wiring -----------------------------------------------------------------------------------
  $("township-select").addEventListener("change", function (e) { chooseTownship(e.target.value); });
  $("village-select").addEventListener("change", function (e) { chooseVillage(e.target.value); });
  document.querySelectorAll(".tool").forEach(function (b) {
    b.addEventListener("click", function () { setOp(b.dataset.op); });
  });
  $("move-village").addEventListener("change", function () { if ($("move-village").value) { preview(); } });
  $("draw-done").addEventListener("click", function () { map.pm.disableDraw(); preview(); });
  $("preview-btn").addEventListener("click", preview);
  $("cancel-btn").addEventListener("click", resetOperation);
  $("reason").addEventListener("input", updateSave);
  $("save-btn").addEventListener("click", save);

  window.anwangPlanner = {
    map: map, state: state,
    chooseTownship: chooseTownship, chooseVillage: chooseVillage,
    pixel: function (lon, lat) { return map.latLngToContainerPoint([lat, lon]); },
  };
  loadTownships().then(function () { document.body.dataset.ready = "1"; });
})();

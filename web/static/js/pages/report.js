/* The grid worker's report form: the map shows the worker's own grids; a tap, the phone's own
 * position or a located address sets the point; the report (with an optional photo) goes into the
 * outbox, which sends it to POST /api/incidents now or when the network returns. Whatever the
 * server or the reader wrote is shown as text. */
import { get, query } from "../lib/api.js";
import { byId, el, fill, setText, text } from "../lib/dom.js";
import { t, wordOr } from "../lib/i18n.js";
import { createMap } from "../lib/map.js";
import { showOutbox } from "../lib/outbox.js";
import { areaAt, gridOf, localIso, lonLat, myPosition, nowLocal, shrinkPhoto } from "../lib/place.js";
import { discard, enqueue, entries, flush } from "../lib/queue.js";
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
let accuracyCircle = null;
let point = null;   // {lon, lat} in WGS84, or null when the address alone is sent

function say(node, words, className = "hint") {
  setText(node, words);
  node.className = className;
}

function clearPoint() {
  point = null;
  if (marker) { marker.remove(); marker = null; }
  if (accuracyCircle) { accuracyCircle.remove(); accuracyCircle = null; }
  delete document.body.dataset.pointChosen;
  say(where, t("none"));
}

async function outside(latlng) {
  say(where, t("outside"), "error");
  const area = await areaAt(latlng);
  if (area) { say(where, t("outside_in", { name: area.name, code: area.code }), "error"); }
}

function choose(latlng, place, accuracy = null) {
  const grid = gridOf(gridLayer, latlng);
  if (!grid) { outside(latlng); return false; }
  point = lonLat(latlng);
  if (marker) { marker.setLatLng(latlng); } else { marker = L.marker(latlng).addTo(map); }
  if (accuracyCircle) { accuracyCircle.remove(); accuracyCircle = null; }
  if (accuracy !== null) {
    accuracyCircle = L.circle(latlng, { radius: accuracy, weight: 1, fillOpacity: 0.1 }).addTo(map);
  }
  const parts = [place, `${grid.properties.name} (${grid.properties.code})`,
                 `${point.lon.toFixed(6)}, ${point.lat.toFixed(6)}`,
                 accuracy !== null ? `${t("accuracy")} ±${Math.round(accuracy)} m` : null];
  say(where, `${t("chosen")}: ${parts.filter(Boolean).join(" · ")}`);
  document.body.dataset.pointChosen = "1";
  return true;
}

map.on("click", (e) => choose(e.latlng, null));

byId("use-location").addEventListener("click", async () => {
  say(where, t("locating"));
  try {
    const pos = await myPosition();
    map.setView(pos.latlng, Math.max(map.getZoom(), 16), { animate: false });
    choose(pos.latlng, null, pos.accuracy);
  } catch {
    say(where, t("no_position"), "error");
  }
});

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

function problem(f) {
  if (!f.category.value) { return ["category", t("need_category")]; }
  if (!f.occurred_at.value) { return ["occurred_at", t("need_time")]; }
  if (!point && !f.address.value.trim()) { return ["where", t("need_place")]; }
  return null;
}

function startOver() {
  form.reset();
  form.elements.occurred_at.value = nowLocal();
  clearPoint();
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = form.elements;
  const wrong = problem(f);
  if (wrong) {
    say(result, `${t("failed")}: ${wrong[1]}`, "error");
    result.dataset.field = wrong[0];
    return;
  }
  const report = {
    category: f.category.value, subtype: f.subtype.value, severity: Number(f.severity.value),
    occurred_at: localIso(f.occurred_at.value), address: f.address.value, description: f.description.value,
    reporter: { name: f.reporter_name.value, phone: f.reporter_phone.value }, sensitive: f.sensitive.checked,
  };
  if (point) { Object.assign(report, { lon: point.lon, lat: point.lat, crs: "wgs84" }); }
  if (f.photo.files && f.photo.files[0]) {
    try {
      report.photos = [await shrinkPhoto(f.photo.files[0])];
    } catch {
      say(result, `${t("failed")}: ${t("photo_failed")}`, "error");
      return;
    }
  }
  const words = `${t("report_label")} · ${label("category", report.category)} · ${f.occurred_at.value.replace("T", " ")}`;
  delete result.dataset.savedId;
  say(result, t("sending"));
  const entry = await enqueue("report", "/api/incidents", report, words);
  await flush();
  const mine = (await entries()).find((e) => e.key === entry.key);
  if (mine && mine.state === "sent") {
    showResult(mine.result);
    startOver();
  } else if (mine && (mine.state === "conflict" || mine.state === "refused")) {
    // Answered at once: the form keeps what was typed, to be corrected and sent as a new report.
    say(result, `${t("failed")}: ${mine.field ? `[${mine.field}] ` : ""}${mine.message || ""}`, "error");
    await discard(mine.key);
  } else {
    say(result, t("queued"));   // no network: it waits in the outbox
    startOver();
  }
});

form.elements.occurred_at.value = nowLocal();
showOutbox(byId("outbox"), byId("outbox-count"));

expose("map", map);
expose("report", { choose: (lat, lon) => choose(L.latLng(lat, lon), null), flush, entries });

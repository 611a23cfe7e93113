/* The dashboard's 蓝黄橙红 choropleth (/api/risk) with its legend, and the 三零 panels
 * (/api/scorecards). The risk layer sits in its own pane under the boundaries and takes no clicks,
 * so the boundary click panel keeps working; select(code) shows a grid's level and reasons and an
 * area's 三零 figures. */
import { get, isAbort, newest, query } from "../lib/api.js";
import { byId, el, fill, setText } from "../lib/dom.js";
import { locale, t } from "../lib/i18n.js";
import { label } from "../lib/vocabulary.js";

const FILL = { blue: "#3182ce", yellow: "#ecc94b", orange: "#ed8936", red: "#e53e3e" };
const ORDER = ["red", "orange", "yellow", "blue"];

function legend(summary) {
  const control = L.control({ position: "bottomleft" });
  control.onAdd = () => el("div", { className: "map-legend risk-legend" },
    el("div", { className: "title", text: t("risk_legend") }),
    ORDER.map((level) => el("div", { dataset: { level } },
      el("i", { style: { background: FILL[level] } }), `${label("risk", level)} ${summary.levels[level]}`)));
  return control;
}

function percent(value, digits) {
  return value === null || value === undefined ? "—" : `${value.toFixed(digits)}%`;
}

/** Draw the four colours on `map` and fill the 三零 panels; {select(code)}. */
export function attachRisk(map) {
  const toggle = byId("risk-toggle");
  const detail = byId("risk-detail");
  const byCode = {};
  const scorecard = newest();
  let layer = null;

  map.createPane("risk");
  map.getPane("risk").style.zIndex = 350;   // above tiles, below the boundaries (overlayPane, 400)

  function showRisk(code) {
    fill(detail);
    const p = byCode[code];
    if (!p) { return; }
    const reasons = p.reasons.map((r) => el("li", { text: r[locale()] || r.zh }));
    fill(detail,
      // Colours from data go through the CSSOM (element.style), which the CSP allows.
      el("div", null, el("span", { className: "risk-swatch", style: { background: FILL[p.level] } }),
         `${p.name} · ${label("risk", p.level)} · ${t("score")} ${p.score}`),
      el("ul", { className: "risk-reasons" }, reasons));
    detail.dataset.code = code;
  }

  async function loadRisk() {
    try {
      const fc = await get("/api/risk");
      for (const f of fc.features) { byCode[f.properties.code] = f.properties; }
      layer = L.geoJSON(fc, {
        pane: "risk", interactive: false,
        style: (f) => ({ color: "#4a5568", weight: 0.4, fillColor: FILL[f.properties.level], fillOpacity: 0.45 }),
      });
      if (toggle.checked) { layer.addTo(map); }
      legend(fc.summary).addTo(map);
      document.body.dataset.riskGrids = String(fc.features.length);
    } catch (error) {
      setText(detail, t("risk_load_failed"));
      console.warn(error);
    }
  }

  const setCard = (id, value) => setText(document.querySelector(`#${id} b`), value);

  async function loadScorecard(code) {
    let s;
    try {
      s = await scorecard(`/api/scorecards${query({ area: code })}`);
    } catch (error) {
      if (!isAbort(error)) { console.warn(error); }
      return;
    }
    setText(byId("sanling-title"), `${t("sanling_for")} · ${s.area.name}`);
    // Days since the last case count to today: say where the data ends, so a stopped feed shows.
    setText(byId("sanling-until"), s.data_until
      ? `${t("data_until")} ${new Date(s.data_until).toLocaleDateString(locale() === "zh" ? "zh-CN" : "en-GB")}`
      : t("no_data"));
    for (const category of ["petition", "accident", "criminal"]) {
      const days = s.sanling[category].days_since;
      setCard(`sanling-${category}`, days === null ? t("none_yet") : days);
    }
    setCard("rate-disputes", percent(s.disputes.resolution_rate, 1));
    setCard("rate-villages", percent(s.compliance.villages.rate, 2));
    setCard("rate-enterprises", percent(s.compliance.enterprises.rate, 1));
    byId("rate-rank").hidden = !s.rank;
    if (s.rank) { setCard("rate-rank", `${s.rank.position} / ${s.rank.of}`); }
    byId("sanling").dataset.area = s.area.code;
  }

  toggle.addEventListener("change", () => {
    if (!layer) { return; }
    if (toggle.checked) { layer.addTo(map); } else { map.removeLayer(layer); }
  });

  loadRisk();
  loadScorecard(null);
  return {
    select(code) {
      showRisk(code);
      loadScorecard(code);
    },
  };
}

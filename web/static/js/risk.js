/* The dashboard's 蓝黄橙红 choropleth (from /api/risk) with its legend, and the 三零 panels (from
 * /api/scorecards). The risk layer sits in its own pane under the boundaries and takes no clicks,
 * so the boundary click panel keeps working; clicking an area (map.js sets #area-info's data-code)
 * shows that grid's level and reasons and that area's 三零 figures. Text goes in with textContent. */
(function () {
  "use strict";

  const map = window.anwangMap;
  const t = JSON.parse(document.getElementById("risk-i18n").textContent);
  const toggle = document.getElementById("risk-toggle");
  const detail = document.getElementById("risk-detail");
  const info = document.getElementById("area-info");
  const FILL = { blue: "#3182ce", yellow: "#ecc94b", orange: "#ed8936", red: "#e53e3e" };
  const ORDER = ["red", "orange", "yellow", "blue"];
  const byCode = {};
  let layer = null;

  map.createPane("risk");
  map.getPane("risk").style.zIndex = 350;   // above tiles, below the boundaries (overlayPane, 400)

  function fetchJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(url + " → " + r.status); } return r.json(); });
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }

  function legend(summary) {
    const control = L.control({ position: "bottomleft" });
    control.onAdd = function () {
      const div = L.DomUtil.create("div", "map-legend risk-legend");
      div.appendChild(el("div", t.legend, "title"));
      ORDER.forEach(function (level) {
        const row = el("div");
        const swatch = el("i");
        swatch.style.background = FILL[level];
        row.appendChild(swatch);
        row.appendChild(document.createTextNode(t[level] + " " + summary.levels[level]));
        row.dataset.level = level;
        div.appendChild(row);
      });
      return div;
    };
    return control;
  }

  function showRisk(code) {
    detail.textContent = "";
    const p = byCode[code];
    if (!p) { return; }
    const head = el("div");
    const swatch = el("span", null, "risk-swatch");
    swatch.style.background = FILL[p.level];
    head.appendChild(swatch);
    head.appendChild(document.createTextNode(p.name + " · " + t[p.level] + " · " + t.score + " " + p.score));
    detail.appendChild(head);
    const list = el("ul", null, "risk-reasons");
    const lang = document.documentElement.lang === "en" ? "en" : "zh";
    p.reasons.forEach(function (r) { list.appendChild(el("li", r[lang] || r.zh)); });
    detail.appendChild(list);
    detail.dataset.code = code;
  }

  function loadRisk() {
    return fetchJSON("/api/risk").then(function (fc) {
      fc.features.forEach(function (f) { byCode[f.properties.code] = f.properties; });
      layer = L.geoJSON(fc, {
        pane: "risk", interactive: false,
        style: function (f) {
          return { color: "#4a5568", weight: 0.4, fillColor: FILL[f.properties.level], fillOpacity: 0.45 };
        },
      });
      if (toggle.checked) { layer.addTo(map); }
      legend(fc.summary).addTo(map);
      document.body.dataset.riskGrids = String(fc.features.length);
    }).catch(function (err) { detail.textContent = t.load_failed; console.warn(err); });
  }

  function setCard(id, value) {
    document.querySelector("#" + id + " b").textContent = value;
  }

  function pct(v, digits) { return v === null || v === undefined ? "—" : v.toFixed(digits) + "%"; }

  function loadScorecard(code) {
    const url = "/api/scorecards" + (code ? "?area=" + encodeURIComponent(code) : "");
    return fetchJSON(url).then(function (s) {
      document.getElementById("sanling-title").textContent = t.sanling_for + " · " + s.area.name;
      ["petition", "accident", "criminal"].forEach(function (cat) {
        const d = s.sanling[cat].days_since;
        setCard("sanling-" + cat, d === null ? t.none_yet : d);
      });
      setCard("rate-disputes", pct(s.disputes.resolution_rate, 1));
      setCard("rate-villages", pct(s.compliance.villages.rate, 2));
      setCard("rate-enterprises", pct(s.compliance.enterprises.rate, 1));
      const rank = document.getElementById("rate-rank");
      rank.hidden = !s.rank;
      if (s.rank) { setCard("rate-rank", s.rank.position + " / " + s.rank.of); }
      document.getElementById("sanling").dataset.area = s.area.code;
    }).catch(function (err) { console.warn(err); });
  }

  toggle.addEventListener("change", function () {
    if (!layer) { return; }
    if (toggle.checked) { layer.addTo(map); } else { map.removeLayer(layer); }
  });

  // map.js records the clicked area's code on #area-info once its details have loaded.
  new MutationObserver(function () {
    const code = info.dataset.code;
    if (!code) { return; }
    showRisk(code);
    loadScorecard(code);
  }).observe(info, { attributes: true, attributeFilter: ["data-code"] });

  loadRisk();
  loadScorecard(null);
})();

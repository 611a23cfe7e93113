"""The analysts' review (研判/讲评): period comparison per grid and the folium map of one month.

The map puts heat, Gi* hot spots, emerging hot spots, four-colour risk zones, the month-on-month
change and the boundaries on one folium map. folium points its Leaflet, jQuery, Bootstrap and
plugin assets at CDNs; `localise` re-points every one the map needs to the app's own /vendor/ URLs
(the npm-installed packages), drops the ones it does not use, and refuses any it does not know, so
no page can reach a CDN. `inline` then embeds every asset for a file that works on its own.
"""
from __future__ import annotations

import base64
import html as html_lib
import json
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import folium
import numpy as np
from branca.element import MacroElement
from folium.elements import JSCSSMixin
from folium.plugins import HeatMap
from folium.template import Template
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import areas, settings
from geo.policy import Audience, Scope
from geo.vocabulary import CATEGORIES

from . import heat, hotspots, risk, selection
from .review_basemaps import Basemaps, add_basemaps

# The npm packages folium's assets come from; the folders must match web/vendor.py's PACKAGES.
PACKAGE_DIRS = {"leaflet": "leaflet/dist", "leaflet.heat": "leaflet.heat/dist",
                "protomaps-leaflet": "protomaps-leaflet/dist"}
ASSETS = {  # folium's asset name → (package, file)
    "leaflet": ("leaflet", "leaflet.js"),
    "leaflet_css": ("leaflet", "leaflet.css"),
    "leaflet-heat.js": ("leaflet.heat", "leaflet-heat.js"),
    "protomaps-leaflet": ("protomaps-leaflet", "protomaps-leaflet.js"),
}

# folium's defaults for markers and Bootstrap widgets: nothing on these maps uses them.
UNUSED = {"jquery", "bootstrap", "awesome_markers", "bootstrap_css", "glyphicons_css",
          "awesome_markers_font_css", "awesome_markers_css", "awesome_rotate_css"}

RISK_HEX = {"blue": "#3182ce", "yellow": "#ecc94b", "orange": "#ed8936", "red": "#e53e3e"}
HOT_HEX = {3: "#b2182b", 2: "#ef8a62", 1: "#fddbc7", -1: "#d1e5f0", -2: "#67a9cf", -3: "#2166ac"}
PATTERN_HEX = {"new": "#fb9a99", "consecutive": "#fdbf6f", "intensifying": "#e31a1c",
               "persistent": "#b15928", "diminishing": "#ff7f00", "sporadic": "#cab2d6",
               "oscillating": "#6a3d9a", "historical": "#b2df8a"}

LABELS = {
    "zh": {"risk": "四色风险", "heat": "热力图", "heat_png": "核密度（图像）", "hot": "热点（Gi*，近12个月）",
           "emerging": "新兴热点", "change": "环比变化", "villages": "村（社区）边界",
           "level": "等级", "score": "得分", "name": "名称", "count": "事件数", "class": "显著性",
           "pattern": "时空模式", "this": "本月", "last": "上月", "delta": "变化",
           "blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色",
           "hot_99": "热点 99%", "hot_95": "热点 95%", "hot_90": "热点 90%",
           "cold_90": "冷点 90%", "cold_95": "冷点 95%", "cold_99": "冷点 99%",
           "new": "新增", "consecutive": "连续", "intensifying": "加剧", "persistent": "持续",
           "diminishing": "减弱", "sporadic": "零星", "oscillating": "振荡", "historical": "历史",
           "hot_suffix": "热点", "cold_suffix": "冷点", "legend_risk": "四色预警",
           "legend_hot": "热点/冷点（FDR 校正）", "reasons": "原因", "trend": "数量趋势",
           "increasing": "上升", "decreasing": "下降", "no_trend": "无明显趋势",
           "inference_normal": "p 值取自 z 得分的正态分布（同 Esri、PySAL p_norm），FDR 校正",
           "inference_permutation": "p 值取自 {n} 次置换，FDR 校正",
           "hot_why": "z = {z}，p = {p}，{k} 个邻近六边形（含自身）共 {sum} 起",
           "pattern_why": "近 {n} 个月逐月数量：{counts}", "heat_legend": "核密度（起/平方公里）",
           "heat_low": "低", "heat_high": "高（≥ {top}）", "months": "逐月",
           "basemap_local": "本地地图", "basemap_osm": "OpenStreetMap", "basemap_tianditu": "天地图",
           "basemap_none": "无底图"},
    "en": {"risk": "Four-colour risk", "heat": "Heat map", "heat_png": "Kernel density (image)",
           "hot": "Hot spots (Gi*, 12 months)", "emerging": "Emerging hot spots", "change": "Month-on-month change",
           "villages": "Village boundaries", "level": "Level", "score": "Score", "name": "Name",
           "count": "Incidents", "class": "Significance", "pattern": "Pattern", "this": "This month",
           "last": "Last month", "delta": "Change", "blue": "Blue", "yellow": "Yellow",
           "orange": "Orange", "red": "Red", "hot_99": "Hot 99%", "hot_95": "Hot 95%",
           "hot_90": "Hot 90%", "cold_90": "Cold 90%", "cold_95": "Cold 95%", "cold_99": "Cold 99%",
           "new": "New", "consecutive": "Consecutive", "intensifying": "Intensifying",
           "persistent": "Persistent", "diminishing": "Diminishing", "sporadic": "Sporadic",
           "oscillating": "Oscillating", "historical": "Historical", "hot_suffix": "hot spot",
           "cold_suffix": "cold spot", "legend_risk": "Four-colour warning",
           "legend_hot": "Hot/cold spots (FDR-corrected)", "reasons": "Reasons", "trend": "Count trend",
           "increasing": "rising", "decreasing": "falling", "no_trend": "no trend",
           "inference_normal": "p-values of the z-score (normal, as Esri and PySAL's p_norm), FDR-corrected",
           "inference_permutation": "p-values from {n} permutations, FDR-corrected",
           "hot_why": "z = {z}, p = {p}; {k} hexagons in the band (itself included) hold {sum}",
           "pattern_why": "Counts per month over {n} months: {counts}", "heat_legend": "Kernel density (per km²)",
           "heat_low": "low", "heat_high": "high (≥ {top})", "months": "Per month",
           "basemap_local": "Local map", "basemap_osm": "OpenStreetMap", "basemap_tianditu": "Tianditu",
           "basemap_none": "No basemap"},
}


# -- period comparison -----------------------------------------------------------------------
def compare(session: Session, area: str, start: datetime, end: datetime, audience: Audience) -> dict:
    """This period against the one before it of the same length: totals, categories, every grid —
    of an area in the audience's scope, counting the incidents it may read."""
    prev_start, prev_end = selection.previous_month(start)
    root = audience.scope.area(session, area)
    params = {"s": start, "e": end, "ps": prev_start, "pe": prev_end, "p": root["path"]}
    relation = audience.incidents(params)
    rows = session.execute(text(f"""
        SELECT g.code, g.name,
               count(i.id) FILTER (WHERE i.occurred_at >= :s AND i.occurred_at < :e) AS this,
               count(i.id) FILTER (WHERE i.occurred_at >= :ps AND i.occurred_at < :pe) AS last
          FROM areas g LEFT JOIN {relation}
            ON i.grid_id = g.id AND i.occurred_at >= :ps AND i.occurred_at < :e
         WHERE g.level = 4 AND g.path <@ CAST(:p AS ltree)
         GROUP BY g.code, g.name ORDER BY g.code"""), params).mappings().all()
    cats = dict.fromkeys(CATEGORIES)
    for r in session.execute(text(f"""
        SELECT i.category,
               count(*) FILTER (WHERE i.occurred_at >= :s AND i.occurred_at < :e) AS this,
               count(*) FILTER (WHERE i.occurred_at >= :ps AND i.occurred_at < :pe) AS last
          FROM {relation} JOIN areas g ON g.id = i.grid_id
         WHERE g.path <@ CAST(:p AS ltree) AND i.occurred_at >= :ps AND i.occurred_at < :e
         GROUP BY i.category"""), params).mappings():
        cats[r["category"]] = {"this": r["this"], "last": r["last"]}
    categories = [{"category": c, "this": (v or {}).get("this", 0), "last": (v or {}).get("last", 0)}
                  for c, v in cats.items()]
    for c in categories:
        c["change"] = c["this"] - c["last"]
        c["change_pct"] = round(100.0 * c["change"] / c["last"], 1) if c["last"] else None
    grids = [{"code": r["code"], "name": r["name"], "this": r["this"], "last": r["last"],
              "change": r["this"] - r["last"]} for r in rows]
    this_total, last_total = sum(g["this"] for g in grids), sum(g["last"] for g in grids)
    return {
        "area": {"code": root["code"], "name": root["name"]},
        "period": {"from": start.date().isoformat(), "to": end.date().isoformat()},
        "previous": {"from": prev_start.date().isoformat(), "to": prev_end.date().isoformat()},
        "totals": {"this": this_total, "last": last_total, "change": this_total - last_total,
                   "change_pct": round(100.0 * (this_total - last_total) / last_total, 1) if last_total else None},
        "categories": categories, "grids": grids,
        "increases": sorted((g for g in grids if g["change"] > 0), key=lambda g: (-g["change"], g["code"]))[:10],
        "decreases": sorted((g for g in grids if g["change"] < 0), key=lambda g: (g["change"], g["code"]))[:10],
    }


# -- offline assets ----------------------------------------------------------------------------
def vendor_file(package: str, filename: str) -> Path:
    """Locate an npm-installed asset on disk."""
    return settings.PROJECT_ROOT / "node_modules" / PACKAGE_DIRS[package] / filename


def localise(m: folium.Map, prefix: str = "/vendor") -> folium.Map:
    """Point every asset of the map and its children at /vendor/…; refuse any unknown asset."""
    def walk(element):
        yield element
        for child in element._children.values():
            yield from walk(child)

    for element in walk(m):
        if not isinstance(element, JSCSSMixin):
            continue
        for attr in ("default_js", "default_css"):
            local = []
            for name, _url in getattr(element, attr):
                if name in UNUSED:
                    continue
                if name not in ASSETS:
                    raise RuntimeError(f"folium asset {name!r} has no local copy: add it to ASSETS")
                package, filename = ASSETS[name]
                local.append((name, f"{prefix}/{package}/{filename}"))
            # An instance attribute: folium's class-level lists stay untouched for other maps.
            setattr(element, attr, local)
    return m


# What makes a browser fetch by itself: script/img/iframe sources, stylesheet links, CSS url() and
# @import. A link the reader may click (<a href>, Leaflet's attribution) is not a load.
EXTERNAL = re.compile(r"""<(?:script|img|iframe|source|video|audio|embed|input)\b"""
                      r"""[^>]*\bsrc\s*=\s*["']?\s*(?:https?:)?//"""
                      r"""|<link\b[^>]*\bhref\s*=\s*["']?\s*(?:https?:)?//"""
                      r"""|url\(\s*["']?\s*(?:https?:)?//|@import\s+(?:url\()?\s*["']?\s*(?:https?:)?//""", re.I)


def check_offline(document: str) -> None:
    """Raise if the document would load anything from another host."""
    hit = EXTERNAL.search(document)
    if hit:
        start = max(0, hit.start() - 60)
        raise RuntimeError(f"external asset in a map document: …{document[start:hit.end() + 80]}…")


def render(m: folium.Map, prefix: str = "/vendor") -> str:
    """The map as a full HTML document loading its assets from the app."""
    document = localise(m, prefix).get_root().render()
    check_offline(document)
    return document


def inline(document: str, prefix: str = "/vendor") -> str:
    """Embed every /vendor/ script and stylesheet (and the images the CSS uses) in the document."""
    def script(match):
        package, filename = match.group(1), match.group(2)
        body = vendor_file(package, filename).read_text(encoding="utf-8")
        return "<script>" + body.replace("</script", "<\\/script") + "</script>"

    def style(match):
        package, filename = match.group(1), match.group(2)
        path = vendor_file(package, filename)
        css = path.read_text(encoding="utf-8")
        css = re.sub(r"url\((['\"]?)(images/[^)'\"]+)\1\)",
                     lambda u: f"url({_data_uri(path.parent / u.group(2))})", css)
        return "<style>" + css + "</style>"

    p = re.escape(prefix)
    document = re.sub(rf'<script src="{p}/([^/"]+)/([^"]+)"></script>', script, document)
    document = re.sub(rf'<link rel="stylesheet" href="{p}/([^/"]+)/([^"]+)"\s*/?>', style, document)
    if re.search(rf'(?:src|href)="{p}/', document):
        raise RuntimeError("a /vendor/ asset was left un-inlined")
    check_offline(document)
    return document


def _data_uri(path: Path) -> str:
    mime = {"png": "image/png", "svg": "image/svg+xml", "gif": "image/gif"}[path.suffix.lstrip(".")]
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def iframe(document: str, *, title: str, height: str = "100%") -> str:
    """Wrap a map document in an iframe (srcdoc), isolating its CSS from the page around it."""
    return (f'<iframe class="review-map" title="{html_lib.escape(title)}" style="width:100%;'
            f'height:{height};border:0" srcdoc="{html_lib.escape(document, quote=True)}"></iframe>')


# -- the map ------------------------------------------------------------------------------------
class Legend(MacroElement):
    """A legend box drawn with plain HTML (branca's colour maps would pull d3 from a CDN): one
    section per layer — (layer, title, [(colour, label)], note) — shown while that layer is on the
    map, in a box that scrolls rather than runs off the map."""

    _template = Template("""
        {% macro html(this, kwargs) %}
        <div class="anwang-legend" style="position:absolute;z-index:1000;bottom:40px;left:12px;
             max-height:calc(100% - 60px);max-width:18rem;overflow-y:auto;
             background:rgba(255,255,255,.92);padding:6px 9px;border-radius:4px;font:12px/1.5 sans-serif;
             box-shadow:0 1px 4px rgba(0,0,0,.3)">
          {% for layer, title, rows, note in this.sections %}
            <div class="anwang-legend-section" data-layer="{{ layer.get_name() }}">
            <div style="font-weight:600;margin-top:2px">{{ title }}</div>
            {% for colour, label in rows %}
              <div><span style="display:inline-block;width:14px;height:10px;margin-right:5px;
                   background:{{ colour }};border:1px solid #555"></span>{{ label }}</div>
            {% endfor %}
            {% if note %}
              <div class="anwang-legend-note" style="font-size:11px;line-height:1.35;color:#4a5568">
                {{ note }}</div>
            {% endif %}
            </div>
          {% endfor %}
        </div>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        (function () {
          var map = {{ this._parent.get_name() }};
          var layers = {
            {% for layer, title, rows, note in this.sections %}
              "{{ layer.get_name() }}": {{ layer.get_name() }},
            {% endfor %}
          };
          function follow() {
            document.querySelectorAll(".anwang-legend-section").forEach(function (section) {
              var layer = layers[section.dataset.layer];
              section.hidden = !(layer && map.hasLayer(layer));
            });
          }
          map.on("overlayadd overlayremove", follow);
          map.whenReady(function () { setTimeout(follow, 0); });
        })();
        {% endmacro %}
    """)

    def __init__(self, sections: list):
        super().__init__()
        self._name = "Legend"
        self.sections = sections


class MetricScale(MacroElement):
    """A scale bar in metres and kilometres only (folium's shows miles as well)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        L.control.scale({imperial: false, metric: true}).addTo({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self):
        super().__init__()
        self._name = "MetricScale"


class BottomLayer(MacroElement):
    """Keep a vector layer under the others: back to the bottom whenever it is switched on."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function () {
          var layer = {{ this.layer.get_name() }};
          {{ this._parent.get_name() }}.on("overlayadd", function (e) {
            if (e.layer === layer) { layer.bringToBack(); }
          });
        })();
        {% endmacro %}
    """)

    def __init__(self, layer):
        super().__init__()
        self._name = "BottomLayer"
        self.layer = layer


def review_map(session: Session, area: str, start: datetime, end: datetime, audience: Audience, *,
               locale: str = "zh", basemaps: Basemaps | None = None, emerging: bool = True,
               bandwidth_m: float = heat.DEFAULT_BANDWIDTH_M) -> folium.Map:
    """The month's review map of an area: risk, heat, hot spots, emerging hot spots, change,
    boundaries — as `audience` may read them. Every text in a tooltip or popup is escaped, since
    folium writes them into the page as HTML."""
    t = LABELS.get(locale, LABELS["zh"])
    audience.scope.area(session, area)
    geom = selection.area_geometry(session, area)
    west, south, east, north = geom.bounds
    m = folium.Map(location=[(south + north) / 2, (west + east) / 2], zoom_start=11, tiles=None,
                   control_scale=False, prefer_canvas=True)
    MetricScale().add_to(m)
    add_basemaps(m, basemaps or Basemaps(), t)
    m.fit_bounds([[south, west], [north, east]])

    # The village outlines go first, and back to the bottom whenever switched on again (BottomLayer):
    # on the one canvas the layer drawn last answers the pointer, so the analysis layers' tooltips
    # must be above the outlines.
    villages = json.loads(areas.features(session, audience.scope, level=3, parent=area))
    if not villages["features"] and areas.area_row(session, area)["level"] == 3:
        villages = json.loads(areas.features(session, audience.scope, level=3,
                                             bbox=(west, south, east, north)))
    _escape(villages, ("name",))
    village_layer = folium.GeoJson(villages, name=t["villages"], style_function=lambda f: {
        "color": "#2d3748", "weight": 1.6, "fill": False, "opacity": 0.8},
        tooltip=folium.GeoJsonTooltip(["name"], [t["name"]]))
    village_layer.add_to(m)
    BottomLayer(village_layer).add_to(m)

    risk_fc = risk.features(session, area, now=end)
    for f in risk_fc["features"]:
        p = f["properties"]
        p["level_label"] = t[p["level"]]
        p["why"] = "；".join(r.get("zh" if locale == "zh" else "en", "") for r in p["reasons"])
    _escape(risk_fc, ("name", "why"))
    risk_layer = folium.GeoJson(
        risk_fc, name=t["risk"], style_function=_risk_style, highlight_function=_highlight,
        tooltip=folium.GeoJsonTooltip(["name", "level_label", "score", "why"],
                                      [t["name"], t["level"], t["score"], t["reasons"]], max_width=420),
        popup=folium.GeoJsonPopup(["name", "level_label", "score", "why"],
                                  [t["name"], t["level"], t["score"], t["reasons"]], max_width=420))
    risk_layer.add_to(m)

    month = selection.Selection(area, (), start, end, audience)
    surf = heat.surface(session, month, bandwidth_m)
    hp = heat.heat_points(surf)
    if hp["points"]:
        HeatMap(hp["points"], name=t["heat"], radius=14, blur=18, min_opacity=0.25, max_zoom=13,
                show=False).add_to(m)
    ov = heat.overlay(surf)
    heat_layer = folium.raster_layers.ImageOverlay(ov["image"], bounds=ov["bounds"], name=t["heat_png"],
                                                   opacity=0.85, show=True, zindex=2)
    heat_layer.add_to(m)

    # Hot spots over the year to the month's end: with permutation inference a single month holds
    # too few incidents per hexagon to clear the false discovery rate; chronic places are the point.
    year = selection.Selection(area, (), _months_back(end, 12), end, audience)
    hs = hotspots.hexagons(session, year)
    hs["features"] = [f for f in hs["features"] if f["properties"]["bin"] != 0]
    for f in hs["features"]:
        p = f["properties"]
        p["class_label"] = t[p["class"]]
        p["why"] = t["hot_why"].format(z=p["z"], p=p["p"], k=p["neighbours"], sum=p["band_count"])
    inference = hs["analysis"]["inference"]
    method = t[f"inference_{inference}"].format(n=hs["analysis"]["permutations"])
    hot_layer = None
    if hs["features"]:
        hot_layer = folium.GeoJson(hs, name=t["hot"], style_function=_hot_style,
                                   tooltip=folium.GeoJsonTooltip(["class_label", "count", "why"],
                                                                 [t["class"], t["count"], t["reasons"]],
                                                                 max_width=360))
        hot_layer.add_to(m)
    emerging_layer = None
    if emerging:
        eh = hotspots.emerging(session, year)
        eh["features"] = [f for f in eh["features"] if f["properties"]["pattern"] != "none"]
        for f in eh["features"]:
            pattern, kind = f["properties"]["pattern"].rsplit("_", 1)
            f["properties"]["pattern_label"] = f"{t[pattern]}{t[kind + '_suffix']}" if locale == "zh" \
                else f"{t[pattern]} {t[kind + '_suffix']}"
            f["properties"]["trend_label"] = t[f["properties"]["count_trend"]["direction"]]
            counts = f["properties"]["counts"]
            f["properties"]["why"] = t["pattern_why"].format(n=len(counts), counts=" ".join(map(str, counts)))
        if eh["features"]:
            emerging_layer = folium.GeoJson(
                eh, name=t["emerging"], style_function=_pattern_style, show=False,
                tooltip=folium.GeoJsonTooltip(["pattern_label", "total", "trend_label", "why"],
                                              [t["pattern"], t["count"], t["trend"], t["reasons"]],
                                              max_width=360))
            emerging_layer.add_to(m)

    comparison = compare(session, area, start, end, audience)
    change = {g["code"]: g for g in comparison["grids"]}
    change_fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": f["geometry"],
         "properties": {"name": f["properties"]["name"], **{k: change[f["id"]][k] for k in ("this", "last", "change")}}}
        for f in risk_fc["features"] if f["id"] in change]}
    _escape(change_fc, ("name",))
    folium.GeoJson(change_fc, name=t["change"], style_function=_change_style, show=False,
                   tooltip=folium.GeoJsonTooltip(["name", "this", "last", "change"],
                                                 [t["name"], t["this"], t["last"], t["delta"]])).add_to(m)


    # One legend section per layer, shown while its layer is (Legend's script follows the switch).
    sections: list[tuple] = [
        (risk_layer, t["legend_risk"], [(RISK_HEX[level], t[level]) for level in reversed(risk.LEVELS)], None),
        (heat_layer, t["heat_legend"], [(_ramp_hex(0.3), t["heat_low"]),
                                        (_ramp_hex(1.0), t["heat_high"].format(top=ov["ramp_top_density"]))], None)]
    if hot_layer is not None:
        sections.append((hot_layer, t["legend_hot"],
                         [(HOT_HEX[b], t[hotspots.bin_label(b)]) for b in (3, 2, 1, -1, -2, -3)], method))
    if emerging_layer is not None:
        shown = dict.fromkeys(f["properties"]["pattern"].rsplit("_", 1)[0] for f in eh["features"])
        sections.append((emerging_layer, t["emerging"], [(PATTERN_HEX[pattern], t[pattern]) for pattern in shown],
                         None))
    Legend(sections).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def area_choices(session: Session, scope: Scope) -> Sequence:
    """The districts and townships of a scope an analyst can pick for the review (code, name, level)."""
    inside, params = scope.sql()
    return session.execute(text(f"SELECT a.code, a.name, a.level FROM areas a WHERE a.level <= 2 "
                                f"AND {inside} ORDER BY a.level, a.code"), params).all()


def _escape(collection: dict, keys: tuple[str, ...]) -> None:
    """Escape the text properties folium will write into its tooltips and popups as HTML."""
    for f in collection["features"]:
        props = f["properties"]
        for key in keys:
            if isinstance(props.get(key), str):
                props[key] = html_lib.escape(props[key])


def _months_back(end: datetime, months: int) -> datetime:
    start = end
    for _ in range(months):
        start = selection.previous_month(start)[0]
    return start


def _ramp_hex(value: float) -> str:
    """The heat overlay's colour at a point of its ramp (0…1)."""
    rgb = [int(round(float(np.interp(value, heat.RAMP[:, 0], heat.RAMP[:, k])))) for k in (1, 2, 3)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _risk_style(feature: dict) -> dict:
    level = feature["properties"]["level"]
    return {"fillColor": RISK_HEX[level], "color": "#4a5568", "weight": 0.6, "fillOpacity": 0.45}


def _highlight(_feature: dict) -> dict:
    return {"weight": 2.5, "color": "#1a202c"}


def _hot_style(feature: dict) -> dict:
    colour = HOT_HEX[feature["properties"]["bin"]]
    return {"fillColor": colour, "color": colour, "weight": 0.5, "fillOpacity": 0.75}


def _pattern_style(feature: dict) -> dict:
    pattern, kind = feature["properties"]["pattern"].rsplit("_", 1)
    colour = PATTERN_HEX[pattern]
    return {"fillColor": colour, "color": "#2b6cb0" if kind == "cold" else "#742a2a",
            "weight": 1.2, "fillOpacity": 0.7, "dashArray": "4" if kind == "cold" else None}


def _change_style(feature: dict) -> dict:
    d = feature["properties"]["change"]
    colour = "#f7fafc" if d == 0 else ("#c53030" if d >= 5 else "#fc8181" if d > 0 else
                                      "#2f855a" if d <= -5 else "#9ae6b4")
    return {"fillColor": colour, "color": "#718096", "weight": 0.5, "fillOpacity": 0.7}

"""The basemaps of the review's folium map: the same as every page's map offers (the self-served
vector basemap, OpenStreetMap, Tianditu with a key, none), the one the reader chose shown, and the
reader's choice on the map told to the page around it."""
from __future__ import annotations

from dataclasses import dataclass

import folium
from branca.element import MacroElement
from folium.elements import JSCSSMixin
from folium.template import Template

from geo import settings

from . import basemap

# How every page paints the self-served basemap (an ES module with one export, localBasemap); a
# map document of its own runs it as a plain script.
BASEMAP_STYLE = settings.PROJECT_ROOT / "web" / "static" / "js" / "layers" / "basemap.js"


@dataclass(frozen=True)
class Basemaps:
    """The basemaps a review map offers, as every page's map does (web/static/js/lib/map.js), and
    the one it opens on (`chosen`, one of basemap.CHOICES; "none" when that one is not offered)."""

    chosen: str = "none"
    local_url: str | None = None      # the self-served basemap's {z}/{x}/{y}.mvt template
    local_maxzoom: int = basemap.MAXZOOM
    local_attribution: str = ""
    osm_url: str | None = None
    tianditu_key: str | None = None


class LocalBasemap(JSCSSMixin, folium.map.Layer):
    """The self-served vector basemap, painted by protomaps-leaflet exactly as on the other pages."""

    default_js = [("protomaps-leaflet", "protomaps-leaflet.js")]
    _template = Template("""
        {% macro header(this, kwargs) %}
        <script>window.anwangLocalBasemap = (function () { {{ this.style }}
          return localBasemap; })();</script>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = window.anwangLocalBasemap({{ this.url|tojson }}, {{ this.options|tojson }});
        {% endmacro %}
    """)

    def __init__(self, url: str, *, maxzoom: int, attribution: str, name: str, show: bool):
        super().__init__(name=name, overlay=False, show=show)
        self._name = "LocalBasemap"
        self.url = url
        self.options = {"maxzoom": maxzoom, "attribution": attribution}
        source = BASEMAP_STYLE.read_text(encoding="utf-8")
        if source.count("export ") != 1 or "import " in source:
            raise RuntimeError(f"{BASEMAP_STYLE.name} must keep one export and no imports to run in a map document")
        self.style = source.replace("export function", "function").replace("</script", "<\\/script")


class BasemapChoice(MacroElement):
    """Say which basemap the map shows (body data-basemap) and tell the page around it when the
    reader picks another, so that every page keeps that choice."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function () {
          var keys = {{ this.keys|tojson }};
          document.body.dataset.basemap = {{ this.chosen|tojson }};
          {{ this._parent.get_name() }}.on("baselayerchange", function (e) {
            var key = keys[e.name];
            if (!key) { return; }
            document.body.dataset.basemap = key;
            window.parent.postMessage({basemap: key}, "*");
          });
        })();
        {% endmacro %}
    """)

    def __init__(self, keys: dict, chosen: str):
        super().__init__()
        self._name = "BasemapChoice"
        self.keys = keys
        self.chosen = chosen


def add_basemaps(m: folium.Map, choice: Basemaps, t: dict) -> None:
    """The basemaps offered, in the layer switch, the chosen one shown (nothing when none is)."""
    offered = [key for key, there in (("local", choice.local_url), ("osm", choice.osm_url),
                                      ("tianditu", choice.tianditu_key), ("none", True)) if there]
    if offered == ["none"]:
        return
    chosen = choice.chosen if choice.chosen in offered else "none"
    for key in offered:
        name, show = t[f"basemap_{key}"], key == chosen
        layer: folium.map.Layer
        if key == "local":
            layer = LocalBasemap(str(choice.local_url), maxzoom=choice.local_maxzoom,
                                 attribution=choice.local_attribution, name=name, show=show)
        elif key == "osm":
            layer = folium.TileLayer(choice.osm_url, attr="© OpenStreetMap contributors", name=name,
                                     max_zoom=19, show=show)
        else:
            layer = folium.FeatureGroup(name=name, overlay=False, show=show)
            for part in ("vec", "cva") if key == "tianditu" else ():   # roads, then their labels
                folium.TileLayer(basemap.TIANDITU_URL, attr="© 天地图", layer=part, tk=choice.tianditu_key,
                                 subdomains="01234567", max_zoom=18, control=False).add_to(layer)
        layer.add_to(m)
    BasemapChoice({t[f"basemap_{key}"]: key for key in offered}, chosen).add_to(m)

"""Tiles through the system Chromium with the network closed: the basemap's TileJSON and one of its
tiles (gzip-encoded over the wire, decoded here), the self-served basemap drawn on the dashboard
with its streets and Chinese names, and a real OpenStreetMap extract (Liechtenstein) drawn the same
way. Every request stays on this machine."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from geo import db, osm
from tests import mvt
from tests.browser import login, open_page, wait_for

pytestmark = pytest.mark.browser

FETCH = """async (url) => {
    const r = await fetch(url);
    const body = new Uint8Array(await r.arrayBuffer());
    return {status: r.status, type: r.headers.get("content-type"), encoding: r.headers.get("content-encoding"),
            cache: r.headers.get("cache-control"), bytes: Array.from(body)};
}"""

# The page's basemap (lib/map.js), and what the protomaps-leaflet layer has drawn at the current
# zoom: the labels it placed (its label index keeps no text, so their number) and the basemap
# features under a point.
BASEMAP = "window.anwangTest?.basemap?.key === 'local' && window.anwangTest.basemap.layer"
DRAWN = f"""([lng, lat]) => {{
    const layer = {BASEMAP};
    if (!layer || !layer._map) return null;
    const index = layer.labelers.getIndex(layer._tileZoom);   // the zoom its tiles are drawn at
    const picked = lng === null ? [] : layer.queryTileFeaturesDebug(lng, lat, 24).get("") || [];
    const drawn = document.querySelectorAll(".leaflet-tile-container canvas.leaflet-tile-loaded").length;
    return {{labels: index ? index.tree.all().length : 0, drawn,
             layers: picked.map((p) => p.layerName),
             names: picked.map((p) => p.feature.props.name).filter(Boolean)}};
}}"""


def _drawn(page, point, want_layers, timeout=20000):
    """Wait until the basemap has drawn tiles and names, with these layers under `point`."""
    return wait_for(page, f"""(() => {{ const d = ({DRAWN})({json.dumps(list(point))});
                                 return d && d.labels > 0 && d.drawn > 0
                                        && {json.dumps(sorted(want_layers))}.every((n) => d.layers.includes(n))
                                        ? d : null; }})()""", timeout=timeout)


def test_basemap_tilejson_and_a_tile_offline(live_server, browser, engine, demo, artifacts):
    with engine.connect() as conn:
        lon, lat = conn.execute(text("SELECT ST_X(ST_PointN(geom, 1)), ST_Y(ST_PointN(geom, 1)) FROM roads "
                                     "WHERE district_code = '411103' AND road_class = 'urban' "
                                     "ORDER BY id LIMIT 1")).one()
        compound = conn.execute(text("SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(geom) AS c FROM places "
                                     "WHERE kind = 'compound' ORDER BY id LIMIT 1) p")).one()
    base = live_server(BASEMAP="local")
    external, errors = [], []
    page = open_page(browser, base, external, errors)
    try:
        page.goto(f"{base}/tiles/basemap.json")
        doc = json.loads(page.inner_text("body"))
        assert doc["tilejson"] == "3.0.0" and doc["tiles"] == [f"{base}/tiles/basemap/{{z}}/{{x}}/{{y}}.mvt"]

        def fetch(z, point):
            x, y = mvt.tile_of(z, *point)
            got = page.evaluate(FETCH, doc["tiles"][0].replace("{z}", str(z)).replace("{x}", str(x))
                                .replace("{y}", str(y)))
            assert got["status"] == 200 and got["type"] == "application/vnd.mapbox-vector-tile"
            assert got["encoding"] == "gzip" and got["cache"].startswith("public")
            return mvt.decode(bytes(got["bytes"]))

        streets = fetch(15, (lon, lat))
        assert streets["roads"].features and all(f.properties["name"] for f in streets["roads"].features)
        houses = fetch(16, compound)                             # a 小区 and its numbered buildings
        assert houses["landuse"].features[0].properties["class"] == "residential"
        assert any(f.properties["name"].endswith("号楼") for f in houses["buildings"].features)
    finally:
        page.context.close()
    assert external == [] and errors == []


# Every page with a Leaflet map (/review draws its own in a frame), as the user who may open it.
MAP_PAGES = ("/", "/dispatch", "/planner", "/report", "/public")


def test_every_map_page_draws_the_local_basemap_with_names_offline(live_server, browser, browser_user, artifacts):
    base = live_server(BASEMAP="local")
    external, errors = [], []
    page = open_page(browser, base, external, errors)
    try:
        login(page, base, *browser_user)
        for path in MAP_PAGES:
            page.goto(f"{base}{path}")
            drawn = wait_for(page, f"""(() => {{ const d = ({DRAWN})([null, null]);
                                         return d && d.labels > 0 && d.drawn > 0 ? d : null; }})()""",
                             timeout=20000)
            assert drawn["labels"] > 0, path
            page.wait_for_timeout(300)
            page.screenshot(path=str(artifacts / f"basemap-page-{path.strip('/') or 'dashboard'}.png"))
    except Exception:
        page.screenshot(path=str(artifacts / "basemap-page-failure.png"))
        raise
    finally:
        page.context.close()
    assert external == [] and errors == []


def test_the_dashboard_draws_the_local_basemap_with_streets_and_names(live_server, browser, browser_user,
                                                                      engine, artifacts):
    with engine.connect() as conn:
        road, (lon, lat) = conn.execute(text(
            "SELECT name, ARRAY[ST_X(ST_LineInterpolatePoint(geom, 0.5)), ST_Y(ST_LineInterpolatePoint(geom, 0.5))] "
            "FROM roads WHERE district_code = '411103' AND road_class = 'urban' AND ST_Length(geom::geography) > 500 "
            "ORDER BY id LIMIT 1")).one()
    base = live_server(BASEMAP="local")
    external, errors, tiles = [], [], []
    page = open_page(browser, base, external, errors)
    page.on("request", lambda r: tiles.append(r.url) if "/tiles/" in r.url else None)
    try:
        login(page, base, *browser_user)
        wait_for(page, "document.body.dataset.shownLevel === '2'", timeout=15000)
        page.uncheck("#risk-toggle")                            # the streets, not the four colours
        page.uncheck("#incident-show")
        config = json.loads(page.inner_text("#map-config"))
        assert config["basemap"] == "local"
        assert config["tiles"]["basemap"]["url"] == "/tiles/basemap/{z}/{x}/{y}.mvt"
        assert page.evaluate(f"Boolean({BASEMAP})")
        assert page.evaluate("window.anwangTest.basemap.layer._map === window.anwangTest.map")
        page.evaluate("([lat, lng]) => window.anwangTest.map.setView([lat, lng], 16, {animate: false})", [lat, lon])
        drawn = _drawn(page, (lon, lat), {"roads"})
        assert road in drawn["names"]                           # the street under the point, by its name
        assert drawn["labels"] >= 3                             # names placed on the map
        assert any("/tiles/basemap/16/" in url for url in tiles)
        page.wait_for_timeout(300)
        page.screenshot(path=str(artifacts / "map-local-basemap.png"))
    except Exception:
        page.screenshot(path=str(artifacts / "map-local-basemap-failure.png"))
        raise
    finally:
        page.context.close()
    assert external == [] and errors == []


@pytest.mark.realdata
def test_a_real_extract_renders_as_its_own_basemap(live_server, browser, browser_user, engine, realdata,
                                                   artifacts):
    vaduz = (9.5227962, 47.1392862)
    extract = realdata / "osm" / "liechtenstein-2013-08-03.osm.pbf"
    with db.session_scope(engine) as s:
        source = osm.load(s, extract).source
    base = live_server(BASEMAP="local")
    external, errors = [], []
    page = open_page(browser, base, external, errors)
    try:
        login(page, base, *browser_user)
        wait_for(page, "document.body.dataset.shownLevel === '2'", timeout=15000)
        page.evaluate("([lat, lng]) => window.anwangTest.map.setView([lat, lng], 15, {animate: false})",
                      [vaduz[1], vaduz[0]])
        drawn = _drawn(page, vaduz, {"places"})
        assert "瓦都茲" in drawn["names"]                        # name:zh before name
        assert drawn["labels"] >= 10
        page.wait_for_timeout(300)
        page.screenshot(path=str(artifacts / "map-local-basemap-vaduz.png"))
    except Exception:
        page.screenshot(path=str(artifacts / "map-local-basemap-vaduz-failure.png"))
        raise
    finally:
        page.context.close()
        with db.session_scope(engine) as s:
            osm.remove(s, source)
    assert external == [] and errors == []

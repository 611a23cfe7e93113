"""/tiles over HTTP: who may read which layer, ETag and 304, gzip (of tiles and of every text
response), Cache-Control per layer, TileJSON, the public map's tile, and the one error shape."""
from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta

import pytest

from layers.selection import TZ
from tests import mvt, town
from tests.layers.incidents import add_incident

GZIP = {"Accept-Encoding": "gzip, deflate"}


def url(layer: str, z: int, lon: float, lat: float) -> str:
    x, y = mvt.tile_of(z, lon, lat)
    return f"/tiles/{layer}/{z}/{x}/{y}.mvt"


def test_anonymous_readers_get_the_basemap_and_the_public_map_only(client, tiny):
    for layer in ("areas", "risk", "coverage", "incidents"):
        r = client.get(url(layer, 14, 10.005, 10.005))
        assert r.status_code == 401, layer
        assert set(r.get_json()["error"]) == {"code", "message", "field"}
        assert client.get(f"/tiles/{layer}.json").status_code == 401
    basemap = client.get(url("basemap", 14, 10.005, 10.005))
    assert basemap.status_code == 200
    # Any map may draw the anonymous layers, the review's sandboxed frame (an opaque origin) included.
    assert basemap.headers["Access-Control-Allow-Origin"] == "*"
    assert client.get("/tiles/basemap.json").status_code == 200


def _map_config(html: str) -> dict:
    start = html.index('<script id="map-config" type="application/json">') + 48
    return json.loads(html[start:html.index("</script>", start)])


def test_pages_are_told_the_tile_layers_their_reader_may_read(client, login, tiny):
    login("grid_worker", "TZ1A1")
    page = client.get("/")
    assert page.status_code == 200 and "protomaps-leaflet/protomaps-leaflet.js" in page.get_data(as_text=True)
    layers = _map_config(page.get_data(as_text=True))["tiles"]
    assert set(layers) == {"areas", "risk", "incidents", "public", "basemap"}       # no coverage for them
    assert layers["basemap"]["url"] == "/tiles/basemap/{z}/{x}/{y}.mvt"
    assert layers["basemap"]["maxzoom"] == 16 and "OpenStreetMap" in layers["basemap"]["attribution"]
    login("analyst", "TZ")
    assert "coverage" in _map_config(client.get("/").get_data(as_text=True))["tiles"]
    assert client.get("/vendor/protomaps-leaflet/protomaps-leaflet.js").status_code == 200


def test_roles_as_the_api_has_them(client, login, tiny):
    login("grid_worker", "TZ1A1")
    assert client.get(url("coverage", 14, 10.005, 10.005)).status_code == 403
    assert client.get("/api/coverage").status_code == 403
    assert client.get(url("incidents", 14, 10.005, 10.005)).status_code == 200
    login("analyst", "TZ")
    assert client.get(url("coverage", 14, 10.005, 10.005)).status_code == 200


def test_etag_and_not_modified(client, login, tiny):
    login("analyst", "TZ")
    first = client.get(url("areas", 13, 10.005, 10.01))
    assert first.status_code == 200 and first.mimetype == "application/vnd.mapbox-vector-tile"
    assert first.headers["X-Tile-Cache"] == "miss" and first.headers["Cache-Control"] == "private, no-cache"
    etag = first.headers["ETag"]
    again = client.get(url("areas", 13, 10.005, 10.01), headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    assert again.headers["X-Tile-Cache"] == "hit"
    other = client.get(url("areas", 13, 10.005, 10.01), headers={"If-None-Match": '"0000"'})
    assert other.status_code == 200 and other.data == first.data
    assert "app;dur=" in other.headers["Server-Timing"]


def test_tiles_are_gzip_encoded_for_clients_that_accept_it(client, login, session, tiny):
    login("dispatcher", "TZ")
    add_incident(session, 10.005, 10.005, occurred_at=datetime.now(TZ) - timedelta(days=1))
    plain = client.get(url("incidents", 15, 10.005, 10.005))
    zipped = client.get(url("incidents", 15, 10.005, 10.005), headers=GZIP)
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(zipped.data) == plain.data
    assert mvt.decode(plain.data)["incidents"].features


def test_every_text_response_is_gzip_encoded_when_accepted(client, login, tiny):
    login("analyst", "TZ")
    r = client.get("/api/areas?level=4", headers=GZIP)
    assert r.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in r.headers["Vary"]
    assert len(json.loads(gzip.decompress(r.data))["features"]) == 8
    assert "Content-Encoding" not in client.get("/api/areas?level=4").headers
    page = client.get("/", headers=GZIP)
    assert page.headers["Content-Encoding"] == "gzip" and b"<html" in gzip.decompress(page.data)
    script = client.get("/static/js/lib/map.js", headers=GZIP)
    assert script.headers["Content-Encoding"] == "gzip" and script.headers["ETag"].startswith('W/"')
    assert client.get("/static/js/lib/map.js", headers=GZIP).data == script.data     # kept in memory
    leaflet = client.get("/vendor/leaflet/leaflet.js", headers=GZIP)
    assert leaflet.headers["Content-Encoding"] == "gzip" and gzip.decompress(leaflet.data).startswith(b"/*")
    small = client.get("/api/me", headers=GZIP)
    assert "Content-Encoding" not in small.headers                               # under a kilobyte


def test_the_live_stream_is_not_compressed(client, login, tiny):
    login("dispatcher", "TZ")
    r = client.get("/api/live?max_seconds=0.1", headers=GZIP)
    assert r.mimetype == "text/event-stream" and "Content-Encoding" not in r.headers


def test_basemap_is_public_and_long_lived(client, login, tiny):
    login("analyst", "TZ")
    r = client.get(url("basemap", 12, 10.005, 10.005))
    assert r.headers["Cache-Control"] == "public, max-age=86400"
    assert r.headers["Vary"] == "Accept-Encoding"           # the same for everyone: shared caches may keep it


def test_tilejson_gives_absolute_tile_urls_bounds_and_fields(client, login, tiny):
    login("analyst", "TZ1")
    doc = client.get("/tiles/areas.json").get_json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"] == ["http://localhost/tiles/areas/{z}/{x}/{y}.mvt"]
    assert doc["bounds"] == pytest.approx([10.0, 10.0, 10.02, 10.04])
    assert {v["id"] for v in doc["vector_layers"]} == {"areas", "area_labels"}
    assert doc["vector_layers"][0]["fields"]["risk"] == "String"
    basemap = client.get("/tiles/basemap.json").get_json()
    assert {v["id"] for v in basemap["vector_layers"]} == {"water", "landuse", "buildings", "roads", "railways",
                                                            "places"}
    assert "OpenStreetMap" in basemap["attribution"]


@pytest.mark.parametrize("path,field", [("/tiles/areas/25/0/0.mvt", "z"), ("/tiles/areas/2/4/0.mvt", "x"),
                                        ("/tiles/areas/2/0/9.mvt", "y")])
def test_bad_addresses_are_400_naming_the_field(client, login, tiny, path, field):
    login("analyst", "TZ")
    r = client.get(path)
    assert r.status_code == 400 and r.get_json()["error"]["field"] == field


def test_the_public_tile_carries_only_rounded_release_counts(lone_client, lone):
    town.add_tiny(lone)
    now = datetime.now(TZ)
    last_month = (now.replace(day=1) - timedelta(days=1)).replace(day=5, hour=10)
    for _ in range(7):
        add_incident(lone, 10.005, 10.005, occurred_at=last_month)
    add_incident(lone, 10.0051, 10.0052, occurred_at=last_month, sensitive=True)
    r = lone_client.get(url("public", 12, 10.005, 10.005))                # no login
    assert r.status_code == 200 and r.headers["Cache-Control"].startswith("public")
    decoded = mvt.decode(r.data)
    assert set(decoded) == {"public_grids", "public_hexagons"}
    grids = {f.properties["code"]: f.properties for f in decoded["public_grids"].features}
    assert set(grids["TZ1A1"]) == {"code", "name", "count_3", "count_12"}
    assert grids["TZ1A1"]["count_12"] in (5, 10) and grids["TZ1A1"]["count_3"] == grids["TZ1A1"]["count_12"]
    for layer in decoded.values():
        for f in layer.features:
            assert f.type == "Polygon"
            assert all(v % 5 == 0 for k, v in f.properties.items() if k.startswith("count"))
    assert b"\xe6\xb5\x8b\xe8\xaf\x95\xe4\xba\x8b\xe4\xbb\xb6" not in r.data        # 测试事件: no text of incidents
    doc = lone_client.get("/tiles/public.json").get_json()
    assert doc["bounds"] == pytest.approx([10.0, 10.0, 10.04, 10.04])


def test_openapi_documents_the_tile_endpoints(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for layer in ("areas", "risk", "coverage", "incidents", "public", "basemap"):
        assert f"/tiles/{layer}/{{z}}/{{x}}/{{y}}.mvt" in paths and f"/tiles/{layer}.json" in paths
    assert paths["/tiles/basemap/{z}/{x}/{y}.mvt"]["get"]["security"] == []

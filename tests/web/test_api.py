"""The area API: GeoJSON by level/subtree/bbox, detail, lookup, health, the one error shape."""
import pytest

from geo import crs


def test_health_is_public(client):
    body = client.get("/api/health").get_json()
    assert body["status"] == "ok" and body["postgis"].startswith("3.") and body["schema"]


def test_areas_by_level_and_subtree(client, login, tiny):
    login("analyst", "TZ")
    fc = client.get("/api/areas?level=grid&parent=TZ1").get_json()
    assert fc["type"] == "FeatureCollection"
    assert [f["id"] for f in fc["features"]] == ["TZ1A1", "TZ1A2", "TZ1B1", "TZ1B2"]
    props = fc["features"][0]["properties"]
    assert props["level"] == 4 and props["parent_code"] == "TZ1A" and props["households"] == 300
    assert fc["features"][0]["geometry"]["type"] == "MultiPolygon"
    by_number = client.get("/api/areas?level=3&parent=TZ").get_json()
    assert {f["id"] for f in by_number["features"]} == {"TZ1A", "TZ1B", "TZ2A", "TZ2B"}


def test_areas_bbox_uses_lon_lat_order(client, login, tiny):
    login("analyst", "TZ")
    fc = client.get("/api/areas?level=4&bbox=10.001,10.001,10.009,10.009").get_json()
    assert [f["id"] for f in fc["features"]] == ["TZ1A1"]
    assert client.get("/api/areas?level=4&bbox=10.031,10.031,10.039,10.039").get_json()[
        "features"][0]["id"] == "TZ2B2"


def test_geojson_is_rfc7946(client, login, tiny):
    login("analyst", "TZ")
    response = client.get("/api/areas?level=1&parent=")
    assert response.mimetype == "application/geo+json"
    ring = [f for f in response.get_json()["features"] if f["id"] == "TZ"][0]["geometry"][
        "coordinates"][0][0]
    assert ring[0] == ring[-1] and ring[0][0] == pytest.approx(10.0)  # lon first


def test_area_detail_has_path_staff_and_children(client, login, tiny):
    login("analyst", "TZ")
    feature = client.get("/api/areas/TZ1A").get_json()
    p = feature["properties"]
    assert [a["code"] for a in p["path"]] == ["TZ", "TZ1", "TZ1A"]
    assert p["children"] == 2 and p["staff"] == []


def test_lookup_returns_the_four_level_path(client, login, tiny):
    login("dispatcher", "TZ")
    body = client.get("/api/lookup?lon=10.031&lat=10.005").get_json()
    assert body["inside"] is True
    assert [a["code"] for a in body["path"]] == ["TZ", "TZ2", "TZ2A", "TZ2A2"]
    assert [a["level"] for a in body["path"]] == [1, 2, 3, 4]


def test_lookup_on_a_shared_edge_is_deterministic(client, login, tiny):
    login("dispatcher", "TZ")
    first = client.get("/api/lookup?lon=10.01&lat=10.005").get_json()["area"]["code"]
    assert all(client.get("/api/lookup?lon=10.01&lat=10.005").get_json()["area"]["code"] == first
               for _ in range(3))
    assert first in ("TZ1A1", "TZ1A2")


def test_lookup_accepts_gcj02_and_bd09(client, login, tiny):
    login("dispatcher", "TZ")
    # (10°E, 10°N) lies outside China's offset box, so these convert to themselves; the
    # conversion itself is checked against the 郾城区 demo in tests/geo/test_demo_region.py.
    glon, glat = crs.wgs84_to_gcj02(10.031, 10.005)
    assert client.get(f"/api/lookup?lon={glon}&lat={glat}&crs=gcj02").get_json()["area"][
        "code"] == "TZ2A2"


def test_lookup_outside_and_swapped(client, login, tiny):
    login("dispatcher", "TZ")
    outside = client.get("/api/lookup?lon=50&lat=50").get_json()
    assert outside["inside"] is False and outside["path"] == []
    assert "outside" in outside["message"]
    swapped = client.get("/api/lookup?lon=10.005&lat=10.031").get_json()
    assert swapped["inside"] is True  # inside with lon, lat as given: no hint needed
    hint = client.get("/api/lookup?lon=10.005&lat=10.1").get_json()
    assert hint["inside"] is False


BAD_REQUESTS = [
    ("/api/areas?level=7", "level"),
    ("/api/areas?level=county", "level"),
    ("/api/areas?bbox=a,b", "bbox"),
    ("/api/areas?bbox=1,2,3", "bbox"),
    ("/api/areas?bbox=10,10,9,9", "bbox"),
    ("/api/areas?parent=NOPE", "parent"),
    ("/api/lookup?lat=33", "lon"),
    ("/api/lookup?lon=abc&lat=33", "lon"),
    ("/api/lookup?lon=114&lat=95", "lat"),
    ("/api/lookup?lon=nan&lat=33", "lon"),
    ("/api/lookup?lon=114&lat=33&crs=mars", "crs"),
    ("/api/areas/NOPE", "code"),
]


@pytest.mark.parametrize("url,field", BAD_REQUESTS)
def test_bad_input_is_a_4xx_naming_the_field(client, login, tiny, url, field):
    login("analyst", "TZ")
    response = client.get(url)
    assert 400 <= response.status_code < 500
    error = response.get_json()["error"]
    assert set(error) >= {"code", "message", "field"}
    assert error["field"] == field and error["message"]


def test_every_4xx_has_the_same_json_shape(client, login, tiny):
    shapes = []
    shapes.append(client.get("/api/areas"))                       # 401, not logged in
    login("grid_worker", "TZ1A1")
    shapes.append(client.get("/api/nowhere"))                     # 404, unknown route
    shapes.append(client.delete("/api/areas"))                    # 405
    shapes.append(client.post("/api/areas", json={}))             # 405 (routing before CSRF)
    shapes.append(client.get("/api/areas?level=9"))               # 400
    statuses = [r.status_code for r in shapes]
    assert statuses == [401, 404, 405, 405, 400]
    for r in shapes:
        body = r.get_json()
        assert list(body) == ["error"] and set(body["error"]) >= {"code", "message", "field"}


def test_openapi_lists_the_endpoints(client):
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert {"/api/areas", "/api/areas/{code}", "/api/lookup", "/api/health"} <= set(doc["paths"])


def test_every_api_and_tile_route_is_in_the_openapi_document(app, client):
    import re

    paths = client.get("/api/openapi.json").get_json()["paths"]
    shape = lambda p: re.sub(r"\{[^}]+\}", "{}", p)   # noqa: E731 — parameter names may differ
    documented = {(shape(p), m.upper()) for p, ops in paths.items() for m in ops}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/", "/tiles/")):
            path = shape(re.sub(r"<(?:[a-z]+:)?[a-z_]+>", "{x}", rule.rule))
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (path, method) in documented, (rule.rule, method)

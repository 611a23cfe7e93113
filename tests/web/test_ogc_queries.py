"""What the OGC collections answer: the caller's scope on every collection, sensitive incidents
generalised as /api/incidents does, CRSs and axis order, datetime, CQL2 filters and queryables as
query parameters — each checked against the database or PROJ, not against the code under test."""
from __future__ import annotations

from urllib.parse import quote

import pytest
from pyproj import Transformer
from sqlalchemy import text

from layers import features
from layers.features import cql
from tests.web.ogc_common import SENSITIVE_IN, SENSITIVE_OUT, add_world, get_json, token

COLLECTIONS = ("districts", "townships", "villages", "grids", "risk", "coverage", "incidents", "entities")
OUTSIDE = ("TZ2", "秘密地址乙", str(SENSITIVE_OUT[0]), str(SENSITIVE_OUT[1]))


@pytest.fixture()
def world(session, tiny):
    return add_world(session)


def _ids(client, url: str, headers: dict) -> list:
    return [f["id"] for f in get_json(client, url, headers)["features"]]


def test_every_collection_keeps_to_the_scope(client, session, make_user, world):
    dispatcher = token(session, make_user, "dispatcher", "TZ1")
    expected = {"districts": ["TZ"], "townships": ["TZ1"], "villages": ["TZ1A", "TZ1B"],
                "grids": ["TZ1A1", "TZ1A2", "TZ1B1", "TZ1B2"], "risk": ["TZ1A1", "TZ1A2", "TZ1B1", "TZ1B2"],
                "coverage": ["TZ1A1", "TZ1A2", "TZ1B1", "TZ1B2"],
                "incidents": [world["p_in"], world["s_in"]], "entities": [world["e_in"]]}
    for cid in COLLECTIONS:
        response = client.get(f"/ogc/collections/{cid}/items", headers=dispatcher)
        assert response.status_code == 200, cid
        body = response.get_data(as_text=True)
        assert [f["id"] for f in response.get_json()["features"]] == expected[cid], cid
        assert not [mark for mark in OUTSIDE if mark in body], cid
        extent = get_json(client, f"/ogc/collections/{cid}", dispatcher)["extent"]["spatial"]["bbox"][0]
        assert extent[2] <= 10.02 or cid == "districts", cid
    for cid, fid in (("grids", "TZ2B1"), ("villages", "TZ2B"), ("risk", "TZ2B1"), ("coverage", "TZ2B1"),
                     ("incidents", world["s_out"]), ("incidents", world["p_out"]), ("entities", world["e_out"])):
        assert get_json(client, f"/ogc/collections/{cid}/items/{fid}", dispatcher, 404)["error"]["field"] == "featureId"


def test_sensitive_incidents_are_generalised_for_the_roles_that_do_not_act_on_them(
        client, session, make_user, world):
    label = session.execute(text("SELECT ST_X(label_point), ST_Y(label_point) FROM areas "
                                 "WHERE code = 'TZ1A1'")).one()
    analyst = token(session, make_user, "analyst", "TZ1")
    dispatcher = token(session, make_user, "dispatcher", "TZ1")
    url = f"/ogc/collections/incidents/items/{world['s_in']}"
    shown = get_json(client, url, analyst)
    assert shown["geometry"]["coordinates"] == pytest.approx(list(label), abs=1e-7)
    assert shown["properties"]["generalised"] is True
    assert all(shown["properties"][k] is None for k in ("address", "description", "reporter_name"))
    exact = get_json(client, url, dispatcher)
    assert exact["geometry"]["coordinates"] == list(SENSITIVE_IN)
    assert exact["properties"]["address"] == "秘密地址甲"
    # A small box or a point filter on the exact spot finds it only for those who see it there.
    x, y = SENSITIVE_IN
    box = f"{x - 1e-5},{y - 1e-5},{x + 1e-5},{y + 1e-5}"
    point = quote(f"S_INTERSECTS(geometry, POINT({x} {y}))")
    for query in (f"bbox={box}", f"filter={point}"):
        assert _ids(client, f"/ogc/collections/incidents/items?{query}", analyst) == []
        assert _ids(client, f"/ogc/collections/incidents/items?{query}", dispatcher) == [world["s_in"]]
    listing = get_json(client, "/ogc/collections/incidents/items", analyst)
    assert str(x) not in str(listing) and str(y) not in str(listing)


def _first_vertex(feature) -> list[float]:
    coords = feature["geometry"]["coordinates"]
    while isinstance(coords[0], list):
        coords = coords[0]
    return coords


def test_crs_by_reference_with_the_axis_order_of_each_crs(client, session, make_user, demo):
    admin = token(session, make_user, "admin")
    code = session.execute(text("SELECT min(code) FROM areas WHERE level = 4 AND code LIKE '411103%'")).scalar()
    url = f"/ogc/collections/grids/items/{code}"
    lon, lat = _first_vertex(get_json(client, url, admin))
    for name, uri in (("EPSG:4326", "http://www.opengis.net/def/crs/EPSG/0/4326"),
                      ("EPSG:4490", "http://www.opengis.net/def/crs/EPSG/0/4490")):
        response = client.get(f"{url}?crs={uri}", headers=admin)
        assert response.headers["Content-Crs"] == f"<{uri}>"
        assert _first_vertex(response.get_json()) == [lat, lon], name
    gk = client.get(f"{url}?crs=EPSG:4547", headers=admin)
    assert gk.headers["Content-Crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4547>"
    # PROJ in authority order (northing, easting), from the stored vertex at full precision.
    x, y = session.execute(text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointN(ST_ExteriorRing("
                                "ST_GeometryN(geom, 1)), 1) AS p FROM areas WHERE code = :c) v"),
                           {"c": code}).one()
    assert [x, y] == pytest.approx([lon, lat], abs=1e-7)
    north, east = Transformer.from_crs("OGC:CRS84", "EPSG:4547").transform(x, y)
    assert _first_vertex(gk.get_json()) == pytest.approx([north, east], abs=0.002)
    assert 3.6e6 < north < 3.8e6 and 4.5e5 < east < 5.5e5
    listing = client.get("/ogc/collections/grids/items?limit=1", headers=admin)
    assert listing.headers["Content-Crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    meta = get_json(client, "/ogc/collections/grids", admin)
    assert meta["storageCrs"] == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert set(meta["crs"]) == set(features.SYSTEMS)


def test_bbox_in_every_crs_selects_the_same_grids(client, session, make_user, demo):
    admin = token(session, make_user, "admin")
    lon0, lat0, lon1, lat1 = 113.95, 33.58, 114.0, 33.63
    expected = session.execute(text("SELECT count(*) FROM areas WHERE level = 4 AND ST_Intersects("
                                    "geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))"),
                               {"a": lon0, "b": lat0, "c": lon1, "d": lat1}).scalar()
    assert expected > 5
    base = "/ogc/collections/grids/items?limit=1000"
    for query in (f"bbox={lon0},{lat0},{lon1},{lat1}",
                  f"bbox={lat0},{lon0},{lat1},{lon1}&bbox-crs=EPSG:4326",
                  f"bbox={lat0},{lon0},{lat1},{lon1}&bbox-crs=http://www.opengis.net/def/crs/EPSG/0/4490"):
        assert get_json(client, f"{base}&{query}", admin)["numberMatched"] == expected, query
    # A box drawn on the Gauss-Kruger plane, compared with the grids projected onto that plane.
    n0, e0, n1, e1 = 3.716e6, 4.9e5, 3.722e6, 4.97e5
    projected = session.execute(text(
        "SELECT count(*) FROM areas WHERE level = 4 AND "
        "ST_Intersects(ST_Transform(geom, 4547), ST_MakeEnvelope(:e0, :n0, :e1, :n1, 4547))"),
        {"e0": e0, "n0": n0, "e1": e1, "n1": n1}).scalar()
    body = get_json(client, f"{base}&bbox={n0},{e0},{n1},{e1}&bbox-crs=EPSG:4547", admin)
    assert body["numberMatched"] == projected > 0
    # A point literal of a filter in EPSG:4547 finds the grid under it.
    code, north, east = session.execute(text(
        "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_FlipCoordinates(ST_Transform("
        "label_point, 4547)) AS p FROM areas WHERE level = 4 AND code LIKE '411103%' ORDER BY code "
        "LIMIT 1) x")).one()
    hit = quote(f"S_INTERSECTS(geometry, POINT({north} {east}))")
    assert _ids(client, f"{base}&filter={hit}&filter-crs=EPSG:4547", admin) == [code]


def test_datetime_instants_and_intervals(client, session, make_user, world):
    reader = token(session, make_user, "dispatcher", "TZ")
    order = [world[k] for k in ("s_in", "p_in", "p_out", "s_out")]   # one a day from 1 Nov 09:00+08
    cases = {"2026-11-01": order[:1], "2026-11-02T01:00:00Z": order[1:2],
             "2026-11-02T01:00:01Z": [], "2026-11-02/..": order[1:], "../2026-11-02": order[:2],
             "2026-11-01T00:00:00Z/2026-11-03T00:00:00Z": order[:2], "2026-11-03T09:00:00+08:00/": order[2:]}
    for value, ids in cases.items():
        got = _ids(client, f"/ogc/collections/incidents/items?datetime={quote(value)}", reader)
        assert sorted(got) == sorted(ids), value
    # Risk levels carry their assessment period: the current one for a level computed now.
    assert len(_ids(client, "/ogc/collections/risk/items?datetime=" + quote(_now()), reader)) == 8
    assert _ids(client, "/ogc/collections/risk/items?datetime=2001-01-01", reader) == []


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


FILTERS = {
    "category = 'dispute'": ("s_in", "p_out"),
    "severity >= 2 AND sensitive = false": ("p_out",),
    "category = 'dispute' OR severity = 1": ("s_in", "p_in", "p_out"),
    "NOT (category = 'dispute')": ("p_in", "s_out"),
    "subtype IS NULL": ("s_in", "p_in", "p_out", "s_out"),
    "subtype IS NOT NULL": (),
    "area_name LIKE '%TZ1%'": ("s_in", "p_in"),
    "area_name NOT LIKE '%TZ1%'": ("p_out", "s_out"),
    "severity BETWEEN 2 AND 3": ("s_in", "p_out"),
    "category IN ('petition', 'accident')": ("p_in", "s_out"),
    "category NOT IN ('petition', 'accident')": ("s_in", "p_out"),
    "occurred_at > TIMESTAMP('2026-11-02T12:00:00Z')": ("p_out", "s_out"),
    "occurred_at < '2026-11-02T00:00:00Z'": ("s_in",),
    "3 <= severity": ("s_in", "s_out"),
    "S_INTERSECTS(geometry, BBOX(10.0, 10.0, 10.02, 10.02))": ("s_in", "p_in"),
    "S_INTERSECTS(geometry, POINT(10.025 10.025))": ("p_out",),
    "S_INTERSECTS(geometry, POLYGON((10.02 10.02, 10.04 10.02, 10.04 10.04, 10.02 10.04, 10.02 10.02)))":
        ("p_out", "s_out"),
    "category = 'x OR 1=1; DROP TABLE incidents; --'": (),
}


@pytest.mark.parametrize("expression", list(FILTERS))
def test_cql2_filters(client, session, make_user, world, expression):
    reader = token(session, make_user, "dispatcher", "TZ")
    for lang in ("cql2-text", "cql-text"):
        got = _ids(client, f"/ogc/collections/incidents/items?filter-lang={lang}&filter={quote(expression)}", reader)
        assert sorted(got) == sorted(world[k] for k in FILTERS[expression]), (expression, lang)
    assert session.execute(text("SELECT to_regclass('incidents') IS NOT NULL")).scalar()


def test_queryables_as_query_parameters(client, session, make_user, world):
    reader = token(session, make_user, "dispatcher", "TZ")
    assert _ids(client, "/ogc/collections/incidents/items?category=dispute&severity=3", reader) == [world["s_in"]]
    assert _ids(client, "/ogc/collections/incidents/items?sensitive=true&category=petition", reader) == [world["s_out"]]
    assert _ids(client, "/ogc/collections/grids/items?code=TZ1A1", reader) == ["TZ1A1"]
    assert _ids(client, "/ogc/collections/grids/items?" + quote("code=TZ1A1' OR '1'='1", safe="="), reader) == []


def test_queryables_are_a_json_schema_without_free_text(client, session, make_user, tiny):
    reader = token(session, make_user, "analyst", "TZ")
    response = client.get("/ogc/collections/incidents/queryables", headers=reader)
    assert response.mimetype == "application/schema+json"
    schema = response.get_json()
    assert schema["type"] == "object" and schema["$id"].endswith("/ogc/collections/incidents/queryables")
    props = schema["properties"]
    assert props["geometry"]["$ref"] == "https://geojson.org/schema/Geometry.json"
    assert props["category"]["enum"] == ["petition", "accident", "criminal", "dispute", "hazard"]
    assert props["occurred_at"] == {"title": "发生时间 occurred at", "type": "string", "format": "date-time"}
    assert not {"address", "description", "reporter_name", "reporter_phone"} & set(props)


def test_filter_literals_never_reach_the_sql_text():
    incidents = features.COLLECTIONS["incidents"]
    params: dict = {}
    sql = cql.to_sql("category = 'a ; DROP' OR severity IN (1, 2) AND S_INTERSECTS(geometry, POINT(1 2))",
                     incidents, params, features.CRS84)
    assert "DROP" not in sql and "POINT" not in sql and "'" not in sql
    assert "a ; DROP" in params.values() and [1, 2] in params.values()

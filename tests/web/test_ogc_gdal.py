"""A real GIS client against /ogc: GDAL's OGC API – Features driver (ogrinfo, ogr2ogr) reads the
committed demo from a live server with an API token, and every count is checked against the
database — collections, paging, bbox, a -where filter sent to the server as CQL, a GeoPackage
export, and an analyst who sees neither a sensitive incident's exact point nor anything outside
their scope."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from types import SimpleNamespace

import pyogrio
import pytest
from sqlalchemy import text

from geo import audit, db, users

ROLES = {"ogc_admin": ("admin", None), "ogc_planner": ("planner", "411103")}


@pytest.fixture(scope="module")
def gis(live_server, engine, demo):
    """The service's URL, a committed API token per role, and the analyst's township."""
    for tool in ("ogrinfo", "ogr2ogr"):
        if shutil.which(tool) is None:
            pytest.fail(f"GDAL's {tool} is missing: `make test-deps` installs gdal-bin")
    actor = audit.Actor("test")
    with db.session_scope(engine) as s:
        # The township with the fewest incidents that still has a sensitive one keeps reads short.
        township = s.execute(text("""
            SELECT t.code FROM areas t JOIN areas a ON a.path <@ t.path
              JOIN incidents i ON a.id = COALESCE(i.area_id, i.grid_id)
             WHERE t.level = 2 AND t.code LIKE '411103%'
             GROUP BY t.code HAVING bool_or(i.sensitive) ORDER BY count(*), t.code LIMIT 1""")).scalar_one()
        tokens = {}
        for name, (role, scope) in {**ROLES, "ogc_analyst": ("analyst", township)}.items():
            users.add_user(s, actor, name, role, scopes=[scope] if scope else None, replace=True)
            tokens[role] = users.create_token(s, actor, name)
    yield SimpleNamespace(url="OAPIF:" + live_server() + "/ogc", tokens=tokens, township=township)
    with db.session_scope(engine) as s:
        s.execute(text("DELETE FROM users WHERE username = ANY(:u)"), {"u": [*ROLES, "ogc_analyst"]})


def gdal(gis, role: str, tool: str, *args: str, debug: bool = False) -> subprocess.CompletedProcess:
    """Run a GDAL tool as `role` (its token in the Authorization header); fail on its failure."""
    command = [tool, "--config", "GDAL_HTTP_HEADERS", f"Authorization: Bearer {gis.tokens[role]}",
               *(("--debug", "on") if debug else ()), *args]
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "GDAL_HTTP_TIMEOUT": "120"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, (command[4:], done.stderr[-2000:])
    return done


def fetched(done: subprocess.CompletedProcess) -> list[str]:
    """The URLs GDAL fetched (its debug output)."""
    return [line.split("Fetch(", 1)[1].rstrip(")") for line in done.stderr.splitlines() if "HTTP: Fetch(" in line]


def count(engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def feature_count(done: subprocess.CompletedProcess) -> int:
    return int(next(line for line in done.stdout.splitlines() if line.startswith("Feature Count:")).split(":")[1])


def test_gdal_lists_the_collections_each_role_may_read(gis):
    layers = gdal(gis, "admin", "ogrinfo", "-ro", "-q", gis.url).stdout
    assert [line.split(":")[1].split("(")[0].strip() for line in layers.splitlines() if line.strip()] == [
        "districts", "townships", "villages", "grids", "risk", "coverage", "incidents", "entities"]
    assert "incidents (title: 事件 Incidents) (Point)" in layers
    planner = gdal(gis, "planner", "ogrinfo", "-ro", "-q", gis.url).stdout
    assert "grids" in planner and "coverage" not in planner


def test_gdal_pages_through_a_collection_larger_than_a_page(gis, engine, tmp_path):
    out = tmp_path / "grids.geojson"
    done = gdal(gis, "admin", "ogr2ogr", "-f", "GeoJSON", str(out), gis.url, "grids",
                "-oo", "PAGE_SIZE=100", debug=True)
    pages = [u for u in fetched(done) if "/collections/grids/items" in u and "offset=" in u]
    expected = count(engine, "SELECT count(*) FROM areas WHERE level = 4")
    assert len(pages) == (expected - 1) // 100 >= 5
    codes = [f["properties"]["code"] for f in json.loads(out.read_text())["features"]]
    assert len(codes) == len(set(codes)) == expected


def test_gdal_spatial_filter_is_a_bbox_on_the_server(gis, engine):
    box = (113.98, 33.57, 114.03, 33.62)
    done = gdal(gis, "admin", "ogrinfo", "-ro", "-so", "-oo", "PAGE_SIZE=1000", "-spat", *map(str, box),
                gis.url, "incidents", debug=True)
    assert any("bbox=113.98" in u for u in fetched(done))
    # ST_Intersects, not `&&` alone: the index's boxes are single precision and would take in a
    # point 5 cm outside the box.
    expected = count(engine, "SELECT count(*) FROM incidents "
                             "WHERE ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))",
                     **dict(zip("abcd", box)))
    assert feature_count(done) == expected > 100


def test_gdal_sends_a_where_clause_to_the_server_as_cql(gis, engine):
    done = gdal(gis, "admin", "ogrinfo", "-ro", "-so", "-oo", "PAGE_SIZE=1000", "-where",
                "category = 'dispute' AND severity >= 3", gis.url, "incidents", debug=True)
    assert any("filter=" in u and "filter-lang=cql-text" in u for u in fetched(done))
    assert "client side" not in done.stderr
    expected = count(engine, "SELECT count(*) FROM incidents WHERE category = 'dispute' AND severity >= 3")
    assert feature_count(done) == expected > 0


def test_gdal_exports_a_geopackage(gis, engine, tmp_path):
    out = tmp_path / "anwang.gpkg"
    gdal(gis, "admin", "ogr2ogr", "-f", "GPKG", str(out), gis.url, "townships", "villages", "grids",
         "risk", "entities", "-oo", "PAGE_SIZE=1000")
    expected = {"townships": "SELECT count(*) FROM areas WHERE level = 2",
                "villages": "SELECT count(*) FROM areas WHERE level = 3",
                "grids": "SELECT count(*) FROM areas WHERE level = 4",
                "risk": "SELECT count(*) FROM areas WHERE level = 4",
                "entities": "SELECT count(*) FROM entities"}
    for layer, sql in expected.items():
        assert pyogrio.read_info(out, layer=layer)["features"] == count(engine, sql), layer
    risk = pyogrio.read_dataframe(out, layer="risk", read_geometry=False)
    assert set(risk["level"]) <= {"blue", "yellow", "orange", "red"}
    assert pyogrio.read_info(out, layer="grids")["geometry_type"] == "MultiPolygon"


def test_gdal_as_an_analyst_sees_no_exact_sensitive_point_and_nothing_outside_the_scope(gis, engine, tmp_path):
    out = tmp_path / "incidents.geojson"
    gdal(gis, "analyst", "ogr2ogr", "-f", "GeoJSON", str(out), gis.url, "incidents", "-oo", "PAGE_SIZE=1000")
    got = {f["properties"]["id"]: f for f in json.loads(out.read_text())["features"]}
    with engine.connect() as conn:
        rows = conn.execute(text("""
            SELECT i.id, i.sensitive, ST_X(i.geom) AS x, ST_Y(i.geom) AS y,
                   ST_X(a.label_point) AS lx, ST_Y(a.label_point) AS ly
              FROM incidents i JOIN areas a ON a.id = COALESCE(i.area_id, i.grid_id)
             WHERE a.path <@ (SELECT path FROM areas WHERE code = :t)"""), {"t": gis.township}).mappings().all()
    assert set(got) == {r["id"] for r in rows}
    assert all(f["properties"]["area_code"].startswith(gis.township) for f in got.values())
    sensitive = [r for r in rows if r["sensitive"]]
    assert sensitive
    for r in sensitive:
        feature = got[r["id"]]
        x, y = feature["geometry"]["coordinates"]
        assert (x, y) == pytest.approx((r["lx"], r["ly"]), abs=1e-7)
        assert (round(x, 6), round(y, 6)) != (round(r["x"], 6), round(r["y"], 6))
        assert feature["properties"]["address"] is None and feature["properties"]["reporter_name"] is None
    # A box around the exact spot of one of them does not find it.
    r = sensitive[0]
    done = gdal(gis, "analyst", "ogrinfo", "-ro", "-al", "-q", "-spat", str(r["x"] - 1e-5), str(r["y"] - 1e-5),
                str(r["x"] + 1e-5), str(r["y"] + 1e-5), gis.url, "incidents")
    assert f"id (Integer64) = {r['id']}" not in done.stdout and f"id (Integer) = {r['id']}" not in done.stdout

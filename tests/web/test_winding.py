"""RFC 7946 winding on every output: each read of the app (the security matrix's routes, every OGC
collection, every level of areas, a version diff and a partition problem) and each export file
has its outer rings counter-clockwise and its holes clockwise, whatever computed the polygon."""
from __future__ import annotations

import io
import json
import re
import sqlite3
import zipfile

import pytest
import shapely
from sqlalchemy import text

from tests.security.test_matrix import ROUTES, _send, world  # noqa: F401  (world: a fixture)

POLYGONS = ("Polygon", "MultiPolygon")
EMBEDDED = re.compile(r'<script[^>]*type="application/(?:geo\+)?json"[^>]*>(.*?)</script>', re.S)


def signed_area(ring) -> float:
    """Twice the signed area of a ring of [x, y, …] positions: > 0 when counter-clockwise."""
    return sum(x0 * y1 - x1 * y0 for (x0, y0, *_), (x1, y1, *_) in zip(ring, ring[1:]))


def wrong_rings(value, where: str = "") -> list[str]:
    """Where in a JSON value a polygon's outer ring runs clockwise or a hole counter-clockwise."""
    found = []
    if isinstance(value, dict):
        if value.get("type") in POLYGONS and isinstance(value.get("coordinates"), list):
            polygons = value["coordinates"] if value["type"] == "MultiPolygon" else [value["coordinates"]]
            for p, rings in enumerate(polygons):
                for r, ring in enumerate(rings):
                    area = signed_area(ring)
                    if area and (area < 0) == (r == 0):
                        found.append(f"{where} polygon {p} ring {r}")
        for key, inner in value.items():
            found += wrong_rings(inner, f"{where}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found += wrong_rings(inner, f"{where}[{i}]")
    return found


def wrong_in_wkb(wkb: bytes) -> bool:
    geom = shapely.from_wkb(wkb)
    return any(not p.exterior.is_ccw or any(h.is_ccw for h in p.interiors)
               for p in getattr(geom, "geoms", [geom]))


def bodies(response) -> list:
    """The JSON a response carries: its body, or the JSON embedded in a page."""
    if response.status_code != 200:
        return []
    if response.is_json or response.mimetype.endswith("json"):
        return [json.loads(response.get_data(as_text=True))]
    if response.mimetype == "text/html":
        return [json.loads(m) for m in EMBEDDED.findall(response.get_data(as_text=True))]
    return []


def reads(client, world):  # noqa: F811  (the imported fixture's value)
    for endpoint, (method, inside, outside) in ROUTES.items():
        if method != "GET":
            continue
        for request in (inside, outside):
            if request is not None:
                yield endpoint, _send(client, "GET", request, world, {})
    collections = client.get("/ogc/collections?f=json").get_json()["collections"]
    assert collections
    for c in collections:
        yield f"ogc {c['id']}", client.get(f"/ogc/collections/{c['id']}/items?f=json&limit=1000")
    for level in (1, 2, 3, 4):
        yield f"areas level {level}", client.get(f"/api/areas?level={level}")
    yield "diff", client.get("/api/areas/TZ1A1/diff?from=1&to=2")
    yield "problems", client.get("/api/areas/TZ1A/problems")


def test_every_read_serves_counter_clockwise_outer_rings(client, login, session, world):  # noqa: F811
    # A hole and a gap: an area with an inner ring, and a grid pulled back from its neighbour.
    session.execute(text(
        "UPDATE areas SET geom = ST_Multi(ST_Difference(geom, ST_Buffer(ST_Centroid(geom), 0.001))) "
        "WHERE code = 'TZ1B'"))
    session.execute(text(
        "UPDATE areas SET geom = ST_Multi(ST_Buffer(geom, -0.0004, 'join=mitre')) WHERE code = 'TZ1A2'"))
    session.flush()
    login("admin")
    served: dict[str, int] = {}
    for endpoint, response in reads(client, world):
        assert response.status_code < 500, endpoint
        for body in bodies(response):
            assert wrong_rings(body) == [], endpoint
            said = json.dumps(body)
            served[endpoint] = served.get(endpoint, 0) + said.count('"Polygon"') + said.count('"MultiPolygon"')
    # Polygons were served, and checked: stored ones, and ones computed on the way out.
    assert {e for e, n in served.items() if n} >= {
        "api.area_list", "planner.area_export", "planner.change_detail", "patrol.coverage_layer",
        "review.hot_spots", "review.public_stats", "review.risk_levels", "ogc grids", "ogc risk",
        "diff", "problems"}


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "csv", "xlsx", "shp"])
def test_every_export_writes_its_formats_winding(client, login, session, tiny, tmp_path, fmt):
    session.execute(text(
        "UPDATE areas SET geom = ST_Multi(ST_Difference(geom, ST_Buffer(ST_Centroid(geom), 0.001))) "
        "WHERE code = 'TZ1B'"))
    login("admin")
    response = client.get(f"/api/areas/export?parent=TZ&format={fmt}")
    assert response.status_code == 200
    if fmt == "geojson":
        doc = response.get_json()
        assert len(doc["features"]) == 14 and wrong_rings(doc) == []
        return
    if fmt == "csv":
        import csv

        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        wkbs = [shapely.to_wkb(shapely.from_wkt(r["wkt"])) for r in rows]
    elif fmt == "xlsx":
        from openpyxl import load_workbook

        sheet = load_workbook(io.BytesIO(response.data), read_only=True).worksheets[0]
        table = list(sheet.iter_rows(values_only=True))
        column = table[0].index("几何(WKT)")
        wkbs = [shapely.to_wkb(shapely.from_wkt(r[column])) for r in table[1:]]
    elif fmt == "gpkg":
        path = tmp_path / "areas.gpkg"
        path.write_bytes(response.data)
        with sqlite3.connect(path) as db:
            blobs = [bytes(b) for (b,) in db.execute("SELECT geom FROM \"areas-TZ-levelall\"")]
        wkbs = [_gpkg_wkb(b) for b in blobs]
    else:
        # A Shapefile follows its own specification: outer rings clockwise, holes counter-clockwise.
        shp = next(n for n in zipfile.ZipFile(io.BytesIO(response.data)).namelist() if n.endswith(".shp"))
        rings = _shp_rings(zipfile.ZipFile(io.BytesIO(response.data)).read(shp))
        assert len(rings) > 14
        outer = [r for r in rings if shapely.LinearRing(r).is_ccw is False]
        holes = [r for r in rings if shapely.LinearRing(r).is_ccw]
        assert len(outer) == 14 and len(holes) == 1
        return
    assert len(wkbs) == 14
    assert [w for w in wkbs if wrong_in_wkb(w)] == []
    assert sum(len(p.interiors) for w in wkbs for p in shapely.from_wkb(w).geoms) == 1


def _gpkg_wkb(blob: bytes) -> bytes:
    """The WKB of a GeoPackage geometry blob (past its header and envelope)."""
    flags = blob[3]
    envelope = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[(flags >> 1) & 0b111]
    return blob[8 + envelope:]


def _shp_rings(content: bytes) -> list[list[tuple[float, float]]]:
    """Every ring of a polygon Shapefile's records, as written (ESRI Shapefile Technical Description)."""
    import struct

    rings, at = [], 100
    while at < len(content):
        length = struct.unpack(">i", content[at + 4:at + 8])[0] * 2
        record = content[at + 8:at + 8 + length]
        if struct.unpack("<i", record[:4])[0] == 5:
            parts, points = struct.unpack("<2i", record[36:44])
            starts = list(struct.unpack(f"<{parts}i", record[44:44 + 4 * parts])) + [points]
            base = 44 + 4 * parts
            xy = [struct.unpack("<2d", record[base + 16 * i:base + 16 * i + 16]) for i in range(points)]
            rings += [xy[a:b] for a, b in zip(starts, starts[1:])]
        at += 8 + length
    return rings

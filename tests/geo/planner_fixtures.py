"""A hand-made region for boundary edits: district EV → township EV1 → villages EV1001, EV1002
→ grids cut from each village by straight lines (ST_Split nodes them edge to edge), with staff,
entities and incidents inside, near (20°E, 20°N) where nothing else lies."""
from __future__ import annotations

from sqlalchemy import text

# Village EV1001: an irregular hexagon; EV1002: the box east of it sharing its eastern edge.
WEST = "POLYGON((20.000 20.000, 20.020 19.998, 20.030 20.010, 20.030 20.030, 20.008 20.032, 19.996 20.015, 20.000 20.000))"
EAST = "POLYGON((20.030 20.010, 20.050 20.010, 20.050 20.030, 20.030 20.030, 20.030 20.010))"
CUTS_WEST = "MULTILINESTRING((20.012 19.99, 20.015 20.04), (19.99 20.018, 20.04 20.014))"
CUTS_EAST = "MULTILINESTRING((20.040 20.00, 20.040 20.04))"


def build(session) -> dict:
    """Insert the region with one version row per area (an 'import' change); return codes."""
    change = session.execute(text(
        "INSERT INTO boundary_changes (kind, reason, payload) VALUES ('import', 'test region', "
        "'{}'::jsonb) RETURNING id")).scalar_one()

    def add(code, level, parent, wkt, households=None, urban=None):
        return session.execute(text(
            "INSERT INTO areas (code, name, level, parent_id, geom, households, population, urban) "
            "VALUES (:c, :n, :l, (SELECT id FROM areas WHERE code = :p), "
            "ST_Multi(ST_GeomFromText(:w, 4326)), :h, :pop, :u) RETURNING id"),
            {"c": code, "n": f"测试{code}", "l": level, "p": parent, "w": wkt, "h": households,
             "pop": households and households * 3, "u": urban}).scalar_one()

    union = session.execute(text("SELECT ST_AsText(ST_Union(ST_GeomFromText(:a), ST_GeomFromText(:b)))"),
                            {"a": WEST, "b": EAST}).scalar_one()
    add("EV", 1, None, union)
    add("EV1", 2, "EV", union)
    grids = {}
    for village, wkt, cuts in (("EV1001", WEST, CUTS_WEST), ("EV1002", EAST, CUTS_EAST)):
        pieces = session.execute(text(
            "SELECT ST_AsText(d.geom) FROM ST_Dump(ST_Split(ST_GeomFromText(:w, 4326), "
            "ST_GeomFromText(:c, 4326))) d ORDER BY ST_Y(ST_Centroid(d.geom)) DESC, "
            "ST_X(ST_Centroid(d.geom))"), {"w": wkt, "c": cuts}).scalars().all()
        households = [310 + 40 * i for i in range(len(pieces))]
        add(village, 3, "EV1", wkt, sum(households), True)
        for i, (piece, h) in enumerate(zip(pieces, households), start=1):
            code = f"{village}{i:03d}"
            grids[code] = add(code, 4, village, piece, h, True)
    person = session.execute(text("INSERT INTO people (name) VALUES ('网格员甲') RETURNING id")).scalar_one()
    for _code, area_id in grids.items():
        session.execute(text("INSERT INTO area_staff (area_id, person_id, role) VALUES (:a, :p, 'worker')"),
                        {"a": area_id, "p": person})
    # A few incidents and enterprises scattered over the villages, each in its grid.
    for k in range(24):
        lon, lat = 20.001 + (k % 6) * 0.0081, 20.002 + (k // 6) * 0.0071
        grid = session.execute(text(
            "SELECT id FROM areas WHERE level = 4 AND code LIKE 'EV%' AND "
            "ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) ORDER BY id LIMIT 1"),
            {"x": lon, "y": lat}).scalar()
        if grid is None:
            continue
        session.execute(text(
            "INSERT INTO incidents (category, occurred_at, geom, grid_id, status) VALUES "
            "('dispute', now(), ST_SetSRID(ST_MakePoint(:x, :y), 4326), :g, 'reported')"),
            {"x": lon, "y": lat, "g": grid})
        session.execute(text(
            "INSERT INTO entities (name, kind, area_id, geom) VALUES "
            "(:n, 'enterprise', :g, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
            {"n": f"企业{k}", "g": grid, "x": lon, "y": lat})
    session.execute(text(
        "INSERT INTO area_versions (area_id, version, code, name, level, parent_id, geom, households, "
        "population, valid_from, change_id) SELECT id, version, code, name, level, parent_id, geom, "
        "households, population, now() - interval '1 day', :c FROM areas WHERE code LIKE 'EV%'"),
        {"c": change})
    session.flush()
    return {"district": "EV", "township": "EV1", "village": "EV1001", "east": "EV1002",
            "grids": sorted(grids)}


def feature(code, coords, **props):
    """A GeoJSON polygon feature with `code` and extra properties."""
    return {"type": "Feature", "properties": {"code": code, "name": f"区{code}", **props},
            "geometry": {"type": "Polygon", "coordinates": coords}}


def square(x, y, size=0.01, clockwise=False):
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return [ring[::-1] if clockwise else ring]


def write_geojson(path, features, crs: str | None = None):
    import json

    doc = {"type": "FeatureCollection", "features": features}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


# Bad inputs every import entry point (core, CLI, API) must refuse, naming what is wrong:
# (name, features or raw text, load options, expected error kind or field).
def bad_imports():
    far = 30.0
    return [
        ("duplicate codes", [feature("D1", square(far, far)), feature("D1", square(far + 0.01, far))],
         {}, "duplicate_code"),
        ("invalid ring", [feature("B1", [[[far, far], [far + 0.01, far + 0.01], [far + 0.01, far],
                                          [far, far + 0.01], [far, far]]])], {}, "invalid_geometry"),
        ("swapped lat/lon", [feature("S1", square(far, far)),
                             feature("S2", square(far, 100.0))],  # lat 100: written lat, lon
         {}, "swapped_coordinates"),
        ("missing code", [feature(None, square(far, far))], {}, "missing_code"),
        ("no such field", [feature("F1", square(far, far))], {"code_field": "nope"}, "code_field"),
        ("level 2 without a parent", [feature("P1", square(far, far))], {"level": 2}, "parent"),
        # DataV (阿里云) files give the parent as an object: {"adcode": 210200}.
        ("parent as an object", [feature("O1", square(far, far), parent={"adcode": 210200})],
         {"level": 2}, "parent_is_object"),
        ("not a polygon", [{"type": "Feature", "properties": {"code": "L1", "name": "线"},
                            "geometry": {"type": "LineString", "coordinates": [[far, far], [far + 0.01, far]]}},
                           feature("L2", square(far, far))], {}, "not_polygon"),
    ]

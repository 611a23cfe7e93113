"""Outer rings are stored counter-clockwise (RFC 7946) whichever path wrote an area — an import,
each edit operation and its revert, the demo loader — and migration 0012 turned the rows already
there without adding a version or changing anything but the order of a ring's points."""
from __future__ import annotations

import importlib

from sqlalchemy import text

from geo import audit
from geo.boundaries import changes
from geo.policy import Scope
from tests.geo import planner_fixtures
from tests.geo.planner_fixtures import feature, square, write_geojson

ACTOR = audit.Actor("rings-test")
rings = importlib.import_module("geo.migrations.versions.0012_area_rings")


def clockwise(session, where: str, **params) -> list[str]:
    """Codes of areas and area versions matching `where` whose rings are not RFC 7946 oriented."""
    return session.execute(text(f"""
        SELECT code FROM areas WHERE ({where}) AND NOT ST_IsPolygonCCW(geom)
        UNION ALL
        SELECT code || ' v' || version FROM area_versions
         WHERE ({where}) AND geom IS NOT NULL AND NOT ST_IsPolygonCCW(geom)"""), params).scalars().all()


def box(x0, y0, x1, y1):
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def test_every_edit_operation_and_its_revert_store_counter_clockwise_rings(session):
    planner_fixtures.build(session)
    assert clockwise(session, "code LIKE 'EV%'") == []  # the fixture's own inserts, turned on write

    def run(op, codes, geometry=None):
        current = dict(session.execute(text("SELECT code, version FROM areas WHERE code LIKE 'EV%'")).all())
        return changes.apply(session, op, areas=codes, geometry=geometry, reason="定向",
                             base_versions={c: current[c] for c in codes}, actor=ACTOR,
                             scope=Scope.all())

    done = [run("reshape", ["EV1001004"], {"type": "Polygon", "coordinates": [[
                [20.0125, 19.9987], [20.02, 19.998], [20.03, 20.01], [20.03, 20.018],
                [20.0136, 20.019], [20.0125, 19.9987]]]}),
            run("split", ["EV1001003"], {"type": "LineString",
                                         "coordinates": [[19.99, 20.007], [20.02, 20.010]]}),
            run("merge", ["EV1001001", "EV1001002"]),
            run("move", ["EV1002001", "EV1001"])]
    assert clockwise(session, "code LIKE 'EV%'") == []
    for result in reversed(done):
        changes.revert(session, result.change_id, reason="撤销", actor=ACTOR, scope=Scope.all())
    assert clockwise(session, "code LIKE 'EV%'") == []
    run("transfer", ["EV1001001", "EV1001002"], box(20.010, 20.020, 20.016, 20.026))
    run("partition", ["EV1001"], {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": box(19.99, 19.99, 20.012, 20.04)},
        {"type": "Feature", "properties": {}, "geometry": box(20.0115, 19.99, 20.04, 20.04)}]})
    assert clockwise(session, "code LIKE 'EV%'") == []


def test_an_import_of_clockwise_rings_with_holes_stores_them_turned(session, tmp_path):
    outer = square(40.0, 40.0, 0.02, clockwise=True)[0]
    hole = square(40.005, 40.005, 0.005)[0]  # counter-clockwise: the wrong way for a hole
    path = write_geojson(tmp_path / "cw.geojson", [feature("CW1", [outer, hole])])
    from geo.boundaries import ingest

    report = ingest.load(session, path, level=1, actor=ACTOR, scope=Scope.all())
    assert not report.refused, report.lines()
    assert clockwise(session, "code = 'CW1'") == []
    assert session.execute(text("SELECT ST_NumInteriorRings(ST_GeometryN(geom, 1)) FROM areas "
                                "WHERE code = 'CW1'")).scalar() == 1


def test_the_demo_loader_stores_counter_clockwise_rings(session, demo):
    assert clockwise(session, "code LIKE '411103%'") == []


def test_the_migration_turns_only_the_order_of_points_and_adds_no_version(session, tiny):
    # Rows as they were before 0012: written clockwise with the trigger not yet there.
    session.execute(text("ALTER TABLE areas DISABLE TRIGGER areas_rings_ccw"))
    session.execute(text("ALTER TABLE area_versions DISABLE TRIGGER area_versions_rings_ccw"))
    session.execute(text("UPDATE areas SET geom = ST_ForcePolygonCW(geom) WHERE code LIKE 'TZ%'"))
    session.execute(text(
        "INSERT INTO area_versions (area_id, version, code, name, level, parent_id, geom, valid_from) "
        "SELECT id, version, code, name, level, parent_id, geom, now() FROM areas WHERE code LIKE 'TZ%'"))
    before = session.execute(text(
        "SELECT a.code, ST_AsBinary(a.geom) AS wkb, a.version, a.updated_at, a.households, "
        "(SELECT count(*) FROM area_versions v WHERE v.code LIKE 'TZ%') AS versions "
        "FROM areas a WHERE a.code LIKE 'TZ%' ORDER BY a.code")).mappings().all()
    assert len(clockwise(session, "code LIKE 'TZ%'")) == 2 * len(before)
    session.execute(text("ALTER TABLE areas ENABLE TRIGGER areas_rings_ccw"))
    session.execute(text("ALTER TABLE area_versions ENABLE TRIGGER area_versions_rings_ccw"))

    session.execute(text(rings.TURN))

    assert clockwise(session, "code LIKE 'TZ%'") == []
    after = session.execute(text(
        "SELECT a.code, ST_AsBinary(ST_ForcePolygonCW(a.geom)) AS wkb, a.version, a.updated_at, "
        "a.households, (SELECT count(*) FROM area_versions v WHERE v.code LIKE 'TZ%') AS versions "
        "FROM areas a WHERE a.code LIKE 'TZ%' ORDER BY a.code")).mappings().all()
    # Turned back, each is byte for byte what it was; nothing else in the row moved.
    assert [dict(r) for r in after] == [dict(r) for r in before]
    differ = session.execute(text(
        "SELECT count(*) FROM areas a JOIN area_versions v ON v.area_id = a.id AND v.version = a.version "
        "WHERE a.code LIKE 'TZ%' AND ST_AsBinary(a.geom) <> ST_AsBinary(v.geom)")).scalar()
    assert differ == 0  # an area and its version stay byte-identical, as reverts compare them

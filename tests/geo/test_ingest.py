"""Importing and exporting boundary files: every anomaly named with a way through, nothing written
on refusal or dry run, exact round trips, and the real Chicago and NYC files behaving as described."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from data import yancheng
from geo import audit
from geo.boundaries import export, ingest, partition
from geo.errors import InvalidInput
from geo.policy import Scope
from tests.geo.planner_fixtures import bad_imports, feature, square, write_geojson

ACTOR = audit.Actor("ingest-test")


def load(session, path, **kw):
    kw.setdefault("level", 1)
    return ingest.load(session, path, actor=ACTOR, **kw, scope=Scope.all())


def count(session, where="true", **params):
    return session.execute(text(f"SELECT count(*) FROM areas WHERE {where}"), params).scalar()


def wkb_by_code(session, codes):
    return {r[0]: bytes(r[1]) for r in session.execute(
        text("SELECT code, ST_AsBinary(geom) FROM areas WHERE code = ANY(:c)"), {"c": list(codes)})}


@pytest.mark.parametrize("name,features,options,expected", bad_imports(), ids=[b[0] for b in bad_imports()])
def test_bad_files_are_refused_naming_the_problem(session, tmp_path, name, features, options, expected):
    path = write_geojson(tmp_path / "bad.geojson", features)
    before = count(session)
    try:
        report = load(session, path, **options)
    except InvalidInput as exc:
        assert exc.field == expected, exc.message
    else:
        assert report.refused and expected in {e.kind for e in report.errors}, report.lines()
        assert all(e.message for e in report.errors)
    assert count(session) == before


def test_import_creates_roots_with_versions_and_an_import_change(session, tmp_path):
    path = write_geojson(tmp_path / "roots.geojson", [
        feature("R1", square(30.0, 30.0, clockwise=True)), feature("R2", square(30.01, 30.0))])
    report = load(session, path)
    assert not report.refused and report.created == ["R1", "R2"] and report.change_id
    rows = session.execute(text(
        "SELECT a.code, a.level, a.parent_id, v.version, v.change_id, c.kind, "
        "ST_IsPolygonCCW(a.geom) AS ccw, GeometryType(a.geom) AS type FROM areas a "
        "JOIN area_versions v ON v.area_id = a.id JOIN boundary_changes c ON c.id = v.change_id "
        "WHERE a.code IN ('R1', 'R2') ORDER BY a.code")).mappings().all()
    assert [(r["code"], r["level"], r["parent_id"], r["version"], r["kind"]) for r in rows] == [
        ("R1", 1, None, 1, "import"), ("R2", 1, None, 1, "import")]
    assert all(r["ccw"] and r["type"] == "MULTIPOLYGON" for r in rows)  # RFC 7946 orientation


def test_dry_run_reports_and_writes_nothing(session, tmp_path):
    path = write_geojson(tmp_path / "roots.geojson", [feature("R1", square(30.0, 30.0))])
    changes = session.execute(text("SELECT count(*) FROM boundary_changes")).scalar()
    report = load(session, path, dry_run=True)
    assert report.created == ["R1"] and report.dry_run and not report.change_id
    assert "would import 1 area" in report.summary()
    assert count(session, "code = 'R1'") == 0
    assert session.execute(text("SELECT count(*) FROM boundary_changes")).scalar() == changes


def test_children_must_partition_their_parent_or_be_fitted(session, tiny, tmp_path):
    # Village TZ1A is the box 10.00–10.02 × 10.00–10.02 holding grids TZ1A1, TZ1A2: a new
    # microgrid level under TZ1A1 (10.00–10.01) that overshoots east and leaves a gap north.
    path = write_geojson(tmp_path / "micro.geojson", [
        feature("M1", [[[10.0, 10.0], [10.0102, 10.0], [10.0102, 10.01], [10.0, 10.01], [10.0, 10.0]]],
                parent="TZ1A1"),
        feature("M2", [[[10.0, 10.01], [10.01, 10.01], [10.01, 10.0195], [10.0, 10.0195], [10.0, 10.01]]],
                parent="TZ1A1")])
    refused = load(session, path, level=5, parent_field="parent")
    kinds = [e.message for e in refused.errors if e.kind == "misfit"]
    assert any("outside the parent" in m for m in kinds) and any("gaps" in m for m in kinds)
    assert all({"fit": True} in e.ways for e in refused.errors)
    fitted = load(session, path, level=5, parent_field="parent", fit=True)
    assert not fitted.refused and fitted.fitted
    assert partition.validate_partition(session, "TZ1A1") == []


def test_parent_reference_with_zero_padding_is_matched_and_noted(session, tiny, tmp_path):
    path = write_geojson(tmp_path / "grids.geojson", [
        feature("G1", [[[10.0, 10.0], [10.01, 10.0], [10.01, 10.02], [10.0, 10.02], [10.0, 10.0]]],
                parent="TZ1A1"),
        feature("G2", square(10.0, 10.0), parent="NOWHERE")])
    report = load(session, path, level=5, parent_field="parent")
    assert [e.kind for e in report.errors] == ["missing_parent"] and report.errors[0].feature == 2
    skipped = load(session, path, level=5, parent_field="parent", skip_bad=True, dry_run=True)
    assert not skipped.refused and [s.code for s in skipped.skipped] == ["G2"]


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp", "csv"])
def test_import_export_import_round_trips_exactly(session, tmp_path, fmt):
    hole = [[[31.0, 31.0], [31.02, 31.0], [31.02, 31.02], [31.0, 31.02], [31.0, 31.0]],
            [[31.005, 31.005], [31.005, 31.01], [31.01, 31.01], [31.01, 31.005], [31.005, 31.005]]]
    multi = {"type": "Feature", "properties": {"code": "X3", "name": "多块"},
             "geometry": {"type": "MultiPolygon", "coordinates": [
                 square(31.1, 31.0, 0.0123456789), square(31.2, 31.0, 0.003)]}}
    source = write_geojson(tmp_path / "source.geojson", [
        feature("X1", hole), feature("X2", square(31.03, 31.0, 0.0111111111111, clockwise=True)), multi])
    first = session.begin_nested()
    assert not load(session, source).refused
    original = wkb_by_code(session, ["X1", "X2", "X3"])
    exported = tmp_path / f"out.{fmt}"
    assert export.export(session, exported, level=1, fmt=fmt) >= 3
    first.rollback()
    second = session.begin_nested()
    # Other level-1 areas in the database (the demo's district) came along: they already
    # exist, so they are skipped, and ours come back.
    report = load(session, exported, code_field="code", name_field="name", skip_bad=True,
                  crs="wgs84" if fmt == "csv" else None)
    assert sorted(report.created) == ["X1", "X2", "X3"], report.lines()
    assert {s.kind for s in report.skipped} <= {"code_exists"}
    assert wkb_by_code(session, ["X1", "X2", "X3"]) == original
    second.rollback()


def test_export_bytes_zips_a_shapefile(session, tiny):
    content, name, mime = export.export_bytes(session, level=4, parent="TZ", fmt="shp")
    import io
    import zipfile

    assert name.endswith(".zip") and mime == "application/zip"
    assert {n.rsplit(".", 1)[1] for n in zipfile.ZipFile(io.BytesIO(content)).namelist()} >= {"shp", "shx", "dbf", "prj"}
    body, name, _ = export.export_bytes(session, level=4, parent="TZ", fmt="geojson")
    assert len(json.loads(body)["features"]) == 8


# -- the real files --------------------------------------------------------------------------

@pytest.mark.realdata
def test_chicago_districts_and_beats_with_every_anomaly_reported(session, realdata):
    districts = realdata / "chicago" / "police_districts.geojson"
    refused = load(session, districts, code_field="DIST_NUM", name_field="DIST_LABEL")
    assert refused.refused and {e.kind for e in refused.errors} == {"duplicate_code"}
    assert sorted(e.feature for e in refused.errors) == [3, 4, 8]
    assert "merge_duplicates=True" in refused.summary()
    done = load(session, districts, code_field="DIST_NUM", name_field="DIST_LABEL", merge_duplicates=True)
    assert len(done.created) == 23 and done.merged == [{"code": "31", "features": [3, 4, 8]}]
    assert session.execute(text("SELECT ST_NumGeometries(geom) FROM areas WHERE code = '31'")).scalar() == 3

    beats = realdata / "chicago" / "police_beats.geojson"
    refused = load(session, beats, level=2, code_field="BEAT_NUM", parent_field="DISTRICT")
    kinds = {e.kind for e in refused.errors}
    assert kinds == {"duplicate_code", "misfit"}, refused.lines()
    assert sorted(e.feature for e in refused.errors if e.kind == "duplicate_code") == [2, 56, 264]
    padded = {e.message for e in refused.warnings if e.kind == "parent_normalised"}
    assert "parent reference '01' read as '1' (leading zeros / prefix ignored)" in padded
    misfits = " ".join(e.message for e in refused.errors if e.kind == "misfit")
    assert "under 4: 141" in misfits and "under 6:" in misfits  # a beat of 4 reaching into 6
    assert count(session, "level = 2 AND code LIKE '3100'") == 0

    done = load(session, beats, level=2, code_field="BEAT_NUM", parent_field="DISTRICT",
                merge_duplicates=True, fit=True)
    assert not done.refused and len(done.created) == 275 and done.fitted
    chicago = session.execute(text("SELECT code FROM areas WHERE level = 1 AND attrs->>'file' = "
                                   "'police_districts.geojson'")).scalars().all()
    assert len(chicago) == 23
    for code in chicago:
        assert partition.validate_partition(session, code) == [], code
    beat = session.execute(text("SELECT p.code FROM areas b JOIN areas p ON p.id = b.parent_id "
                                "WHERE b.code = '0111'")).scalar()
    assert beat == "1"


@pytest.mark.realdata
def test_nyc_precincts_need_repair_and_report_the_area_change(session, realdata):
    precincts = realdata / "nyc" / "police_precincts.geojson"
    refused = load(session, precincts, code_field="Precinct")
    assert [(e.kind, e.feature, e.code) for e in refused.errors] == [("invalid_geometry", 71, "113")]
    assert "Too few points" in refused.errors[0].message and {"repair": True} in refused.errors[0].ways
    done = load(session, precincts, code_field="Precinct", repair=True)
    assert len(done.created) == 76 and not done.refused
    [fixed] = done.repaired
    assert fixed["code"] == "113" and fixed["before_m2"] > 3e7
    assert abs(fixed["change_m2"]) < 1 and "change_pct" in fixed
    assert any("repaired feature 71 [113]" in line for line in done.lines())
    types = dict(session.execute(text(
        "SELECT GeometryType(geom), count(*) FROM areas WHERE attrs->>'file' = 'police_precincts.geojson' "
        "GROUP BY 1")).all())
    assert types == {"MULTIPOLYGON": 76}
    assert session.execute(text("SELECT bool_and(ST_IsValid(geom)) FROM areas "
                                "WHERE attrs->>'file' = 'police_precincts.geojson'")).scalar()


@pytest.mark.realdata
def test_community_areas_with_a_taiwanese_crs_tag_are_refused(session, realdata):
    dirty = realdata / "chicago" / "community_areas_dirty.geojson"
    report = load(session, dirty, code_field="COMMUNITY", name_field="AREA_NUMBE")
    assert report.refused and [e.kind for e in report.errors] == ["crs_mismatch"]
    message = report.errors[0].message
    assert "EPSG:4236" in message and "Taiwan" in message and "(-87.72, 41.84)" in message
    assert "never shifted silently" in message and report.errors[0].ways == [{"crs": "wgs84"}]
    assert count(session, "attrs->>'file' = 'community_areas_dirty.geojson'") == 0
    # The way through names the coordinates' real system; the swapped fields are then pointed out.
    through = load(session, dirty, code_field="AREA_NUMBE", name_field="COMMUNITY", crs="wgs84",
                   code_prefix="CA-", dry_run=True)
    assert not through.refused and len(through.created) == 77
    assert [w.kind for w in through.warnings] == ["swapped_fields"]


def test_projected_coordinates_are_reprojected_to_wgs84(session, tmp_path):
    from pyproj import Transformer

    to_mercator = Transformer.from_crs(4326, 3857, always_xy=True)
    ring = [list(to_mercator.transform(x, y)) for x, y in square(30.0, 30.0)[0]]
    path = write_geojson(tmp_path / "mercator.geojson", [feature("PM1", [ring])],
                         crs="urn:ogc:def:crs:EPSG::3857")
    report = load(session, path)
    assert not report.refused and report.source_crs == "EPSG:3857"
    x0, y0, x1, y1 = session.execute(text(
        "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM areas WHERE code = 'PM1'")).one()
    assert max(abs(x0 - 30.0), abs(y0 - 30.0), abs(x1 - 30.01), abs(y1 - 30.01)) < 1e-9


@pytest.mark.realdata
def test_gcj02_outline_is_converted_exactly_and_out_of_china_refused(session, realdata, tmp_path):
    outline = yancheng.REFERENCE_DIR / "411103_yancheng_outline_gcj02.geojson"
    report = load(session, outline, code_field="adcode", name_field="name", crs="gcj02",
                  code_prefix="GCJ-", dry_run=True)
    assert report.source_crs == "gcj02" and not report.warnings, report.lines()
    # With the demo loaded, the converted outline lies exactly where 郾城区 already is.
    assert all(e.kind == "misfit" and "overlap areas already there" in e.message
               for e in report.errors), report.lines()
    far = write_geojson(tmp_path / "far.geojson", [feature("F1", square(-87.7, 41.8))])
    refused = load(session, far, crs="gcj02")
    assert [e.kind for e in refused.errors] == ["crs_mismatch"] and "China" in refused.errors[0].message

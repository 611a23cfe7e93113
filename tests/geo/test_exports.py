"""Exports keep everything: the demo exported in every format and imported into a second database
comes back with the same WKB, the same columns and 一长两员 counts, and the same warnings from
`areas validate`; the GeoPackage is 1.2 and passes GDAL's own validator; XLSX has Chinese headers
and carries geometries longer than a cell."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import shapely
from sqlalchemy import text

from geo import audit
from geo.boundaries import export, fields, ingest, validation
from geo.policy import Scope

ACTOR = audit.Actor("export-test")
FORMATS = ["geojson", "gpkg", "shp", "csv", "xlsx"]
DISTRICT = "411103"
# GDAL's validator as Debian installs it (python3-gdal); `make test-deps` installs it with gdal-bin.
VALIDATE_GPKG = Path("/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py")


def snapshot(session, root: str) -> dict:
    """Every area under `root` (itself included) as the importer should bring it back."""
    rows = session.execute(text("""
        SELECT a.code, a.name, a.level, p.code AS parent, a.kind, a.households, a.population,
               a.urban, a.version, ST_AsBinary(a.geom) AS wkb,
               (SELECT count(*) FROM area_staff s WHERE s.area_id = a.id AND s.role = 'leader') AS leaders,
               (SELECT count(*) FROM area_staff s WHERE s.area_id = a.id AND s.role = 'worker') AS workers,
               (SELECT count(*) FROM area_staff s WHERE s.area_id = a.id AND s.role = 'supervisor')
                   AS supervisors
          FROM areas a JOIN areas r ON r.code = :root AND a.path <@ r.path
          LEFT JOIN areas p ON p.id = a.parent_id"""), {"root": root}).mappings()
    return {r["code"]: {**r, "wkb": bytes(r["wkb"])} for r in rows}


def warnings(session, root: str) -> list[tuple]:
    return sorted((p["kind"], p["severity"], tuple(p["codes"]), p["message"])
                  for p in validation.problems(session, root))


def import_every_level(session, path, **options) -> list:
    reports = []
    for level in (1, 2, 3, 4):
        report = ingest.load(session, path, level=level, actor=ACTOR, scope=Scope.all(), **options)
        assert not report.refused, report.lines()
        reports.append(report)
    return reports


def off_the_norms(session) -> None:
    """Give the demo (inside the test's transaction) grids that `areas validate` warns about."""
    grids = session.execute(text("SELECT id FROM areas WHERE level = 4 AND code LIKE :d "
                                 "ORDER BY code LIMIT 12"), {"d": DISTRICT + "%"}).scalars().all()
    session.execute(text("UPDATE areas SET households = CASE WHEN urban THEN 250 ELSE 150 END "
                         "WHERE id = ANY(:g)"), {"g": grids[:10]})
    # 1,200 households with two grid workers: outside the norm and 600 per worker.
    session.execute(text("UPDATE areas SET households = 1200 WHERE id = :g"), {"g": grids[10]})
    session.execute(text(
        "INSERT INTO area_staff (area_id, person_id, role) SELECT :g, person_id, 'worker' "
        "FROM area_staff WHERE role = 'worker' AND area_id = :other"),
        {"g": grids[10], "other": grids[0]})
    session.execute(text("DELETE FROM area_staff WHERE area_id = :g AND role = 'worker'"),
                    {"g": grids[11]})


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_demo_comes_back_whole_from_every_format(session, demo, lone, tmp_path, fmt):
    off_the_norms(session)
    path = tmp_path / f"yancheng.{fmt}"
    if fmt == "shp":
        content, _, _ = export.export_bytes(session, fmt="shp")  # what the API hands out
        import io
        import zipfile

        zipfile.ZipFile(io.BytesIO(content)).extractall(tmp_path)
        path = next(tmp_path.glob("*.shp"))
    else:
        export.export(session, path, fmt=fmt)
    # One file holds every level; each import takes its own level and the parents the file names.
    reports = import_every_level(lone, path)
    assert [len(r.created) for r in reports] == [1, 10, 198, 540]
    assert all(w.kind in ("other_level", "no_crs") for r in reports for w in r.warnings), \
        [r.lines() for r in reports]
    original, copy = snapshot(session, DISTRICT), snapshot(lone, DISTRICT)
    assert copy.keys() == original.keys()
    differ = [c for c in original if copy[c] != original[c]]
    assert not differ, (differ[:3], original[differ[0]], copy[differ[0]])
    found = warnings(lone, DISTRICT)
    assert found == warnings(session, DISTRICT)
    kinds = [w[0] for w in found]
    assert (kinds.count("workload"), kinds.count("worker_load"), kinds.count("no_worker")) == (11, 1, 1)


def test_the_geopackage_is_1_2_and_gdal_3_6_reads_it_without_a_warning(session, tiny, tmp_path):
    path = tmp_path / "tz.gpkg"
    assert export.export(session, path, parent="TZ") == 14
    import sqlite3

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47  # 'GPKG'
        assert db.execute("PRAGMA user_version").fetchone()[0] == 10200
        triggers = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert {f"rtree_tz_geom_{t}" for t in ("insert", "update1", "update2", "update3", "update4",
                                           "delete")} <= triggers
    if not VALIDATE_GPKG.exists() or not shutil.which("ogrinfo"):
        pytest.fail("GDAL's tools are missing: `make test-deps` installs gdal-bin and python3-gdal")
    checked = subprocess.run(["/usr/bin/python3", str(VALIDATE_GPKG), str(path)],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    info = subprocess.run(["ogrinfo", "-ro", "-al", "-so", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert info.returncode == 0 and "Feature Count: 14" in info.stdout
    assert "Warning" not in info.stdout + info.stderr, info.stderr
    assert "urban: Integer(Boolean)" in info.stdout and "households: Integer" in info.stdout


def test_shapefile_field_names_fit_and_are_read_back(session, tiny, tmp_path):
    import pyogrio

    export.export(session, tmp_path / "tz.shp", parent="TZ")
    names = pyogrio.read_info(tmp_path / "tz.shp")["fields"].tolist()
    assert all(len(n) <= 10 for n in names) and "supervisor" in names
    assert {fields.find(names, column) for column in fields.EXPORT_FIELDS} == set(names)


def test_xlsx_has_chinese_headers_and_geometry_longer_than_a_cell(session, tmp_path):
    # A jagged outline of 2,000 vertices: its WKT is longer than an Excel cell holds.
    ring = shapely.Polygon([(50 + i / 21000, 50 + (i % 3) / 300000) for i in range(2000)]
                           + [(50.1, 50.1), (50.0, 50.1)])
    session.execute(text(
        "INSERT INTO areas (code, name, level, geom, households, population, urban, kind) VALUES "
        "('XL', '长边', 1, ST_Multi(ST_GeomFromText(:w, 4326)), 300, 900, false, '区')"),
        {"w": ring.wkt})
    path = tmp_path / "long.xlsx"
    export.export(session, path, level=1, fmt="xlsx")
    from openpyxl import load_workbook

    sheet = load_workbook(path, read_only=True).worksheets[0]
    header = [c for c in next(sheet.iter_rows(values_only=True))]
    assert header[:14] == ["编码", "名称", "层级", "上级编码", "类型", "户数", "人口", "城镇", "网格长",
                           "网格员", "监督员", "版本", "经度", "纬度"]
    assert header[14:16] == ["几何(WKT)", "几何(WKT)_2"]
    row = next(r for r in sheet.iter_rows(min_row=2, values_only=True) if r[0] == "XL")
    assert row[7] == "否" and all(len(c or "") <= 32_767 for c in row[14:] if isinstance(c, str))
    before = session.execute(text("SELECT ST_AsBinary(geom) FROM areas WHERE code = 'XL'")).scalar()
    session.execute(text("DELETE FROM areas WHERE code = 'XL'"))
    report = ingest.load(session, path, level=1, actor=ACTOR, scope=Scope.all(), skip_bad=True)
    assert "XL" in report.created, report.lines()
    back = session.execute(text("SELECT ST_AsBinary(geom), households, population, urban, kind "
                                "FROM areas WHERE code = 'XL'")).one()
    assert bytes(back[0]) == bytes(before) and tuple(back[1:]) == (300, 900, False, "区")


def test_attributes_are_read_under_other_names_and_bad_values_are_noted(session, tmp_path):
    path = tmp_path / "foreign.csv"
    path.write_text("编码,名称,户数,人口,城镇,网格员,wkt\n"
                    "F1,甲,320,960,是,2,\"POLYGON((60 60, 60.01 60, 60.01 60.01, 60 60.01, 60 60))\"\n"
                    "F2,乙,很多,,农村,,\"POLYGON((60.01 60, 60.02 60, 60.02 60.01, 60.01 60.01, 60.01 60))\"\n",
                    encoding="utf-8")
    report = ingest.load(session, path, level=1, crs="wgs84", actor=ACTOR, scope=Scope.all())
    assert report.created == ["F1", "F2"], report.lines()
    [bad] = [w for w in report.warnings if w.kind == "bad_value"]
    assert bad.feature == 2 and "户数 '很多'" in bad.message
    rows = session.execute(text(
        "SELECT a.code, a.households, a.population, a.urban, count(s.id) FILTER (WHERE s.role = 'worker') "
        "FROM areas a LEFT JOIN area_staff s ON s.area_id = a.id WHERE a.code IN ('F1', 'F2') "
        "GROUP BY a.code, a.households, a.population, a.urban ORDER BY a.code")).all()
    assert [tuple(r) for r in rows] == [("F1", 320, 960, True, 2), ("F2", None, None, False, 0)]
    source = session.execute(text("SELECT attrs->'source'->>'户数' FROM areas WHERE code = 'F2'")).scalar()
    assert source == "很多"  # what could not be read stays with the area as the file had it

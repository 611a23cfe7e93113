"""Export → import of the 郾城区 demo in every format: what comes back, and what it costs.

For GeoJSON, GeoPackage, Shapefile, CSV and XLSX the whole demo (1 district, 10 townships, 198
villages, 540 grids) is exported with `export.export`, then imported level by level into a
second, empty database, as `anwang areas import` does. Printed per format:

  back       areas that came back with the same WKB and the same columns (name, level, parent,
             kind, households, population, urban, version, 一长两员 counts) out of all of them
  warnings   `areas validate` warnings on the copy against the original (the same list or not)
  export     time to write the file, as a ratio to the baseline: GDAL (pyogrio) writing the same
             geometries with their codes only, into the same format, in the same run
  import     time to check and import every level, as a ratio to the baseline: GDAL reading the
             file back (pyogrio, or openpyxl for XLSX), in the same run

Twelve grids are first put off the norms, so that there are warnings to keep.
The copy is rolled back after each format, so each starts from an empty database.
Bounded: two fresh databases in the embedded cluster, dropped at the end.
Usage: python bench/exports.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import databases  # noqa: E402

BENCH_DB, COPY_DB = "anwang_bench_exports", "anwang_bench_exports_copy"
FORMATS = ("geojson", "gpkg", "shp", "csv", "xlsx")
ROOT = "411103"


def off_the_norms(session) -> None:
    """Give the demo grids that `areas validate` warns about: households off its norms
    (`validation.NORMS`), one grid of 1,200 with two grid workers, one with none."""
    from sqlalchemy import text

    grids = session.execute(text("SELECT id FROM areas WHERE level = 4 ORDER BY code LIMIT 12")).scalars().all()
    session.execute(text("UPDATE areas SET households = CASE WHEN urban THEN 250 ELSE 150 END "
                         "WHERE id = ANY(:g)"), {"g": grids[:10]})
    session.execute(text("UPDATE areas SET households = 1200 WHERE id = :g"), {"g": grids[10]})
    session.execute(text("INSERT INTO area_staff (area_id, person_id, role) SELECT :g, person_id, "
                         "'worker' FROM area_staff WHERE role = 'worker' AND area_id = :other"),
                    {"g": grids[10], "other": grids[0]})
    session.execute(text("DELETE FROM area_staff WHERE area_id = :g AND role = 'worker'"),
                    {"g": grids[11]})


def snapshot(session) -> dict:
    from sqlalchemy import text

    rows = session.execute(text("""
        SELECT a.code, a.name, a.level, p.code AS parent, a.kind, a.households, a.population,
               a.urban, a.version, ST_AsBinary(a.geom) AS wkb,
               (SELECT array_agg(s.role ORDER BY s.role) FROM area_staff s WHERE s.area_id = a.id) AS staff
          FROM areas a LEFT JOIN areas p ON p.id = a.parent_id""")).mappings()
    return {r["code"]: {**r, "wkb": bytes(r["wkb"])} for r in rows}


def warnings(session) -> list:
    from geo.boundaries import validation

    return sorted((p["kind"], tuple(p["codes"]), p["message"]) for p in validation.problems(session, ROOT)
                  if p["severity"] != "error")


def baseline_write(found: list[dict], path: Path, fmt: str) -> None:
    """GDAL writing the geometries with their codes only (the XLSX baseline: openpyxl, WKT)."""
    import numpy as np
    import pyogrio
    import shapely

    if fmt in ("csv", "xlsx"):
        wkt = [shapely.from_wkb(bytes(r["wkb"])).wkt for r in found]
        if fmt == "xlsx":
            from openpyxl import Workbook

            book = Workbook(write_only=True)
            sheet = book.create_sheet("areas")
            for r, w in zip(found, wkt):
                sheet.append([r["code"], w])
            book.save(path)
            return
        path.write_text("code,wkt\n" + "".join(f'{r["code"]},"{w}"\n' for r, w in zip(found, wkt)))
        return
    driver = {"geojson": "GeoJSON", "gpkg": "GPKG", "shp": "ESRI Shapefile"}[fmt]
    pyogrio.raw.write(path, np.array([bytes(r["wkb"]) for r in found], dtype=object),
                      [np.array([r["code"] for r in found], dtype=object)], ["code"], driver=driver,
                      crs="EPSG:4326", geometry_type="MultiPolygon", layer=path.stem)


def baseline_read(path: Path, fmt: str) -> None:
    if fmt == "xlsx":
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True)
        list(book.worksheets[0].iter_rows(values_only=True))
        book.close()
        return
    import pyogrio

    pyogrio.raw.read(path)


def main() -> None:
    from sqlalchemy.orm import Session

    from data import load as demo_load
    from data import yancheng
    from geo import audit, db
    from geo.boundaries import export, ingest
    from geo.policy import Scope

    engine = db.make_engine(databases.fresh(BENCH_DB))
    copy = db.make_engine(databases.fresh(COPY_DB))
    actor = audit.Actor("bench")
    try:
        with db.session_scope(engine) as s:
            demo_load.load(s, yancheng.generate())
            off_the_norms(s)
        with db.session_scope(engine) as s:
            original, said = snapshot(s), warnings(s)
            found = export.rows(s)
        print(f"demo: {len(original)} areas, {len(said)} validate warning(s)")
        print(f"{'format':<8} {'back':>9} {'warnings':>9} {'export':>22} {'import':>22}")
        for fmt in FORMATS:
            with tempfile.TemporaryDirectory() as tmp:
                base = Path(tmp) / f"base.{fmt}"
                t = time.perf_counter()
                baseline_write(found, base, fmt)
                base_write = time.perf_counter() - t
                path = Path(tmp) / f"yancheng.{fmt}"
                with db.session_scope(engine) as s:
                    t = time.perf_counter()
                    export.export(s, path, fmt=fmt)
                    write = time.perf_counter() - t
                t = time.perf_counter()
                baseline_read(path, fmt)
                base_read = time.perf_counter() - t
                session = Session(bind=copy)
                try:
                    t = time.perf_counter()
                    for level in (1, 2, 3, 4):
                        report = ingest.load(session, path, level=level, actor=actor, scope=Scope.all())
                        if report.refused:
                            raise SystemExit(f"{fmt}: level {level} refused: {report.summary()}")
                    read = time.perf_counter() - t
                    back = snapshot(session)
                    same = sum(1 for c, row in original.items() if back.get(c) == row)
                    kept = "same" if warnings(session) == said else "DIFFER"
                finally:
                    session.rollback()
                    session.close()
            print(f"{fmt:<8} {same:>4}/{len(original):<4} {kept:>9} "
                  f"{write:6.2f} s = {write / base_write:5.1f}x GDAL "
                  f"{read:6.2f} s = {read / base_read:5.1f}x read")
    finally:
        engine.dispose()
        copy.dispose()
        databases.drop(BENCH_DB)
        databases.drop(COPY_DB)


if __name__ == "__main__":
    main()

"""Bulk grid assignment of 1,000,000 incidents: PostGIS, one set-based statement, against shapely 2.

A fresh database gets the 郾城区 demo (540 grids) and 1,000,000 generated incidents, uniform over
the district's bounding box (about a third fall outside the district and must be flagged), written
into the real `incidents` table with all its indexes. Then, on the very same points and grids:

  shapely   STRtree(grids).query(points, predicate="intersects") — the baseline (index build
            and query; making the point objects is shown apart)
  compute   geo.incidents.reassignment_impact: the production statement that decides every
            incident's grid, counted instead of written (one SELECT)
  assign    geo.incidents.assign(everything=True): the production UPDATE that writes grid_id,
            area_id, outside flag and district code for a million rows

Before timing, the table is clustered on its GiST index (CLUSTER … USING incidents_geom_idx, as a
bulk load or a maintenance window would leave it), so each grid's points sit on neighbouring
pages; the time this takes is shown, not counted. Shapely is also timed end to end — reading the
points from PostGIS as WKB, making them, querying — which is what using it in the app would cost.

Both PostGIS runs cut the areas into ≤ 64-vertex pieces and drive the join from the pieces into the
GiST index on the points (see geo/incidents.py); the answers are checked against shapely's.

Usage: python bench/assignment.py [--points N] [--keep]
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from geo import db  # noqa: E402
from geo import incidents as core  # noqa: E402
from databases import drop, step, with_demo  # noqa: E402

BENCH_DB = "anwang_bench_assignment"
CHUNK = 200_000


def load_points(engine, lon: np.ndarray, lat: np.ndarray) -> None:
    """COPY the points into `incidents` as reported disputes, in chunks, with progress."""
    raw = engine.raw_connection()
    try:
        cur = raw.driver_connection.cursor()
        first = cur.execute("SELECT COALESCE(max(id), 0) + 1 FROM incidents").fetchone()[0]
        for start in range(0, len(lon), CHUNK):
            end = min(start + CHUNK, len(lon))
            buf = io.StringIO()
            for k in range(start, end):
                buf.write(f"{first + k}\tdispute\t2026-10-01 08:00:00+08\tSRID=4326;POINT({lon[k]:.7f} {lat[k]:.7f})\tbench\n")
            buf.seek(0)
            with cur.copy("COPY incidents (id, category, occurred_at, geom, source) FROM STDIN") as copy:
                copy.write(buf.read())
            print(f"      {end:>9,} / {len(lon):,}", flush=True)
        cur.execute("SELECT setval('incidents_id_seq', (SELECT max(id) FROM incidents))")
        raw.commit()
    finally:
        raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE incidents"))


def cluster_points(engine) -> float:
    """Store the incidents in the order of their GiST index (a clustered, spatially sorted table)."""
    t0 = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("CLUSTER incidents USING incidents_geom_idx"))
        c.execute(text("ANALYZE incidents"))
    return time.perf_counter() - t0


def best_of(runs: int, fn):
    times, value = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = ap.parse_args()
    print(f"assignment: {args.points:,} generated incidents onto the 郾城区 grids")
    engine = with_demo(BENCH_DB)
    try:
        with engine.connect() as c:
            minx, miny, maxx, maxy = c.execute(text(
                "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM areas "
                "WHERE code = '411103'")).one()
            rows = c.execute(text(
                "SELECT a.id, ST_AsBinary(a.geom) FROM areas a WHERE NOT EXISTS "
                "(SELECT 1 FROM areas k WHERE k.parent_id = a.id) ORDER BY a.id")).all()
        grid_ids = np.array([r[0] for r in rows])
        grids = shapely.from_wkb([bytes(r[1]) for r in rows])
        rng = np.random.default_rng(411103)
        # 7 decimals (≈ 1 cm) as stored, so both sides test exactly the same points.
        lon = np.round(rng.uniform(minx, maxx, args.points), 7)
        lat = np.round(rng.uniform(miny, maxy, args.points), 7)

        step("writing the incidents (COPY into the real table, all indexes)")
        load_points(engine, lon, lat)
        step("clustering the table on its spatial index (CLUSTER … USING incidents_geom_idx)")
        cluster_s = cluster_points(engine)
        print(f"      {cluster_s:.2f} s")

        step("shapely: making the point objects")
        t0 = time.perf_counter()
        points = shapely.points(lon, lat)
        make_points = time.perf_counter() - t0
        print(f"      {make_points:.2f} s")
        step("shapely: STRtree(grids).query(points, predicate='intersects'), best of 3")

        def shapely_run():
            tree = shapely.STRtree(grids)
            return tree.query(points, predicate="intersects")

        shapely_s, (pi, gi) = best_of(3, shapely_run)
        print(f"      {shapely_s:.2f} s, {len(pi):,} point–grid pairs")
        step("shapely end to end: read the points from PostGIS, make them, query")
        t0 = time.perf_counter()
        with engine.connect() as c:
            wkb = c.execute(text("SELECT ST_AsBinary(geom) FROM incidents WHERE source = 'bench'")).scalars().all()
        fetched = shapely.from_wkb(wkb)
        shapely.STRtree(grids).query(fetched, predicate="intersects")
        end_to_end = time.perf_counter() - t0
        del wkb, fetched
        print(f"      {end_to_end:.2f} s")

        step("PostGIS compute: the production statement, counted not written (best of 3)")

        def compute_run():
            with Session(engine) as s:
                return core.reassignment_impact(s, everything=True)

        compute_s, impact = best_of(3, compute_run)
        print(f"      {compute_s:.2f} s: {impact['checked']:,} checked, {impact['outside']:,} outside")

        step("PostGIS assign: the production UPDATE, one statement, committed")
        with Session(engine) as s:
            t0 = time.perf_counter()
            changed = core.assign(s, everything=True)
            s.commit()
            assign_s = time.perf_counter() - t0
        print(f"      {assign_s:.2f} s, {changed:,} rows written")

        step("checking PostGIS against shapely, point by point")
        with engine.connect() as c:
            got = dict(c.execute(text("SELECT id, grid_id FROM incidents WHERE source = 'bench'")).all())
            first = min(got)
        expected: dict[int, int] = {}
        for p, g in zip(pi.tolist(), gi.tolist()):
            cur = expected.get(p)
            if cur is None or grid_ids[g] < cur:
                expected[p] = int(grid_ids[g])
        differ = [k for k in range(args.points) if got.get(first + k) != expected.get(k)]
        disagree = len(differ)
        print(f"      {disagree} of {args.points:,} differ")
        with engine.connect() as c:
            for k in differ[:5]:
                near = c.execute(text(
                    "SELECT min(ST_Distance(ST_Boundary(a.geom)::geography, "
                    "ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography)) FROM areas a "
                    "WHERE a.id IN (:p, :q)"),
                    {"x": float(lon[k]), "y": float(lat[k]), "p": got.get(first + k) or 0,
                     "q": expected.get(k) or 0}).scalar()
                print(f"      ({lon[k]:.9f}, {lat[k]:.9f}): PostGIS {got.get(first + k)}, "
                      f"shapely {expected.get(k)}, {near * 1000:.3f} mm from their boundary")
    finally:
        engine.dispose()
        if not args.keep:
            drop(BENCH_DB)

    print("")
    print("summary")
    print(f"  shapely STRtree query (baseline)        {shapely_s:8.2f} s   (+ {make_points:.2f} s making points)")
    print(f"  shapely from PostGIS, end to end        {end_to_end:8.2f} s   (read WKB, make points, query)")
    print(f"  PostGIS compute, one SELECT             {compute_s:8.2f} s   {compute_s / shapely_s:5.2f} × the baseline, "
          f"{compute_s / end_to_end:4.2f} × end to end")
    print(f"  PostGIS assign, one UPDATE (written)    {assign_s:8.2f} s   {assign_s / shapely_s:5.2f} × the baseline")
    print(f"  assignments that differ from shapely    {disagree:8d}")
    print(f"  rate of the UPDATE                      {args.points / assign_s:8,.0f} incidents/s")
    print(f"  (the table was clustered on its GiST index first: {cluster_s:.1f} s, not counted)")


if __name__ == "__main__":
    main()

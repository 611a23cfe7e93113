"""Bulk grid assignment of 1,000,000 incidents: PostGIS, one set-based statement, against shapely 2.

A fresh database gets the 郾城区 demo (540 grids) and 1,000,000 generated incidents, uniform over
the district's bounding box (about a third fall outside the district and must be flagged), written
into the real `incidents` table with all its indexes. Then, on the very same points and grids:

  shapely   STRtree(grids).query(points, predicate="intersects") — the baseline (index build
            and query; making the point objects is shown apart)
  lookup    geo.gridlookup.refresh: the grid lookup built from the areas, as the first bulk run
            after a boundary change builds it (timed apart: it is maintenance, not assignment)
  compute   geo.incidents.reassignment_impact: the production statement that decides every
            incident's grid, counted instead of written (one SELECT) — with its 2 parallel
            workers, in one process, and the pieces' statement a bulk run uses without a lookup
  assign    geo.incidents.assign(everything=True): the production UPDATE that writes grid_id,
            area_id, outside flag and district code for a million rows, then the same UPDATE
            again when nothing is left to write (an UPDATE never runs in parallel)
  written   shapely as the app would have to use it to assign: read the points, query, COPY the
            answers into a temporary table and write the same four columns with one UPDATE … FROM
            (run last, after the rows are reset and the table vacuumed, so its UPDATE finds free
            space on every page that the production UPDATE did not have)

Before timing, the table is clustered on its GiST index (CLUSTER … USING incidents_geom_idx, as a
bulk load or a maintenance window would leave it), so each grid's points sit on neighbouring
pages; the time this takes is shown, not counted. Shapely is also timed end to end — reading the
points from PostGIS as WKB, making them, querying — which is what using it in the app would cost
(before writing anything back).

Every point reads its cell of the lookup; in a cell a single edge crosses, the side of that edge
decides, and only the points in the other crossed cells are tested against the pieces (see
geo/gridlookup.py). The answers are checked against shapely's, point by point, and the three
compute shapes must count the same.

Usage: python bench/assignment.py [--points N] [--keep]
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from databases import drop, step, with_demo  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from geo.incidents import assignment, gridlookup  # noqa: E402

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
                point = f"SRID=4326;POINT({lon[k]:.7f} {lat[k]:.7f})"
                buf.write(f"{first + k}\tdispute\t2026-10-01 08:00:00+08\t{point}\tbench\n")
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


@contextmanager
def patched(obj, name: str, value):
    """Set an attribute for the length of a block (to time another shape of the same statement)."""
    before = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, before)


def _crossed_shares(engine, lookup) -> tuple[float, float]:
    """The shares of the points whose cell a boundary crosses, and of those whose cell no single
    edge crosses (they meet a polygon test)."""
    with engine.connect() as c:
        return tuple(c.execute(text("""
            SELECT avg(CASE WHEN v < 0 THEN 1.0 ELSE 0 END),
                   avg(CASE WHEN v < 0 AND l.lines[-v][1] = 0 AND l.lines[-v][2] = 0 THEN 1.0 ELSE 0 END)
              FROM (SELECT cells[:][:] AS cells, lines[:][:] AS lines
                      FROM grid_lookups WHERE fingerprint = :f OFFSET 0) l,
                   LATERAL (SELECT t.geom FROM incidents t WHERE t.source = 'bench') t,
                   LATERAL (SELECT COALESCE(l.cells[floor(ST_X(t.geom) * :s)::int - :i0 + 1]
                                               [floor(ST_Y(t.geom) * :s)::int - :j0 + 1], 0) AS v) c"""),
            {"s": float(lookup.scale), "i0": lookup.i0, "j0": lookup.j0,
             "f": lookup.fingerprint}).one())


def shapely_written(engine, grids, grid_ids) -> float:
    """Assign every bench incident with shapely and write the answers back; return the seconds."""
    t0 = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.driver_connection.cursor()
        cur.execute("SELECT set_config('work_mem', %s, true)", (assignment.BULK_WORK_MEM,))
        rows = cur.execute("SELECT id, ST_AsBinary(geom) FROM incidents WHERE source = 'bench'").fetchall()
        ids = np.array([r[0] for r in rows])
        pi, gi = shapely.STRtree(grids).query(shapely.from_wkb([r[1] for r in rows]), predicate="intersects")
        del rows
        # The lowest grid id on a shared edge, as the production rule (grids are all leaves here).
        none = np.iinfo(np.int64).max
        best = np.full(len(ids), none)
        np.minimum.at(best, pi, grid_ids[gi])
        cur.execute("CREATE TEMP TABLE answers (id bigint, grid integer) ON COMMIT DROP")
        with cur.copy("COPY answers (id, grid) FROM STDIN") as copy:
            for i, g in zip(ids.tolist(), best.tolist()):
                copy.write_row((i, None if g == none else g))
        cur.execute("""
            UPDATE incidents i
               SET grid_id = a.grid, area_id = a.grid, outside_jurisdiction = a.grid IS NULL,
                   district_code = r.code
              FROM answers a
              LEFT JOIN areas f ON f.id = a.grid
              LEFT JOIN areas r ON r.id = CAST(subpath(f.path, 0, 1)::text AS int)
             WHERE i.id = a.id""")
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - t0


def reset(engine) -> None:
    """Unassign the bench incidents and vacuum the old row versions away."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("UPDATE incidents SET grid_id = NULL, area_id = NULL, outside_jurisdiction = false, "
                       "district_code = NULL WHERE source = 'bench'"))
        c.execute(text("VACUUM ANALYZE incidents"))


def timed_assign(engine) -> tuple[float, int]:
    """Seconds and rows written by the production bulk assignment of every incident, committed."""
    with Session(engine) as s:
        t0 = time.perf_counter()
        changed = assignment.assign(s, everything=True)
        s.commit()
        return time.perf_counter() - t0, changed


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

        step("PostGIS: building the grid lookup from the areas (once after every boundary change)")
        with Session(engine) as s:
            t0 = time.perf_counter()
            lookup = gridlookup.refresh(s)
            s.commit()
            build_s = time.perf_counter() - t0
        crossed, tested = _crossed_shares(engine, lookup)
        print(f"      {build_s:.2f} s: cells 1/{lookup.scale}°, {crossed:.1%} of the points in crossed cells, "
              f"{tested:.1%} where no single edge decides")

        def compute_run():
            with Session(engine) as s:
                return assignment.reassignment_impact(s, everything=True)

        step("PostGIS compute: the production statement, counted not written, 2 workers (best of 3)")
        compute_s, impact = best_of(3, compute_run)
        print(f"      {compute_s:.2f} s: {impact['checked']:,} checked, {impact['outside']:,} outside")
        step("the same in one process (max_parallel_workers_per_gather = 0), best of 3")
        with patched(assignment, "BULK_WORKERS", "0"):
            serial_s, serial_impact = best_of(3, compute_run)
        print(f"      {serial_s:.2f} s")
        step("the same without the lookup: the pieces' statement, best of 2")
        with patched(assignment, "_lookup", lambda *a, **k: None):
            pieces_s, pieces_impact = best_of(2, compute_run)
        print(f"      {pieces_s:.2f} s")
        if not impact == serial_impact == pieces_impact:
            raise SystemExit(f"the counts differ: {impact}, {serial_impact}, {pieces_impact}")

        step("PostGIS assign: the production UPDATE, one statement, committed")
        assign_s, changed = timed_assign(engine)
        print(f"      {assign_s:.2f} s, {changed:,} rows written")
        step("PostGIS assign again: every point decided inside the UPDATE, nothing left to write")
        again_s, unchanged = timed_assign(engine)
        print(f"      {again_s:.2f} s, {unchanged:,} rows written")

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

        step("shapely, written back: unassigning and vacuuming first (not counted)")
        reset(engine)
        step("shapely, written back: read, query, COPY the answers, one UPDATE … FROM, committed")
        written_s = shapely_written(engine, grids, grid_ids)
        with engine.connect() as c:
            again = dict(c.execute(text("SELECT id, grid_id FROM incidents WHERE source = 'bench'")).all())
        written_differ = sum(1 for k, v in got.items() if again.get(k) != v)
        print(f"      {written_s:.2f} s; {written_differ} rows differ from the production UPDATE's")
    finally:
        engine.dispose()
        if not args.keep:
            drop(BENCH_DB)

    print("")
    print("summary")
    print(f"  shapely STRtree query (baseline)        {shapely_s:8.2f} s   (+ {make_points:.2f} s making points)")
    print(f"  shapely from PostGIS, end to end        {end_to_end:8.2f} s   (read WKB, make points, query)")
    print(f"  PostGIS compute, one SELECT, 2 workers  {compute_s:8.2f} s   "
          f"{compute_s / shapely_s:5.2f} × the baseline, "
          f"{compute_s / end_to_end:4.2f} × end to end")
    print(f"  PostGIS compute, one process            {serial_s:8.2f} s   {serial_s / shapely_s:5.2f} × the baseline, "
          f"{serial_s / end_to_end:4.2f} × end to end")
    print(f"  PostGIS compute without the lookup      {pieces_s:8.2f} s   {pieces_s / shapely_s:5.2f} × the baseline")
    print(f"  PostGIS assign, one UPDATE (written)    {assign_s:8.2f} s   {assign_s / shapely_s:5.2f} × the baseline, "
          f"{args.points / assign_s:,.0f} incidents/s")
    print(f"  shapely, written back (UPDATE … FROM)   {written_s:8.2f} s   the production UPDATE takes "
          f"{assign_s / written_s:4.2f} × this")
    print(f"  PostGIS assign again, nothing to write  {again_s:8.2f} s   {again_s / shapely_s:5.2f} × the baseline, "
          f"{again_s / end_to_end:4.2f} × end to end")
    print(f"  grid lookup build (after an edit)       {build_s:8.2f} s   cells 1/{lookup.scale}°; points in "
          f"crossed cells {crossed:.1%}, tested against pieces {tested:.1%}")
    print(f"  assignments that differ from shapely    {disagree:8d}   (written back: {written_differ} rows differ)")
    print(f"  (the table was clustered on its GiST index first: {cluster_s:.1f} s, not counted)")


if __name__ == "__main__":
    main()

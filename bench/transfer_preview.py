"""Server time of a transfer preview on the 郾城区 demo, as a ratio to a plain ST_Union of the village.

A preview is the whole change — snap and cut the drawn region, write the new geometries and
versions, move incidents and entities, prove the village is still an exact partition, gather the
per-grid statistics and the workload balance — run inside a savepoint that is rolled back. Its
floor is what any check of the result must do at least once: union the village's grids
(`SELECT ST_Union(geom) FROM areas WHERE parent_id = :village`). Both are timed in the same run,
on the same villages, in the same database session, so the ratio does not depend on the machine.

For each of up to 40 villages with two or more grids, the region is a ~120 m square around a
point on the edge two neighbouring grids share (what a planner draws for a small transfer).
Bounded: a fresh database in the embedded cluster, dropped at the end.
Usage: python bench/transfer_preview.py [--quick]
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import databases  # noqa: E402

from geo.policy import Scope

BENCH_DB = "anwang_bench_planner"
HALF_SIDE = 0.00055  # degrees: a square of about 120 m around the point on the shared edge


def cases(session, limit: int) -> list[dict]:
    """(village, from grid, to grid, region) for villages with two neighbouring grids."""
    from sqlalchemy import text

    rows = session.execute(text("""
        SELECT DISTINCT ON (v.id) v.id AS village, a.code AS a, b.code AS b,
               ST_X(p) AS x, ST_Y(p) AS y
          FROM areas v
          JOIN areas a ON a.parent_id = v.id
          JOIN areas b ON b.parent_id = v.id AND b.id > a.id AND b.geom && a.geom
          CROSS JOIN LATERAL ST_PointOnSurface(ST_Intersection(a.geom, b.geom)) p
         WHERE v.level = 3 AND a.level = 4 AND ST_Intersects(a.geom, b.geom)
           AND GeometryType(ST_Intersection(a.geom, b.geom)) LIKE '%LINESTRING'
         ORDER BY v.id, a.id, b.id""")).mappings().all()
    step = max(1, len(rows) // limit)
    out = []
    for r in rows[::step][:limit]:
        x, y, h = r["x"], r["y"], HALF_SIDE
        region = {"type": "Polygon", "coordinates": [[[x - h, y - h], [x + h, y - h], [x + h, y + h],
                                                      [x - h, y + h], [x - h, y - h]]]}
        out.append({"village": r["village"], "areas": [r["a"], r["b"]], "region": region})
    return out


def main() -> None:
    from sqlalchemy import text

    from data import load as demo_load
    from data import yancheng
    from geo import audit, db
    from geo.boundaries import changes
    from geo.errors import InvalidInput

    quick = "--quick" in sys.argv
    url = databases.fresh(BENCH_DB)
    engine = db.make_engine(url)
    try:
        t0 = time.perf_counter()
        with db.session_scope(engine) as s:
            demo_load.load(s, yancheng.generate())
        print(f"demo loaded in {time.perf_counter() - t0:.1f} s")
        actor = audit.Actor("bench")
        repeats = 3 if quick else 7
        with db.session_scope(engine) as s:
            todo = cases(s, 12 if quick else 40)
            previews, floors, refused = [], [], 0
            for case in todo:
                floor_times, preview_times = [], []
                for _ in range(repeats):
                    t = time.perf_counter()
                    s.execute(text("SELECT ST_Union(geom) FROM areas WHERE parent_id = :v"),
                              {"v": case["village"]}).scalar()
                    floor_times.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    try:
                        changes.apply(s, "transfer", areas=case["areas"], geometry=case["region"],
                                    reason=None, actor=actor, preview=True, scope=Scope.all())
                    except InvalidInput:
                        refused += 1
                        break
                    preview_times.append(time.perf_counter() - t)
                if preview_times:
                    previews.append(statistics.median(preview_times))
                    floors.append(statistics.median(floor_times))
            s.rollback()
        if not previews:
            raise SystemExit("no transfer could be previewed")
        preview_ms = statistics.median(previews) * 1000
        floor_ms = statistics.median(floors) * 1000
        p95 = sorted(previews)[int(0.95 * (len(previews) - 1))] * 1000
        print(f"villages: {len(previews)} (refused {refused}), {repeats} runs each")
        print(f"ST_Union of the village (floor): median {floor_ms:.2f} ms")
        print(f"transfer preview (server time): median {preview_ms:.1f} ms, p95 {p95:.1f} ms")
        print(f"ratio preview / floor: {preview_ms / floor_ms:.1f}x")
    finally:
        engine.dispose()
        databases.drop(BENCH_DB)


if __name__ == "__main__":
    main()

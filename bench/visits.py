"""The demo's 走访 figures against the district's, and what storing them costs, each as a ratio to a
baseline measured in the same run.

- Figures: households visited and 人次 in the loaded demo, as a ratio to the article's 6万余户 and
  13万余人次 (geo/visits/seed.py); 回访 per resolved matter.
- Loading: the demo's visits streamed with COPY (as `anwang demo` does) against the same rows sent as
  one INSERT each — the baseline — both inside a savepoint that is rolled back.
- Writing from a phone: a visit recorded with an Idempotency-Key against the same request sent
  again (the replay, which finds the stored record and writes nothing).

Bounded: a fresh database in the embedded cluster, dropped at the end.
Usage: python bench/visits.py [--quick]
"""
from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import databases  # noqa: E402

BENCH_DB = "anwang_bench_visits"


def main() -> None:
    from sqlalchemy import text

    from geo import audit, db, idempotency
    from geo.policy import Audience
    from geo.visits import records, seed

    quick = "--quick" in sys.argv
    engine = databases.with_demo(BENCH_DB)
    try:
        with db.session_scope(engine) as s:
            households, people = s.execute(text(
                "SELECT count(DISTINCT household_id), coalesce(sum(people), 0) FROM visits "
                "WHERE household_id IS NOT NULL")).one()
            resolved, visited = s.execute(text("""
                SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM visits v
                        WHERE v.incident_id = i.id AND v.kind = 'follow_up'))
                  FROM incidents i WHERE i.status IN ('followed_up', 'closed')""")).one()
        print(f"households visited: {households:,} = {households / seed.HOUSEHOLDS_VISITED:.3f}x "
              f"the reported {seed.HOUSEHOLDS_VISITED:,}")
        print(f"人次 (residents met): {people:,} = {people / seed.PERSON_VISITS:.3f}x "
              f"the reported {seed.PERSON_VISITS:,}")
        print(f"回访 per followed-up or closed matter: {visited:,}/{resolved:,} = "
              f"{visited / max(1, resolved):.3f}")

        limit = 20_000 if quick else 200_000
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT kind, household_id, incident_id, grid_id, geom, occurred_at, people, notes "
                "FROM visits ORDER BY id LIMIT :n"), {"n": limit}).all()
            raw = conn.connection.driver_connection
            columns = "kind, household_id, incident_id, grid_id, geom, occurred_at, people, notes"
            with raw.cursor() as cur:
                cur.execute("SAVEPOINT copy_run")
                t = time.perf_counter()
                with cur.copy(f"COPY visits ({columns}) FROM STDIN") as copy:
                    for r in rows:
                        copy.write_row(tuple(r))
                copy_s = time.perf_counter() - t
                cur.execute("ROLLBACK TO SAVEPOINT copy_run")
                sample = rows[: max(1000, len(rows) // (20 if quick else 10))]
                t = time.perf_counter()
                for r in sample:
                    cur.execute(f"INSERT INTO visits ({columns}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                                tuple(r))
                insert_s = (time.perf_counter() - t) * len(rows) / len(sample)
                cur.execute("ROLLBACK TO SAVEPOINT copy_run")
            conn.rollback()
        print(f"loading {len(rows):,} visits: COPY {copy_s:.2f} s; one INSERT each (baseline, "
              f"extrapolated from {len(sample):,}) {insert_s:.1f} s; ratio COPY / baseline "
              f"{copy_s / insert_s:.3f}")

        n = 50 if quick else 300
        actor = audit.Actor("bench")
        audience = Audience.system()
        with db.session_scope(engine) as s:
            home = s.execute(text("SELECT id FROM households ORDER BY id LIMIT 1")).scalar_one()
            bodies = [{"kind": "home", "household_id": home, "notes": f"bench {k}",
                       "occurred_at": "2026-10-20T10:00:00+08:00"} for k in range(n)]
            keys = [idempotency.Key.of(str(uuid.uuid4()), b) for b in bodies]
            t = time.perf_counter()
            for b, k in zip(bodies, keys, strict=True):
                records.create(s, actor, b, audience, k)
            fresh_s = time.perf_counter() - t
            t = time.perf_counter()
            for b, k in zip(bodies, keys, strict=True):
                assert records.create(s, actor, b, audience, k)["replayed"]
            replay_s = time.perf_counter() - t
            s.rollback()
        print(f"{n} visits with an Idempotency-Key: first {fresh_s / n * 1000:.2f} ms each, sent again "
              f"{replay_s / n * 1000:.2f} ms each; ratio replay / first {replay_s / fresh_s:.2f}")
    finally:
        engine.dispose()
        databases.drop(BENCH_DB)


if __name__ == "__main__":
    main()

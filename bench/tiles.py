"""Vector tiles on the 郾城区 demo: an uncached tile against the bare ST_AsMVT query of the same
envelope, a cached tile's server time, and what one edit expires.

1. Uncached. For tiles of the `areas`, `incidents` (points) and `basemap` layers at zooms 12–16
   over the district, `layers.tiles.serve` with the tile first removed from the cache — look it up,
   claim it, build it, gzip it, store it — against the floor: the bare `ST_AsMVT` query of the same
   tile for the same reader (the layer's own SQL, run alone: what a server with no cache, no
   compression and no bookkeeping would send to PostGIS). Both run interleaved in one session, so
   the ratio does not depend on the machine.
2. Cached. The same tiles served again: p95 of `layers.tiles.serve` on a hit (the tile's server
   time), and p95 of whole requests through the app (Flask's test client; the `areas` and
   `incidents` tiles with a bearer token of an analyst of the district, which the app checks on
   every request, the anonymous basemap without), against the uncached p95.
3. Expiry. Every areas / risk / incidents tile over the district at zooms 12–15 cached, then one
   incident written in one transaction: how many tiles it expired, and how many cached tiles the
   incident's point meets (buffered tile envelope) — the two must be equal, and the rest stay.

Bounded: a fresh database in the embedded cluster, dropped at the end.
Usage: python bench/tiles.py [--quick]
"""
from __future__ import annotations

import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import databases  # noqa: E402

BENCH_DB = "anwang_bench_tiles"
DISTRICT = "411103"
MARGIN = "0.015625"   # layers.mvt.MARGIN: 64 of 4096 units
ZOOMS = {"areas": (12, 13, 14, 15, 16), "incidents": (14, 15, 16), "basemap": (12, 13, 14, 15, 16)}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def addresses(session, per_zoom: int, rng: random.Random) -> dict[str, list[tuple[int, int, int]]]:
    """Tiles over the district that hold something: the ones around random grids' centres."""
    from sqlalchemy import text

    from tests.mvt import tile_of

    points = session.execute(text("""
        SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(g.geom) AS p FROM areas g
          JOIN areas d ON d.code = :d AND ST_Within(g.geom, d.geom) WHERE g.level = 4) x"""),
        {"d": DISTRICT}).all()
    out: dict[str, list[tuple[int, int, int]]] = {}
    for layer, zooms in ZOOMS.items():
        out[layer] = []
        for z in zooms:
            seen = {(z, *tile_of(z, lon, lat)) for lon, lat in rng.sample(points, min(len(points), per_zoom * 3))}
            out[layer] += sorted(seen)[:per_zoom]
    return out


def uncached(session, todo, repeats: int, audience) -> list[dict]:
    from datetime import datetime

    from sqlalchemy import text

    from layers import tiles
    from layers.mvt import TileAddress
    from layers.selection import TZ

    rows = []
    for layer, tile_list in todo.items():
        build = tiles.layer_named(layer).build
        for z, x, y in tile_list:
            served, floor = [], []
            for _ in range(repeats):
                session.execute(text("DELETE FROM tile_cache WHERE layer = :l AND z = :z AND x = :x AND y = :y"),
                                {"l": layer, "z": z, "x": x, "y": y})
                t = time.perf_counter()
                tile = tiles.serve(session, layer, z, x, y, audience)
                served.append(time.perf_counter() - t)
                assert tile.cache == "miss"
                t = time.perf_counter()
                build(session, TileAddress(z, x, y), audience, datetime.now(TZ))
                floor.append(time.perf_counter() - t)
            rows.append({"layer": layer, "z": z, "served": statistics.median(served),
                         "floor": statistics.median(floor)})
    return rows


def hits(session, todo, rounds: int, audience) -> list[float]:
    """Milliseconds of layers.tiles.serve on cached tiles."""
    from layers import tiles

    out = []
    for _ in range(rounds):
        for layer, tile_list in todo.items():
            for z, x, y in tile_list:
                t = time.perf_counter()
                tile = tiles.serve(session, layer, z, x, y, audience)
                out.append((time.perf_counter() - t) * 1000)
                assert tile.cache == "hit"
    return out


def cached(app, todo, token: str, rounds: int) -> dict[str, tuple[list[float], list[float]]]:
    """(app time, whole request) in milliseconds per kind of reader: signed in, anonymous."""
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
    out: dict[str, tuple[list[float], list[float]]] = {"signed in": ([], []), "anonymous": ([], [])}
    urls = [f"/tiles/{layer}/{z}/{x}/{y}.mvt" for layer, tile_list in todo.items() for z, x, y in tile_list]
    for url in urls:                       # fill the cache
        assert client.get(url, headers=headers).status_code == 200
    for _ in range(rounds):
        for url in urls:
            kind = "anonymous" if url.startswith("/tiles/basemap/") else "signed in"
            t = time.perf_counter()
            r = client.get(url, headers=headers if kind == "signed in" else {"Accept-Encoding": "gzip"})
            out[kind][1].append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200 and r.headers["X-Tile-Cache"] == "hit", (url, r.headers.get("X-Tile-Cache"))
            out[kind][0].append(float(r.headers["Server-Timing"].split("dur=")[1]))
    return out


def expiry(engine, audience) -> dict:
    """Cache every areas / risk / incidents tile over the district at zooms 12–15, write one incident."""
    from sqlalchemy import text

    from geo import db
    from layers import tiles
    from tests.mvt import tile_of

    with db.session_scope(engine) as s:
        s.execute(text("DELETE FROM tile_cache"))
        w, south, e, n = s.execute(text(
            "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM areas WHERE code = :d"),
            {"d": DISTRICT}).one()
        for layer in ("areas", "risk", "incidents"):
            for z in range(12, 16):
                x0, y0 = tile_of(z, w, n)
                x1, y1 = tile_of(z, e, south)
                for x in range(x0, x1 + 1):
                    for y in range(y0, y1 + 1):
                        tiles.serve(s, layer, z, x, y, audience)
    with db.session_scope(engine) as s:
        before = set(s.execute(text("SELECT layer, z, x, y FROM tile_cache")).all())
        grid, lon, lat = s.execute(text("""
            SELECT id, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM areas
             WHERE level = 4 ORDER BY code LIMIT 1 OFFSET 100""")).one()
        point = f"POINT({lon} {lat})"
        meets = {r for r in before if r[0] == "incidents" and s.execute(text(
            f"SELECT ST_Intersects(ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => {MARGIN}), 4326), "
            "ST_GeomFromText(:p, 4326))"), {"z": r[1], "x": r[2], "y": r[3], "p": point}).scalar()}
    with db.session_scope(engine) as s:
        t = time.perf_counter()
        s.execute(text("""
            INSERT INTO incidents (category, severity, status, occurred_at, reported_at, geom, grid_id,
                                   sensitive, description, reporter_name)
            VALUES ('dispute', 2, 'reported', now() - interval '1 hour', now(),
                    ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :g, false, '邻里纠纷', '王五')"""),
            {"lon": lon, "lat": lat, "g": grid})
        write_ms = (time.perf_counter() - t) * 1000
    with db.session_scope(engine) as s:
        after = set(s.execute(text("SELECT layer, z, x, y FROM tile_cache")).all())
    return {"before": len(before), "after": len(after), "expired": before - after, "meets": meets,
            "write_ms": write_ms}


def main() -> None:
    from sqlalchemy import text

    from geo import audit, db, users
    from geo.policy import Audience, Scope
    from web import create_app

    quick = "--quick" in sys.argv
    rng = random.Random(411103)
    engine = databases.with_demo(BENCH_DB)
    try:
        with db.session_scope(engine) as s:
            users.add_user(s, audit.Actor("bench"), "bench_analyst", "analyst", scopes=[DISTRICT],
                           password="bench-tiles-1")
            token = users.create_token(s, audit.Actor("bench"), "bench_analyst", "bench")
            audience = Audience("analyst", Scope.of_codes(s, [DISTRICT]))
            todo = addresses(s, 3 if quick else 8, rng)
        n_tiles = sum(len(v) for v in todo.values())
        databases.step(f"uncached: {n_tiles} tiles, each built and floored {3 if quick else 7} times")
        with db.session_scope(engine) as s:
            s.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
            rows = uncached(s, todo, 3 if quick else 7, audience)
        databases.step("cached: the same tiles again, in the tile layer and through the app")
        with db.session_scope(engine) as s:
            hit_ms = hits(s, todo, 5 if quick else 20, audience)
        app = create_app({"SECRET_KEY": "bench", "DATABASE_URL": engine.url.render_as_string(hide_password=False)})
        requests = cached(app, todo, token, 3 if quick else 10)
        databases.step("expiry: caching areas, risk and incidents over the district at zooms 12–15")
        ex = expiry(engine, audience)
    finally:
        engine.dispose()
        databases.drop(BENCH_DB)

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\ntiles: 郾城区 demo, {n_tiles} tiles, audience analyst of {DISTRICT}; "
          f"load average {load} on {os.cpu_count()} CPUs")
    print(f"{'layer':<10} {'tiles':>5} {'served ms':>10} {'floor ms':>9} {'ratio':>6}")
    for layer in ZOOMS:
        mine = [r for r in rows if r["layer"] == layer]
        served = sum(r["served"] for r in mine) * 1000 / len(mine)
        floor = sum(r["floor"] for r in mine) * 1000 / len(mine)
        print(f"{layer:<10} {len(mine):>5} {served:>10.2f} {floor:>9.2f} {served / floor:>6.2f}")
    served_all = sum(r["served"] for r in rows)
    floor_all = sum(r["floor"] for r in rows)
    print(f"uncached tile / bare ST_AsMVT of the same envelope: {served_all / floor_all:.2f} (target ≤ 1.25)")
    uncached_p95 = p95([r["served"] * 1000 for r in rows])
    print(f"cached tile p95 server time (layers.tiles.serve, {len(hit_ms)} hits): {p95(hit_ms):.2f} ms, "
          f"median {statistics.median(hit_ms):.2f} ms "
          f"(target ≤ 5 ms); uncached p95 {uncached_p95:.2f} ms; cached / uncached {p95(hit_ms) / uncached_p95:.3f}")
    for kind, (app_ms, wall_ms) in requests.items():
        print(f"  through the app, {kind}: p95 {p95(app_ms):.2f} ms app time (Server-Timing), "
              f"{p95(wall_ms):.2f} ms whole request, median {statistics.median(wall_ms):.2f} ms "
              f"({len(app_ms)} requests); "
              f"cached / uncached {p95(app_ms) / uncached_p95:.3f}")
    exact = ex["expired"] == ex["meets"]
    print(f"expiry: {ex['before']} tiles cached, one incident written ({ex['write_ms']:.1f} ms with its expiry): "
          f"{len(ex['expired'])} expired, {len(ex['meets'])} cached incident tiles meet its point, "
          f"{ex['after']} left — {'exactly those' if exact else 'NOT exactly those'} "
          f"({len(ex['expired']) / ex['before']:.4f} of the cache)")


if __name__ == "__main__":
    main()

"""Read load: many dashboard readers at once on the map's two reads, `/api/areas?level=4` (every
grid of the district) and `/api/incidents?bbox=…` (the incidents of the district's view), against a
real `anwang serve` on 127.0.0.1 with the 郾城区 demo.

First one client alone reads for --baseline seconds (its latencies are the baseline); then
--clients readers (threads spread over a few processes, each with its own keep-alive connection
and session cookie of an analyst of the district) read as fast as they are answered for
--duration seconds. Printed: requests/s, p50/p95/p99 per read and overall, errors, and each
percentile as a ratio to the single client's. The issue's figure is 200 clients for 60 s
(`--clients 200 --duration 60`); the defaults finish in about two minutes with the demo loaded.

Readers ask for gzip, as every browser does (--identity asks for uncompressed bodies).

Usage: python bench/load.py [--clients 200] [--duration 20] [--baseline 8] [--reuse] [--workers N] [--identity]
  --reuse keeps the benchmark database (and its demo) for the next run instead of rebuilding it.
"""
from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import databases  # noqa: E402
from positions import Server  # noqa: E402

BENCH_DB = "anwang_bench_load"
USER, PASSWORD = "bench_analyst", "bench-pass-123"
PROCS = 4
ENCODING = "gzip"      # what every browser sends; --identity measures uncompressed bodies


def prepare(reuse: bool) -> tuple[str, str]:
    """The benchmark database with the demo and an analyst of the district; the incidents' bbox."""
    from sqlalchemy import text

    from data import load
    from data.yancheng.reference import DISTRICT_CODE
    from geo import audit, db, users
    from geo.cluster import Cluster

    engine = None
    if reuse:
        cluster = Cluster.default()
        cluster.start()
        cluster.ensure_database(BENCH_DB)
        engine = db.make_engine(cluster.url(BENCH_DB))
        db.migrate(engine)
        with db.session_scope(engine) as s:
            if not load.is_loaded(s):
                engine.dispose()
                engine = None
    if engine is None:
        engine = databases.with_demo(BENCH_DB)
    with db.session_scope(engine) as s:
        users.add_user(s, audit.Actor("bench"), USER, "analyst", password=PASSWORD, scopes=[DISTRICT_CODE],
                       replace=True)
        # The district's view, as the dashboard opens on it.
        bbox = s.execute(text("SELECT concat_ws(',', round(ST_XMin(e)::numeric, 4), round(ST_YMin(e)::numeric, 4), "
                              "round(ST_XMax(e)::numeric, 4), round(ST_YMax(e)::numeric, 4)) "
                              "FROM (SELECT ST_Extent(geom) AS e FROM areas WHERE code = :c) x"),
                         {"c": DISTRICT_CODE}).scalar_one()
    engine.dispose()
    return f"/api/areas?level=4&parent={DISTRICT_CODE}", f"/api/incidents?bbox={bbox}"


def login(port: int) -> str:
    """Log in through the real form; the session cookie header."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/login")
    r = conn.getresponse()
    page = r.read().decode()
    cookie = r.getheader("Set-Cookie").split(";")[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    conn.request("POST", "/login", body=f"username={USER}&password={PASSWORD}&csrf_token={token}",
                 headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    assert r.status == 302, r.status
    return r.getheader("Set-Cookie").split(";")[0]


def reader(port: int, cookie: str, urls: list[str], start: float, until: float, out: list) -> None:
    """Read the urls in turn from `start` until `until`: (url index, seconds or None on error)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    i = 0
    while time.time() < start:
        time.sleep(0.01)
    while time.time() < until:
        k = i % len(urls)
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("GET", urls[k], headers={"Cookie": cookie, "Accept": "application/json",
                                                  "Accept-Encoding": ENCODING})
            r = conn.getresponse()
            r.read()
            out.append((k, time.perf_counter() - t0 if r.status == 200 else None))
        except (OSError, http.client.HTTPException):
            out.append((k, None))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.close()


def reader_proc(args) -> list:
    port, cookies, urls, start, until = args
    outs: list[list] = [[] for _ in cookies]
    threads = [threading.Thread(target=reader, args=(port, c, urls, start, until, o)) for c, o in zip(cookies, outs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for o in outs for x in o]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


def summary(results: list, urls: list[str], seconds: float) -> dict:
    """Per read and overall: count, p50/p95/p99 in ms, errors; and requests/s."""
    rows = {}
    for k, name in [(k, u.split("?")[0]) for k, u in enumerate(urls)] + [(None, "all")]:
        ms = [t * 1000 for i, t in results if t is not None and (k is None or i == k)]
        errors = sum(1 for i, t in results if t is None and (k is None or i == k))
        rows[name] = {"n": len(ms), "errors": errors, "p50": pct(ms, 50), "p95": pct(ms, 95), "p99": pct(ms, 99)}
    rows["all"]["rate"] = len(results) / seconds
    return rows


def show(label: str, rows: dict, base: dict | None = None) -> None:
    print(f"{label}: {rows['all']['rate']:,.1f} requests/s")
    for name, r in rows.items():
        line = (f"  {name:<16} n {r['n']:>6,}  errors {r['errors']:>4}  p50 {r['p50']:>7.0f} ms  "
                f"p95 {r['p95']:>7.0f} ms  p99 {r['p99']:>7.0f} ms")
        if base is not None:
            b = base[name]
            line += "   × single client: " + "  ".join(f"{p} {r[p] / b[p]:.1f}" for p in ("p50", "p95", "p99"))
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of concurrent load")
    ap.add_argument("--baseline", type=float, default=8.0, help="seconds of the single client")
    ap.add_argument("--reuse", action="store_true", help="keep and reuse the benchmark database")
    ap.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: ANWANG_WORKERS)")
    ap.add_argument("--identity", action="store_true", help="ask for uncompressed bodies (no Accept-Encoding: gzip)")
    args = ap.parse_args()
    global ENCODING
    ENCODING = "identity" if args.identity else ENCODING
    print(f"read load bench: {args.clients} clients for {args.duration:g} s against anwang serve on 127.0.0.1, "
          f"after one client for {args.baseline:g} s; Accept-Encoding: {ENCODING}", flush=True)
    urls = prepare(args.reuse)
    print("  reads: " + "  ".join(urls), flush=True)
    server = None
    try:
        server = Server(BENCH_DB, threads=128, workers=args.workers)
        cookies = [login(server.port) for _ in range(min(args.clients, 20))]
        for url in urls:                                   # warm the server's caches and plans
            reader(server.port, cookies[0], [url], 0, time.time() + 1.0, [])
        single: list = []
        start = time.time()
        reader(server.port, cookies[0], urls, start, start + args.baseline, single)
        base = summary(single, urls, args.baseline)
        show("single client", base)
        ctx = mp.get_context("fork")
        start = time.time() + 2.0
        with ctx.Pool(PROCS) as pool:
            shares = [[cookies[c % len(cookies)] for c in range(p, args.clients, PROCS)] for p in range(PROCS)]
            parts = pool.map(reader_proc, [(server.port, s, urls, start, start + args.duration) for s in shares if s])
        results = [x for part in parts for x in part]
        show(f"{args.clients} clients", summary(results, urls, args.duration), base)
    finally:
        if server:
            server.stop()
        if not args.reuse:
            databases.drop(BENCH_DB)


if __name__ == "__main__":
    main()

"""Ping-to-SSE-delivery latency: 1,000 units pinging every 5 s (200 fixes/s) while 50 viewers hold
/api/live open. Each fix carries its send time as its timestamp, so a viewer's latency is its
receive time minus the fix time, on the one clock of this machine.

The app runs as `anwang serve` (gunicorn gthread, 128 threads: one per viewer plus ingest) on
127.0.0.1 against a fresh database. The units post through the batch API, or with --osmand as
Traccar Client does, one OsmAnd ping per request on the OsmAnd port (each answered once its group
commit is durable). Goal: p95 ≤ 500 ms. Bounded: 40 s of load (15 s with --quick), then everything
stops and the database is dropped. Usage: python bench/live_latency.py [--quick] [--osmand]
"""
from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import re
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import databases  # noqa: E402
from positions import BENCH_DB, Server, make_units  # noqa: E402

UNITS, INTERVAL, VIEWERS = 1000, 5.0, 50
VIEWER_PROCS, PINGER_PROCS, PINGER_THREADS = 5, 2, 8
USER, PASSWORD = "bench_dispatcher", "bench-pass-123"
TS = re.compile(r'"ts":"([^"]+)"')


def login(port: int) -> str:
    """Log in through the real form; return the session cookie header."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/login")
    r = conn.getresponse()
    page = r.read().decode()
    cookie = r.getheader("Set-Cookie").split(";")[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    body = f"username={USER}&password={PASSWORD}&csrf_token={token}"
    conn.request("POST", "/login", body=body, headers={"Cookie": cookie,
                                                       "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    assert r.status == 302, r.status
    return r.getheader("Set-Cookie").split(";")[0]


def viewer(port: int, cookie: str, until: float, out: list, ready: threading.Event):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=max(5.0, until - time.time() + 5))
    conn.request("GET", f"/api/live?max_seconds={max(1, int(until - time.time()))}",
                 headers={"Cookie": cookie, "Accept": "text/event-stream"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    ready.set()
    buf = b""
    while True:
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(4096)
        if not chunk:
            break
        now = time.time()
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.startswith(b"data: ") and b'"ts":"' in line:
                m = TS.search(line.decode())
                if m:
                    out.append(now - datetime.fromisoformat(m.group(1)).timestamp())
        if now > until:
            break
    conn.close()


def viewer_proc(args):
    port, cookie, n, until = args
    outs = [[] for _ in range(n)]
    readies = [threading.Event() for _ in range(n)]
    threads = [threading.Thread(target=viewer, args=(port, cookie, until, outs[i], readies[i]), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(until - time.time() + 30)
    return [x for o in outs for x in o]


def pinger_proc(args):
    """Several pinging threads in one process, each with its own keep-alive connection."""
    port, tokens, start_at, until, osmand = args
    results = []
    threads = [threading.Thread(target=lambda sub: results.append(pinger(port, sub, start_at, until, osmand)),
                                args=(tokens[i::PINGER_THREADS],)) for i in range(PINGER_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(r[0] for r in results), sum(r[1] for r in results)


def pinger(port, tokens, start_at, until, osmand=False):
    # tokens: the units' device tokens (batch API), or with `osmand` their device ids.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    n, sent, errors = len(tokens), 0, 0
    while time.time() < start_at:
        time.sleep(0.01)
    round_no = 0
    lon0, lat0 = 113.98, 33.58
    while time.time() < until:
        round_start = start_at + round_no * INTERVAL
        for i, token in enumerate(tokens):
            due = round_start + INTERVAL * i / n
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            if time.time() >= until:
                break
            ts = datetime.now(timezone.utc)
            lon, lat = lon0 + (i % 40) * 0.003 + round_no * 1e-4, lat0 + (i // 40) * 0.003
            try:
                if osmand:
                    # ISO 8601 rather than whole seconds, so the latency is measured to the millisecond.
                    query = urlencode({"id": token, "timestamp": ts.isoformat(), "lat": f"{lat:.7f}",
                                       "lon": f"{lon:.7f}", "speed": "9.7", "bearing": "90"})
                    conn.request("POST", "/?" + query, body=b"", headers={"Content-Length": "0"})
                else:
                    body = json.dumps({"positions": [{"ts": ts.isoformat(), "lon": lon, "lat": lat,
                                                      "speed": 5.0, "heading": 90}]})
                    conn.request("POST", "/api/positions", body=body, headers={
                        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                sent += r.status == 200
                errors += r.status != 200
            except OSError:
                errors += 1
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        round_no += 1
    return sent, errors


def pct(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def main():
    quick, osmand = "--quick" in sys.argv, "--osmand" in sys.argv
    load_s = 15.0 if quick else 40.0
    via = "single OsmAnd pings" if osmand else "the batch API"
    print(f"live latency bench: {UNITS} units every {INTERVAL:g} s through {via}, {VIEWERS} viewers, "
          f"{load_s:g} s of load")
    url = databases.fresh(BENCH_DB)
    server = None
    try:
        from geo import audit, db, users

        units = make_units(url, UNITS)
        engine = db.make_engine(url)
        with db.session_scope(engine) as s:
            users.add_user(s, audit.Actor("bench"), USER, "admin", password=PASSWORD)
        engine.dispose()
        server = Server(BENCH_DB, threads=VIEWERS + 64, osmand=osmand)
        cookie = login(server.port)
        start_at = time.time() + 4.0
        until = start_at + load_s
        ctx = mp.get_context("fork")
        with ctx.Pool(VIEWER_PROCS + PINGER_PROCS) as pool:
            per = VIEWERS // VIEWER_PROCS
            views = pool.map_async(viewer_proc, [(server.port, cookie, per, until + 2) for _ in range(VIEWER_PROCS)])
            keys = [u[1] if osmand else u[2] for u in units]
            port = server.osmand_port if osmand else server.port
            pings = pool.map_async(pinger_proc, [(port, keys[i::PINGER_PROCS], start_at, until, osmand)
                                                 for i in range(PINGER_PROCS)])
            sent = pings.get(timeout=load_s + 120)
            lat = [x for part in views.get(timeout=load_s + 120) for x in part]
        total_sent = sum(s for s, _ in sent)
        errors = sum(e for _, e in sent)
        expected = total_sent * VIEWERS
        print(f"pings sent {total_sent:,} ({total_sent / load_s:,.0f}/s), errors {errors}; "
              f"events delivered {len(lat):,} of {expected:,} ({100 * len(lat) / max(1, expected):.1f} %)")
        ms = [x * 1000 for x in lat]
        p50, p95, p99 = pct(ms, 50), pct(ms, 95), pct(ms, 99)
        print(f"ping → SSE delivery latency: p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms, "
              f"max {max(ms) if ms else float('nan'):.0f} ms  "
              f"(goal p95 ≤ 500 ms: {'met' if p95 <= 500 else 'NOT met'})")
    finally:
        if server:
            server.stop()
        databases.drop(BENCH_DB)


if __name__ == "__main__":
    main()

"""Position ingest throughput, end to end over HTTP, as a ratio to a raw COPY of the same rows.

The app runs as `anwang serve` does (gunicorn gthread) on 127.0.0.1 against a fresh database in the
embedded cluster. Three phases on the same rows, the positions table emptied in between:

1. baseline: one COPY of every row straight into `positions` (no HTTP, no checks, no flags);
2. the JSON batch API (`POST /api/positions`, device token, 500 fixes per request), from several
   client processes;
3. single OsmAnd pings exactly as Traccar Client sends them (`POST /osmand?id=…&timestamp=…`),
   one fix per request, from several client processes with keep-alive connections.

Goals: batch ≥ 5,000 positions/s, OsmAnd ≥ 1,000 pings/s. Every loop is bounded and the server and
database are stopped and dropped at the end. Usage: python bench/positions.py [--quick]
"""
from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import databases  # noqa: E402

from geo.patrol import units as patrol_units  # noqa: E402

BENCH_DB = "anwang_bench_patrol"
LON0, LAT0 = 113.98, 33.58
OSMAND_CLIENTS = int(os.environ.get("BENCH_CLIENTS") or 6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_units(url: str, n: int, prefix: str = "B", area: str | None = None) -> list[tuple[int, str, str]]:
    """n on-duty units, with a home area if given: (id, device id, token)."""
    from geo import audit, db

    engine = db.make_engine(url)
    out = []
    with db.session_scope(engine) as s:
        for i in range(n):
            device = f"{prefix.lower()}{i:05d}"
            uid, token = patrol_units.add_unit(s, audit.Actor("bench"), f"{prefix}{i:05d}", "car", device, area,
                                               status="on_duty")
            out.append((uid, device, token))
    engine.dispose()
    return out


class Server:
    """`anwang serve` in a subprocess on 127.0.0.1, stopped on exit."""

    def __init__(self, db_name: str, threads: int = 64, workers: int | None = None, osmand: bool = False):
        self.port = free_port()
        self.osmand_port = free_port() if osmand else None
        env = dict(os.environ, ANWANG_DB_NAME=db_name, ANWANG_ACCESS_LOG="0", ANWANG_THREADS=str(threads))
        if workers:
            env["ANWANG_WORKERS"] = str(workers)
        args = [str(ROOT / ".venv" / "bin" / "anwang"), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.osmand_port:
            args += ["--osmand-port", str(self.osmand_port)]
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/api/health")
                if c.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
            if self.proc.poll() is not None:
                raise RuntimeError("server died: " + self.proc.stderr.read().decode()[-2000:])
        raise RuntimeError("server did not start in 60 s")

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def fixes_for(n_units: int, per_unit: int, start: datetime):
    """Per unit a track of fixes 1 s apart moving ~8 m/s east: (unit index, ts, lon, lat)."""
    for u in range(n_units):
        lat = LAT0 + (u % 100) * 0.002
        lon0 = LON0 + (u // 100) * 0.05
        for i in range(per_unit):
            yield u, start + timedelta(seconds=i), lon0 + i * 0.00009, lat


def truncate(url: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as c:
        c.execute("TRUNCATE positions, unit_last_positions, live_events")


def baseline_copy(url: str, units, rows) -> float:
    """Rows per second of one COPY straight into positions."""
    import psycopg

    truncate(url)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as c:
        for day in sorted({r[1].astimezone(UTC).date() for r in rows}):
            c.execute("SELECT ensure_position_partition(%s)", (day,))
        c.commit()
        with c.cursor() as cur:
            t0 = time.perf_counter()
            with cur.copy("COPY positions (unit_id, ts, geom, speed, heading, accuracy) FROM STDIN") as cp:
                for u, ts, lon, lat in rows:
                    cp.write_row((units[u][0], ts, f"SRID=4326;POINT({lon} {lat})", 8.0, 90.0, 5.0))
        c.commit()
        elapsed = time.perf_counter() - t0
    return len(rows) / elapsed


def _post_batches(args):
    port, jobs = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    ok = 0
    for token, body, _n in jobs:
        conn.request("POST", "/api/positions", body=body, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"batch failed {r.status}: {data[:300]!r}")
        ok += json.loads(data)["inserted"]
    return ok


def _read_response(reader) -> tuple[int, bool, bytes]:
    """Status, whether the server closes the connection, and body of one HTTP/1.1 response."""
    status_line = reader.readline(65537)
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split(None, 2)[1])
    length, close = 0, False
    while True:
        line = reader.readline(65537)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip().lower() == b"close"
        elif name == b"transfer-encoding":
            raise RuntimeError(f"unexpected {line.strip()!r} in an OsmAnd answer")
    return status, close, reader.read(length) if length else b""


def _post_pings(args):
    # The bytes http.client sends for conn.request("POST", url, body=b"", headers={"Content-Length":
    # "0"}), written and read directly: one request per ping on a kept-alive connection, each waiting
    # for its answer, without http.client's header parsing taking CPU the server shares.
    port, urls = args
    headers = f"Host: 127.0.0.1:{port}\r\nAccept-Encoding: identity\r\nContent-Length: 0\r\n\r\n".encode()
    sock = reader = None
    ok = 0
    for url in urls:
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            reader = sock.makefile("rb")
        sock.sendall(b"POST " + url.encode() + b" HTTP/1.1\r\n" + headers)
        status, close, data = _read_response(reader)
        if status != 200:
            raise RuntimeError(f"ping failed {status}: {data[:300]!r}")
        if close:
            reader.close()
            sock.close()
            sock = None
        ok += 1
    if sock is not None:
        reader.close()
        sock.close()
    return ok


def _cpu_seconds(pids) -> float:
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _pids(fragment: str) -> list[int]:
    out = []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            if fragment in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                out.append(int(d.name))
        except OSError:
            pass
    return out


class CpuMeter:
    """CPU seconds spent by the app server, its PostgreSQL backends and this run's client processes."""

    def __init__(self, server):
        self.server = server

    def __enter__(self):
        self.app0 = _cpu_seconds(_pids("anwang serve"))
        self.pg0 = _cpu_seconds(_pids(f"postgres: anwang {BENCH_DB} "))
        t = os.times()
        self.cl0 = t.children_user + t.children_system
        return self

    def __exit__(self, *exc):
        self.app = _cpu_seconds(_pids("anwang serve")) - self.app0
        self.pg = _cpu_seconds(_pids(f"postgres: anwang {BENCH_DB} ")) - self.pg0
        t = os.times()
        self.clients = t.children_user + t.children_system - self.cl0


def run_parallel(fn, port, work_lists) -> tuple[int, float]:
    with mp.get_context("fork").Pool(len(work_lists)) as pool:
        t0 = time.perf_counter()
        done = sum(pool.map(fn, [(port, w) for w in work_lists]))
        return done, time.perf_counter() - t0


def bench_batches(url, server, units, rows, batch=500, clients=4) -> float:
    truncate(url)
    by_unit: dict = {}
    for u, ts, lon, lat in rows:
        by_unit.setdefault(u, []).append({"ts": ts.isoformat(), "lon": round(lon, 7), "lat": round(lat, 7),
                                          "speed": 8.0, "heading": 90.0, "accuracy": 5.0})
    jobs = []
    for u, fx in by_unit.items():
        for i in range(0, len(fx), batch):
            chunk = fx[i:i + batch]
            jobs.append((units[u][2], json.dumps({"positions": chunk}).encode(), len(chunk)))
    lists = [jobs[i::clients] for i in range(clients)]
    done, elapsed = run_parallel(_post_batches, server.port, lists)
    assert done == len(rows), (done, len(rows))
    return done / elapsed


def bench_osmand(url, server, units, rows, clients=OSMAND_CLIENTS) -> float:
    truncate(url)
    # Interleave the units so consecutive pings of one unit are far apart, as with real phones.
    ordered = sorted(rows, key=lambda r: (r[1], r[0]))
    urls = ["/?" + urlencode({"id": units[u][1], "timestamp": int(ts.timestamp()), "lat": f"{lat:.7f}",
                              "lon": f"{lon:.7f}", "speed": "15.55", "bearing": "90.0", "altitude": "60.0",
                              "accuracy": "5.0", "batt": "80.0"}) for u, ts, lon, lat in ordered]
    lists = [urls[i::clients] for i in range(clients)]
    done, elapsed = run_parallel(_post_pings, server.osmand_port, lists)
    assert done == len(urls)
    return done / elapsed


def main() -> None:
    quick = "--quick" in sys.argv
    n_units, per_unit = (40, 500) if quick else (100, 1000)
    ping_units, per_ping_unit = (200, 20) if quick else (500, 40)
    print(f"positions bench on {os.cpu_count()} cores: batch {n_units} units × {per_unit} fixes, "
          f"OsmAnd {ping_units} units × {per_ping_unit} pings")
    url = databases.fresh(BENCH_DB)
    server = None
    try:
        units = make_units(url, max(n_units, ping_units))
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
        rows = list(fixes_for(n_units, per_unit, start))
        server = Server(BENCH_DB, osmand=True)
        copy_rate = baseline_copy(url, units, rows)
        print(f"raw COPY into positions: {copy_rate:,.0f} rows/s ({len(rows):,} rows)")
        batch_rate = bench_batches(url, server, units, rows)
        print(f"batch API (500 per request, 4 clients): {batch_rate:,.0f} positions/s sustained, "
              f"{batch_rate / copy_rate:.2f} × raw COPY  "
              f"(goal ≥ 5,000/s: {'met' if batch_rate >= 5000 else 'NOT met'})")
        ping_rows = list(fixes_for(ping_units, per_ping_unit, start))
        copy_ping = baseline_copy(url, units, ping_rows)
        with CpuMeter(server) as cpu:
            ping_rate = bench_osmand(url, server, units, ping_rows)
        print(f"OsmAnd single pings ({OSMAND_CLIENTS} clients, keep-alive): {ping_rate:,.0f} pings/s sustained, "
              f"{ping_rate / copy_ping:.3f} × raw COPY of the same {len(ping_rows):,} rows ({copy_ping:,.0f} rows/s)  "
              f"(goal ≥ 1,000/s: {'met' if ping_rate >= 1000 else 'NOT met'})")
        n = len(ping_rows)
        per = (cpu.app + cpu.pg + cpu.clients) / n
        print(f"  CPU per ping: app {cpu.app / n * 1000:.2f} ms, PostgreSQL {cpu.pg / n * 1000:.2f} ms, "
              f"bench clients {cpu.clients / n * 1000:.2f} ms → at most {os.cpu_count() / per:,.0f} pings/s "
              f"with all {os.cpu_count()} cores free (load average now {os.getloadavg()[0]:.1f})")
    finally:
        if server:
            server.stop()
        databases.drop(BENCH_DB)


if __name__ == "__main__":
    main()

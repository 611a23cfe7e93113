"""Live viewers at scale: 2,000 concurrent /api/live viewers on 127.0.0.1 while 1,000 units ping
the OsmAnd port every 5 s (200 pings/s, one per request, as Traccar Client sends them).

The app runs as `anwang serve` (one worker) against a fresh database with the 郾城区 demo. One run,
three phases on the same server and the same ping load:

1. no viewers: p95 of the API (`/api/health`, `/api/areas?level=4`, 540 grids) and of the OsmAnd
   answers — the baseline;
2. 2,000 viewers (100 users × 20 streams, the per-user cap; admins, dispatchers and analysts, so
   three audiences): the same p95s as ratios to the baseline (goal ≤ 1.5×), ping → screen latency
   (each fix carries its send time; receive time minus fix time on the one clock of this machine;
   goal p95 ≤ 500 ms) and delivery: every event published in the phase must reach every viewer
   exactly once, in order (each viewer keeps the ids it got; count, sum and sum of squares of those
   in the phase are compared with the table's, and every id must be above the one before);
3. the viewers leave: how long until the server's sockets are back to where they were, and whether
   one user may at once open the 20 streams the cap allows.

The clients are cheap so that the two cores measure the server: viewers are asyncio protocols (two
processes of 1,000), pings and API probes plain sockets; their CPU time is printed too. Bounded:
about 25 s per phase (10 s with --quick, which also takes 500 viewers), then everything stops and
the database is dropped. A machine that cannot hold the full figures scales them down with
--viewers N and --units N (the run prints what it took).
--drop-listener terminates the server's LISTEN connection halfway through phase 2, as a database
restart would: delivery must still be complete (the hub backfills from live_events).
Usage: python bench/live_viewers.py [--quick] [--viewers N] [--units N] [--drop-listener]
"""
from __future__ import annotations

import asyncio
import http.client
import multiprocessing as mp
import os
import re
import sys
import time
from array import array
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import databases  # noqa: E402
import numpy as np  # noqa: E402
from positions import Server, _cpu_seconds, _pids, make_units  # noqa: E402

DB = "anwang_bench_viewers"
UNITS, INTERVAL, PING_CONNS = 1000, 5.0, 25
PER_USER = 20
VIEWER_PROCS = 2
SAMPLE_EVERY = 10          # every 10th viewer also measures latency (its others count ids only)
ID = re.compile(rb"^id: (\d+)$", re.M)
TS = re.compile(rb'"ts":"([^"]+)"')


# -- viewers ---------------------------------------------------------------------------------
class Viewer(asyncio.Protocol):
    """One /api/live stream: the answer's status, then what it got. Every viewer counts its events
    and keeps its first and last id; a sampled one keeps every id and every latency too."""

    def __init__(self, request: bytes, sample: bool):
        self.request, self.sample = request, sample
        self.buf, self.head, self.status = b"", False, None
        self.ids = array("q")
        self.count, self.first, self.last = 0, None, None
        self.batches = 0
        self.latencies: list[float] = []
        self.ready = asyncio.get_running_loop().create_future()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc):
        if not self.ready.done():
            self.ready.set_result(None)

    def data_received(self, data):
        now = time.time()
        buf = self.buf + data
        if not self.head:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            self.status, self.head, buf = int(buf[9:12]), True, buf[end + 4:]
            self.ready.set_result(self.status)
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self.buf = buf
            return
        block, self.buf = buf[:cut + 2], buf[cut + 2:]
        self.batches += 1
        n = block.count(b"\nid: ") + block.startswith(b"id: ")
        if not n:
            return
        self.count += n
        at = block.rfind(b"id: ") + 4
        self.last = int(block[at:block.index(b"\n", at)])
        if self.first is None:
            at = block.find(b"id: ") + 4
            self.first = int(block[at:block.index(b"\n", at)])
        if self.sample:
            self.ids.extend(map(int, ID.findall(block)))
            for ts in TS.findall(block):
                self.latencies.append(now - datetime.fromisoformat(ts.decode()).timestamp())


def verdict(v: Viewer, table: np.ndarray, after: int, upto: int) -> tuple[bool, bool]:
    """(whether the viewer got every event of the phase exactly once, whether it saw an id out of
    order): it must have been there before the phase and to its end, and hold as many events as
    the table between its first and last id; a sampled viewer must hold exactly those ids, rising."""
    if v.first is None or v.first > after or v.last < upto:
        return False, False
    want = int(np.searchsorted(table, v.last, "right") - np.searchsorted(table, v.first, "left"))
    if not v.sample:
        return v.count == want, False
    a = np.frombuffer(v.ids, dtype=np.int64)
    rose = bool(np.all(np.diff(a) > 0))
    lo, hi = np.searchsorted(table, v.first, "left"), np.searchsorted(table, v.last, "right")
    return rose and np.array_equal(a, table[lo:hi]), not rose


async def _viewers(port: int, tokens: list[str], first: int, control, results) -> None:
    loop = asyncio.get_running_loop()
    viewers = []
    for k, token in enumerate(tokens):
        request = (f"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                   f"Accept: text/event-stream\r\n\r\n").encode()
        sample = (first + k) % SAMPLE_EVERY == 0
        _t, v = await loop.create_connection(lambda r=request, s=sample: Viewer(r, s), "127.0.0.1", port)
        viewers.append(v)
        if k % 100 == 99:
            await asyncio.sleep(0.05)      # in waves: the listen backlog is finite
    statuses = await asyncio.gather(*(v.ready for v in viewers))
    results.put(("ready", sum(1 for s in statuses if s == 200), [s for s in statuses if s != 200][:5]))
    t0 = [(v.batches, time.perf_counter()) for v in viewers[:1]][0]
    after, upto, table = await loop.run_in_executor(None, control.get)   # the phase's ids, once it is over
    batches_per_s = (viewers[0].batches - t0[0]) / (time.perf_counter() - t0[1])
    for v in viewers:
        v.transport.close()
    stats = [verdict(v, table, after, upto) for v in viewers]
    latencies = [x for v in viewers for x in v.latencies]
    results.put(("stats", stats, latencies, batches_per_s))


def viewer_proc(port, tokens, first, control, results):
    asyncio.run(_viewers(port, tokens, first, control, results))


# -- pings -----------------------------------------------------------------------------------
async def _pings(port: int, devices: list[str], start_at: float, phase, stop, out) -> None:
    async def ping(reader, writer, query: str) -> int:
        writer.write(f"POST /?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if length:
            await reader.readexactly(length)
        return status

    async def one_connection(mine: list[tuple[int, str]]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lon0, lat0 = 113.98, 33.58
        for round_no in range(1 << 30):
            for i, device in mine:
                due = start_at + round_no * INTERVAL + INTERVAL * i / len(devices)
                await asyncio.sleep(max(0.0, due - time.time()))
                if stop.is_set():
                    writer.close()
                    return
                ts = datetime.now(UTC).isoformat()
                query = urlencode({"id": device, "timestamp": ts, "lat": f"{lat0 + (i // 40) * 0.003:.7f}",
                                   "lon": f"{lon0 + (i % 40) * 0.003 + round_no * 1e-4:.7f}",
                                   "speed": "9.7", "bearing": "90"})
                t0 = time.perf_counter()
                try:
                    status = await ping(reader, writer, query)
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                    # The server closed a kept-alive connection under us: a failed ping (status 0),
                    # then a new connection, as a phone would.
                    status = 0
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                out.append((phase.value, time.perf_counter() - t0, status))

    indexed = list(enumerate(devices))
    await asyncio.gather(*(one_connection(indexed[c::PING_CONNS]) for c in range(PING_CONNS)))


def pinger_proc(port, devices, start_at, phase, stop, results):
    out: list = []
    asyncio.run(_pings(port, devices, start_at, phase, stop, out))
    results.put(("pings", out))


# -- probes and helpers ----------------------------------------------------------------------
def probe(port: int, token: str, seconds: float, out: dict) -> None:
    """API requests one after another, 10 a second, alternating two endpoints; latencies in s."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    paths = ("/api/health", "/api/areas?level=4")
    end, k = time.time() + seconds, 0
    while time.time() < end:
        path = paths[k % 2]
        t0 = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        r = conn.getresponse()
        r.read()
        out.setdefault(path, []).append(time.perf_counter() - t0)
        assert r.status == 200, (path, r.status)
        k += 1
        time.sleep(max(0.0, 0.1 - (time.perf_counter() - t0)))
    conn.close()


def drain(pipe) -> list[str]:
    """Read the server's log as it comes (a full pipe would stop the server); its last lines."""
    import threading

    lines: list[str] = []

    def read():
        for raw in pipe:
            lines.append(raw.decode(errors="replace"))
            del lines[:-200]

    threading.Thread(target=read, daemon=True).start()
    return lines


def pct(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))]


def max_id(url: str) -> int:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as c:
        return c.execute("SELECT coalesce(max(id), 0) FROM live_events").fetchone()[0]


def drop_listeners(url: str) -> int:
    """Terminate the server's LISTEN connections; how many there were."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as c:
        return c.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE application_name = 'anwang live' AND datname = current_database()").fetchone()[0]


def table_ids(url: str, upto: int) -> np.ndarray:
    """Every id of live_events up to `upto`, ascending."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as c:
        rows = c.execute("SELECT id FROM live_events WHERE id <= %s ORDER BY id", (upto,)).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


class Cpu:
    """CPU seconds of the server (master and worker), its PostgreSQL backends and some clients."""

    def __init__(self, server, clients=()):
        self.server, self.client_pids = server, list(clients)

    def _now(self) -> tuple[float, float, float]:
        pids = [self.server.proc.pid] + children(self.server.proc.pid)
        return (_cpu_seconds(pids), _cpu_seconds(_pids(f"postgres: anwang {DB} ")),
                _cpu_seconds(self.client_pids))

    def __enter__(self):
        self.app0, self.pg0, self.cl0 = self._now()
        return self

    def __exit__(self, *exc):
        app, pg, cl = self._now()
        self.app, self.pg, self.clients = app - self.app0, pg - self.pg0, cl - self.cl0


def children(parent: int) -> list[int]:
    out = []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                out.append(int(d.name))
        except (OSError, ValueError, IndexError):
            pass
    return out


def worker_fds(master: int) -> int:
    """Open file descriptors of the server's worker process."""
    total = 0
    for pid in children(master):
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return total


def open_streams(port: int, token: str, n: int) -> list[int]:
    """Open n streams of one user at once; their statuses."""
    import socket

    socks, statuses = [], []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(f"GET /api/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        socks.append(s)
    for s in socks:
        statuses.append(int(s.recv(64)[9:12]))
    for s in socks:             # all held until every answer is in, so the cap is met at once
        s.close()
    return statuses


def make_users(url: str, n_users: int) -> list[tuple[str, str]]:
    """n users (admin, dispatcher and analyst in turn, the two last scoped to the district), each
    with an API token: (role, token)."""
    from geo import audit, db, users

    engine = db.make_engine(url)
    out = []
    with db.session_scope(engine) as s:
        for i in range(n_users):
            role = ("admin", "dispatcher", "analyst")[i % 3]
            name = f"bench_viewer_{i:03d}"
            users.add_user(s, audit.Actor("bench"), name, role, replace=True,
                           scopes=None if role == "admin" else ["411103"])
            out.append((role, users.create_token(s, audit.Actor("bench"), name)))
    engine.dispose()
    return out


# -- the run ---------------------------------------------------------------------------------
def option(name: str, default):
    return type(default)(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def main() -> None:  # noqa: C901 — one linear script
    quick = "--quick" in sys.argv
    n_viewers = option("--viewers", 500 if quick else 2000)
    n_units = option("--units", UNITS)
    drop_listener = "--drop-listener" in sys.argv
    phase_s = 10.0 if quick else 25.0
    n_users = -(-n_viewers // PER_USER)
    print(f"live viewers bench on {os.cpu_count()} cores: {n_viewers:,} viewers ({n_users} users × up to "
          f"{PER_USER}), {n_units:,} units pinging the OsmAnd port every {INTERVAL:g} s, {phase_s:g} s per phase",
          flush=True)
    engine = databases.with_demo(DB)
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    server = None
    procs: list = []
    log_tail: list[str] = []
    try:
        databases.step("units, users and tokens")
        devices = [u[1] for u in make_units(url, n_units, area="411103")]
        people = make_users(url, n_users + 1)
        probe_token, tokens = people[0][1], [people[1 + k // PER_USER][1] for k in range(n_viewers)]
        server = Server(DB, osmand=True)
        log_tail = drain(server.proc.stderr)
        ctx = mp.get_context("fork")
        results, phase, stop = ctx.Queue(), ctx.Value("i", 0), ctx.Event()
        start_at = time.time() + 2.0
        procs.append(ctx.Process(target=pinger_proc, args=(server.osmand_port, devices, start_at, phase, stop,
                                                             results), daemon=True))
        procs[-1].start()
        time.sleep(2.0 + INTERVAL)                          # one full round of pings first
        databases.step("phase 1: pings, no viewers")
        base_api: dict = {}
        phase.value = 1
        with Cpu(server) as cpu_base:
            probe(server.port, probe_token, phase_s, base_api)
        fds_before = worker_fds(server.proc.pid)

        databases.step("phase 1b: one viewer, the baseline of ping → screen")
        alone = ctx.Queue()
        procs.append(ctx.Process(target=viewer_proc, args=(server.port, tokens[:1], 0, alone, results), daemon=True))
        procs[-1].start()
        assert results.get(timeout=60)[1] == 1, "the lone viewer was refused"
        time.sleep(phase_s / 2)
        alone.put((0, 0, np.zeros(0, dtype=np.int64)))
        while (got := results.get(timeout=60))[0] != "stats":
            pass
        alone_ms = [x * 1000 for x in got[2]]

        databases.step(f"connecting {n_viewers:,} viewers")
        controls = [ctx.Queue() for _ in range(VIEWER_PROCS)]
        share = -(-n_viewers // VIEWER_PROCS)
        t0 = time.perf_counter()
        for p in range(VIEWER_PROCS):
            part = tokens[p * share:(p + 1) * share]
            procs.append(ctx.Process(target=viewer_proc, args=(server.port, part, p * share, controls[p], results),
                                     daemon=True))
            procs[-1].start()
        ready, refused = 0, []
        for _ in range(VIEWER_PROCS):
            _tag, ok, bad = results.get(timeout=600)
            ready, refused = ready + ok, refused + bad
        connect_s = time.perf_counter() - t0
        print(f"connected {ready:,} of {n_viewers:,} viewers in {connect_s:.1f} s"
              + (f" (refused: {refused})" if refused else ""), flush=True)
        fds_with = worker_fds(server.proc.pid)

        databases.step("phase 2: pings and viewers")
        after = max_id(url)
        view_api: dict = {}
        phase.value = 2
        dropped: list[int] = []
        if drop_listener:       # as a database restart would, halfway through the phase
            import threading

            threading.Timer(phase_s / 2, lambda: dropped.append(drop_listeners(url))).start()
        with Cpu(server, [p.pid for p in procs[2:]]) as cpu_view:
            probe(server.port, probe_token, phase_s, view_api)
        phase.value = 3
        stop.set()
        pings = None
        while pings is None:
            tag, *rest = results.get(timeout=120)
            if tag == "pings":
                pings = rest[0]
        time.sleep(3.0)                                      # the last events reach the viewers
        upto = max_id(url)
        table = table_ids(url, upto)
        published = int(np.sum((table > after) & (table <= upto)))

        databases.step("phase 3: the viewers leave")
        for c in controls:
            c.put((after, upto, table))
        stats, latencies, rates = [], [], []
        for _ in range(VIEWER_PROCS):
            _tag, st, lat, rate = results.get(timeout=120)
            stats += st
            latencies += lat
            rates.append(rate)
        t_left = time.perf_counter()
        while worker_fds(server.proc.pid) > fds_before + 20 and time.perf_counter() - t_left < 30:
            time.sleep(0.02)
        freed_s = time.perf_counter() - t_left
        again = open_streams(server.port, tokens[0], PER_USER)
        time.sleep(0.2)
        over = open_streams(server.port, tokens[0], PER_USER + 1)

        # -- figures ---------------------------------------------------------------------------
        ms = [x * 1000 for x in latencies]
        print(f"ping → screen ({len(ms):,} deliveries to every {SAMPLE_EVERY}th viewer): p50 {pct(ms, 50):.0f} ms, "
              f"p95 {pct(ms, 95):.0f} ms, p99 {pct(ms, 99):.0f} ms, max {max(ms) if ms else float('nan'):.0f} ms; "
              f"to one viewer alone p95 {pct(alone_ms, 95):.0f} ms → {pct(ms, 95) / pct(alone_ms, 95):.2f}×  "
              f"(goal p95 ≤ 500 ms: {'met' if pct(ms, 95) <= 500 else 'NOT met'})")
        exact = sum(1 for whole, _ in stats if whole)
        print(f"delivery: {published:,} events published in phase 2; {exact:,} of {len(stats):,} viewers got every "
              f"one exactly once (every {SAMPLE_EVERY}th viewer checked id by id and in order, "
              f"{sum(1 for _, late in stats if late):,} saw an id out of order; the others by count between "
              f"their first and last id), in {sum(rates) / len(rates):.1f} batches a second  "
              f"({'met' if exact == len(stats) == n_viewers else 'NOT met'})")
        for path in base_api:
            b, v = pct(base_api[path], 95) * 1000, pct(view_api[path], 95) * 1000
            print(f"API p95 {path}: {b:.1f} ms without viewers, {v:.1f} ms with {ready:,} → {v / b:.2f}×  "
                  f"(goal ≤ 1.5×: {'met' if v / b <= 1.5 else 'NOT met'}; p50 {pct(base_api[path], 50) * 1000:.1f} → "
                  f"{pct(view_api[path], 50) * 1000:.1f} ms)")
        ok = [p for p in pings if p[2] == 200]
        pb = [p[1] * 1000 for p in ok if p[0] == 1]
        pv = [p[1] * 1000 for p in ok if p[0] == 2]
        print(f"OsmAnd answer p95: {pct(pb, 95):.1f} ms without viewers, {pct(pv, 95):.1f} ms with them → "
              f"{pct(pv, 95) / pct(pb, 95):.2f}×  ({len(pings) - len(ok)} of {len(pings):,} pings not 200)")
        print(f"CPU seconds a second: app {cpu_base.app / phase_s:.2f} without viewers, {cpu_view.app / phase_s:.2f} "
              f"with them; PostgreSQL {cpu_base.pg / phase_s:.2f} and {cpu_view.pg / phase_s:.2f}; viewer clients "
              f"{cpu_view.clients / phase_s:.2f}; the worker's file descriptors {fds_before:,} → {fds_with:,}")
        print(f"viewers left: the worker's sockets were back to {fds_before:,}+20 in {freed_s * 1000:.0f} ms; one user "
              f"then opened {PER_USER} streams: {again.count(200)} × 200, and closing them, {PER_USER + 1}: "
              f"{over.count(200)} × 200, {over.count(429)} × 429")
        if drop_listener:
            taken = sum(int(m) for m in re.findall(r"reconnected: (\d+) events taken", "".join(log_tail)))
            print(f"the server's LISTEN connection was terminated {phase_s / 2:g} s into phase 2 ({sum(dropped)} "
                  f"connection); on reconnecting it took {taken:,} events from the table (the delivery above "
                  f"includes them)")
        print(f"load average now {os.getloadavg()[0]:.1f}")
    except BaseException:
        if server:
            print("the server's last words:\n" + "".join(log_tail[-40:]))
        raise
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        if server:
            server.stop()
        databases.drop(DB)


if __name__ == "__main__":
    main()

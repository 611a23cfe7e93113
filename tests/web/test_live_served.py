"""/api/live as `anwang serve` runs it (gunicorn with web/worker.py's worker, real PostGIS): viewers
hold sockets, not threads, so /api/health and the OsmAnd port answer beside them; one user may hold
only so many streams; and an event whose NOTIFY was lost with the LISTEN connection still reaches
every viewer, once.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from sqlalchemy import text

from geo import audit, db, users
from tests.web.patrol_common import cleanup, committed_unit

CAP = 4            # streams per user in this server
THREADS = 2        # the API's threads: far fewer than the viewers
USERS = 8          # × CAP viewers = 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, token: str | None = None, timeout: float = 5) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Stream:
    """One /api/live stream on a raw socket: its status, then the SSE events as they come."""

    def __init__(self, port: int, token: str, last_id: int | None = None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        extra = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
        self.sock.sendall(f"GET /api/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                          f"Accept: application/json\r\n{extra}\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._read(10)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head[9:12])
        self.head = head.decode("latin-1")
        self.events: list[dict] = []

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return False
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the stream")
        self.buf += chunk
        return True

    def poll(self, timeout: float = 0.05) -> None:
        while self._read(timeout):
            timeout = 0
        while b"\n\n" in self.buf:
            block, self.buf = self.buf.split(b"\n\n", 1)
            event = {}
            for line in block.decode().splitlines():
                if line and not line.startswith(":") and ":" in line:
                    k, v = line.split(":", 1)
                    event[k] = v.lstrip()
            if "data" in event:
                self.events.append(event)

    def wait(self, pred, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            found = [e for e in self.events if pred(e)]
            if found:
                return found
        return []

    def ids(self) -> list[int]:
        return [int(e["id"]) for e in self.events]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def served(engine, demo):
    """`anwang serve` with two API threads, an OsmAnd port and a cap of CAP streams per user; the
    tokens of USERS dispatchers of the district."""
    tokens = []
    with db.session_scope(engine) as s:
        for i in range(USERS):
            name = f"live_viewer_{i}"
            users.add_user(s, audit.Actor("test"), name, "dispatcher", scopes=["411103"], replace=True)
            tokens.append(users.create_token(s, audit.Actor("test"), name))
    port, osmand_port = free_port(), free_port()
    env = {**os.environ, "ANWANG_ACCESS_LOG": "0", "ANWANG_LIVE_STREAMS_PER_USER": str(CAP)}
    server = subprocess.Popen([sys.executable, "-c", "from web.cli import main; main()", "serve",
                               "--port", str(port), "--osmand-port", str(osmand_port), "--workers", "1",
                               "--threads", str(THREADS), "--osmand-threads", "2"],
                              env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, "the server stopped"
            try:
                if get(port, "/api/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /api/health"
            time.sleep(0.3)
        committed_unit(engine, "LIVE-G1", "live-g1")
        yield port, osmand_port, tokens
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        cleanup(engine, "LIVE-G1")
        with db.session_scope(engine) as s:
            s.execute(text("DELETE FROM users WHERE username LIKE 'live_viewer_%'"))


_lon = iter(range(1, 1 << 20))


def ping(osmand_port: int) -> float:
    """One OsmAnd fix from LIVE-G1 (a new longitude each time); the longitude."""
    lon = round(114.0 + next(_lon) * 1e-5, 5)
    query = urlencode({"id": "live-g1", "timestamp": datetime.now(UTC).isoformat(), "lat": "33.6", "lon": lon})
    assert get(osmand_port, f"/?{query}", timeout=10)[0] == 200
    return lon


def position_of(lon: float):
    return lambda e: e.get("event") == "position" and abs(json.loads(e["data"])["lon"] - lon) < 1e-7


def test_viewers_hold_no_thread_so_health_and_pings_answer_beside_them(served):
    port, osmand_port, tokens = served
    streams = [Stream(port, token) for token in tokens for _ in range(CAP)]
    try:
        assert [s.status for s in streams] == [200] * (USERS * CAP)
        assert all("text/event-stream" in s.head for s in streams)
        # Sixteen times as many viewers as threads, and the API still answers at once.
        for _ in range(5):
            t0 = time.monotonic()
            status, body = get(port, "/api/health", timeout=5)
            assert status == 200 and json.loads(body)["database"] == "ok"
            assert time.monotonic() - t0 < 1.0
        lon = ping(osmand_port)
        for s in streams:
            assert len(s.wait(position_of(lon))) == 1, s.events
    finally:
        for s in streams:
            s.close()


def test_a_user_may_hold_only_so_many_streams(served):
    port, _osmand_port, tokens = served
    mine = [Stream(port, tokens[0]) for _ in range(CAP)]
    try:
        assert [s.status for s in mine] == [200] * CAP
        over = Stream(port, tokens[0])
        assert over.status == 429 and "Retry-After: 10" in over.head
        length = int(next(line.split(":")[1] for line in over.head.splitlines()
                          if line.lower().startswith("content-length:")))
        while len(over.buf) < length:
            over._read(5)
        body = json.loads(over.buf)
        assert body["error"]["code"] == "too_many_streams" and str(CAP) in body["error"]["message"]
        over.close()
        assert Stream(port, tokens[1]).status == 200        # another user is not held back
        # A viewer that leaves gives its slot back as soon as its socket closes.
        mine.pop().close()
        deadline = time.monotonic() + 5
        again = Stream(port, tokens[0])
        while again.status == 429 and time.monotonic() < deadline:
            again.close()
            time.sleep(0.1)
            again = Stream(port, tokens[0])
        assert again.status == 200
        mine.append(again)
    finally:
        for s in mine:
            s.close()


def test_events_missed_by_a_lost_listen_connection_are_backfilled_once(served, engine):
    port, osmand_port, tokens = served
    viewer = Stream(port, tokens[2])
    try:
        first = ping(osmand_port)
        assert viewer.wait(position_of(first))
        last_seen = max(viewer.ids())
        with db.session_scope(engine) as s:
            # An event whose NOTIFY no listener heard: it is only in the table.
            silent = s.execute(text("INSERT INTO live_events (kind, area_path, payload) "
                                    "VALUES ('position', (SELECT path FROM areas WHERE code = '411103'), "
                                    "'{\"silent\": true, \"lon\": 0}') RETURNING id")).scalar_one()
            killed = s.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                    "WHERE application_name = 'anwang live' AND datname = current_database()")
                               ).scalar_one()
        assert killed >= 1
        # Pings while the listener is away and as it comes back.
        lons = [ping(osmand_port) for _ in range(4)]
        assert viewer.wait(lambda e: e.get("event") == "position" and "silent" in e["data"], 15)
        for lon in lons:
            assert viewer.wait(position_of(lon), 15), lon
        viewer.poll(0.5)
        ids = viewer.ids()
        assert silent in ids
        assert len(ids) == len(set(ids)) and ids == sorted(ids)     # each once, in order
        # A viewer that was away meanwhile gets it all back by its Last-Event-ID.
        back = Stream(port, tokens[3], last_id=last_seen)
        for lon in lons:
            assert back.wait(position_of(lon)), lon
        assert silent in back.ids() and len(back.ids()) == len(set(back.ids()))
        back.close()
    finally:
        viewer.close()

"""The live SSE stream: delivery, resuming with Last-Event-ID, scope, the form of an event each
audience may receive, the backfill after a lost LISTEN connection and the per-user cap (the
thread-held stream of the development server; tests/web/test_live_served.py serves it as
`anwang serve` does).
"""
from __future__ import annotations

import json
import re
import threading
import time
from datetime import timedelta

import pytest

from geo.policy import Audience, Scope
from tests.web.patrol_common import cleanup, committed_unit, now


# -- live ------------------------------------------------------------------------------------
class SSE:
    """A minimal SSE reader over `requests` for tests."""

    def __init__(self, resp):
        self.resp = resp
        self.events = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        event = {}
        try:
            for raw in self.resp.iter_lines(decode_unicode=True):
                if raw == "":
                    if "data" in event:
                        self.events.append(event)
                    event = {}
                elif not raw.startswith(":") and ":" in raw:
                    k, v = raw.split(":", 1)
                    event[k] = v.lstrip()
        except Exception:  # noqa: BLE001 — closed by the test
            pass

    def wait(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events if pred(e)]
            if found:
                return found
            time.sleep(0.02)
        return []

    def close(self):
        self.resp.close()


def _session_for(base, user):

    import requests

    s = requests.Session()
    page = s.get(f"{base}/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = s.post(f"{base}/login", data={"username": user[0], "password": user[1], "csrf_token": csrf})
    assert r.status_code == 200
    return s


def test_live_stream_delivers_pings_and_resumes_with_last_event_id(live_server, engine, browser_user):
    import requests

    base = live_server(BASEMAP="none")
    token = committed_unit(engine, "LIVE-1", "live-1")
    web = _session_for(base, browser_user)
    try:
        stream = SSE(web.get(f"{base}/api/live", stream=True, timeout=30))
        t0 = now() - timedelta(seconds=60)

        def ping(i):
            r = requests.post(f"{base}/api/positions", headers={"Authorization": f"Bearer {token}"},
                              json={"positions": [{"ts": (t0 + timedelta(seconds=i)).isoformat(),
                                                   "lon": 114.0 + i * 1e-4, "lat": 33.6}]}, timeout=10)
            assert r.status_code == 200

        time.sleep(0.3)
        ping(1)
        got = stream.wait(lambda e: e.get("event") == "position" and "LIVE-1" in e["data"])
        assert got, stream.events
        first_id = int(got[0]["id"])
        stream.close()
        # While disconnected: three more pings. A reconnect with Last-Event-ID gets all three.
        for i in (2, 3, 4):
            ping(i)
        again = SSE(web.get(f"{base}/api/live", headers={"Last-Event-ID": str(first_id)}, stream=True, timeout=30))
        missed = again.wait(lambda e: e.get("event") == "position" and json.loads(e["data"])["lon"] >= 114.0004 - 1e-9)
        lons = sorted({round(json.loads(e["data"])["lon"], 4) for e in again.events
                       if e.get("event") == "position" and "LIVE-1" in e["data"]})
        again.close()
        assert missed and lons == [114.0002, 114.0003, 114.0004]
    finally:
        cleanup(engine, "LIVE-1")


SCOPED_12 = Audience("dispatcher", Scope(("X",), ("1.2",)))


def test_the_ring_resumes_exactly_and_filters_by_scope():
    from web.live import Hub, stream

    hub = Hub("unused", ring_size=5)
    for i, path in enumerate(["1.2", "1.3", "1.2.7", None, "1.2"], start=101):
        hub.append(i, "position", path, json.dumps({"n": i}))
    hub.append(106, "incidents", None, '{"count": 80}')
    # Resume after 102 in scope 1.2: 103 (1.2.7), the summary 106 and 105 — not 104 (no area).
    frames = "".join(stream(hub, None, 102, SCOPED_12, max_seconds=0.1))
    ids = [int(line[4:]) for line in frames.splitlines() if line.startswith("id: ")]
    assert ids == [103, 105, 106]
    assert hub.clients == 0
    # The ring holds 5: 101 has left it (a resume from it goes to the table instead).
    assert 101 not in hub.by_id and hub.after(0)[2] is True


def test_a_sensitive_incident_event_is_exact_only_for_the_roles_that_act():
    from web.live import Hub, stream

    hub = Hub("unused")
    hub.append(200, "position", "1.2", '{"n": 200}')
    hub.append(201, "incident", "1.2", '{"id": 7, "lon": 1.0, "lat": 2.0, "generalised": true}',
               '{"id": 7, "lon": 1.2345678, "lat": 2.3456789, "address": "翠湖路3号"}')
    analyst = Audience("analyst", Scope(("X",), ("1",)))
    shown = "".join(stream(hub, None, 200, analyst, max_seconds=0.1))
    exact = "".join(stream(hub, None, 200, SCOPED_12, max_seconds=0.1))
    assert '"generalised": true' in shown and "1.2345678" not in shown and "翠湖路" not in shown
    assert "1.2345678" in exact and "翠湖路3号" in exact


def _silent_event(engine, note: str) -> int:
    """A live event in the table whose NOTIFY nobody heard (as when it is sent while no one listens)."""
    from sqlalchemy import text

    from geo import db

    with db.session_scope(engine) as s:
        return s.execute(text("INSERT INTO live_events (kind, area_path, payload) "
                              "VALUES ('position', '1.2', CAST(:p AS jsonb)) RETURNING id"),
                         {"p": json.dumps({"note": note})}).scalar_one()


def _drop_listener(engine, name: str) -> int:
    from sqlalchemy import text

    from geo import db

    with db.session_scope(engine) as s:
        return s.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE application_name = :n"), {"n": name}).scalar_one()


def test_the_hub_backfills_from_the_table_each_time_its_connection_is_lost(engine, database_url):
    from web.live import Hub

    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    hub = Hub(conninfo, name="anwang live test").start()
    try:
        assert hub.ready.wait(10)
        mark = hub.last_id
        assert mark is not None         # the table's newest id, though no event came yet
        # Lost before any event arrived: what was written meanwhile still comes, by the mark.
        while not _drop_listener(engine, "anwang live test"):
            time.sleep(0.05)
        first = _silent_event(engine, "while away, before any event")
        deadline = time.monotonic() + 15
        while first not in hub.by_id and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first in hub.by_id and hub.backfilled >= 1
        # Lost again with events held: the next ones come once each, in order.
        while not _drop_listener(engine, "anwang live test"):
            time.sleep(0.05)
        more = [_silent_event(engine, f"while away {i}") for i in range(3)]
        deadline = time.monotonic() + 15
        while not all(i in hub.by_id for i in more) and time.monotonic() < deadline:
            time.sleep(0.05)
        ids = [e[1] for e in hub.after(0)[0]]
        assert ids[-3:] == more and len(ids) == len(set(ids)) and ids[0] == first
    finally:
        hub.stop()


def test_the_thread_held_stream_is_under_the_same_cap(live_server, browser_user):
    base = live_server(BASEMAP="none", LIVE_STREAMS_PER_USER=2)
    web = _session_for(base, browser_user)
    held = [web.get(f"{base}/api/live", stream=True, timeout=30) for _ in range(2)]
    try:
        assert [r.status_code for r in held] == [200, 200]
        over = web.get(f"{base}/api/live", stream=True, timeout=30, headers={"Accept": "application/json"})
        assert over.status_code == 429 and over.headers["Retry-After"] == "10"
        assert over.json()["error"]["code"] == "too_many_streams"
    finally:
        for r in held:
            r.close()


@pytest.mark.parametrize(("headers", "query", "field"), [
    ({"Last-Event-ID": "abc"}, "", "Last-Event-ID"),
    ({"Last-Event-ID": "-3"}, "", "Last-Event-ID"),
    ({}, "?last_event_id=1.5", "last_event_id"),
    ({}, "?max_seconds=nan", "max_seconds"),
    ({}, "?max_seconds=0", "max_seconds"),
])
def test_a_malformed_resume_or_bound_is_a_400_naming_it(client, login, tiny, headers, query, field):
    login("dispatcher", "TZ")
    answer = client.get(f"/api/live{query}", headers=headers)
    assert answer.status_code == 400 and answer.get_json()["error"]["field"] == field

"""The patrol API: device-token batches (replayed without duplicates), the OsmAnd protocol exactly
as Traccar Client sends it, units as GeoJSON, tracks, coverage, dispatch, the separate OsmAnd port,
and the live SSE stream resuming with Last-Event-ID."""
from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from geo import audit
from geo.patrol import fixes, groupcommit, units
from geo.policy import Audience, Scope

ACTOR = audit.Actor("test")


def now():
    return datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture()
def device(session, tiny):
    """A unit in grid TZ1A1 with device id 8723451 (Traccar Client's random 8-digit id)."""
    uid, token = units.add_unit(session, ACTOR, "巡A-1", "car", "8723451", "TZ1A1", "on_duty")
    session.flush()
    return {"id": uid, "token": token, "callsign": "巡A-1", "device_id": "8723451"}


def positions(session, uid):
    return session.execute(text("SELECT ts, ST_X(geom), ST_Y(geom), speed, heading, accuracy, battery, flags "
                                "FROM positions WHERE unit_id = :u ORDER BY ts"), {"u": uid}).all()


def csrf(client) -> dict:
    """The page's CSRF token as the header the dispatch page sends with every write."""
    page = client.get("/dispatch").get_data(as_text=True)
    return {"X-CSRFToken": re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)}


def batch(n=50, start=None):
    start = start or now() - timedelta(minutes=10)
    return {"positions": [{"ts": (start + timedelta(seconds=5 * i)).isoformat(), "lon": 10.002 + i * 0.00005,
                           "lat": 10.005, "speed": 1.4, "heading": 90, "accuracy": 6, "battery": 77}
                          for i in range(n)]}


# -- batch API -------------------------------------------------------------------------------
def test_replaying_the_same_batch_gives_no_duplicates(client, session, device):
    start = now() - timedelta(minutes=10)   # one start for every batch, so they overlap exactly
    body = batch(50, start)
    headers = {"Authorization": f"Bearer {device['token']}"}
    first = client.post("/api/positions", json=body, headers=headers)
    second = client.post("/api/positions", json=body, headers=headers)
    assert first.status_code == 200 and second.status_code == 200
    assert first.get_json()["inserted"] == 50 and second.get_json()["inserted"] == 0
    assert second.get_json()["duplicates"] == 50
    assert len(positions(session, device["id"])) == 50
    # Overlapping and out of order: the last 25 again plus 25 new, shuffled.
    later = batch(75, start)["positions"][25:]
    third = client.post("/api/positions", json={"positions": later[::-1]}, headers=headers)
    assert third.get_json()["inserted"] == 25
    rows = positions(session, device["id"])
    assert len(rows) == 75 and len({r.ts for r in rows}) == 75


def test_batch_needs_a_valid_device_token_and_names_bad_fields(client, device):
    body = batch(2)
    assert client.post("/api/positions", json=body).status_code == 401
    r = client.post("/api/positions", json=body, headers={"Authorization": "Bearer dev_wrong"})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
    body["positions"][1]["lon"] = "east"
    r = client.post("/api/positions", json=body, headers={"X-Device-Token": device["token"]})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "positions[1].lon"
    r = client.post("/api/positions", json={"positions": []}, headers={"X-Device-Token": device["token"]})
    assert r.status_code == 400


# -- OsmAnd / Traccar Client -----------------------------------------------------------------
def traccar_android_url(ts, lat, lon, speed_knots, bearing, altitude, accuracy, batt, path="/osmand"):
    """What ProtocolFormatter.formatRequest builds: Kotlin Double.toString values, Unix seconds."""
    return (f"{path}?id=8723451&timestamp={ts}&lat={lat!r}&lon={lon!r}&speed={speed_knots!r}"
            f"&bearing={bearing!r}&altitude={altitude!r}&accuracy={accuracy!r}&batt={batt!r}")


def test_osmand_query_string_as_traccar_client_sends_it(client, session, device):
    ts = int((now() - timedelta(seconds=30)).timestamp())
    # The Android app POSTs the query string with an empty body; older builds and scripts use GET.
    url = traccar_android_url(ts, 10.0051234, 10.0021234, 5.831533, 87.5, 61.0, 4.9, 84.0)
    r = client.post(url, data=b"", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.data == b""
    r = client.get(traccar_android_url(ts + 5, 10.0051299, 10.0021299, 0.0, 0.0, 61.0, 4.9, 83.0))
    assert r.status_code == 200
    rows = positions(session, device["id"])
    assert len(rows) == 2
    first = rows[0]
    assert first.ts == datetime.fromtimestamp(ts, tz=timezone.utc)
    assert (first[1], first[2]) == pytest.approx((10.0021234, 10.0051234))   # lon, lat
    assert first.speed == pytest.approx(5.831533 * 0.514444, rel=1e-4)         # knots → m/s (3 m/s)
    assert (first.heading, first.accuracy, first.battery) == (87.5, pytest.approx(4.9), 84.0)
    # Replaying the same ping (the app retries until it sees 200) changes nothing.
    assert client.post(url, data=b"").status_code == 200
    assert len(positions(session, device["id"])) == 2


def test_osmand_json_body_as_traccar_client_9_sends_it(client, session, device):
    t0 = now() - timedelta(seconds=40)

    def location(t, lat, lon):
        # The transistorsoft template of Traccar Client 9 (lib/preferences.dart), with its params.
        return {"timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "coords": {"latitude": lat, "longitude": lon, "accuracy": 7.5, "speed": 2.5,
                           "heading": 181.2, "altitude": 60.1},
                "is_moving": True, "odometer": 1234.5, "event": "",
                "battery": {"level": 0.62, "is_charging": False}, "activity": {"type": "on_foot"},
                "extras": {},
                "_": f"&id=8723451&lat={lat}&lon={lon}&timestamp={t.strftime('%Y-%m-%dT%H:%M:%S.000Z')}&"}

    single = {"location": location(t0, 10.0052, 10.0022), "device_id": "8723451"}
    r = client.post("/osmand", data=json.dumps(single), content_type="application/json")
    assert r.status_code == 200
    buffered = {"location": [location(t0 + timedelta(seconds=10), 10.0053, 10.0023),
                             location(t0 + timedelta(seconds=20), 10.0054, 10.0024)], "device_id": "8723451"}
    assert client.post("/osmand", data=json.dumps(buffered), content_type="application/json").status_code == 200
    rows = positions(session, device["id"])
    assert len(rows) == 3
    assert rows[0].speed == pytest.approx(2.5) and rows[0].heading == pytest.approx(181.2)
    assert rows[0].battery == pytest.approx(62.0) and rows[0].accuracy == pytest.approx(7.5)


def test_osmand_unknown_device_is_400_so_the_app_keeps_the_fix(client, device):
    r = client.get("/osmand?id=999&lat=10.005&lon=10.002&timestamp=" + str(int(now().timestamp())))
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "id"
    assert client.get("/osmand?lat=10&lon=10").status_code == 400


def test_the_separate_osmand_port_takes_any_path_on_its_fast_path(app, engine):
    """The lean handler on the OsmAnd port commits on its own connections, so this test uses a
    committed unit and removes it afterwards."""
    from werkzeug.test import Client

    from web.osmand import OsmandPort

    _committed_unit(engine, "FAST-1", "8723452", area=None)
    conninfo = engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
    wsgi = OsmandPort(app.wsgi_app, 5055, conninfo)
    c = Client(wsgi)
    try:
        ts = int(now().timestamp()) - 30
        url = traccar_android_url(ts, 33.6001, 114.0001, 1.0, 10.0, 60.0, 5.0, 90.0, path="/").replace(
            "id=8723451", "id=8723452")
        r = c.post(url, environ_overrides={"SERVER_PORT": "5055"})
        assert r.status_code == 200 and r.data == b""
        assert c.post(url, environ_overrides={"SERVER_PORT": "5055"}).status_code == 200      # replay
        body = json.dumps({"device_id": "8723452", "location": [
            {"timestamp": datetime.fromtimestamp(ts + 10 * i, timezone.utc).isoformat(),
             "coords": {"latitude": 33.6001 + i * 1e-4, "longitude": 114.0001, "speed": 1.5, "heading": 0,
                        "accuracy": 5, "altitude": 60}, "battery": {"level": 0.5}} for i in (1, 2)]})
        r = c.post("/anything", data=body, content_type="application/json", environ_overrides={"SERVER_PORT": "5055"})
        assert r.status_code == 200
        r = c.get("/?id=nobody&lat=33.6&lon=114&timestamp=" + str(ts), environ_overrides={"SERVER_PORT": "5055"})
        assert r.status_code == 400 and r.json["error"]["field"] == "id"
        r = c.get("/?id=8723452&lat=95&lon=114", environ_overrides={"SERVER_PORT": "5055"})
        assert r.status_code == 400 and r.json["error"]["field"] == "query.lat"
        with engine.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM positions p JOIN units u ON u.id = p.unit_id "
                                  "WHERE u.callsign = 'FAST-1'")).scalar()
            ev = conn.execute(text("SELECT count(*) FROM live_events WHERE payload->>'callsign' = 'FAST-1'")).scalar()
        assert n == 3 and ev == 2
        # Any other port is the normal app.
        assert c.get("/api/health").status_code == 200
    finally:
        wsgi.close()
        _cleanup(engine, "FAST-1")
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM live_events WHERE payload->>'callsign' = 'FAST-1'"))


def _port(app, engine, conninfo=None):
    from web.osmand import OsmandPort

    url = engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
    return OsmandPort(app.wsgi_app, 5055, conninfo or url)


def _ping_url(device, ts, lon, lat=33.6):
    return f"/?id={device}&timestamp={int(ts.timestamp())}&lat={lat!r}&lon={lon!r}&speed=2.0&accuracy=5.0"


def _send(wsgi, urls, statuses):
    from werkzeug.test import Client

    c = Client(wsgi)
    for url in urls:
        statuses.append(c.post(url, environ_overrides={"SERVER_PORT": "5055"}).status_code)


def _stored(engine, callsigns):
    with engine.connect() as conn:
        return conn.execute(text("SELECT u.callsign, p.ts, count(*) OVER (PARTITION BY u.id, p.ts) AS n "
                                 "FROM positions p JOIN units u ON u.id = p.unit_id WHERE u.callsign = ANY(:c) "
                                 "ORDER BY 1, 2"), {"c": callsigns}).all()


def _remove(engine, callsigns):
    for c in callsigns:
        _cleanup(engine, c)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM live_events WHERE payload->>'callsign' = ANY(:c)"), {"c": callsigns})


def test_concurrent_pings_on_the_port_are_each_stored_once(app, engine):
    """Send every ping of three units twice over from eight threads: each stored once, one event each."""
    callsigns = ["GRP-1", "GRP-2", "GRP-3"]
    for c in callsigns:
        _committed_unit(engine, c, c.lower(), area=None)
    wsgi = _port(app, engine)
    t0 = now() - timedelta(minutes=10)
    urls = [_ping_url(c.lower(), t0 + timedelta(seconds=5 * i), 114.0 + i * 1e-4) for i in range(40) for c in callsigns]
    statuses: list = []
    try:
        threads = [threading.Thread(target=_send, args=(wsgi, urls[k::4], statuses)) for k in range(4)]
        threads += [threading.Thread(target=_send, args=(wsgi, urls[k::4][::-1], statuses)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        wsgi.close()          # the writer stops once every ping handed to it is stored and published
        assert statuses == [200] * (2 * len(urls))
        rows = _stored(engine, callsigns)
        assert len(rows) == len(urls) and {r.n for r in rows} == {1}
        with engine.connect() as conn:
            last = conn.execute(text("SELECT u.callsign, l.ts FROM unit_last_positions l JOIN units u "
                                     "ON u.id = l.unit_id WHERE u.callsign = ANY(:c)"), {"c": callsigns}).all()
            events = conn.execute(text("SELECT count(*) FROM live_events WHERE payload->>'callsign' = ANY(:c)"),
                                  {"c": callsigns}).scalar()
        assert {ts for _, ts in last} == {t0 + timedelta(seconds=5 * 39)} and len(last) == 3
        assert events == len(urls)
    finally:
        wsgi.close()
        _remove(engine, callsigns)


def test_a_failing_ping_fails_alone_and_a_lost_database_fails_every_waiting_ping(app, engine, monkeypatch):
    from web.osmand import GroupCommit, _Waiting

    callsigns = ["GRP-4", "GRP-5"]
    for c in callsigns:
        _committed_unit(engine, c, c.lower(), area=None)
    t0 = now() - timedelta(minutes=5)
    day = (t0 - timedelta(days=777)).date()
    old = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
    monkeypatch.setattr(groupcommit, "ensure_partitions_with", lambda run, days: None)   # so that day cannot be stored
    url = engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
    writer = GroupCommit(url)
    try:
        # One group: the ping that cannot be stored fails the group's statement; each ping is then
        # stored on its own, so only that one answers 500 and nothing is stored twice or in part.
        group = [_Waiting(groupcommit.Ping("grp-4", [fixes.Fix(ts=t0, lon=114.0, lat=33.6)])),
                 _Waiting(groupcommit.Ping("grp-5", [fixes.Fix(ts=old, lon=114.0, lat=33.6)])),
                 _Waiting(groupcommit.Ping("grp-4", [fixes.Fix(ts=t0 + timedelta(seconds=5), lon=114.0, lat=33.6)]))]
        writer._write(group)
        assert [w.error is None for w in group] == [True, False, True]
        assert [w.outcome.inserted for w in (group[0], group[2])] == [1, 1]
        assert [(r.callsign, r.n) for r in _stored(engine, callsigns)] == [("GRP-4", 1), ("GRP-4", 1)]
    finally:
        writer.close()
    # With the database away, every waiting request answers 500 (the app keeps its fixes) and the
    # port goes on serving.
    from psycopg.conninfo import make_conninfo

    wsgi = _port(app, engine, conninfo=make_conninfo(url, dbname="anwang_no_such_database"))
    statuses: list = []
    try:
        urls = [_ping_url("grp-5", t0 + timedelta(seconds=i), 114.0) for i in range(6)]
        threads = [threading.Thread(target=_send, args=(wsgi, urls[k::3], statuses)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert statuses == [500] * 6
        assert [r.callsign for r in _stored(engine, callsigns)] == ["GRP-4", "GRP-4"]
    finally:
        wsgi.close()
        _remove(engine, callsigns)


def test_the_port_can_demand_the_device_token(app, engine, monkeypatch):
    token = _committed_unit(engine, "GRP-6", "grp-6", area=None)
    monkeypatch.setenv("ANWANG_OSMAND_REQUIRE_TOKEN", "1")
    wsgi = _port(app, engine)
    statuses: list = []
    try:
        t0 = now() - timedelta(minutes=1)
        _send(wsgi, [_ping_url("grp-6", t0, 114.0) + "&token=dev_wrong",
                     _ping_url("grp-6", t0, 114.0) + f"&token={token}",
                     _ping_url("nobody", t0, 114.0) + f"&token={token}"], statuses)
        assert statuses == [401, 200, 401]
        assert len(_stored(engine, ["GRP-6"])) == 1
    finally:
        wsgi.close()
        _remove(engine, ["GRP-6"])


# -- reading ---------------------------------------------------------------------------------
def test_units_are_geojson_for_dispatchers_only(client, login, device):
    headers = {"Authorization": f"Bearer {device['token']}"}
    client.post("/api/positions", json=batch(3, now() - timedelta(seconds=30)), headers=headers)
    assert client.get("/api/units").status_code == 401
    login("planner", "TZ")
    assert client.get("/api/units").status_code == 403
    login("dispatcher", "TZ")
    r = client.get("/api/units")
    assert r.status_code == 200 and r.mimetype == "application/geo+json"
    f = next(f for f in r.get_json()["features"] if f["properties"]["callsign"] == "巡A-1")
    assert f["geometry"]["type"] == "Point"
    p = f["properties"]
    assert p["device_id"] == "8723451" and p["status"] == "on_duty" and p["last_seen"] and p["stale"] is False
    trails = client.get("/api/units/trails?minutes=5").get_json()
    assert any(t["properties"]["callsign"] == "巡A-1" and t["geometry"] for t in trails["features"])


def test_tracks_coverage_and_dispatch_endpoints(client, login, session, device):
    headers = {"Authorization": f"Bearer {device['token']}"}
    client.post("/api/positions", json=batch(60, now() - timedelta(minutes=8)), headers=headers)
    login("dispatcher", "TZ")
    track = client.get("/api/tracks?unit=巡A-1&zoom=15").get_json()
    assert track["geometry"]["type"] == "LineString" and track["properties"]["points"] == 60
    assert track["properties"]["grids"][0]["code"] == "TZ1A1"
    replay = client.get("/api/tracks/replay?unit=巡A-1").get_json()
    assert len(replay["points"]) == 60
    built = client.post("/api/tracks/build", json={"unit": "巡A-1"}, headers=csrf(client))
    assert built.status_code == 201 and built.get_json()["length_m"] > 0
    cov = client.get("/api/coverage?hours=24&format=json").get_json()["grids"]
    assert next(g for g in cov if g["code"] == "TZ1A1")["visits"] == 1
    assert client.get("/api/coverage/gaps?hours=6").status_code == 200
    assert client.get("/api/coverage?hours=banana").status_code == 400
    incident = session.execute(text(
        "INSERT INTO incidents (category, occurred_at, geom, grid_id) VALUES ('accident', now(), "
        "ST_SetSRID(ST_MakePoint(10.004, 10.005), 4326), (SELECT id FROM areas WHERE code = 'TZ1A1')) "
        "RETURNING id")).scalar()
    near = client.get(f"/api/dispatch/nearest?incident={incident}&k=3").get_json()
    assert near["units"][0]["callsign"] == "巡A-1" and near["units"][0]["distance_m"] < 300
    h = csrf(client)
    a = client.post("/api/dispatch/assign", json={"incident": incident, "unit": "巡A-1"}, headers=h)
    assert a.status_code == 201
    aid = a.get_json()["id"]
    for action in ("acknowledge", "arrive", "close"):
        r = client.post(f"/api/dispatch/assignments/{aid}/{action}", json={}, headers=h)
        assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "closed"
    assert client.post(f"/api/dispatch/assignments/{aid}/arrive", json={}, headers=h).status_code == 409
    assert client.post(f"/api/dispatch/assignments/{aid}/acknowledge", json={}).status_code == 400   # no CSRF
    stats = client.get("/api/dispatch/stats?level=2").get_json()["areas"]
    assert any(s["code"] == "TZ1" and s["assignments"] == 1 for s in stats)
    assert client.get("/api/dispatch/incidents").status_code == 200


def test_unit_admin_from_the_api_respects_scope(client, login, session, tiny):
    login("dispatcher", "TZ1")
    h = csrf(client)
    r = client.post("/api/units", json={"callsign": "巡B-1", "kind": "foot", "device_id": "b1", "area": "TZ1A2"},
                    headers=h)
    assert r.status_code == 201 and r.get_json()["token"].startswith("dev_")
    r = client.post("/api/units", json={"callsign": "巡B-2", "kind": "foot", "device_id": "b2", "area": "TZ2A1"},
                    headers=h)
    assert r.status_code == 403
    assert client.post("/api/units/巡B-1/status", json={"status": "on_duty"}, headers=h).get_json()["status"] == "on_duty"
    assert client.post("/api/units/巡B-1/status", json={"status": "asleep"}, headers=h).status_code == 400
    r = client.post("/api/units/巡B-1/shifts", json={"hours": 24, "task": "日间巡逻"}, headers=h)
    assert r.status_code == 201
    assert client.get("/api/units/巡B-1/shifts").get_json()["shifts"][0]["task"] == "日间巡逻"


def test_gpx_upload(client, login, device, realdata):
    login("dispatcher", "TZ")
    h = csrf(client)
    path = realdata / "gpx" / "track-with-empty-segment.gpx"
    with open(path, "rb") as fh:
        r = client.post("/api/tracks/import", data={"unit": "巡A-1", "file": (fh, path.name)},
                        content_type="multipart/form-data", headers=h)
    assert r.status_code == 201 and r.get_json()["points"] == 9
    with open(realdata / "gpx" / "unicode_with_bom.gpx", "rb") as fh:
        r = client.post("/api/tracks/import", data={"unit": "巡A-1", "file": (fh, "bom.gpx")},
                        content_type="multipart/form-data", headers=h)
    assert r.status_code == 400 and "no track or route" in r.get_json()["error"]["message"]


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


def _committed_unit(engine, callsign, device, area="411103"):
    from geo import db

    with db.session_scope(engine) as s:
        s.execute(text("DELETE FROM units WHERE callsign = :c"), {"c": callsign})
        _, token = units.add_unit(s, ACTOR, callsign, "car", device, area, "on_duty")
    return token


def _cleanup(engine, callsign):
    from geo import db

    with db.session_scope(engine) as s:
        uid = s.execute(text("SELECT id FROM units WHERE callsign = :c"), {"c": callsign}).scalar()
        if uid:
            s.execute(text("DELETE FROM positions WHERE unit_id = :u"), {"u": uid})
            s.execute(text("DELETE FROM units WHERE id = :u"), {"u": uid})


def _session_for(base, user):
    import re

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
    token = _committed_unit(engine, "LIVE-1", "live-1")
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
        _cleanup(engine, "LIVE-1")


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


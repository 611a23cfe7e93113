"""The OsmAnd protocol exactly as Traccar Client sends it, on the app and on its own port with the
group commit behind it.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from geo.patrol import fixes, groupcommit
from tests.web.patrol_common import cleanup, committed_unit, now, positions


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


def test_hostile_osmand_requests_are_a_400_and_store_nothing(client, session, device):
    ts = str(int(now().timestamp()))
    nested = "[" * 10_000 + "]" * 10_000
    for method, url, body in (
            ("GET", f"/osmand?id=8723451%00&lat=10.005&lon=10.002&timestamp={ts}", None),
            ("POST", "/osmand", nested),
            ("POST", "/osmand", '{"device_id": "8723451", "location": ' + '{"a":' * 5_000 + "1" + "}" * 5_000 + "}"),
            ("POST", "/osmand", '{"device_id": "8723451\u0000", "location": {"timestamp": "' + now().isoformat()
             + '", "coords": {"latitude": 10.005, "longitude": 10.002}}}'),
            ("POST", "/osmand", f"id=8723451\x00&lat=10.005&lon=10.002&timestamp={ts}")):
        r = client.open(url, method=method, data=body, content_type="application/x-www-form-urlencoded")
        assert r.status_code == 400, (url, (body or "")[:40], r.get_data(as_text=True)[:200])
    assert positions(session, device["id"]) == []


def test_the_separate_osmand_port_takes_any_path_on_its_fast_path(app, engine):
    """The lean handler on the OsmAnd port commits on its own connections, so this test uses a
    committed unit and removes it afterwards."""
    from werkzeug.test import Client

    from web.osmand import OsmandPort

    committed_unit(engine, "FAST-1", "8723452", area=None)
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
        cleanup(engine, "FAST-1")
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
        cleanup(engine, c)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM live_events WHERE payload->>'callsign' = ANY(:c)"), {"c": callsigns})


def test_concurrent_pings_on_the_port_are_each_stored_once(app, engine):
    """Send every ping of three units twice over from eight threads: each stored once, one event each."""
    callsigns = ["GRP-1", "GRP-2", "GRP-3"]
    for c in callsigns:
        committed_unit(engine, c, c.lower(), area=None)
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
        committed_unit(engine, c, c.lower(), area=None)
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
    token = committed_unit(engine, "GRP-6", "grp-6", area=None)
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

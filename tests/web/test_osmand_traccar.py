"""Every request of Traccar's own OsmAnd decoder test, on both entry points (`/osmand` on the app and
the OsmAnd port with its group commit): what Traccar accepts is stored with the request's values,
what it refuses is refused.

The requests are copied from traccar/traccar, src/test/java/org/traccar/protocol/
OsmAndProtocolDecoderTest.java (testDecodeJson and testDecodeQuery, in the order written there).
Traccar's test checks that a position comes out (verifyPosition), that something comes out
(verifyNotNull, the cell and Wi-Fi request) or that nothing does (verifyNull); the values expected
below are the ones each request carries, in Anwang's units (speed in m/s, battery in %).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from geo.patrol import units
from tests.web.patrol_common import ACTOR, cleanup, committed_unit, now

KNOTS = 0.514444
NOW = "now"        # a request without a timestamp is stored at the time it arrives

JSON_1 = ('{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,'
          '"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange",'
          '"battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{},'
          '"_":"&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"48241179"}')
JSON_2 = ('{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,'
          '"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange",'
          '"battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{"device_string_test":'
          '"long_device_id","device_bool_test":true,"device_bool_false_test":false,"device_integer_test":1,'
          '"device_double_test":1.345,"device_very_long_double_test":1763636.3442},'
          '"_":"&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"48241179"}')
JSON_3 = ('{"location":{"extras":{},"mock":true,"coords":{"speed_accuracy":-1,"speed":-1,"longitude":-122.406417,'
          '"ellipsoidal_altitude":0,"floor":null,"heading_accuracy":-1,"latitude":37.785834000000001,"accuracy":5,'
          '"altitude_accuracy":-1,"altitude":0,"heading":-1},"is_moving":false,"age":188,"odometer":0,'
          '"uuid":"2FB04C65-99CF-42AB-8DD3-EBCB4B108BF8","event":"motionchange","battery":{"level":-1,'
          '"is_charging":false},"activity":{"type":"unknown","confidence":100},"timestamp":"2025-05-09T04:11:30.579Z"},'
          '"device_id":"658765"}')
JSON_4 = ('{"location":{"event":"motionchange","is_moving":false,"uuid":"0e9a2473-a9a7-4c00-997b-fb97d2154e75",'
          '"timestamp":"2021-07-21T08:06:34.444Z","odometer":0,"coords":{"latitude":-6.1148096,"longitude":106.6837015,'
          '"accuracy":3.8,"speed":18.67,"speed_accuracy":0.26,"heading":63,"heading_accuracy":0.28,"altitude":35.7,'
          '"altitude_accuracy":3.8},"activity":{"type":"still","confidence":100},"battery":{"is_charging":false,'
          '"level":0.79},"extras":{}},"device_id":"8737767034"}')


def fix(device, ts, lon, lat, speed=None, heading=None, altitude=None, accuracy=None, hdop=None, battery=None):
    return {"device": device, "ts": ts, "lon": lon, "lat": lat, "speed": speed, "heading": heading,
            "altitude": altitude, "accuracy": accuracy, "hdop": hdop, "battery": battery}


def utc(iso):
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


# (name, JSON body or query string, what is stored: a fix, a report without a position, or None: refused)
TRACCAR = [
    ("json-motionchange", JSON_1, fix("48241179", utc("2025-06-15T13:45:12.862Z"), -122.084, 37.4219983,
                                      speed=0, altitude=5, accuracy=5, battery=100)),
    ("json-extras", JSON_2, fix("48241179", utc("2025-06-15T13:45:12.862Z"), -122.084, 37.4219983,
                                speed=0, altitude=5, accuracy=5, battery=100)),
    ("json-ios-unknowns", JSON_3, fix("658765", utc("2025-05-09T04:11:30.579Z"), -122.406417, 37.785834,
                                      altitude=0, accuracy=5)),
    ("json-moving", JSON_4, fix("8737767034", utc("2021-07-21T08:06:34.444Z"), 106.6837015, -6.1148096,
                                speed=18.67, heading=63, altitude=35.7, accuracy=3.8, battery=79)),
    ("cell-and-wifi-only", "/?id=123456&timestamp=1377177267&cell=257,02,16,2224&cell=257,02,16,2223,-90"
                           "&wifi=00-14-22-01-23-45,-80&wifi=00-1C-B3-09-85-15,-70",
     {"device": "123456", "heard": "cells", "ts": utc("2013-08-22T13:14:27Z"), "details": {
         "cell": [{"mcc": 257, "mnc": 2, "lac": 16, "cid": 2224},
                  {"mcc": 257, "mnc": 2, "lac": 16, "cid": 2223, "signal": -90}],
         "wifi": [{"mac": "00:14:22:01:23:45", "signal": -80}, {"mac": "00:1c:b3:09:85:15", "signal": -70}]}}),
    ("no-device-id", "/?timestamp=1377177267&lat=60.0&lon=30.0", None),
    ("iso-time-hdop", "/?id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0"
                      "&altitude=224.0&speed=0.0",
     fix("902064", utc("2016-01-27T18:55:47Z"), -88.23412, 42.06288, speed=0, altitude=224, hdop=6)),
    ("milliseconds", "/?id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579&hdop=6.0&altitude=224.0"
                     "&speed=0.0",
     fix("902064", utc("2015-09-12T14:38:06.579Z"), -88.23412, 42.06288, speed=0, altitude=224, hdop=6)),
    # A time without a zone is the device's local time: ANWANG_DEVICE_TIMEZONE, Asia/Shanghai here.
    ("zoneless-time", "/?lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&altitude=384.7&speed=0.0"
                      "&id=353861053849681",
     fix("353861053849681", utc("2014-06-04T01:10:11Z"), 6.15788, 49.60688, speed=0, altitude=384.7)),
    ("hdop-zero", "/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=0.0&bearing=0.0&altitude=0&hdop=0.0",
     fix("123456", utc("2013-08-22T13:14:27Z"), 30.0, 60.0, speed=0, heading=0, altitude=0, hdop=0)),
    ("minimal", "/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0",
     fix("123456", utc("2013-08-22T13:14:27Z"), 30.0, 60.0)),
    ("deviceid-no-time", "/?lat=60.0&lon=30.0&speed=0.0&heading=0.0&vacc=0&hacc=0&altitude=0&deviceid=123456",
     fix("123456", NOW, 30.0, 60.0, speed=0, heading=0, altitude=0)),
    ("battery-no-time", "/?id=861001000719969&lat=41.666667&lon=-0.883333&altitude=350.059479&speed=0.000000&batt=87",
     fix("861001000719969", NOW, -0.883333, 41.666667, speed=0, altitude=350.059479, battery=87)),
    ("location-pair", "/?id=123456&timestamp=1377177267&location=60.0,30.0",
     fix("123456", utc("2013-08-22T13:14:27Z"), 30.0, 60.0)),
    ("obd-extras", "/?id=123456789012345&timestamp=1504763810&lat=40.7232948571&lon=-74.0061408571"
                   "&bearing=7.19889788244&speed=40&ignition=true&rpm=933&fuel=24",
     fix("123456789012345", utc("2017-09-07T05:56:50Z"), -74.0061408571, 40.7232948571, speed=40 * KNOTS,
         heading=7.19889788244)),
]
DEVICES = sorted({case[2]["device"] for case in TRACCAR if case[2]})


def test_the_list_is_traccars_fifteen_requests():
    assert len(TRACCAR) == 15 and sum(1 for c in TRACCAR if c[2] is None) == 1


class Entry:
    """One of the two ways in: the app's /osmand route, or the OsmAnd port's lean handler."""

    def __init__(self, kind, request):
        self.kind = kind
        if kind == "route":
            self.client = request.getfixturevalue("client")
            self.db = request.getfixturevalue("session")
            for i, device in enumerate(DEVICES):
                units.add_unit(self.db, ACTOR, f"TC-{i}", "car", device, None, "on_duty")
            self.db.flush()
        else:
            from werkzeug.test import Client

            from web.osmand import OsmandPort
            from web.patrol import device_zone

            app, self.engine = request.getfixturevalue("app"), request.getfixturevalue("engine")
            for i, device in enumerate(DEVICES):
                committed_unit(self.engine, f"TC-{i}", device, area=None)
            url = self.engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://",
                                                                                 "postgresql://")
            self.wsgi = OsmandPort(app.wsgi_app, 5055, url, tz=device_zone(app.config))
            self.client = Client(self.wsgi)
            self.db = self.engine.connect()

    def send(self, request: str, headers=None):
        extra = {} if self.kind == "route" else {"environ_overrides": {"SERVER_PORT": "5055"}}
        if isinstance(request, str) and request.startswith("/?"):
            path = ("/osmand" if self.kind == "route" else "/") + request[1:]
            return self.client.get(path, **extra)
        body = request.encode() if isinstance(request, str) else request
        return self.client.post("/osmand" if self.kind == "route" else "/", data=body,
                                headers=headers if headers is not None else {"Content-Type": "application/json"},
                                **extra)

    def rows(self, sql, **params):
        if self.kind == "port":
            self.db.rollback()          # a fresh snapshot: the port commits on its own connection
        return self.db.execute(text(sql), params).mappings().all()

    def close(self):
        if self.kind == "port":
            self.wsgi.close()
            self.db.close()
            for i in range(len(DEVICES)):
                cleanup(self.engine, f"TC-{i}")
            with self.engine.begin() as conn:
                conn.execute(text("DELETE FROM live_events WHERE payload->>'callsign' LIKE 'TC-%'"))


@pytest.fixture(params=["route", "port"])
def entry(request):
    e = Entry(request.param, request)
    yield e
    e.close()


STORED = """SELECT u.device_id AS device, p.ts, ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat, p.speed, p.heading,
                   p.altitude, p.accuracy, p.hdop, p.battery, p.flags
              FROM positions p JOIN units u ON u.id = p.unit_id WHERE u.callsign LIKE 'TC-%' ORDER BY p.ts"""
HEARD = """SELECT u.device_id AS device, e.ts, e.kind, e.details, u.heard_at, u.heard_kind
             FROM unit_events e JOIN units u ON u.id = e.unit_id WHERE u.callsign LIKE 'TC-%'"""


@pytest.mark.parametrize("name, request_, expected", TRACCAR, ids=[c[0] for c in TRACCAR])
def test_every_request_traccar_accepts_is_stored_with_its_values(entry, name, request_, expected):
    sent = now()
    r = entry.send(request_)
    if expected is None:
        assert r.status_code == 400 and r.get_json()["error"]["field"] == "id"
        assert entry.rows(STORED) == [] and entry.rows(HEARD) == []
        return
    assert r.status_code == 200, r.get_data(as_text=True)
    if "heard" in expected:
        assert entry.rows(STORED) == []                 # no position is made up
        (event,) = entry.rows(HEARD)
        assert (event["device"], event["ts"], event["kind"], event["details"]) == \
            (expected["device"], expected["ts"], expected["heard"], expected["details"])
        assert event["heard_kind"] == "cells" and abs(event["heard_at"] - sent) < timedelta(seconds=30)
        return
    (row,) = entry.rows(STORED)
    got = dict(row)
    if expected["ts"] == NOW:
        assert abs(got.pop("ts") - sent) < timedelta(seconds=30)
        expected = {k: v for k, v in expected.items() if k != "ts"}
    assert got.pop("flags") == 0
    assert got == {k: pytest.approx(v, rel=1e-6) if isinstance(v, float) else v for k, v in expected.items()}


def test_a_heartbeat_says_the_unit_is_alive_without_moving_it(entry):
    """Traccar Client 9 sends a location without coords for a heartbeat: no position is invented,
    the unit's heard time moves and the live map hears of it."""
    t0 = now() - timedelta(minutes=2)
    moving = {"device_id": "123456", "location": {"timestamp": t0.isoformat(), "coords": {
        "latitude": 60.0, "longitude": 30.0, "accuracy": 5}}}
    assert entry.send(json.dumps(moving)).status_code == 200
    beat = {"device_id": "123456", "location": {"timestamp": (t0 + timedelta(minutes=1)).isoformat(),
                                                "event": "heartbeat", "battery": {"level": 0.5}}}
    assert entry.send(json.dumps(beat)).status_code == 200
    assert entry.send(json.dumps(beat)).status_code == 200          # a retry is stored once
    assert len(entry.rows(STORED)) == 1
    (event,) = entry.rows(HEARD + " AND e.kind = 'heartbeat'")
    assert event["ts"] == t0 + timedelta(minutes=1) and event["details"] == {"event": "heartbeat"}
    assert event["heard_at"] > t0 + timedelta(minutes=1)              # when it was received
    if entry.kind == "port":
        entry.wsgi.close()              # the live events are published once the writer has finished
    events = entry.rows("SELECT payload FROM live_events WHERE payload->>'callsign' LIKE 'TC-%' ORDER BY id")
    assert [e["payload"].get("report") for e in events] == [None, "heartbeat", "heartbeat"]
    assert "lat" not in events[-1]["payload"] and events[-1]["payload"]["battery"] == 50


@pytest.mark.parametrize("body", [b"\n" + JSON_4.encode(), b"\xef\xbb\xbf" + JSON_4.encode(),
                                  b"\xef\xbb\xbf\r\n  " + JSON_4.encode()], ids=["newline", "bom", "bom-newline"])
def test_json_with_a_leading_newline_or_byte_order_mark(entry, body):
    assert entry.send(body).status_code == 200
    assert [r["device"] for r in entry.rows(STORED)] == ["8737767034"]


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "text/plain"},
                                     {"Content-Type": "application/x-www-form-urlencoded"}],
                         ids=["no-content-type", "text-plain", "form"])
def test_a_form_body_is_read_whatever_its_content_type(entry, headers):
    body = b"id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0&altitude=224.0"
    assert entry.send(body, headers=headers).status_code == 200
    (row,) = entry.rows(STORED)
    assert (row["device"], row["ts"], row["hdop"], row["accuracy"]) == ("902064", utc("2016-01-27T18:55:47Z"), 6, None)


def test_the_device_time_zone_is_a_setting(app, client, session):
    units.add_unit(session, ACTOR, "TC-LU", "car", "353861053849681", None, "on_duty")
    app.config["DEVICE_TIMEZONE"] = "Europe/Luxembourg"     # where that request's device was: CEST
    r = client.get("/osmand?lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&id=353861053849681")
    assert r.status_code == 200
    ts = session.execute(text("SELECT p.ts FROM positions p JOIN units u ON u.id = p.unit_id "
                              "WHERE u.callsign = 'TC-LU'")).scalar()
    assert ts == datetime(2014, 6, 4, 7, 10, 11, tzinfo=timezone.utc)


def test_an_unknown_time_zone_is_refused_at_start(monkeypatch):
    from web import config

    monkeypatch.setenv("ANWANG_DEVICE_TIMEZONE", "Asia/Nowhere")
    with pytest.raises(ValueError, match="Asia/Nowhere"):
        config.load({"SECRET_KEY": "x"})


def test_the_dispatch_data_shows_a_unit_heard_from_without_a_fix(client, login, device):
    r = client.get("/osmand?id=8723451&cell=460,0,10342,4321,-71")
    assert r.status_code == 200
    login("dispatcher", "TZ")     # the device's district, whatever else the session database holds
    (unit,) = [f for f in client.get("/api/units").get_json()["features"] if f["properties"]["device_id"] == "8723451"]
    assert unit["geometry"] is None                       # no position is made up
    props = unit["properties"]
    assert props["heard_kind"] == "cells" and props["last_seen"] == props["heard_at"]
    assert props["stale"] is False and props["age_s"] < 30


def test_a_fix_the_device_calls_invalid_is_kept_as_no_fix(entry):
    r = entry.send("/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0&valid=false&accuracy=0")
    assert r.status_code == 200
    (row,) = entry.rows(STORED)
    assert (row["flags"], row["accuracy"]) == (4, None)      # Android's accuracy 0 means "unknown"
    assert entry.rows("SELECT count(*) AS n FROM unit_last_positions l JOIN units u ON u.id = l.unit_id "
                      "WHERE u.callsign LIKE 'TC-%'") == [{"n": 0}]

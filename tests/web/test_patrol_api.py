"""The patrol API: device-token batches (replayed without duplicates), units as GeoJSON, tracks,
coverage and dispatch.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from tests.web.patrol_common import batch, csrf, now, positions


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
    queued = client.get("/api/dispatch/incidents").get_json()["features"]
    assert next(f for f in queued if f["id"] == incident)["properties"]["open_assignments"] == 0
    h = csrf(client)
    a = client.post("/api/dispatch/assign", json={"incident": incident, "unit": "巡A-1"}, headers=h)
    assert a.status_code == 201
    aid = a.get_json()["id"]
    queued = client.get("/api/dispatch/incidents").get_json()["features"]
    assert next(f for f in queued if f["id"] == incident)["properties"]["open_assignments"] == 1
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


def test_sensor_values_out_of_range_are_refused_not_stored(client, session, device):
    headers = {"Authorization": f"Bearer {device['token']}"}
    for key, value in (("speed", -3), ("accuracy", -0.5), ("battery", 500), ("heading", 1e9),
                       ("lon", True), ("lat", [10.0]), ("speed", "fast")):
        body = batch(3)
        body["positions"][1][key] = value
        r = client.post("/api/positions", json=body, headers=headers)
        assert r.status_code == 400, (key, value, r.get_json())
        assert r.get_json()["error"]["field"] == f"positions[1].{key}", (key, value)
    assert positions(session, device["id"]) == []


def test_unknown_sensor_values_and_a_heading_of_360(client, session, device):
    body = batch(2)
    body["positions"][0].update(speed=-1, accuracy=-1, battery=-1)   # Android's "unknown"
    body["positions"][1]["heading"] = 360
    r = client.post("/api/positions", json=body, headers={"Authorization": f"Bearer {device['token']}"})
    assert r.status_code == 200 and r.get_json()["inserted"] == 2
    rows = session.execute(text("SELECT speed, accuracy, battery, heading FROM positions WHERE unit_id = :u "
                                "ORDER BY ts"), {"u": device["id"]}).all()
    assert (rows[0].speed, rows[0].accuracy, rows[0].battery) == (None, None, None)
    assert rows[1].heading == 0

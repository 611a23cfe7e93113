"""Every route × every role × inside and outside the caller's scope.

For each endpoint of the app the table below names one request inside the scope of the users
(subtree TZ1 of the tiny region) and one outside it (TZ2). Each is sent as every role and as an
anonymous visitor, and the test asserts that
- nothing answers 500;
- a role the route does not admit gets 401 (no login) or 403, and the database is unchanged;
- a request outside the scope is refused (403/404) or answered without anything of TZ2;
- no body seen by an audience that does not act on incidents carries a sensitive incident's exact
  point, address or reporter, and no body seen by a scoped user carries an out-of-scope incident
  id, unit, area code or exact point. Vector tiles are decoded first: their properties are checked
  as text and every vertex's position against the exact points.
A new endpoint fails `test_every_endpoint_is_in_the_matrix` until it is added here.
"""
from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from geo import audit, jobs
from geo.boundaries import changes
from geo.patrol import units
from geo.policy import Scope
from tests import mvt

ROLES = ("admin", "dispatcher", "planner", "analyst", "grid_worker")
EXACT = ("admin", "dispatcher", "grid_worker")
S_IN, P_IN, P_OUT, S_OUT = 9100001, 9100002, 9100003, 9100004
SECRET_IN = ("10.0012345", "10.0023456", "秘密地址甲", "保密人甲", "13911112222")
SECRET_OUT = ("10.0345678", "10.0356789", "秘密地址乙", "保密人乙")
OUT_MARKS = ("9100003", "9100004", "OUT-1", "TZ2B1", "TZ2B2", "测试TZ2") + SECRET_OUT
# Exact points as positions (lon, lat), for bodies that carry coordinates in another form (tiles).
SECRET_POINTS = ((10.0012345, 10.0023456), (10.0345678, 10.0356789))
OUT_POINTS = ((10.025, 10.025), (10.0345678, 10.0356789))
# Routes that name places anywhere by design (the gazetteer and public aggregates): no scope.
UNSCOPED = {"incidents.geocode", "incidents.reverse", "api.lookup", "review.public_stats",
            "review.public_page", "api.openapi", "api.health", "review.layer_list",
            "tiles.public", "tiles.public_json", "tiles.basemap", "tiles.basemap_json"}
# Reads whose answer is a redirect: to the page a role starts on.
REDIRECTS = {"phone.start"}
# Endpoints with their own tests and no scope: static files, sign-in, device ingest.
EXEMPT = {"static", "vendor.asset", "auth.login", "auth.logout", "patrol.osmand", "patrol.positions",
          "phone.manifest", "phone.service_worker"}


def _gpx() -> bytes:
    return (b'<?xml version="1.0"?><gpx version="1.1" creator="t"><trk><trkseg>'
            b'<trkpt lat="10.005" lon="10.005"><time>2026-11-01T00:00:00Z</time></trkpt>'
            b'<trkpt lat="10.006" lon="10.006"><time>2026-11-01T00:01:00Z</time></trkpt>'
            b'</trkseg></trk></gpx>')


def _area_file(code: str, parent: str) -> bytes:
    ring = [[10.001, 10.001], [10.002, 10.001], [10.002, 10.002], [10.001, 10.002], [10.001, 10.001]]
    return json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "code": code, "parent": parent}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}).encode()


def _tile(layer: str, z: int, lon: float, lat: float) -> tuple:
    x, y = mvt.tile_of(z, lon, lat)
    return (f"/tiles/{layer}/{z}/{x}/{y}.mvt", None, None)


def _report(lon: float, lat: float) -> dict:
    return {"category": "dispute", "occurred_at": "2026-11-01T09:00:00+08:00", "lon": lon, "lat": lat,
            "description": "矩阵测试"}


def _visit(lon: float, lat: float) -> dict:
    return {"kind": "home", "occurred_at": "2026-11-01T10:00:00+08:00", "lon": lon, "lat": lat,
            "notes": "矩阵测试走访"}


# endpoint → (method, in-scope request, out-of-scope request); a request is (url, body, form).
# {change_in}, {track_in}, {assignment_in} … are filled in by the fixture.
ROUTES = {
    "pages.index": ("GET", ("/", None, None), None),
    "pages.favicon": ("GET", ("/favicon.ico", None, None), None),
    "patrol.dispatch_page": ("GET", ("/dispatch", None, None), None),
    "planner.page": ("GET", ("/planner", None, None), None),
    "incidents.report_form": ("GET", ("/report", None, None), None),
    "review.public_page": ("GET", ("/public", None, None), None),
    "review.review_page": ("GET", ("/review?area=TZ1&month=2026-11", None, None),
                           ("/review?area=TZ2&month=2026-11", None, None)),
    "review.review_map_document": ("GET", ("/review/map?area=TZ1&month=2026-11", None, None),
                                   ("/review/map?area=TZ2&month=2026-11", None, None)),
    "review.review_report": ("GET", ("/review/report?area=TZ1A&month=2026-11", None, None),
                             ("/review/report?area=TZ2A&month=2026-11", None, None)),
    "api.health": ("GET", ("/api/health", None, None), None),
    "api.openapi": ("GET", ("/api/openapi.json", None, None), None),
    "api.me": ("GET", ("/api/me", None, None), None),
    "api.area_list": ("GET", ("/api/areas?level=4&parent=TZ1", None, None),
                      ("/api/areas?level=4&parent=TZ2", None, None)),
    "api.area_detail": ("GET", ("/api/areas/TZ1A1", None, None), ("/api/areas/TZ2B1", None, None)),
    "api.lookup": ("GET", ("/api/lookup?lon=10.005&lat=10.005", None, None), None),
    "planner.area_diff": ("GET", ("/api/areas/TZ1A1/diff?from=1&to=1", None, None),
                          ("/api/areas/TZ2B1/diff?from=1&to=1", None, None)),
    "planner.area_problems": ("GET", ("/api/areas/TZ1A/problems", None, None),
                              ("/api/areas/TZ2B/problems", None, None)),
    "planner.area_versions": ("GET", ("/api/areas/TZ1A1/versions", None, None),
                              ("/api/areas/TZ2B1/versions", None, None)),
    "planner.area_export": ("GET", ("/api/areas/export?parent=TZ1", None, None),
                            ("/api/areas/export?parent=TZ2", None, None)),
    "planner.change_list": ("GET", ("/api/changes?area=TZ1A", None, None),
                            ("/api/changes?area=TZ2B", None, None)),
    "planner.change_detail": ("GET", ("/api/changes/{change_in}", None, None),
                              ("/api/changes/{change_out}", None, None)),
    "planner.lock_list": ("GET", ("/api/locks?parent=TZ1", None, None), ("/api/locks?parent=TZ2", None, None)),
    "patrol.coverage_layer": ("GET", ("/api/coverage?hours=24", None, None), None),
    "patrol.coverage_gaps": ("GET", ("/api/coverage/gaps?hours=24", None, None), None),
    "patrol.assignments": ("GET", ("/api/dispatch/assignments?incident={S_IN}", None, None),
                           ("/api/dispatch/assignments?incident={P_OUT}", None, None)),
    "patrol.recent_incidents": ("GET", ("/api/dispatch/incidents?hours=72", None, None), None),
    "patrol.nearest": ("GET", ("/api/dispatch/nearest?incident={S_IN}", None, None),
                       ("/api/dispatch/nearest?incident={P_OUT}", None, None)),
    "patrol.stats": ("GET", ("/api/dispatch/stats?level=4", None, None), None),
    "incidents.geocode": ("GET", ("/api/geocode?q=测试TZ1A1", None, None), None),
    "incidents.reverse": ("GET", ("/api/reverse?lon=10.005&lat=10.005", None, None), None),
    "review.heat_map": ("GET", ("/api/heat?area=TZ1&bandwidth=200", None, None),
                        ("/api/heat?area=TZ2&bandwidth=200", None, None)),
    "review.hot_spots": ("GET", ("/api/hotspots?area=TZ1&size=500&permutations=99", None, None),
                         ("/api/hotspots?area=TZ2&size=500&permutations=99", None, None)),
    "review.emerging_hot_spots": ("GET", ("/api/hotspots/emerging?area=TZ1&size=500", None, None),
                                  ("/api/hotspots/emerging?area=TZ2&size=500", None, None)),
    "incidents.listing": ("GET", ("/api/incidents?area=TZ1", None, None),
                          ("/api/incidents?area=TZ2", None, None)),
    "incidents.detail": ("GET", ("/api/incidents/{S_IN}", None, None), ("/api/incidents/{S_OUT}", None, None)),
    "incidents.photo_list": ("GET", ("/api/incidents/{S_IN}/photos", None, None),
                             ("/api/incidents/{S_OUT}/photos", None, None)),
    "incidents.photo": ("GET", ("/api/incidents/{S_IN}/photos/{photo_in}", None, None),
                        ("/api/incidents/{S_OUT}/photos/{photo_out}", None, None)),
    "phone.day": ("GET", ("/day", None, None), None),
    "phone.start": ("GET", ("/start", None, None), None),
    "incidents.duplicate_list": ("GET", ("/api/incidents/{S_IN}/duplicates", None, None),
                                 ("/api/incidents/{P_OUT}/duplicates", None, None)),
    "incidents.statistics": ("GET", ("/api/incidents/stats?area=TZ1", None, None),
                             ("/api/incidents/stats?area=TZ2", None, None)),
    "review.layer_list": ("GET", ("/api/layers", None, None), None),
    "live.live": ("GET", ("/api/live?max_seconds=0.1", None, None), None),
    "review.public_stats": ("GET", ("/api/public/stats?level=grid", None, None), None),
    "review.compare": ("GET", ("/api/review/compare?area=TZ1&month=2026-11", None, None),
                       ("/api/review/compare?area=TZ2&month=2026-11", None, None)),
    "review.risk_levels": ("GET", ("/api/risk?area=TZ1", None, None), ("/api/risk?area=TZ2", None, None)),
    "review.risk_history": ("GET", ("/api/risk/TZ1A1/history", None, None),
                            ("/api/risk/TZ2B1/history", None, None)),
    "review.scorecard": ("GET", ("/api/scorecards?area=TZ1A", None, None),
                         ("/api/scorecards?area=TZ2B", None, None)),
    "patrol.track": ("GET", ("/api/tracks?unit=IN-1", None, None), ("/api/tracks?unit=OUT-1", None, None)),
    "patrol.track_stored": ("GET", ("/api/tracks/{track_in}", None, None),
                            ("/api/tracks/{track_out}", None, None)),
    "patrol.track_replay": ("GET", ("/api/tracks/replay?unit=IN-1", None, None),
                            ("/api/tracks/replay?unit=OUT-1", None, None)),
    "patrol.tracks_stored": ("GET", ("/api/tracks/stored?unit=IN-1", None, None),
                             ("/api/tracks/stored?unit=OUT-1", None, None)),
    "patrol.unit_list": ("GET", ("/api/units", None, None), None),
    "patrol.unit_shifts": ("GET", ("/api/units/IN-1/shifts", None, None), ("/api/units/OUT-1/shifts", None, None)),
    "patrol.unit_trails": ("GET", ("/api/units/trails?minutes=60", None, None), None),
    # Jobs are their owner's: another user (the matrix's own are new for each role) gets 404.
    "jobs.job_detail": ("GET", ("/api/jobs/{job_in}", None, None), ("/api/jobs/{job_out}", None, None)),
    "tiles.areas": ("GET", _tile("areas", 13, 10.005, 10.01), _tile("areas", 15, 10.035, 10.035)),
    "tiles.risk": ("GET", _tile("risk", 13, 10.005, 10.01), _tile("risk", 15, 10.035, 10.035)),
    "tiles.coverage": ("GET", _tile("coverage", 13, 10.005, 10.01), _tile("coverage", 15, 10.035, 10.035)),
    "tiles.incidents": ("GET", _tile("incidents", 16, 10.0012345, 10.0023456),
                        _tile("incidents", 16, 10.0345678, 10.0356789)),
    "tiles.public": ("GET", _tile("public", 12, 10.005, 10.005), None),
    "tiles.basemap": ("GET", _tile("basemap", 14, 10.005, 10.005), None),
    "tiles.areas_json": ("GET", ("/tiles/areas.json", None, None), None),
    "tiles.risk_json": ("GET", ("/tiles/risk.json", None, None), None),
    "tiles.coverage_json": ("GET", ("/tiles/coverage.json", None, None), None),
    "tiles.incidents_json": ("GET", ("/tiles/incidents.json", None, None), None),
    "tiles.public_json": ("GET", ("/tiles/public.json", None, None), None),
    "tiles.basemap_json": ("GET", ("/tiles/basemap.json", None, None), None),
    "visits.household_list": ("GET", ("/api/households?grid=TZ1A1", None, None),
                              ("/api/households?grid=TZ2B1", None, None)),
    "visits.listing": ("GET", ("/api/visits?grid=TZ1A1", None, None), ("/api/visits?grid=TZ2B1", None, None)),
    "visits.coverage_view": ("GET", ("/api/visits/coverage?area=TZ1", None, None),
                             ("/api/visits/coverage?area=TZ2", None, None)),
    "visits.my_day": ("GET", ("/api/me/day", None, None), None),
    # -- OGC API – Features: the collections, each read with the caller's audience ---------------
    "ogc.landing": ("GET", ("/ogc", None, None), None),
    "ogc.conformance": ("GET", ("/ogc/conformance", None, None), None),
    "ogc.api": ("GET", ("/ogc/api", None, None), None),
    "ogc.collections": ("GET", ("/ogc/collections", None, None), None),
    "ogc.collection": ("GET", ("/ogc/collections/incidents", None, None), None),
    "ogc.queryables": ("GET", ("/ogc/collections/incidents/queryables", None, None), None),
    "ogc.items": ("GET", ("/ogc/collections/incidents/items?bbox=10,10,10.02,10.04", None, None),
                  ("/ogc/collections/incidents/items?bbox=10.02,10,10.04,10.04", None, None)),
    "ogc.item": ("GET", ("/ogc/collections/incidents/items/{S_IN}", None, None),
                 ("/ogc/collections/incidents/items/{S_OUT}", None, None)),
    # -- writes (sent after every read) ----------------------------------------------------------
    "planner.lock_take": ("POST", ("/api/areas/TZ1A/lock", None, None), ("/api/areas/TZ2B/lock", None, None)),
    "planner.lock_release": ("DELETE", ("/api/areas/TZ1A/lock", None, None),
                             ("/api/areas/TZ2B/lock", None, None)),
    "planner.area_import": ("POST", ("/api/areas/import", None, {"level": "4", "parent": "TZ1A", "dry_run": "1",
                                                                  "file": ("in.geojson", _area_file("TZ1A9", "TZ1A"))}),
                            ("/api/areas/import", None, {"level": "4", "parent": "TZ2B", "dry_run": "1",
                                                         "file": ("out.geojson", _area_file("TZ2B9", "TZ2B"))})),
    "planner.change_create": ("POST", ("/api/changes", {"op": "merge", "areas": ["TZ1A1", "TZ1A2"],
                                                        "reason": "合并测试", "preview": True}, None),
                              ("/api/changes", {"op": "merge", "areas": ["TZ2B1", "TZ2B2"],
                                                "reason": "合并测试", "preview": True}, None)),
    "planner.change_revert": ("POST", ("/api/changes/{change_in}/revert", {"reason": "撤销测试", "preview": True}, None),
                              ("/api/changes/{change_out}/revert", {"reason": "撤销测试", "preview": True}, None)),
    "patrol.assign": ("POST", ("/api/dispatch/assign", {"incident": "{P_IN}", "unit": "IN-1"}, None),
                      ("/api/dispatch/assign", {"incident": "{P_OUT}", "unit": "OUT-1"}, None)),
    "patrol.assignment_action": ("POST", ("/api/dispatch/assignments/{assignment_in}/acknowledge", {}, None),
                                 ("/api/dispatch/assignments/{assignment_out}/acknowledge", {}, None)),
    "incidents.create": ("POST", ("/api/incidents", _report(10.005, 10.005), None),
                         ("/api/incidents", _report(10.035, 10.035), None)),
    "visits.create": ("POST", ("/api/visits", _visit(10.005, 10.005), None),
                      ("/api/visits", _visit(10.035, 10.035), None)),
    "incidents.link": ("POST", ("/api/incidents/{S_IN}/links", {"other": "{P_IN}"}, None),
                       ("/api/incidents/{S_IN}/links", {"other": "{P_OUT}"}, None)),
    "incidents.unlink": ("DELETE", ("/api/incidents/{S_IN}/links/{P_IN}", None, None),
                         ("/api/incidents/{S_IN}/links/{P_OUT}", None, None)),
    "incidents.transition_view": ("POST", ("/api/incidents/{P_IN}/transitions", {"to": "accepted"}, None),
                                  ("/api/incidents/{P_OUT}/transitions", {"to": "accepted"}, None)),
    "review.risk_override": ("POST", ("/api/risk/TZ1A1/override", {"level": "red", "reason": "矩阵测试原因",
                                                                     "until": "{until}"}, None),
                             ("/api/risk/TZ2B1/override", {"level": "red", "reason": "矩阵测试原因",
                                                           "until": "{until}"}, None)),
    "review.risk_override_clear": ("DELETE", ("/api/risk/TZ1A1/override", None, None),
                                   ("/api/risk/TZ2B1/override", None, None)),
    "patrol.track_build": ("POST", ("/api/tracks/build", {"unit": "IN-1"}, None),
                           ("/api/tracks/build", {"unit": "OUT-1"}, None)),
    "patrol.track_import": ("POST", ("/api/tracks/import", None, {"unit": "IN-1", "file": ("t.gpx", _gpx())}),
                            ("/api/tracks/import", None, {"unit": "OUT-1", "file": ("t.gpx", _gpx())})),
    "patrol.unit_add": ("POST", ("/api/units", {"callsign": "NEW-IN", "kind": "car", "area": "TZ1A"}, None),
                        ("/api/units", {"callsign": "NEW-OUT", "kind": "car", "area": "TZ2B"}, None)),
    "patrol.unit_shift_add": ("POST", ("/api/units/IN-1/shifts", {"hours": 8}, None),
                              ("/api/units/OUT-1/shifts", {"hours": 8}, None)),
    "patrol.unit_status": ("POST", ("/api/units/IN-1/status", {"status": "on_duty"}, None),
                           ("/api/units/OUT-1/status", {"status": "on_duty"}, None)),
    "patrol.unit_token": ("POST", ("/api/units/IN-1/token", {}, None), ("/api/units/OUT-1/token", {}, None)),
}


@pytest.fixture()
def world(session, tiny):
    """Four incidents with fixed ids (sensitive and plain, in and out of TZ1), a unit, a track and
    an assignment on each side, and a boundary change on each side."""
    def incident(iid, code, lon, lat, sensitive, address=None, reporter=None):
        session.execute(text("""
            INSERT INTO incidents (id, category, occurred_at, geom, grid_id, area_id, sensitive,
                                   address, reporter_name, reporter_phone, description, district_code)
            VALUES (:i, 'dispute', now() - interval '1 day', ST_SetSRID(ST_MakePoint(:x, :y), 4326),
                    (SELECT id FROM areas WHERE code = :c), (SELECT id FROM areas WHERE code = :c),
                    :s, :a, CAST(:r AS text), CASE WHEN CAST(:r AS text) IS NULL THEN NULL ELSE '13911112222' END,
                    '矩阵测试', 'TZ')"""),
                        {"i": iid, "c": code, "x": lon, "y": lat, "s": sensitive, "a": address, "r": reporter})
    incident(S_IN, "TZ1A1", 10.0012345, 10.0023456, True, "秘密地址甲", "保密人甲")
    incident(P_IN, "TZ1A2", 10.015, 10.005, False)
    incident(P_OUT, "TZ2B1", 10.025, 10.025, False)
    incident(S_OUT, "TZ2B2", 10.0345678, 10.0356789, True, "秘密地址乙", "保密人乙")
    # A household on each side, its identity as secret as a sensitive incident's reporter.
    for code, name, address, lon in (("TZ1A1", "保密人甲", "秘密地址甲", 10.0012345),
                                      ("TZ2B1", "保密人乙", "秘密地址乙", 10.0345678)):
        session.execute(text("""
            INSERT INTO households (grid_id, number, head_name, phone, id_number, address, geom)
            VALUES ((SELECT id FROM areas WHERE code = :c), '0001', :n, '13911112222',
                    '41110319800101123X', :a, ST_SetSRID(ST_MakePoint(:x, :x), 4326))"""),
                        {"c": code, "n": name, "a": address, "x": lon})
    actor = audit.Actor("test")
    ids = {"S_IN": S_IN, "P_IN": P_IN, "P_OUT": P_OUT, "S_OUT": S_OUT,
           "until": (datetime.now(timezone.utc) + timedelta(days=7)).isoformat()}
    for side, code, lon, lat in (("in", "TZ1A1", 10.005, 10.005), ("out", "TZ2B1", 10.025, 10.025)):
        callsign = "IN-1" if side == "in" else "OUT-1"
        uid, _ = units.add_unit(session, actor, callsign, "car", f"dev-{side}", code, "on_duty")
        session.execute(text("INSERT INTO unit_last_positions (unit_id, ts, geom, seen_at) "
                             "VALUES (:u, now(), ST_SetSRID(ST_MakePoint(:x, :y), 4326), now())"),
                        {"u": uid, "x": lon, "y": lat})
        ids[f"track_{side}"] = session.execute(text(
            "INSERT INTO tracks (unit_id, starts_at, ends_at, geom, length_m, points, source) VALUES "
            "(:u, now() - interval '1 hour', now(), ST_GeomFromText(:w, 4326), 100, 2, 'gpx') RETURNING id"),
            {"u": uid, "w": f"LINESTRING({lon} {lat}, {lon + 0.001} {lat})"}).scalar_one()
        ids[f"assignment_{side}"] = session.execute(text(
            "INSERT INTO assignments (incident_id, unit_id) VALUES (:i, :u) RETURNING id"),
            {"i": P_IN if side == "in" else P_OUT, "u": uid}).scalar_one()
    for side, a, b in (("in", "TZ1A1", "TZ1A2"), ("out", "TZ2B1", "TZ2B2")):
        x = 10.0095 if side == "in" else 10.0295
        y = 10.005 if side == "in" else 10.025
        square = {"type": "Polygon", "coordinates": [[[x, y], [x + 0.0005, y], [x + 0.0005, y + 0.0005],
                                                      [x, y + 0.0005], [x, y]]]}
        versions = dict(session.execute(text("SELECT code, version FROM areas WHERE code IN (:a, :b)"),
                                        {"a": a, "b": b}).all())
        ids[f"change_{side}"] = changes.apply(session, "transfer", areas=[a, b], geometry=square,
                                              base_versions=versions, reason="矩阵测试", actor=actor,
                                              scope=Scope.all()).change_id
    for side, code in (("in", "TZ1"), ("out", "TZ2")):
        ids[f"job_{side}"] = jobs.create(session, "areas.import", None, code)
    for side, incident in (("in", S_IN), ("out", S_OUT)):
        ids[f"photo_{side}"] = session.execute(text(
            "INSERT INTO incident_photos (incident_id, content_type, data, sha256) "
            "VALUES (:i, 'image/png', :d, 'x') RETURNING id"),
            {"i": incident, "d": b"photo bytes"}).scalar_one()
    session.flush()
    return ids


def _fill(value, ids: dict):
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), value)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def _send(client, method: str, request, ids: dict, headers: dict):
    url, body, form = request
    url = _fill(url, ids)
    if form is not None:
        data = {k: (io.BytesIO(v[1]), v[0]) if isinstance(v, tuple) else v for k, v in form.items()}
        return client.open(url, method=method, data=data, headers=headers,
                           content_type="multipart/form-data")
    if body is not None:
        return client.open(url, method=method, json=_fill(body, ids), headers=headers)
    return client.open(url, method=method, headers=headers)


def _csrf(client) -> dict:
    page = client.get("/").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    return {"X-CSRFToken": found.group(1)} if found else {}


def _writes(session) -> int:
    return session.execute(text("SELECT count(*) FROM audit_log")).scalar()


def _near(points, places, metres: float = 2.0) -> list:
    return [(p, q) for p in points for q in places
            if abs(p[0] - q[0]) * 109_600 < metres and abs(p[1] - q[1]) * 110_600 < metres]


def _check_body(endpoint: str, role: str | None, scoped: bool, response) -> None:
    points: list = []
    if response.mimetype != "application/vnd.mapbox-vector-tile":
        body = response.get_data(as_text=True)
    else:
        z, x, y = (int(v) for v in response.request.path.rsplit(".", 1)[0].split("/")[-3:])
        decoded = mvt.decode(response.get_data()) if response.get_data() else {}
        body = json.dumps([f.properties for layer in decoded.values() for f in layer.features], ensure_ascii=False)
        points = mvt.points(decoded, z, x, y)
    if role not in EXACT:
        for secret in SECRET_IN + SECRET_OUT:
            assert secret not in body, (endpoint, role, secret)
        assert _near(points, SECRET_POINTS) == [], (endpoint, role)
    if scoped and endpoint not in UNSCOPED:
        for mark in OUT_MARKS:
            assert mark not in body, (endpoint, role, mark)
        assert _near(points, OUT_POINTS) == [], (endpoint, role)


def test_every_endpoint_is_in_the_matrix(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - EXEMPT - set(ROUTES) == set(), "add the new endpoint to ROUTES"
    assert set(ROUTES) - endpoints == set()


def test_every_route_every_role_in_and_out_of_scope(app, client, login, session, world):
    admitted = {endpoint: set(getattr(app.view_functions[endpoint], "anwang_roles", ()))
                for endpoint in ROUTES}
    order = sorted(ROUTES, key=lambda e: ROUTES[e][0] != "GET")     # every read before any write
    seen: dict = {}
    for role in (None,) + ROLES:
        if role is None:
            with client.session_transaction() as sess:
                sess.clear()
        else:
            login(role, None if role == "admin" else "TZ1")
        headers = _csrf(client) if role else {}
        for endpoint in order:
            method, inside, outside = ROUTES[endpoint]
            allowed = "public" in admitted[endpoint] or (role is not None and (
                role == "admin" or role in admitted[endpoint]))
            for request, out in ((inside, False), (outside, True)):
                if request is None:
                    continue
                before = _writes(session)
                response = _send(client, method, request, world, headers)
                status = response.status_code
                where = (endpoint, role, "out" if out else "in", status)
                seen[where[:3]] = status
                assert status < 500, (where, response.get_data(as_text=True)[:300])
                if not allowed:
                    assert status in ((401, 302) if role is None else (403,)) or (
                        role is None and method != "GET" and status == 400), where
                    assert _writes(session) == before, where
                    continue
                scoped = role is not None and role != "admin"
                if out and scoped and endpoint not in UNSCOPED:
                    assert status in (403, 404) or (status < 300 and method == "GET"), where
                    if status >= 400:
                        assert _writes(session) == before, where
                if status < 300:
                    _check_body(endpoint, role, scoped, response)
    # The matrix answered: every admitted read inside the scope succeeded for some role.
    reads = {e for e in ROUTES if ROUTES[e][0] == "GET"}
    answered = {e for (e, _, side), status in seen.items()
                if side == "in" and (status == 200 or (status == 302 and e in REDIRECTS))}
    assert reads - answered == set(), "reads that never answered 200 inside the scope"


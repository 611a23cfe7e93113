"""Patrol dispatch over HTTP: units, position ingest (batch API and the OsmAnd protocol of the
Traccar Client app), tracks, coverage, nearest-unit dispatch, and the /dispatch page.

Devices authenticate with their device token (`Authorization: Bearer dev_…`, `X-Device-Token`, or
`?token=`), never a cookie, so their endpoints are CSRF-exempt. The OsmAnd endpoint identifies a
device by its id, as Traccar does (the real app sends nothing else); set
`ANWANG_OSMAND_REQUIRE_TOKEN=1` to also demand `token=` in the server URL configured on the phone.
"""
from __future__ import annotations

from datetime import datetime, timezone, tzinfo

from flask import Blueprint, Response, current_app, render_template, request

from geo.errors import InvalidInput
from geo.inputs import number_value
from geo.messages import msg
from geo.patrol import dispatch, events, fixes, gpx, ingest, tracks, units
from geo.patrol.filters import Limits
from layers import coverage

from . import database
from .auth import (
    actor,
    audience,
    csrf_exempt,
    current_user,
    public,
    require_scope,
    roles,
)
from .osmand import OsmandPort, parse_osmand, require_token
from .pages import map_config
from .responses import (
    float_arg,
    geojson_response,
    int_arg,
    json_body,
    json_response,
    optional_json_body,
    time_arg,
)

bp = Blueprint("patrol", __name__)
VIEW = ("dispatcher", "analyst")
ACT = ("dispatcher",)


def limits(config) -> Limits:
    """The quality filters' thresholds as configured."""
    return Limits(config["MAX_SPEED_MS"], config["POOR_ACCURACY_M"])


def device_zone(config) -> tzinfo:
    """The time zone of device times sent without one (ANWANG_DEVICE_TIMEZONE)."""
    return fixes.device_zone(config.get("DEVICE_TIMEZONE"))


def _time_arg(name: str) -> datetime | None:
    return time_arg(name, fixes.parse_time)


def _unit_in_scope(callsign) -> int:
    """The unit's id, if the caller's scope covers the unit's home area (or district)."""
    return units.unit_in_scope(database.session(), current_user().scope, callsign=str(callsign or ""))


# -- page ------------------------------------------------------------------------------------
@bp.get("/dispatch")
@roles(*ACT)
def dispatch_page():
    cfg = {**map_config(), "staleSeconds": units.STALE_SECONDS}
    return render_template("dispatch.html", map_config=cfg)


# -- units -----------------------------------------------------------------------------------
@bp.get("/api/units")
@roles(*VIEW)
def unit_list():
    """Units at their last clean position (or at ?at=T) as GeoJSON."""
    fc = units.units_geojson(database.session(), current_user().scope, at=_time_arg("at"))
    return geojson_response(fc)


@bp.post("/api/units")
@roles(*ACT)
def unit_add():
    body = json_body()
    area = body.get("area") or None
    if area:
        require_scope(area)
    elif not current_user().everywhere:
        raise InvalidInput("area", "give the unit's home area (a code inside your scope)")
    s = database.session()
    uid, token = units.add_unit(s, actor(), body.get("callsign"), body.get("kind"),
                                 body.get("device_id"), area, body.get("status") or "off_duty")
    s.commit()
    return json_response({"id": uid, "callsign": body.get("callsign"), "token": token}, 201)


@bp.post("/api/units/<callsign>/status")
@roles(*ACT)
def unit_status(callsign):
    _unit_in_scope(callsign)
    s = database.session()
    out = units.set_status(s, actor(), callsign, json_body().get("status"))
    s.commit()
    return json_response(out)


@bp.post("/api/units/<callsign>/token")
@roles(*ACT)
def unit_token(callsign):
    _unit_in_scope(callsign)
    s = database.session()
    token = units.rotate_token(s, actor(), callsign)
    s.commit()
    return json_response({"callsign": callsign, "token": token})


@bp.get("/api/units/<callsign>/shifts")
@roles(*VIEW)
def unit_shifts(callsign):
    _unit_in_scope(callsign)
    return json_response({"callsign": callsign, "shifts": units.shifts(database.session(), callsign)})


@bp.post("/api/units/<callsign>/shifts")
@roles(*ACT)
def unit_shift_add(callsign):
    _unit_in_scope(callsign)
    body = json_body()
    starts = fixes.parse_time(body.get("starts_at"), "starts_at") if body.get("starts_at") else \
        datetime.now(timezone.utc).replace(second=0, microsecond=0)
    hours = number_value(body.get("hours", 24), "hours", required=True, what=msg("a number of hours"))
    s = database.session()
    sid = units.add_shift(s, actor(), callsign, starts, hours, body.get("task"))
    s.commit()
    return json_response({"id": sid, "callsign": callsign}, 201)


@bp.get("/api/units/trails")
@roles(*VIEW)
def unit_trails():
    minutes = float_arg("minutes", 10.0)
    return geojson_response(units.trails(database.session(), current_user().scope, minutes,
                                         at=_time_arg("at")))


# -- ingest ----------------------------------------------------------------------------------
def _device_token() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if header.lower().startswith("device "):
        return header[7:].strip()
    return request.headers.get("X-Device-Token") or request.args.get("token")


@bp.post("/api/positions")
@public
@csrf_exempt
def positions():
    """A JSON batch of fixes from one device: {"positions": [{"ts", "lon", "lat", …}, …]}."""
    token = _device_token()
    if not token:
        return _error(401, "unauthorized", "a device token is required (Authorization: Bearer dev_…)")
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidInput("body", "expected JSON with Content-Type: application/json")
    batch = fixes.parse_batch(body)
    s = database.session()
    unit = units.unit_for_token(s, token, ingest.utc_days(batch))
    if unit is None:
        return _error(401, "unauthorized", "unknown or revoked device token")
    result = ingest.ingest(s, unit, batch, limits=limits(current_app.config))
    ingest.commit_and_publish(s, result)
    return json_response({"unit": unit.callsign, **result.as_dict()})


def _error(status, code, message, field=None):
    from .errors import error_response

    return error_response(status, code, message, field)


@bp.route("/osmand", methods=["GET", "POST"])
@bp.route("/osmand/", methods=["GET", "POST"])
@public
@csrf_exempt
def osmand():
    """The OsmAnd protocol as Traccar Client sends it: 200 with an empty body when stored, 400 for
    an unknown device (the app then keeps the fix and retries)."""
    report = parse_osmand(request.args, request.get_data(), device_zone(current_app.config))
    s = database.session()
    unit = units.unit_for_device(s, report.device, ingest.utc_days(report.fixes))
    if unit is None:
        return _error(400, "unknown_device", f"no unit has device id {report.device!r}", "id")
    if require_token():
        found = units.unit_for_token(s, request.args.get("token") or "")
        if found is None or found.id != unit.id:
            return _error(401, "unauthorized", "this server needs the device token (token=…)", "token")
    result = events.ingest_report(s, unit, report.fixes, report.heard, limits(current_app.config))
    ingest.commit_and_publish(s, result)
    return Response(b"", status=200)


# -- tracks ----------------------------------------------------------------------------------
def _window(uid: int):
    s = database.session()
    start, end = _time_arg("from"), _time_arg("to")
    shift = int_arg("shift")
    if start is None or end is None:
        start2, end2, shift = tracks.shift_window(s, uid, shift, _time_arg("at"))
        start, end = start or start2, end or end2
    return start, end, shift


@bp.get("/api/tracks")
@roles(*VIEW)
def track():
    """?unit=CALLSIGN&shift=ID|from=&to=&zoom=: the clean track with its statistics."""
    callsign = request.args.get("unit") or ""
    uid = _unit_in_scope(callsign)
    start, end, shift = _window(uid)
    feature = tracks.track_feature(database.session(), uid, start, end, int_arg("zoom", None, 0, 22))
    feature["properties"].update({"callsign": callsign, "shift_id": shift})
    return geojson_response(feature)


@bp.get("/api/tracks/replay")
@roles(*VIEW)
def track_replay():
    callsign = request.args.get("unit") or ""
    uid = _unit_in_scope(callsign)
    start, end, shift = _window(uid)
    out = tracks.replay(database.session(), uid, start, end)
    out.update({"callsign": callsign, "shift_id": shift})
    return json_response(out)


@bp.post("/api/tracks/build")
@roles(*ACT)
def track_build():
    body = json_body()
    callsign = body.get("unit") or ""
    uid = _unit_in_scope(callsign)
    s = database.session()
    out = tracks.build(s, uid, body.get("shift"))
    if out is None:
        raise InvalidInput("unit", f"unit {callsign} has fewer than two clean fixes in that shift")
    s.commit()
    return json_response(out, 201)


@bp.get("/api/tracks/stored")
@roles(*VIEW)
def tracks_stored():
    callsign = request.args.get("unit") or ""
    uid = _unit_in_scope(callsign)
    return json_response({"unit": callsign, "tracks": tracks.stored(database.session(), uid)})


@bp.get("/api/tracks/<int:track_id>")
@roles(*VIEW)
def track_stored(track_id):
    s = database.session()
    feature = tracks.stored_feature(s, track_id, int_arg("zoom", None, 0, 22))
    units.unit_in_scope(s, current_user().scope, unit=feature["properties"]["unit"])
    return geojson_response(feature)


@bp.post("/api/tracks/import")
@roles(*ACT)
def track_import():
    """Multipart upload: file=GPX, unit=CALLSIGN."""
    callsign = request.form.get("unit") or ""
    _unit_in_scope(callsign)
    upload = request.files.get("file")
    if upload is None:
        raise InvalidInput("file", "attach a GPX file as the form field 'file'")
    s = database.session()
    result = gpx.import_gpx(s, actor(), callsign, upload.read(), upload.filename or "upload.gpx",
                            limits=limits(current_app.config))
    s.commit()
    return json_response(result.as_dict(), 201)


# -- coverage --------------------------------------------------------------------------------
@bp.get("/api/coverage")
@roles(*VIEW)
def coverage_layer():
    """?hours=24|7d: per grid, patrol minutes and visits against its risk colour (GeoJSON unless
    format=json)."""
    s = database.session()
    rows = coverage.coverage(s, current_user().scope, coverage.parse_hours(request.args.get("hours"), 24))
    if request.args.get("format") == "json":
        return json_response({"grids": rows})
    return geojson_response(coverage.as_geojson(s, rows))


@bp.get("/api/coverage/gaps")
@roles(*VIEW)
def coverage_gaps():
    """?hours=X: red and orange grids with no patrol in the last X hours (GeoJSON)."""
    s = database.session()
    rows = coverage.gaps(s, current_user().scope, coverage.parse_hours(request.args.get("hours"), 6))
    if request.args.get("format") == "json":
        return json_response({"grids": rows})
    return geojson_response(coverage.as_geojson(s, rows))


# -- dispatch --------------------------------------------------------------------------------
@bp.get("/api/dispatch/nearest")
@roles(*ACT)
def nearest():
    """?incident=ID (or lon=&lat=)&k=5&max_age=900: nearest on-duty units."""
    incident = request.args.get("incident") or None
    max_age = float_arg("max_age", dispatch.DEFAULT_MAX_AGE_S)
    return json_response(dispatch.nearest(database.session(), audience(), incident,
                                          request.args.get("lon"), request.args.get("lat"),
                                          int_arg("k", 5, 1, 100),
                                          max_age if max_age and max_age > 0 else None))


@bp.post("/api/dispatch/assign")
@roles(*ACT)
def assign():
    body = json_body()
    _unit_in_scope(body.get("unit") or "")
    s = database.session()
    out = dispatch.assign(s, actor(), body.get("incident"), body.get("unit"), audience(),
                          body.get("note"))
    s.commit()
    return json_response(out, 201)


@bp.post("/api/dispatch/assignments/<int:assignment_id>/<action>")
@roles(*ACT)
def assignment_action(assignment_id, action):
    s = database.session()
    body = optional_json_body()
    out = dispatch.transition(s, actor(), assignment_id, action, audience(), body.get("note"))
    s.commit()
    return json_response(out)


@bp.get("/api/dispatch/assignments")
@roles(*VIEW)
def assignments():
    return json_response({"assignments": dispatch.assignments(
        database.session(), audience(), int_arg("incident"), request.args.get("open") in ("1", "true"))})


@bp.get("/api/dispatch/stats")
@roles(*VIEW)
def stats():
    """?level=2&days=30: response times per area."""
    return json_response({"areas": dispatch.response_stats(database.session(), audience(),
                                                           int_arg("level", 2, 1, 4),
                                                           float_arg("days", 30.0))})


@bp.get("/api/dispatch/incidents")
@roles(*VIEW)
def recent_incidents():
    """?hours=24: recent incidents not yet closed, with their open assignments, for the dispatch
    map and its queue (GeoJSON)."""
    hours = coverage.parse_hours(request.args.get("hours"), 24)
    return geojson_response(dispatch.recent(database.session(), audience(), hours))


def init_app(app) -> None:
    """Register the blueprint and, when configured, answer the OsmAnd protocol on its own port."""
    app.register_blueprint(bp)
    port = app.config.get("OSMAND_PORT")
    if port:
        def conninfo():
            from geo import db

            url = app.config.get("DATABASE_URL") or db.engine_url()
            return url.replace("postgresql+psycopg://", "postgresql://", 1)

        app.wsgi_app = OsmandPort(app.wsgi_app, int(port), conninfo, limits(app.config),
                                  device_zone(app.config))


def openapi_paths(geojson: dict, param, errors) -> dict:
    """The OpenAPI description of the patrol routes (merged into /api/openapi.json)."""
    callsign = {"name": "callsign", "in": "path", "required": True, "schema": {"type": "string"}}
    ident = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
    body = lambda summary, codes=(400, 401, 403, 404): {   # noqa: E731
        "summary": summary, "responses": {"200": {"description": "ok"}, **errors(*codes)}}
    read = lambda summary, *params: {   # noqa: E731
        "summary": summary, "parameters": list(params),
        "responses": {"200": {"description": "ok", "content": geojson}, **errors(400, 401)}}
    hours = param("hours", "24 or 7d (coverage window)")
    return {
        "/api/units": {
            "get": read("Units at their last position (GeoJSON); at=T: where everyone was at T",
                        param("at", "ISO 8601 instant"), param("q", "call sign or device id")),
            "post": body("Add a unit; returns its device token once", (400, 401, 403, 409))},
        "/api/units/trails": {"get": read("Each unit's clean fixes of the last N minutes",
                                          param("minutes", "trail length, default 10"))},
        "/api/units/{callsign}/status": {"post": {**body("Set duty status (on_duty, busy, off_duty)"),
                                                  "parameters": [callsign]}},
        "/api/units/{callsign}/token": {"post": {**body("Issue a new device token"),
                                                 "parameters": [callsign]}},
        "/api/units/{callsign}/shifts": {
            "get": {**read("A unit's shifts"), "parameters": [callsign]},
            "post": {**body("Add a shift (24-hour by default)"), "parameters": [callsign]}},
        "/api/positions": {"post": {
            **body("A batch of fixes from one device (Authorization: Bearer DEVICE_TOKEN); "
                   "idempotent on (unit, ts)", (400, 401, 413)), "security": [{"bearer": []}]}},
        "/api/live": {"get": {
            "summary": "Server-Sent Events: unit positions, new incidents, risk alerts; "
                       "Last-Event-ID resumes without loss",
            "responses": {"200": {"description": "text/event-stream"}, **errors(401)}}},
        "/api/tracks": {"get": read("A unit's track for a window, simplified per zoom, with distance, "
                                    "duration, minutes per grid and grids crossed",
                                    param("unit", "call sign", True), param("from", "ISO 8601"),
                                    param("to", "ISO 8601"), param("zoom", "map zoom"))},
        "/api/tracks/replay": {"get": read("A unit's fixes for replay with a time slider",
                                           param("unit", "call sign", True))},
        "/api/tracks/build": {"post": body("Store the track of a unit's shift from clean fixes")},
        "/api/tracks/import": {"post": body("Upload a GPX file for a unit (multipart: file, unit)")},
        "/api/tracks/stored": {"get": read("Stored tracks", param("unit", "call sign"))},
        "/api/tracks/{id}": {"get": {**read("One stored track"), "parameters": [ident]}},
        "/api/coverage": {"get": read("Per grid: patrol visits and minutes against its risk colour",
                                      hours)},
        "/api/coverage/gaps": {"get": read("Red and orange grids with no patrol in the last X hours",
                                           param("hours", "X, default 6"))},
        "/api/dispatch/incidents": {"get": read("Recent incidents to dispatch to")},
        "/api/dispatch/nearest": {"get": read(
            "The K nearest on-duty units (KNN), with distance and last-seen age",
            param("incident", "incident id"), param("lon", "longitude"), param("lat", "latitude"),
            param("k", "how many, default 5"), param("max_age", "seconds since last fix"))},
        "/api/dispatch/assign": {"post": body("Send a unit to an incident", (400, 401, 403, 404, 409))},
        "/api/dispatch/assignments": {"get": read("Assignments and their timestamps")},
        "/api/dispatch/assignments/{id}/{action}": {"post": {
            **body("acknowledge, arrive or close an assignment", (400, 401, 403, 404, 409)),
            "parameters": [ident, {"name": "action", "in": "path", "required": True,
                                   "schema": {"type": "string",
                                              "enum": ["acknowledge", "arrive", "close"]}}]}},
        "/api/dispatch/stats": {"get": read("Response-time statistics per area",
                                            param("area", "area code"))},
    }

"""Incidents over HTTP: intake, list, detail, lifecycle, duplicates and links, statistics,
geocoding and reverse geocoding, and the grid worker's report form. Views parse, call geo/ with the
caller's audience (geo.policy), commit."""
from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, render_template, request

from geo import areas, idempotency, stamps
from geo.errors import InvalidInput
from geo.incidents import (
    duplicates,
    fields,
    geocoding,
    intake,
    lifecycle,
    photos,
    queries,
    stats,
)

from . import database, readcache
from .auth import ANY_USER, actor, audience, current_user, require_scope, roles
from .pages import map_config
from .responses import geojson_response, json_body, json_response, time_arg

bp = Blueprint("incidents", __name__)
REPORTERS = ("admin", "dispatcher", "grid_worker")
log = logging.getLogger(__name__)


def warm(app: Flask) -> None:
    """Build the geocoding gazetteer before the first report needs it: a report with an address
    reads it, and building it takes seconds that the first new matter of the day would otherwise
    wait before it reaches the dispatcher's queue. Run in a thread of its own as a worker starts."""
    try:
        with app.app_context():
            geocoding.gazetteer(database.session())
    except Exception:  # noqa: BLE001 — the first report builds it instead, as it always could
        log.exception("the geocoding gazetteer could not be built ahead of the first report")


@bp.post("/api/incidents")
@roles(*REPORTERS)
def create():
    s = database.session()
    body = json_body()
    key = idempotency.Key.of(request.headers.get(idempotency.HEADER), body)
    body.setdefault("source", "网格员上报" if current_user().role == "grid_worker" else "api")
    taken = photos.parse(body.pop("photos", None))   # checked before anything is written
    result = intake.create(s, actor(), body, audience(), key)
    if result["replayed"]:
        result["photos"] = [p["id"] for p in photos.listing(s, result["id"], audience())]
    else:
        result["photos"] = photos.attach(s, actor(), int(result["id"]), taken)
    s.commit()
    return geojson_response(result, 200 if result["replayed"] else 201)


@bp.get("/api/incidents")
@roles(*ANY_USER)
def listing():
    filters, reader, s = queries.parse_filters(request.args), audience(), database.session()
    # A dashboard's district view is the same question for everyone of a scope: kept until an
    # incident or an area changes.
    return readcache.geojson(s, stamps.INCIDENTS, (reader.exact, reader.scope, filters),
                             lambda: queries.features_text(s, reader, filters))


@bp.get("/api/incidents/stats")
@roles("admin", "dispatcher", "analyst", "grid_worker")
def statistics():
    area = request.args.get("area")
    if not area:
        raise InvalidInput("area", "area is required: the code of the area to summarise")
    require_scope(area)
    start, end = time_arg("from", fields.parse_time), time_arg("to", fields.parse_time)
    return json_response(stats.stats(database.session(), area, audience(), start, end,
                                     children=request.args.get("children", "1") != "0"))


@bp.get("/api/incidents/<incident_id>")
@roles(*ANY_USER)
def detail(incident_id: str):
    return geojson_response(queries.get(database.session(), incident_id, audience()))


@bp.get("/api/incidents/<incident_id>/photos")
@roles(*ANY_USER)
def photo_list(incident_id: str):
    return json_response({"photos": photos.listing(database.session(), incident_id, audience())})


@bp.get("/api/incidents/<incident_id>/photos/<int:photo_id>")
@roles(*ANY_USER)
def photo(incident_id: str, photo_id: int):
    content_type, data = photos.read(database.session(), incident_id, photo_id, audience())
    return Response(data, mimetype=content_type, headers={"Cache-Control": "private, max-age=86400"})


@bp.post("/api/incidents/<incident_id>/transitions")
@roles(*REPORTERS)
def transition_view(incident_id: str):
    s = database.session()
    body = json_body()
    result = lifecycle.transition(s, actor(), incident_id, str(body.get("to") or ""), audience(),
                                  note=body.get("note"), level=body.get("level"),
                                  expected_status=body.get("from"))
    s.commit()
    return geojson_response(result)


@bp.get("/api/incidents/<incident_id>/duplicates")
@roles(*REPORTERS)
def duplicate_list(incident_id: str):
    s = database.session()
    found = duplicates.duplicates(s, incident_id, audience())
    return json_response({"incident": queries.incident_id(incident_id), "duplicates": found})


@bp.post("/api/incidents/<incident_id>/links")
@roles(*REPORTERS)
def link(incident_id: str):
    s = database.session()
    body = json_body()
    result = duplicates.link(s, actor(), incident_id, body.get("other"), audience())
    s.commit()
    return json_response(result, 201 if result["created"] else 200)


@bp.delete("/api/incidents/<incident_id>/links/<other>")
@roles(*REPORTERS)
def unlink(incident_id: str, other: str):
    s = database.session()
    duplicates.unlink(s, actor(), incident_id, other, audience())
    s.commit()
    return "", 204


@bp.get("/api/geocode")
@roles(*ANY_USER)
def geocode():
    return json_response(geocoding.geocode(database.session(), request.args.get("q")))


@bp.get("/api/reverse")
@roles(*ANY_USER)
def reverse():
    args = request.args
    return json_response(geocoding.reverse(database.session(), args.get("lon"), args.get("lat"),
                                           args.get("crs") or "wgs84"))


@bp.get("/report")
@roles(*REPORTERS)
def report_form():
    """The report form: a grid worker reports in their own grids only (the map shows which)."""
    grids = areas.leaves(database.session(), current_user().scope)
    return render_template("report.html", grids=grids, map_config=map_config())


IDEMPOTENCY_KEY = {"name": idempotency.HEADER, "in": "header", "required": False,
                   "description": "a UUID the client generated for this record: a repeat stores "
                                  "nothing (200, replayed: true); another body under it is a 409",
                   "schema": {"type": "string", "format": "uuid"}}


def openapi_paths(geojson: dict, param, errors) -> dict:
    """The OpenAPI description of these routes (merged into /api/openapi.json)."""
    ident = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
    report = {"type": "object", "required": ["category", "occurred_at"], "properties": {
        "category": {"type": "string", "description": "petition|accident|criminal|dispute|hazard or "
                                                      "信访|事故|案件|矛盾纠纷|隐患"},
        "subtype": {"type": "string"}, "severity": {"type": "integer", "minimum": 1, "maximum": 4},
        "occurred_at": {"type": "string", "format": "date-time"},
        "description": {"type": "string"}, "address": {"type": "string"},
        "lon": {"type": "number"}, "lat": {"type": "number"},
        "crs": {"type": "string", "enum": ["wgs84", "cgcs2000", "gcj02", "bd09"]},
        "reporter": {"type": "object", "properties": {"name": {"type": "string"},
                                                      "phone": {"type": "string"}}},
        "sensitive": {"type": "boolean"}, "source": {"type": "string"},
        "photos": {"type": "array", "maxItems": 4, "items": {
            "type": "string", "description": "data:image/jpeg|png|webp;base64,… (at most 5 MB)"}},
        "external_id": {"type": "string"}}}
    return {
        "/api/incidents": {
            "get": {"summary": "Incidents as GeoJSON, newest first (sensitive ones generalised to "
                               "their grid for roles that do not act on them)",
                    "parameters": [param("bbox", "minx,miny,maxx,maxy in degrees"),
                                   param("from", "occurred at or after (ISO 8601)"),
                                   param("to", "occurred before (ISO 8601)"),
                                   param("category", "comma-separated categories"),
                                   param("status", "comma-separated statuses"),
                                   param("severity", "comma-separated 1–4"),
                                   param("area", "area code: its whole subtree"),
                                   param("limit", "1–5000, default 500", schema={"type": "integer"}),
                                   param("offset", "default 0", schema={"type": "integer"})],
                    "responses": {"200": {"description": "FeatureCollection with numberMatched",
                                          "content": geojson}, **errors(400, 401, 404)}},
            "post": {"summary": "Report an incident (by lon/lat or address); returns it with "
                                "duplicate suggestions. With an Idempotency-Key (a client UUID) "
                                "a repeat by the same user stores nothing and answers 200 with "
                                "the stored incident and replayed: true; the same key with "
                                "another body answers 409",
                     "parameters": [IDEMPOTENCY_KEY],
                     "requestBody": {"required": True,
                                     "content": {"application/json": {"schema": report}}},
                     "responses": {"201": {"description": "Feature", "content": geojson},
                                   "200": {"description": "the incident stored earlier under "
                                                          "this Idempotency-Key (replayed)",
                                           "content": geojson},
                                   **errors(400, 401, 403, 409)}}},
        "/api/incidents/{id}": {"get": {
            "summary": "One incident with its events, links, handling level and response targets",
            "parameters": [ident],
            "responses": {"200": {"description": "Feature", "content": geojson},
                          **errors(400, 401, 404)}}},
        "/api/incidents/{id}/photos": {"get": {
            "summary": "The photos taken with a report (none for a reader who sees it generalised)",
            "parameters": [ident], "responses": {"200": {"description": "id, content_type, bytes, "
                                                                       "sha256, created_at"},
                                                 **errors(400, 401, 404)}}},
        "/api/incidents/{id}/photos/{photo}": {"get": {
            "summary": "One photo's image", "parameters": [ident, {**ident, "name": "photo"}],
            "responses": {"200": {"description": "image/jpeg, image/png or image/webp"},
                          **errors(400, 401, 404)}}},
        "/api/incidents/{id}/transitions": {"post": {
            "summary": "Move along reported → accepted → handling → resolved → followed_up → closed, "
                       "or escalated; body {to, note, level, from}",
            "parameters": [ident],
            "responses": {"200": {"description": "Feature"}, **errors(400, 401, 403, 404, 409)}}},
        "/api/incidents/{id}/duplicates": {"get": {
            "summary": "Likely reports of the same matter (distance, time, text)",
            "parameters": [ident], "responses": {"200": {"description": "scored list"},
                                                 **errors(401, 403, 404)}}},
        "/api/incidents/{id}/links": {"post": {
            "summary": "Link two reports of the same matter; body {other}", "parameters": [ident],
            "responses": {"201": {"description": "linked"}, "200": {"description": "already linked"},
                          **errors(400, 401, 403, 404)}}},
        "/api/incidents/{id}/links/{other}": {"delete": {
            "summary": "Unlink", "parameters": [ident, {**ident, "name": "other"}],
            "responses": {"204": {"description": "unlinked"}, **errors(401, 403, 404)}}},
        "/api/incidents/stats": {"get": {
            "summary": "Per area and period: counts, dispute resolution rate, share resolved within "
                       "village / township, response times against targets",
            "parameters": [param("area", "area code", True), param("from", "ISO 8601"),
                           param("to", "ISO 8601"), param("children", "0 to omit the breakdown")],
            "responses": {"200": {"description": "statistics"}, **errors(400, 401, 403, 404)}}},
        "/api/geocode": {"get": {
            "summary": "Offline geocoding of a Chinese address: best result and candidates, each "
                       "with lon, lat, level, confidence, area_code, matched",
            "parameters": [param("q", "the address", True)],
            "responses": {"200": {"description": "status ok | ambiguous | not_found"},
                          **errors(400, 401)}}},
        "/api/reverse": {"get": {
            "summary": "A point's area path and the nearest named places",
            "parameters": [param("lon", "longitude", True, {"type": "number"}),
                           param("lat", "latitude", True, {"type": "number"}),
                           param("crs", "wgs84 | cgcs2000 | gcj02 | bd09")],
            "responses": {"200": {"description": "path and nearest"}, **errors(400, 401)}}},
    }

"""Incidents over HTTP: intake, list, detail, lifecycle, duplicates and links, statistics,
geocoding and reverse geocoding, and the grid worker's report form. Views parse, call geo/, commit."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request
from sqlalchemy import text

from geo import vocabulary
from geo.errors import InvalidInput, NotFound
from geo.incidents import (
    duplicates,
    fields,
    geocoding,
    intake,
    lifecycle,
    queries,
    stats,
)

from . import database
from .api import require_json
from .auth import ANY_USER, actor, current_user, require_scope, roles

bp = Blueprint("incidents", __name__)
REPORTERS = ("admin", "dispatcher", "grid_worker")


def _viewer() -> queries.Viewer:
    return queries.Viewer.of(current_user())


def _authorize(area_code: str | None) -> None:
    """Writes need the area in the caller's scope; outside every jurisdiction only an unscoped admin."""
    queries.check_forbidden_outside(_viewer(), area_code)
    if area_code is not None:
        require_scope(area_code)


def _dumps(obj) -> Response:
    import json

    return Response(json.dumps(obj, ensure_ascii=False, default=str), mimetype="application/geo+json")


@bp.post("/api/incidents")
@roles(*REPORTERS)
def create():
    s = database.session()
    body = require_json()
    body.setdefault("source", "网格员上报" if current_user().role == "grid_worker" else "api")
    result = intake.create(s, actor(), body, authorize=_authorize)
    s.commit()
    return _dumps(result), 201


@bp.get("/api/incidents")
@roles(*ANY_USER)
def listing():
    filters = queries.parse_filters(request.args)
    return _dumps(queries.features(database.session(), _viewer(), filters))


@bp.get("/api/incidents/stats")
@roles("admin", "dispatcher", "analyst", "grid_worker")
def statistics():
    args = request.args
    area = args.get("area")
    if not area:
        raise InvalidInput("area", "area is required: the code of the area to summarise")
    require_scope(area)
    start = fields.parse_time(args["from"], "from") if args.get("from") else None
    end = fields.parse_time(args["to"], "to") if args.get("to") else None
    return jsonify(stats.stats(database.session(), area, start, end,
                              children=args.get("children", "1") != "0"))


@bp.get("/api/incidents/<incident_id>")
@roles(*ANY_USER)
def detail(incident_id: str):
    return _dumps(queries.get(database.session(), incident_id, _viewer()))


@bp.post("/api/incidents/<incident_id>/transitions")
@roles(*REPORTERS)
def transition_view(incident_id: str):
    s = database.session()
    body = require_json()
    row = queries.require_visible(s, incident_id, _viewer())
    _authorize(row["area_code"])
    result = lifecycle.transition(s, actor(), row["id"], str(body.get("to") or ""), note=body.get("note"),
                             level=body.get("level"), expected_status=body.get("from"))
    s.commit()
    return _dumps(result)


@bp.get("/api/incidents/<incident_id>/duplicates")
@roles(*REPORTERS)
def duplicate_list(incident_id: str):
    s = database.session()
    row = queries.require_visible(s, incident_id, _viewer())
    viewer = _viewer()
    found = [d for d in duplicates.duplicates(s, row["id"])
             if _may_see(s, d["id"], viewer)]
    return jsonify({"incident": row["id"], "duplicates": found})


def _may_see(s, incident_id: int, viewer: queries.Viewer) -> bool:
    try:
        queries.require_visible(s, incident_id, viewer)
    except NotFound:
        return False
    return True


@bp.post("/api/incidents/<incident_id>/links")
@roles(*REPORTERS)
def link(incident_id: str):
    s = database.session()
    body = require_json()
    for key in (incident_id, body.get("other")):
        row = queries.require_visible(s, key, _viewer())
        _authorize(row["area_code"])
    result = duplicates.link(s, actor(), incident_id, body.get("other"))
    s.commit()
    return jsonify(result), 201 if result["created"] else 200


@bp.delete("/api/incidents/<incident_id>/links/<other>")
@roles(*REPORTERS)
def unlink(incident_id: str, other: str):
    s = database.session()
    for key in (incident_id, other):
        row = queries.require_visible(s, key, _viewer())
        _authorize(row["area_code"])
    duplicates.unlink(s, actor(), incident_id, other)
    s.commit()
    return "", 204


@bp.get("/api/geocode")
@roles(*ANY_USER)
def geocode():
    return jsonify(geocoding.geocode(database.session(), request.args.get("q")))


@bp.get("/api/reverse")
@roles(*ANY_USER)
def reverse():
    args = request.args
    return jsonify(geocoding.reverse(database.session(), args.get("lon"), args.get("lat"),
                                     args.get("crs") or "wgs84"))


@bp.get("/report")
@roles(*REPORTERS)
def report_form():
    """The report form: a grid worker reports in their own grids only (the map shows which)."""
    user = current_user()
    s = database.session()
    scope = "true" if user.everywhere else "a.path <@ ANY (CAST(:paths AS ltree[]))"
    # The finest areas the user may report in (their grids), drawn on the form's map.
    grids = s.execute(text(f"""
        SELECT json_build_object('type', 'FeatureCollection', 'features',
                   COALESCE(json_agg(json_build_object('type', 'Feature', 'id', a.code,
                       'geometry', ST_AsGeoJSON(a.geom, 6)::json,
                       'properties', json_build_object('code', a.code, 'name', a.name))
                       ORDER BY a.code), '[]'::json))
          FROM areas a
         WHERE {scope} AND NOT EXISTS (SELECT 1 FROM areas c WHERE c.parent_id = a.id)
           AND (:everywhere = false OR a.level = (SELECT max(level) FROM areas))"""),
        {"paths": user.scope_paths or ["0"], "everywhere": user.everywhere}).scalar_one()
    from .pages import map_config

    return render_template("report.html", grids=grids, map_config=map_config(),
                           categories=[(c, vocabulary.CATEGORY_ZH[c]) for c in vocabulary.CATEGORIES])



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
                                "duplicate suggestions",
                     "requestBody": {"required": True,
                                     "content": {"application/json": {"schema": report}}},
                     "responses": {"201": {"description": "Feature", "content": geojson},
                                   **errors(400, 401, 403, 409)}}},
        "/api/incidents/{id}": {"get": {
            "summary": "One incident with its events, links, handling level and response targets",
            "parameters": [ident],
            "responses": {"200": {"description": "Feature", "content": geojson},
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

"""The JSON/GeoJSON API under /api. Views parse, call geo/, serialise."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import text

from geo import areas, db
from geo.boundaries import history
from geo.errors import InvalidInput

from . import database
from .auth import ANY_USER, public, roles
from .openapi import document

bp = Blueprint("api", __name__, url_prefix="/api")
GEOJSON = "application/geo+json"


def geojson(body: str) -> Response:
    return Response(body, mimetype=GEOJSON)


@bp.get("/health")
@public
def health():
    """Liveness and readiness: database reachable, PostGIS version, schema revision."""
    s = database.session()
    postgis = s.execute(text("SELECT postgis_lib_version()")).scalar()
    revision = db.schema_revision(database.engine())
    return jsonify({"status": "ok", "database": "ok", "postgis": postgis, "schema": revision})


@bp.get("/areas")
@roles(*ANY_USER)
def area_list():
    level = areas.parse_level(request.args.get("level"))
    bbox = areas.parse_bbox(request.args.get("bbox"))
    parent = request.args.get("parent") or None
    if request.args.get("as_of"):  # the boundaries as they were then (area_versions)
        when = history.parse_as_of(request.args["as_of"])
        return geojson(history.features_as_of(database.session(), when, level=level, parent=parent,
                                            bbox=bbox))
    return geojson(areas.features(database.session(), level=level, parent=parent, bbox=bbox))


@bp.get("/areas/<code>")
@roles(*ANY_USER)
def area_detail(code: str):
    return Response(_dumps(areas.detail(database.session(), code)), mimetype=GEOJSON)


@bp.get("/lookup")
@roles(*ANY_USER)
def lookup():
    args = request.args
    result = areas.lookup(database.session(), args.get("lon"), args.get("lat"),
                          args.get("crs") or "wgs84")
    return jsonify(result.as_dict())


@bp.get("/openapi.json")
@public
def openapi():
    return jsonify(document())


def _dumps(obj) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False)


def require_json() -> dict:
    """The request's JSON object body, or a 400 naming what was expected."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("body", "expected a JSON object with Content-Type: application/json")
    return body

"""The JSON/GeoJSON API under /api: health, areas, point look-up, who am I, the OpenAPI document.
Views parse, call geo/ with the caller's scope, serialise."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from geo import areas, db, policy, stamps
from geo.boundaries import history

from . import database, readcache
from . import openapi as openapi_document
from .auth import ANY_USER, current_user, public, roles
from .responses import geojson_response, json_response

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/health")
@public
def health():
    """Liveness and readiness: database reachable, PostGIS version, schema revision."""
    postgis = db.postgis_version(database.session())
    revision = db.schema_revision(database.engine())
    return jsonify({"status": "ok", "database": "ok", "postgis": postgis, "schema": revision})


@bp.get("/me")
@roles(*ANY_USER)
def me():
    """The caller: role, scope, and the extent their maps open on (their own area)."""
    user = current_user()
    s = database.session()
    home = user.scope.home(s)
    scope = [{"code": a["code"], "name": a["name"], "level": a["level"]}
             for a in (policy.area_row(s, c) for c in user.scope.codes)]
    return json_response({"username": user.username, "display_name": user.display_name,
                          "role": user.role, "everywhere": user.everywhere, "scope": scope,
                          "home": home, "extent": areas.extent(s, home)})


@bp.get("/areas")
@roles(*ANY_USER)
def area_list():
    level = areas.parse_level(request.args.get("level"))
    bbox = areas.parse_bbox(request.args.get("bbox"))
    parent = request.args.get("parent") or None
    scope = current_user().scope
    if request.args.get("as_of"):  # the boundaries as they were then (area_versions)
        when = history.parse_as_of(request.args["as_of"])
        return geojson_response(history.features_as_of(database.session(), when, scope,
                                                       level=level, parent=parent, bbox=bbox))
    s = database.session()
    if bbox is not None:
        return geojson_response(areas.features(s, scope, level=level, parent=parent, bbox=bbox))
    # The map's area layers are the same few bodies for everyone of a scope, rebuilt only when an
    # area, group or staff row has changed since (one sequence read instead of ~300 kB of GeoJSON).
    return readcache.geojson(s, stamps.AREAS, (scope, level, parent),
                             lambda: areas.features(s, scope, level=level, parent=parent))


@bp.get("/areas/<code>")
@roles(*ANY_USER)
def area_detail(code: str):
    return geojson_response(areas.detail(database.session(), code, current_user().scope))


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
    return jsonify(openapi_document.document())

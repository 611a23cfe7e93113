"""The OpenAPI 3.1 description of /api and /tiles: the kernel's routes here, each feature's beside its views."""
from __future__ import annotations

from . import incidents, patrol, planner, review, tiles, visits

ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict:
    return {str(c): {"description": "error", "content": {"application/json": {"schema": ERROR}}}
            for c in codes}


def _param(name: str, description: str, required: bool = False, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or {"type": "string"}}


def document() -> dict:
    """Return the OpenAPI document."""
    geojson = {"application/geo+json": {"schema": {"type": "object"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Anwang (安网) API", "version": "1",
                 "description": "Grid-based public-safety governance: areas, incidents, patrols, risk."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie", "name": "anwang_session"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "object", "required": ["code", "message", "field"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"},
                    "field": {"type": ["string", "null"]}}}}}},
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/api/health": {"get": {"summary": "Service and database health", "security": [],
                                    "responses": {"200": {"description": "healthy"}}}},
            "/api/me": {"get": {
                "summary": "Who you are: role, area scope, and the extent your maps open on",
                "responses": {"200": {"description": "username, role, scope, home, extent"},
                              **_errors(401)}}},
            "/api/areas": {"get": {
                "summary": "Areas as GeoJSON (RFC 7946)",
                "parameters": [
                    _param("level", "1 district, 2 township, 3 village, 4 grid (or the name)"),
                    _param("parent", "code: the parent's whole subtree at that level"),
                    _param("bbox", "minx,miny,maxx,maxy in degrees (WGS84)"),
                    _param("as_of", "ISO date or date-time: the boundaries as they were then")],
                "responses": {"200": {"description": "FeatureCollection", "content": geojson},
                              **_errors(400, 401, 404)}}},
            "/api/areas/{code}": {"get": {
                "summary": "One area with its path, staff and children count",
                "parameters": [{"name": "code", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "Feature", "content": geojson},
                              **_errors(401, 404)}}},
            "/api/lookup": {"get": {
                "summary": "The area path (district → grid) containing a point",
                "parameters": [_param("lon", "longitude", True, {"type": "number"}),
                               _param("lat", "latitude", True, {"type": "number"}),
                               _param("crs", "wgs84 | cgcs2000 | gcj02 | bd09")],
                "responses": {"200": {"description": "path, or inside=false with a message"},
                              **_errors(400, 401)}}},
            "/api/openapi.json": {"get": {"summary": "This document", "security": [],
                                          "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            **_feature_paths(geojson),
        },
    }


def _feature_paths(geojson: dict) -> dict:
    """Each feature's blueprint describes its own routes beside their views."""
    paths: dict = {}
    for module in (incidents, patrol, planner, review, visits):
        paths.update(module.openapi_paths(geojson, _param, _errors))
    paths.update(tiles.openapi_paths(_param, _errors))
    return paths

"""The OpenAPI 3.0 description of /ogc (OGC API – Features, conformance class oas30) and each
collection's queryables as JSON Schema (Part 3), both built from layers.features.COLLECTIONS."""
from __future__ import annotations

from layers import features
from layers.features import crs as crs_mod
from layers.features.query import FILTER_LANGS, OFFSET_MAX

GEOJSON_GEOMETRY = "https://geojson.org/schema/Geometry.json"
JSON_SCHEMA = "https://json-schema.org/draft/2019-09/schema"


def _query(name: str, description: str, schema: dict, **extra) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema, **extra}


PARAMETERS = {
    "f": _query("f", "json (the default for programs) or html", {"type": "string", "enum": ["json", "html"]}),
    "limit": _query("limit", f"features per page: {features.LIMIT_DEFAULT} by default, at most "
                             f"{features.LIMIT_MAX} (a larger limit is answered with {features.LIMIT_MAX})",
                    {"type": "integer", "minimum": 1, "maximum": features.LIMIT_MAX,
                     "default": features.LIMIT_DEFAULT}, style="form", explode=False),
    "offset": _query("offset", "how many features to skip (the next and prev links carry it)",
                     {"type": "integer", "minimum": 0, "maximum": OFFSET_MAX, "default": 0}),
    "bbox": _query("bbox", "minx,miny,maxx,maxy in bbox-crs (CRS84 longitude/latitude by default; "
                           "in the axis order of bbox-crs otherwise)",
                   {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
                   style="form", explode=False),
    "bbox-crs": _query("bbox-crs", "the CRS of bbox", {"type": "string", "format": "uri",
                                                       "enum": crs_mod.URIS}),
    "crs": _query("crs", "the CRS of the geometries answered (Content-Crs tells it)",
                  {"type": "string", "format": "uri", "enum": crs_mod.URIS}),
    "datetime": _query("datetime", "an RFC 3339 date-time or date, or an interval start/end with "
                                   "'..' for an open end, matched against the collection's time",
                       {"type": "string"}),
    "filter": _query("filter", "a CQL2 text filter on the queryables and S_INTERSECTS(geometry, …)",
                     {"type": "string"}),
    "filter-lang": _query("filter-lang", "the language of filter", {"type": "string", "enum": list(FILTER_LANGS),
                                                                     "default": FILTER_LANGS[0]}),
    "filter-crs": _query("filter-crs", "the CRS of geometry literals in filter",
                         {"type": "string", "format": "uri", "enum": crs_mod.URIS}),
    "hours": _query("hours", "the patrol window: 24h (default), 7d, or a number of hours up to 744",
                    {"type": "string"}),
}
REF = {name: {"$ref": f"#/components/parameters/{name}"} for name in PARAMETERS}


def _json(description: str, media: str = "application/json") -> dict:
    return {"description": description, "content": {media: {"schema": {"type": "object"}},
                                                     "text/html": {"schema": {"type": "string"}}}}


def _errors(*codes: int) -> dict:
    return {str(c): {"$ref": "#/components/responses/Error"} for c in codes}


def _collection_paths(c: features.Collection) -> dict:
    params = [REF[n] for n in ("limit", "offset", "bbox", "bbox-crs", "crs", "filter", "filter-lang",
                               "filter-crs", "f")]
    if c.temporal:
        params.append(REF["datetime"])
    params.extend(REF[o] for o in c.options)
    # Part 3's queryables as query parameters: `?category=dispute` keeps features equal to it.
    params.extend(_query(p.name, f"{p.title}: only features whose {p.name} equals this", _schema(p))
                  for p in c.queryables)
    fid = {"name": "featureId", "in": "path", "required": True,
           "schema": {"type": "integer" if c.id_type == "integer" else "string"}}
    base = f"/collections/{c.id}"
    return {
        base: {"get": {"summary": f"{c.title}: metadata and extent", "operationId": f"describe_{c.id}",
                       "parameters": [REF["f"]], "responses": {"200": _json("the collection"),
                                                              **_errors(401, 403, 404)}}},
        f"{base}/queryables": {"get": {
            "summary": f"{c.title}: what filter may use", "operationId": f"queryables_{c.id}",
            "parameters": [REF["f"]],
            "responses": {"200": _json("JSON Schema", "application/schema+json"), **_errors(401, 403, 404)}}},
        f"{base}/items": {"get": {
            "summary": f"{c.title}: features", "description": c.description,
            "operationId": f"items_{c.id}", "parameters": params,
            "responses": {"200": _json("a page of features", "application/geo+json"),
                          **_errors(400, 401, 403, 404)}}},
        f"{base}/items/{{featureId}}": {"get": {
            "summary": f"{c.title}: one feature", "operationId": f"item_{c.id}",
            "parameters": [fid, REF["crs"], REF["f"], *(REF[o] for o in c.options)],
            "responses": {"200": _json("a feature", "application/geo+json"), **_errors(400, 401, 403, 404)}}},
    }


def document(base_url: str, collections: dict) -> dict:
    """The OpenAPI 3.0 document of the service at `base_url`."""
    paths = {
        "/": {"get": {"summary": "Landing page", "operationId": "landing", "parameters": [REF["f"]],
                      "responses": {"200": _json("links to the API, conformance and collections"),
                                    **_errors(401)}}},
        "/conformance": {"get": {"summary": "Conformance classes", "operationId": "conformance",
                                 "security": [], "parameters": [REF["f"]],
                                 "responses": {"200": _json("conformsTo")}}},
        "/api": {"get": {"summary": "This document", "operationId": "api", "security": [],
                         "parameters": [REF["f"]],
                         "responses": {"200": _json("OpenAPI 3.0",
                                                    "application/vnd.oai.openapi+json;version=3.0")}}},
        "/collections": {"get": {"summary": "The collections you may read", "operationId": "collections",
                                 "parameters": [REF["f"]],
                                 "responses": {"200": _json("collections"), **_errors(401)}}},
    }
    for c in collections.values():
        paths.update(_collection_paths(c))
    return {
        "openapi": "3.0.3",
        "info": {"title": "安网 Anwang — OGC API – Features", "version": "1.0",
                 "description": "Governance areas, four-colour risk, patrol coverage, incidents and "
                                "三零 subjects, each within the reader's area scope. Authenticate with "
                                "a bearer token (anwang tokens create), the session, or basic "
                                "authentication with the token as the password."},
        "servers": [{"url": base_url}],
        "security": [{"bearer": []}, {"basic": []}, {"session": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "basic": {"type": "http", "scheme": "basic"},
                                "session": {"type": "apiKey", "in": "cookie", "name": "anwang_session"}},
            "parameters": PARAMETERS,
            "responses": {"Error": {"description": "an error: code, message and the parameter at fault",
                                    "content": {"application/json": {"schema": {"type": "object"}}}}},
        },
        "paths": paths,
    }


def _schema(p: features.Property) -> dict:
    """The JSON Schema of a property's values."""
    kind, fmt = {"date-time": ("string", "date-time"), "date": ("string", "date")}.get(p.type, (p.type, None))
    schema: dict = {"type": kind}
    if fmt:
        schema["format"] = fmt
    if p.enum:
        schema["enum"] = list(p.enum)
    return schema


def queryables(collection: features.Collection, url: str) -> dict:
    """The collection's queryables as a JSON Schema (Part 3)."""
    props: dict = {"geometry": {"title": "geometry", "$ref": GEOJSON_GEOMETRY,
                                "x-ogc-role": "primary-geometry"}}
    for p in collection.queryables:
        props[p.name] = {"title": p.title, **_schema(p)}
    return {"$schema": JSON_SCHEMA, "$id": url, "type": "object", "title": collection.title,
            "properties": props, "additionalProperties": False}

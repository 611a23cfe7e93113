"""OGC API – Features under /ogc, for GIS clients (QGIS, ArcGIS, SuperMap, GDAL): the landing page,
conformance, the OpenAPI description, collections, queryables and items — JSON (GeoJSON for
features) or HTML pages (?f=html, or a browser's Accept). Views negotiate the format, check the
collection's roles, call layers.features with the caller's audience and write the links.

Authentication is that of /api: a bearer token or the session; GIS clients that only offer basic
authentication may send a token as the password (web/auth.py).
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Response, render_template, request, url_for

from geo.errors import Forbidden, InvalidInput, NotFound
from layers import features
from layers.features import crs as crs_mod

from . import database
from . import ogc_api as api_document
from . import tiles as tiles_view
from .auth import ANY_USER, audience, current_user, public, roles
from .errors import wants_html
from .responses import GEOJSON, json_response

bp = Blueprint("ogc", __name__, url_prefix="/ogc")
JSON = "application/json"
HTML = "text/html"
MVT = "application/vnd.mapbox-vector-tile"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
SCHEMA = "application/schema+json"
FORMATS = ("json", "html")
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
)
REL_QUERYABLES = "http://www.opengis.net/def/rel/ogc/1.0/queryables"


# -- formats and links ---------------------------------------------------------------------------
def _format() -> str:
    """json or html, from ?f= or else the Accept header."""
    value = request.args.get("f")
    if value and value not in FORMATS:
        raise InvalidInput("f", f"f must be {' or '.join(FORMATS)}; got {value!r}")
    return "html" if wants_html() else "json"


def _link(rel: str, type_: str, endpoint: str, title: str | None = None, **values) -> dict:
    fmt = "html" if type_ == HTML else "json"
    link = {"rel": rel, "type": type_, "href": url_for(endpoint, _external=True, **values, f=fmt)}
    return {**link, "title": title} if title else link


def _self_links(endpoint: str, fmt: str, type_: str = JSON, **values) -> list[dict]:
    """self in the format answered, alternate in the other."""
    other = HTML if fmt == "json" else type_
    mine = type_ if fmt == "json" else HTML
    return [_link("self", mine, endpoint, **values), _link("alternate", other, endpoint, **values)]


def _answer(body: dict, fmt: str, template: str, media: str = JSON, headers: dict | None = None,
            **context):
    if fmt == "html":
        return Response(render_template(template, body=body, **context), mimetype=HTML,
                        headers=headers)
    return json_response(body, media=media, headers=headers)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _collection(cid: str) -> features.Collection:
    """The collection if it exists (404) and the caller's role may read it (403)."""
    collection = features.COLLECTIONS.get(cid)
    if collection is None:
        raise NotFound(f"no collection {cid!r}; see /ogc/collections", field="collectionId")
    role = current_user().role
    if not collection.readable_by(role):
        raise Forbidden(f"role {role!r} may not read collection {cid}; needs one of "
                        f"{', '.join(collection.roles)}", field="collectionId")
    return collection


def _describe(collection: features.Collection, fmt: str, extent: bool = True) -> dict:
    cid = collection.id
    out = {"id": cid, "title": collection.title, "description": collection.description,
           "itemType": "feature", "crs": crs_mod.URIS, "storageCrs": crs_mod.CRS84_URI,
           "links": [*_self_links("ogc.collection", fmt, cid=cid),
                     _link("items", GEOJSON, "ogc.items", collection.title, cid=cid),
                     _link("items", HTML, "ogc.items", collection.title, cid=cid),
                     _link(REL_QUERYABLES, SCHEMA, "ogc.queryables", cid=cid)]}
    if extent:
        out["extent"] = features.extent(database.session(), collection, audience())
    return out


# -- resources -----------------------------------------------------------------------------------
@bp.get("")
@roles(*ANY_USER)
def landing():
    fmt = _format()
    body = {"title": "安网 Anwang — OGC API – Features",
            "description": "Governance areas, four-colour risk, patrol coverage, incidents and 三零 "
                           "subjects of your area, for GIS clients.",
            "links": [*_self_links("ogc.landing", fmt),
                      _link("service-desc", OPENAPI, "ogc.api", "OpenAPI 3.0"),
                      _link("service-doc", HTML, "ogc.api", "API documentation"),
                      _link("conformance", JSON, "ogc.conformance"),
                      _link("data", JSON, "ogc.collections"),
                      *_tile_links()]}
    return _answer(body, fmt, "ogc/landing.html")


def _tile_links() -> list[dict]:
    """The vector tile layers this reader may read, for a GIS client's vector tile layer: the XYZ
    template (QGIS: Vector Tiles → New Generic Connection) and its TileJSON 3.0."""
    out = []
    for name, layer in tiles_view.for_pages(current_user()).items():
        root = request.host_url.rstrip("/")
        out += [{"rel": "item", "type": MVT, "templated": True, "href": root + layer["url"],
                 "title": f"vector tiles: {name} (z {layer['minzoom']}–{layer['maxzoom']})"},
                {"rel": "describedby", "type": JSON, "href": root + layer["tilejson"],
                 "title": f"vector tiles: {name} (TileJSON 3.0)"}]
    return out


@bp.get("/conformance")
@public
def conformance():
    fmt = _format()
    body = {"conformsTo": list(CONFORMANCE), "links": _self_links("ogc.conformance", fmt)}
    return _answer(body, fmt, "ogc/conformance.html")


@bp.get("/api")
@public
def api():
    fmt = _format()
    document = api_document.document(url_for("ogc.landing", _external=True), features.COLLECTIONS)
    return _answer(document, fmt, "ogc/api.html", media=OPENAPI)


@bp.get("/collections")
@roles(*ANY_USER)
def collections():
    fmt = _format()
    role = current_user().role
    body = {"collections": [_describe(c, fmt) for c in features.COLLECTIONS.values()
                            if c.readable_by(role)],
            "links": _self_links("ogc.collections", fmt)}
    return _answer(body, fmt, "ogc/collections.html")


@bp.get("/collections/<cid>")
@roles(*ANY_USER)
def collection(cid: str):
    fmt = _format()
    return _answer(_describe(_collection(cid), fmt), fmt, "ogc/collection.html")


@bp.get("/collections/<cid>/queryables")
@roles(*ANY_USER)
def queryables(cid: str):
    fmt = _format()
    body = api_document.queryables(_collection(cid), url_for("ogc.queryables", cid=cid, _external=True))
    return _answer(body, fmt, "ogc/queryables.html", media=SCHEMA, cid=cid)


@bp.get("/collections/<cid>/items")
@roles(*ANY_USER)
def items(cid: str):
    collection = _collection(cid)
    fmt = _format()
    q = features.parse(collection, request.args)
    page = features.items(database.session(), collection, audience(), q)
    body = {"type": "FeatureCollection", **page, "timeStamp": _now(),
            "links": _page_links(collection, fmt, q, page)}
    return _answer(body, fmt, "ogc/items.html", media=GEOJSON, headers={"Content-Crs": q.crs.header},
                   collection=collection)


def _page_links(collection: features.Collection, fmt: str, q: features.Query, page: dict) -> list[dict]:
    """self, alternate, next and prev (offset paging, same query otherwise), and the collection."""
    args = {k: v for k, v in request.args.items() if k != "f"}
    links = _self_links("ogc.items", fmt, GEOJSON, cid=collection.id, **args)
    if q.offset + page["numberReturned"] < page["numberMatched"]:
        links.append(_link("next", GEOJSON, "ogc.items", cid=collection.id,
                           **{**args, "offset": q.offset + q.limit, "limit": q.limit}))
    if q.offset > 0:
        links.append(_link("prev", GEOJSON, "ogc.items", cid=collection.id,
                           **{**args, "offset": max(0, q.offset - q.limit), "limit": q.limit}))
    links.append(_link("collection", JSON, "ogc.collection", collection.title, cid=collection.id))
    return links


@bp.get("/collections/<cid>/items/<fid>")
@roles(*ANY_USER)
def item(cid: str, fid: str):
    collection = _collection(cid)
    fmt = _format()
    unknown = sorted(set(request.args) - {"f", "lang", "crs", *collection.options})
    if unknown:
        raise InvalidInput(unknown[0], f"unknown parameter {unknown[0]!r} for a feature")
    crs = crs_mod.parse(request.args.get("crs"), "crs")
    options = {k: request.args[k] for k in collection.options if request.args.get(k)}
    feature = features.item(database.session(), collection, audience(), fid, crs, options)
    extra = {"crs": request.args["crs"]} if request.args.get("crs") else {}
    feature["links"] = [*_self_links("ogc.item", fmt, GEOJSON, cid=cid, fid=fid, **extra),
                        _link("collection", JSON, "ogc.collection", collection.title, cid=cid)]
    return _answer(feature, fmt, "ogc/item.html", media=GEOJSON, headers={"Content-Crs": crs.header},
                   collection=collection)

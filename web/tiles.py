"""Vector tiles and their TileJSON under /tiles: one endpoint pair per layer of
layers.tiles.TILE_LAYERS, each declaring who may read it as the matching /api route does (the
basemap and the public map anonymously). Views parse, call layers/ with the caller's audience,
answer with the cache's ETag and the layer's Cache-Control.
"""
from __future__ import annotations

import gzip
import json
import time

from flask import Blueprint, Response, g, request, url_for

from geo.policy import Audience
from layers import tiles
from layers.mvt import MEDIA_TYPE

from . import database
from .auth import audience, public, roles

bp = Blueprint("tiles", __name__, url_prefix="/tiles")


@bp.before_request
def start_clock():
    g.tile_started = time.perf_counter()


@bp.after_request
def server_timing(response: Response) -> Response:
    # The time this app spent on the request (authentication, cache, build), for the bench.
    started = g.pop("tile_started", None)
    if started is not None:
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
    return response


def _not_modified(etag: str) -> bool:
    return request.if_none_match.contains_weak(etag)


def _reader(layer: tiles.TileLayer) -> Audience:
    # An anonymous layer is the same for everyone: reading the session would only make the answer
    # vary by cookie, and keep shared caches from keeping it.
    return Audience.public() if layer.anonymous else audience()


def tile_url(name: str, **options) -> str:
    """The {z}/{x}/{y} URL template of a layer's tiles."""
    return url_for(f"tiles.{name}", z=0, x=0, y=0, **options).replace("/0/0/0.mvt", "/{z}/{x}/{y}.mvt")


def for_pages(user) -> dict:
    """What a page's map needs of each tile layer `user` may read (everyone: the anonymous ones):
    its tile URL, TileJSON, zooms and attribution."""
    out = {}
    for layer in tiles.TILE_LAYERS.values():
        if layer.anonymous or (user is not None and (user.role == "admin" or user.role in layer.roles)):
            out[layer.name] = {"url": tile_url(layer.name), "tilejson": url_for(f"tiles.{layer.name}_json"),
                               "minzoom": layer.minzoom, "maxzoom": layer.maxzoom,
                               "attribution": layer.attribution or ""}
    return out


def _tile_view(layer: tiles.TileLayer):
    def view(z: int, x: int, y: int):
        s = database.session()
        tile = tiles.serve(s, layer.name, z, x, y, _reader(layer))
        s.commit()
        headers = {"ETag": f'"{tile.etag}"', "Cache-Control": layer.cache_control, "Vary": "Accept-Encoding",
                   "X-Tile-Cache": tile.cache}
        if layer.anonymous:
            # Anyone's map may draw it, a sandboxed one (the review's framed map) included.
            headers["Access-Control-Allow-Origin"] = "*"
        if _not_modified(tile.etag):
            return Response(status=304, headers=headers)
        body = tile.body
        if body and request.accept_encodings["gzip"]:
            headers["Content-Encoding"] = "gzip"
        elif body:
            body = gzip.decompress(body)
        return Response(body, mimetype=MEDIA_TYPE, headers=headers)
    view.__name__ = f"{layer.name}_tile"
    return view


def _tilejson_view(layer: tiles.TileLayer):
    def view():
        template = tile_url(layer.name, _external=True)
        doc = tiles.tilejson(database.session(), layer.name, _reader(layer), template)
        response = Response(json.dumps(doc, ensure_ascii=False), mimetype="application/json")
        response.headers["Cache-Control"] = layer.cache_control if layer.anonymous else "private, no-cache"
        return response
    view.__name__ = f"{layer.name}_tilejson"
    return view


def _guard(layer: tiles.TileLayer):
    return public if layer.anonymous else roles(*layer.roles)


for _layer in tiles.TILE_LAYERS.values():
    bp.add_url_rule(f"/{_layer.name}/<int:z>/<int:x>/<int:y>.mvt", endpoint=_layer.name,
                    view_func=_guard(_layer)(_tile_view(_layer)))
    bp.add_url_rule(f"/{_layer.name}.json", endpoint=f"{_layer.name}_json",
                    view_func=_guard(_layer)(_tilejson_view(_layer)))


def openapi_paths(param, errors) -> dict:
    """This blueprint's part of the OpenAPI document: each layer's tiles and TileJSON."""
    paths: dict = {}
    for layer in tiles.TILE_LAYERS.values():
        where = "no login" if layer.anonymous else f"roles: {', '.join(layer.roles)} (admin always)"
        security = {"security": []} if layer.anonymous else {}
        zxy = [{"name": n, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
               for n in ("z", "x", "y")]
        fields = "; ".join(f"{v.id}: {', '.join(v.fields)}" for v in layer.vector_layers)
        paths[f"/tiles/{layer.name}/{{z}}/{{x}}/{{y}}.mvt"] = {"get": {
            "summary": f"{layer.title_en} ({layer.title_zh}) as a Mapbox Vector Tile, zoom "
                       f"{layer.minzoom}–{layer.maxzoom} ({where}); layers {fields}",
            **security, "parameters": zxy,
            "responses": {"200": {"description": "the tile (empty when nothing is there for you), gzip "
                                                  "when accepted, with ETag",
                                  "content": {MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
                          "304": {"description": "not modified (If-None-Match)"},
                          **errors(400, 401, 403, 404)}}}
        paths[f"/tiles/{layer.name}.json"] = {"get": {
            "summary": f"TileJSON 3.0 of {layer.title_en}: tile URL, zooms, bounds of your area, layers and fields",
            **security, "responses": {"200": {"description": "TileJSON"}, **errors(401, 403)}}}
    return paths

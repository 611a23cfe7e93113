"""Vector tiles of the map layers for the audience that asks, through the tile cache, and their
TileJSON 3.0 descriptions: TILE_LAYERS = {name: TileLayer}.

Every tile obeys what the API obeys (geo.policy): a layer is read within the caller's scope (a tile
outside it is empty, as /api answers an area list without what lies outside), sensitive incidents
stand at their grid's label point for audiences that generalise, and the anonymous layers are the
basemap and the public map's rounded release counts only. The cache keeps one tile per audience
class: what the layer's content depends on (the scope; for incidents, whether points are exact).

Hot spots stay GeoJSON (/api/hotspots): Gi* is a statistic of the whole study area — every
hexagon's z-score depends on every other's count and on the parameters asked (size, band,
categories, window, permutations) — so no tile can be computed alone, and one analysis is a few
hundred hexagons, which GeoJSON carries well.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from geo import areas
from geo.errors import NotFound
from geo.policy import Audience, home_area
from geo.vocabulary import CATEGORIES, ROLES

from . import basemap, public, tile_cache, tile_queries
from .mvt import Built, TileAddress
from .selection import TZ

ANY = ROLES
ATTRIBUTION_OSM = "© OpenStreetMap contributors (ODbL)"


@dataclass(frozen=True)
class VectorLayer:
    """One layer inside the tiles, as TileJSON describes it."""

    id: str
    fields: dict[str, str]
    minzoom: int
    maxzoom: int
    description: str

    def describe(self) -> dict:
        return {"id": self.id, "fields": self.fields, "minzoom": self.minzoom, "maxzoom": self.maxzoom,
                "description": self.description}


@dataclass(frozen=True)
class TileLayer:
    """A tile endpoint: who reads it, its zooms, what its tiles hold, how one is built, and what
    of the audience its content depends on."""

    name: str
    title_zh: str
    title_en: str
    roles: tuple[str, ...]          # ("public",): everyone, no login
    minzoom: int
    maxzoom: int
    vector_layers: tuple[VectorLayer, ...]
    build: Callable[[Session, TileAddress, Audience, datetime], Built]
    audience_key: Callable[[Audience], str]
    cache_control: str
    attribution: str = ""
    durable: bool = False           # building may write what must survive a crash (a public release)

    @property
    def anonymous(self) -> bool:
        return "public" in self.roles


@dataclass(frozen=True)
class Tile:
    """A tile to answer with: gzip bytes (empty for an empty tile), ETag, and whether the cache had it."""

    body: bytes
    etag: str
    cache: str        # hit | miss (built and stored) | bypass (built; a writer was in flight)


# -- audience classes ------------------------------------------------------------------------------
def _scope(audience: Audience) -> str:
    return "*" if audience.scope.everywhere else ",".join(sorted(audience.scope.codes))


def by_scope(audience: Audience) -> str:
    """Content that depends on the scope only."""
    return f"scope:{_scope(audience)}"


def by_scope_and_exactness(audience: Audience) -> str:
    """Content that also depends on whether sensitive incidents are shown exactly."""
    return f"{'exact' if audience.exact else 'generalised'}:{_scope(audience)}"


def everyone(audience: Audience) -> str:
    return "public"


def _public_tile(session: Session, t: TileAddress, audience: Audience, now: datetime) -> Built:
    return public.tile(session, t, now=now)


# -- the registry ------------------------------------------------------------------------------------
SCOPED = "private, no-cache"      # the browser keeps it and asks again with If-None-Match
COUNTS = {"count": "Number", **{c: "Number" for c in CATEGORIES}, "open": "Number"}
TILE_LAYERS: dict[str, TileLayer] = {layer.name: layer for layer in (
    TileLayer("areas", "行政区划与网格", "Areas and grids", ANY, 0, 16, (
        VectorLayer("areas", {"code": "String", "name": "String", "level": "Number", "parent_code": "String",
                              "risk": "String"}, 0, 16,
                    "areas by zoom: districts from 0, townships 9, villages 11, grids 12, micro-grids 15; "
                    "risk is a grid's four colour in force (blue, yellow, orange, red, unknown)"),
        VectorLayer("area_labels", {"code": "String", "name": "String", "level": "Number"}, 0, 16,
                    "a point inside each area, for its label")),
        tile_queries.build_areas, by_scope, SCOPED),
    TileLayer("risk", "四色风险", "Four-colour risk", ANY, tile_queries.RISK_MINZOOM, 16, (
        VectorLayer("risk", {"code": "String", "name": "String", "risk": "String", "computed": "String",
                             "override": "Boolean", "period_start": "String"}, tile_queries.RISK_MINZOOM, 16,
                    "every grid with its stored level in force (override winning) and the computed one"),),
        tile_queries.build_risk, by_scope, SCOPED),
    TileLayer("coverage", "巡逻覆盖", "Patrol coverage", ("dispatcher", "analyst"), tile_queries.COVERAGE_MINZOOM, 16, (
        VectorLayer("coverage", {"code": "String", "name": "String", "risk": "String", "minutes": "Number",
                                 "visits": "Number", "units": "Number", "last_patrol": "String"},
                    tile_queries.COVERAGE_MINZOOM, 16, "patrol minutes, visits and units per grid, last 24 hours"),),
        tile_queries.build_coverage, by_scope, SCOPED),
    TileLayer("incidents", "事件", "Incidents", ANY, tile_queries.INCIDENTS_MINZOOM, 16, (
        VectorLayer("incident_cells", COUNTS, tile_queries.INCIDENTS_MINZOOM, tile_queries.POINT_ZOOM - 1,
                    "counts per square cell (1/16 of the tile, larger where the policy's floor demands): "
                    "all, per category, and still open"),
        VectorLayer("incidents", {"id": "Number", "category": "String", "severity": "Number", "status": "String",
                                  "occurred": "Number", "sensitive": "Boolean", "generalised": "Boolean"},
                    tile_queries.POINT_ZOOM, 16,
                    "each incident where you may see it (occurred: seconds since 1970); details at "
                    "/api/incidents/{id}")),
        tile_queries.build_incidents, by_scope_and_exactness, SCOPED),
    TileLayer("public", "平安地图", "Public safety map", ("public",), 8, 14, (
        VectorLayer("public_grids", {"code": "String", "name": "String", "count_3": "Number", "count_12": "Number"},
                    8, 14, "published incident counts per grid, last 3 and 12 complete months, multiples of 5"),
        VectorLayer("public_hexagons", {"id": "String", "count_3": "Number", "count_12": "Number"}, 8, 14,
                    "the same per 1 km hexagon")),
        _public_tile, everyone, "public, max-age=300", durable=True),
    TileLayer("basemap", "底图", "Basemap", ("public",), basemap.MINZOOM, basemap.MAXZOOM, tuple(
        VectorLayer(name, basemap.FIELDS, basemap.MINZOOM, basemap.MAXZOOM, basemap.DESCRIPTIONS[name])
        for name in basemap.LAYERS), basemap.build, everyone, "public, max-age=86400", ATTRIBUTION_OSM),
)}


def layer_named(name: str) -> TileLayer:
    layer = TILE_LAYERS.get(name)
    if layer is None:
        raise NotFound(f"no tile layer {name!r}; layers: {', '.join(TILE_LAYERS)}", field="layer")
    return layer


# -- serving ---------------------------------------------------------------------------------------
def serve(session: Session, name: str, z, x, y, audience: Audience, now: datetime | None = None) -> Tile:
    """The tile z/x/y of a layer for an audience: from the cache, else built (and stored when no
    writer is in flight). The caller commits."""
    layer = layer_named(name)
    t = TileAddress.parse(z, x, y, layer.maxzoom)
    now = now or datetime.now(TZ)
    key = layer.audience_key(audience)
    cached = tile_cache.lookup(session, layer.name, t, key, now)
    if cached is not None:
        return Tile(cached.body, cached.etag, "hit")
    storable = tile_cache.claim(session, layer.name, t)
    built = layer.build(session, t, audience, now)
    tile = tile_cache.encode(built.mvt)
    if storable:
        tile_cache.store(session, layer.name, t, key, tile, built.expires_at, durable=layer.durable)
    return Tile(tile.body, tile.etag, "miss" if storable else "bypass")


# -- TileJSON -------------------------------------------------------------------------------------------
def tilejson(session: Session, name: str, audience: Audience, tiles_url: str) -> dict:
    """The TileJSON 3.0 document of a layer for an audience: where its tiles are, its zooms, the
    bounds of the caller's area (the basemap's own for the basemap), and its layers and fields."""
    layer = layer_named(name)
    bounds = _bounds(session, layer, audience)
    doc = {"tilejson": "3.0.0", "name": layer.name, "description": f"{layer.title_zh} · {layer.title_en}",
           "version": "1.0.0", "scheme": "xyz", "tiles": [tiles_url], "minzoom": layer.minzoom,
           "maxzoom": layer.maxzoom, "vector_layers": [v.describe() for v in layer.vector_layers]}
    if layer.attribution:
        doc["attribution"] = layer.attribution
    if bounds:
        doc["bounds"] = bounds
        doc["center"] = [round((bounds[0] + bounds[2]) / 2, 6), round((bounds[1] + bounds[3]) / 2, 6),
                         max(layer.minzoom, min(layer.maxzoom, 10))]
    return doc


def _bounds(session: Session, layer: TileLayer, audience: Audience) -> list[float] | None:
    if layer.name == "basemap":
        return basemap.extent(session)
    try:
        if layer.anonymous or audience.scope.everywhere:
            return areas.extent(session, home_area(session))
    except NotFound:      # nothing loaded yet
        return None
    boxes = [areas.extent(session, code) for code in audience.scope.codes]
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]

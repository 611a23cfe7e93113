"""The self-served basemap as vector tiles: water, land use, buildings, roads, railways and named
places, from OpenStreetMap extracts imported into `basemap_features` (geo/osm.py) and from the
demo's own roads and gazetteer (`roads`, `places`: 小区 as residential land, 号楼 as buildings,
village groups and POIs as places). Names are Chinese where the data has them. No login needed:
it is a map of the ground, nothing of the governance data.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.policy import Audience

from . import mvt
from .mvt import BOUNDS, Built, TileAddress

LAYERS = ("water", "landuse", "buildings", "roads", "railways", "places")
# The basemaps a map offers, in the order of its layer switch: this app's own, OpenStreetMap's
# tiles, Tianditu's (with a key), none.
CHOICES = ("local", "osm", "tianditu", "none")
# Tianditu's WMTS in Web Mercator: {layer} vec (roads) under cva (their labels); {tk} is the key.
TIANDITU_URL = ("https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
                "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}"
                "&TILECOL={x}&tk={tk}")
MINZOOM = 0
MAXZOOM = 16

# The demo's road classes as the basemap's (OpenStreetMap's highway classes), with their zooms.
DEMO_ROAD_CLASS = "CASE road_class WHEN 'county' THEN 'secondary' WHEN 'village' THEN 'minor' ELSE 'tertiary' END"
DEMO_ROAD_MINZOOM = "CASE road_class WHEN 'county' THEN 9 WHEN 'village' THEN 13 ELSE 11 END"
# Gazetteer places drawn, by kind: (basemap layer, class, minzoom).
DEMO_PLACES = {"compound": ("landuse", "residential", 13), "building": ("buildings", "building", 16),
               "group": ("places", "village", 12), "poi": ("places", "poi", 14)}

FIELDS = {"class": "String", "name": "String"}
DESCRIPTIONS = {
    "water": "rivers, lakes and reservoirs (polygons) and waterways (lines); class river, stream, canal, water …",
    "landuse": "land use and cover: residential (with 小区 names), industrial, farmland, forest, park …",
    "buildings": "building footprints (OpenStreetMap) and the demo's numbered buildings (points)",
    "roads": "class motorway, trunk, primary, secondary, tertiary, minor, service or path, with names",
    "railways": "class rail, light_rail, subway, tram …",
    "places": "named places: city, town, village, suburb, hamlet, neighbourhood, locality, poi",
}


def _sources(layer: str) -> list[str]:
    """The SELECTs (class, name, geometry) feeding one basemap layer."""
    out = [f"""SELECT class, name, geom FROM basemap_features
                WHERE layer = '{layer}' AND minzoom <= :z AND geom && {BOUNDS}"""]
    if layer == "roads":
        out.append(f"""SELECT {DEMO_ROAD_CLASS}, name, geom FROM roads
                        WHERE {DEMO_ROAD_MINZOOM} <= :z AND geom && {BOUNDS}""")
    for kind, (target, cls, minzoom) in DEMO_PLACES.items():
        if target == layer:
            out.append(f"""SELECT '{cls}', name, geom FROM places
                            WHERE kind = '{kind}' AND {minzoom} <= :z AND geom && {BOUNDS}""")
    return out


def build(session: Session, t: TileAddress, audience: Audience, now: datetime) -> Built:
    """One basemap tile: every layer's features of this zoom, clipped to the tile."""
    parts = []
    for layer in LAYERS:
        union = " UNION ALL ".join(f"({s})" for s in _sources(layer))
        rows = f"SELECT f.class, f.name, {mvt.geom('f.geom')} AS geom FROM ({union}) f(class, name, geom)"
        parts.append(mvt.layer(layer, rows))
    return Built(bytes(session.execute(text("SELECT " + " || ".join(parts)), t.params).scalar_one()))


def extent(session: Session) -> list[float] | None:
    """The basemap's bounding box [west, south, east, north], or None when it is empty."""
    box = session.execute(text("""
        SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (
            SELECT ST_Extent(g) AS e FROM (
                SELECT ST_Extent(geom)::geometry AS g FROM basemap_features
                UNION ALL SELECT ST_Extent(geom)::geometry FROM roads
                UNION ALL SELECT ST_Extent(geom)::geometry FROM places) x) y""")).one()
    return None if box[0] is None else [round(float(v), 6) for v in box]

"""Import an OpenStreetMap extract into the self-served basemap (`basemap_features`): roads with
their class, railways, waterways and water, land use, buildings and named places, each with the
zoom it is drawn from, named in Chinese where the data has it (`name:zh`, else `name`).

GDAL's OSM driver (through pyogrio) reads the `points`, `lines` and `multipolygons` layers of a
.osm.pbf or .osm file; tags it has no column for come in `other_tags`. Rows are streamed into a
temporary table with COPY, then classified polygons get their zoom from their area on the ground
in PostGIS. A re-import of the same extract (and area) replaces what it brought before, in one
transaction, so a basemap tile never shows half of each.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from . import audit
from .areas import extent
from .db import rowcount
from .errors import InvalidInput

# highway=* → (class, minzoom): the classes a style draws, coarser than OpenStreetMap's.
ROADS = {**dict.fromkeys(("motorway", "motorway_link"), ("motorway", 5)),
         **dict.fromkeys(("trunk", "trunk_link"), ("trunk", 6)),
         **dict.fromkeys(("primary", "primary_link"), ("primary", 8)),
         **dict.fromkeys(("secondary", "secondary_link"), ("secondary", 9)),
         **dict.fromkeys(("tertiary", "tertiary_link"), ("tertiary", 11)),
         **dict.fromkeys(("residential", "unclassified", "living_street", "road"), ("minor", 13)),
         **dict.fromkeys(("service", "pedestrian"), ("service", 14)),
         **dict.fromkeys(("track", "path", "footway", "cycleway", "bridleway", "steps"), ("path", 14))}
RAILWAYS = {"rail": 8, "light_rail": 11, "subway": 11, "narrow_gauge": 11, "monorail": 12, "tram": 12,
            "funicular": 12}
WATERWAYS = {"river": 8, "canal": 10, "stream": 13, "drain": 14, "ditch": 14}
PLACES = {"city": 4, "town": 8, "village": 11, "suburb": 11, "quarter": 12, "hamlet": 13,
          "neighbourhood": 13, "locality": 14, "isolated_dwelling": 15}
WATER_AREAS = {("natural", "water"), ("landuse", "reservoir"), ("landuse", "basin"),
               ("waterway", "riverbank"), ("waterway", "dock"), ("leisure", "swimming_pool")}
LAND_KEYS = ("landuse", "leisure", "natural", "amenity")
LAND_VALUES = {
    "landuse": {"residential", "commercial", "retail", "industrial", "farmland", "farmyard", "forest", "meadow",
                "grass", "orchard", "vineyard", "cemetery", "recreation_ground", "allotments", "quarry",
                "military", "construction", "brownfield", "greenfield", "railway", "village_green"},
    "leisure": {"park", "garden", "pitch", "sports_centre", "golf_course", "nature_reserve", "stadium",
                "playground", "water_park"},
    "natural": {"wood", "scrub", "grassland", "heath", "wetland", "beach", "sand", "bare_rock", "scree",
                "glacier", "fell"},
    "amenity": {"school", "university", "college", "hospital", "grave_yard", "parking"},
}
POI_KEYS = ("amenity", "tourism", "shop")
CHINESE_NAMES = ("name:zh", "name:zh-Hans", "name:zh-CN")
TAG = re.compile(r'"((?:[^"\\]|\\.)*)"=>"((?:[^"\\]|\\.)*)"')


@dataclass
class Report:
    """What one import wrote: features per basemap layer, what it replaced, how long it took."""

    source: str
    counts: dict = field(default_factory=dict)
    replaced: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"source": self.source, "features": self.counts, "total": sum(self.counts.values()),
                "replaced": self.replaced, "seconds": round(self.seconds, 2)}


def tags(other: str | None) -> dict[str, str]:
    """The tags GDAL leaves in `other_tags` ("k"=>"v", …) as a dict."""
    if not other:
        return {}
    return {k.replace('\\"', '"'): v.replace('\\"', '"') for k, v in TAG.findall(other)}


def label(name: str | None, extra: dict[str, str]) -> str | None:
    """The name to show: Chinese where the data has it, else the name."""
    for key in CHINESE_NAMES:
        if extra.get(key):
            return extra[key]
    return name or None


def classify_line(row: dict) -> tuple[str, str, int] | None:
    """(layer, class, minzoom) of a line, or None when the basemap leaves it out."""
    if row.get("highway") in ROADS:
        return ("roads", *ROADS[row["highway"]])
    if row.get("railway") in RAILWAYS:
        return "railways", row["railway"], RAILWAYS[row["railway"]]
    if row.get("waterway") in WATERWAYS:
        return "water", row["waterway"], WATERWAYS[row["waterway"]]
    return None


def classify_polygon(row: dict, extra: dict[str, str]) -> tuple[str, str] | None:
    """(layer, class) of a polygon (its zoom follows from its area), or None."""
    values = {**extra, **{k: v for k, v in row.items() if v}}
    if values.get("building") and values["building"] != "no":
        return "buildings", "building"
    for key, value in WATER_AREAS:
        if values.get(key) == value:
            return "water", value if key != "natural" else "water"
    if values.get("water"):
        return "water", values["water"]
    for key in LAND_KEYS:
        if values.get(key) in LAND_VALUES[key]:
            return "landuse", values[key]
    return None


def classify_point(row: dict, extra: dict[str, str]) -> tuple[str, str, int] | None:
    """(layer, class, minzoom) of a point: a named place, station or point of interest, or None."""
    if row.get("place") in PLACES:
        return "places", row["place"], PLACES[row["place"]]
    if not row.get("name"):
        return None
    if extra.get("railway") in ("station", "halt"):
        return "places", "station", 13
    if any(extra.get(k) for k in POI_KEYS):
        return "places", "poi", 15
    return None


def _read(path: Path, layer: str, bbox) -> tuple[list[dict], np.ndarray]:
    import pyogrio.raw

    meta, _, wkb, columns = pyogrio.raw.read(str(path), layer=layer, bbox=bbox)
    names = list(meta["fields"])
    rows = [dict(zip(names, values)) for values in zip(*columns)] if len(columns) else []
    return rows, wkb


def _features(path: Path, bbox):
    """(layer, class, name, minzoom or None, osm id, WKB) of every feature the basemap keeps."""
    for row, wkb in zip(*_read(path, "lines", bbox)):
        kind = classify_line(row)
        if kind and wkb is not None:
            yield kind[0], kind[1], label(row.get("name"), tags(row.get("other_tags"))), kind[2], row.get("osm_id"), wkb
    for row, wkb in zip(*_read(path, "multipolygons", bbox)):
        extra = tags(row.get("other_tags"))
        kind2 = classify_polygon({k: row.get(k) for k in ("building", "landuse", "leisure", "natural", "amenity")},
                                 extra)
        if kind2 and wkb is not None:
            osm_id = row.get("osm_id") or row.get("osm_way_id")
            yield kind2[0], kind2[1], label(row.get("name"), extra), None, osm_id, wkb
    for row, wkb in zip(*_read(path, "points", bbox)):
        extra = tags(row.get("other_tags"))
        kind = classify_point(row, extra)
        if kind and wkb is not None:
            yield kind[0], kind[1], label(row.get("name"), extra), kind[2], row.get("osm_id"), wkb


def _osm_id(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def load(session: Session, path, *, area: str | None = None, actor: audit.Actor | None = None) -> Report:
    """Import an extract (within the bounding box of `area`, if given) into the basemap; the
    caller commits."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput("path", f"no such file: {path}")
    if not path.name.endswith((".osm.pbf", ".pbf", ".osm")):
        raise InvalidInput("path", f"expected an OpenStreetMap extract (.osm.pbf or .osm); got {path.name}")
    started = time.monotonic()
    bbox = tuple(extent(session, area)) if area else None
    source = path.name + (f"#{area}" if area else "")
    report = Report(source)
    raw = session.connection().connection.dbapi_connection
    if raw is None:
        raise RuntimeError("the session's connection is closed")
    cur = raw.cursor()
    cur.execute("DROP TABLE IF EXISTS osm_import")
    cur.execute("CREATE TEMP TABLE osm_import (layer text, class text, name text, minzoom smallint, "
                "osm_id bigint, wkb bytea) ON COMMIT DROP")
    try:
        with cur.copy("COPY osm_import (layer, class, name, minzoom, osm_id, wkb) FROM STDIN") as copy:
            for layer, cls, name, minzoom, osm_id, wkb in _features(path, bbox):
                copy.write_row((layer, cls, name, minzoom, _osm_id(osm_id), bytes(wkb)))
    except Exception as exc:
        if type(exc).__module__.startswith("pyogrio"):
            raise InvalidInput("path", f"cannot read {path.name} as OpenStreetMap data: {exc}") from None
        raise
    report.replaced = remove(session, source)
    # A polygon is drawn once it covers a few pixels: from zoom 8 at 1 km², 10 at 0.1 km², 12 at
    # 0.01 km²; buildings from 14. Invalid rings are repaired, not dropped.
    session.execute(text("""
        INSERT INTO basemap_features (source, layer, class, name, minzoom, osm_id, geom)
        SELECT :s, layer, class, name,
               COALESCE(minzoom, CASE WHEN layer = 'buildings' THEN 14
                                      WHEN area >= 1e6 THEN 8 WHEN area >= 1e5 THEN 10
                                      WHEN area >= 1e4 THEN 12 ELSE 13 END),
               osm_id, geom
          FROM (SELECT layer, class, name, minzoom, osm_id, g AS geom,
                       CASE WHEN minzoom IS NULL THEN ST_Area(g::geography) END AS area
                  FROM (SELECT *, CASE WHEN ST_IsValid(ST_GeomFromWKB(wkb, 4326)) THEN ST_GeomFromWKB(wkb, 4326)
                                       ELSE ST_CollectionExtract(ST_MakeValid(ST_GeomFromWKB(wkb, 4326)))
                                  END AS g
                          FROM osm_import) r
                 WHERE NOT ST_IsEmpty(g)) f"""), {"s": source})
    report.counts = dict(session.execute(text(
        "SELECT layer, count(*) FROM basemap_features WHERE source = :s GROUP BY layer ORDER BY layer"),
        {"s": source}).all())
    report.seconds = time.monotonic() - started
    audit.record(session, actor or audit.Actor.cli(), "basemap.import", target_type="basemap",
                 target_id=source, area_code=area, details=report.as_dict())
    return report


def remove(session: Session, source: str) -> int:
    """Remove what one import brought (by its source name); return how many features."""
    return rowcount(session.execute(text("DELETE FROM basemap_features WHERE source = :s"), {"s": source}))

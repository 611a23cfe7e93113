"""The coordinate reference systems the feature service answers in (OGC API – Features Part 2).

Geometries are stored in EPSG:4326 with longitude first, which is CRS84, the service's default.
EPSG:4490 (CGCS2000) is treated as equal to WGS84, as everywhere in the code (geo/crs.py);
EPSG:4547 (CGCS2000 / 3-degree Gauss-Kruger CM 114E) is projected by PostGIS.

Axis order follows the OGC rule: coordinates given or answered in a CRS other than CRS84 are in
that CRS's own axis order, which for all three EPSG systems here puts north first (latitude,
longitude; northing, easting). PostGIS works in easting/northing order, so such coordinates are
swapped on the way in and out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from geo.errors import InvalidInput


@dataclass(frozen=True)
class Crs:
    """One CRS the service offers: its URI, PostGIS SRID, axis order and output precision."""

    uri: str
    srid: int
    north_first: bool
    digits: int
    projected: bool = False

    @property
    def header(self) -> str:
        """The Content-Crs header value."""
        return f"<{self.uri}>"

    def to_storage(self, geometry_sql: str) -> str:
        """SQL turning a geometry given in this CRS (SRID unset) into the storage CRS."""
        # A geometry literal in a north-first CRS has its axes swapped before PostGIS sees it.
        sql = f"ST_FlipCoordinates({geometry_sql})" if self.north_first else geometry_sql
        if self.projected:
            return f"ST_Transform(ST_SetSRID({sql}, {self.srid}), 4326)"
        return f"ST_SetSRID({sql}, 4326)"

    def from_storage(self, geometry_sql: str) -> str:
        """SQL turning a stored geometry into this CRS, in its axis order."""
        sql = f"ST_Transform({geometry_sql}, {self.srid})" if self.projected else geometry_sql
        return f"ST_FlipCoordinates({sql})" if self.north_first else sql


CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84 = Crs(CRS84_URI, 4326, north_first=False, digits=7)
SYSTEMS = {c.uri: c for c in (
    CRS84,
    Crs("http://www.opengis.net/def/crs/EPSG/0/4326", 4326, north_first=True, digits=7),
    Crs("http://www.opengis.net/def/crs/EPSG/0/4490", 4490, north_first=True, digits=7),
    Crs("http://www.opengis.net/def/crs/EPSG/0/4547", 4547, north_first=True, digits=3,
        projected=True),
)}
URIS = list(SYSTEMS)
# Short names people type ("EPSG:4547", "[EPSG:4547]", "CRS84") for the URIs above.
_ALIASES = {"ogc:crs84": CRS84_URI, "crs84": CRS84_URI, "epsg:4326": URIS[1],
            "epsg:4490": URIS[2], "epsg:4547": URIS[3]}


def parse(value: str | None, field: str = "crs") -> Crs:
    """The CRS named by a URI or short name; CRS84 when absent."""
    if value is None or value == "":
        return CRS84
    key = value.strip()
    if key.startswith("[") and key.endswith("]"):
        key = key[1:-1]
    uri = key if key in SYSTEMS else _ALIASES.get(key.lower())
    if uri is None:
        raise InvalidInput(field, f"{field} must be one of {', '.join(URIS)}; got {value!r}")
    return SYSTEMS[uri]


def parse_bbox(value: str | None, crs: Crs, field: str = "bbox") -> tuple[float, float, float, float] | None:
    """Read a bbox (4 numbers, or 6 with heights) in `crs`'s axis order; return it as
    (minx, miny, maxx, maxy) in easting/northing order of that CRS."""
    if value is None or value == "":
        return None
    order = "minlat,minlon,maxlat,maxlon" if crs.north_first and not crs.projected else (
        "minnorthing,mineasting,maxnorthing,maxeasting" if crs.north_first else "minlon,minlat,maxlon,maxlat")
    expected = f"{field} must be {order} in {crs.uri}"
    try:
        numbers = [float(p) for p in value.split(",")]
    except ValueError:
        raise InvalidInput(field, f"{expected}; got {value!r}") from None
    if len(numbers) == 6:   # with heights: the lower corner's three axes, then the upper's
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise InvalidInput(field, f"{expected}; got {value!r}")
    a1, a2, b1, b2 = numbers
    if a1 > b1 or a2 > b2:
        raise InvalidInput(field, f"{expected}, lower corner first; got {value!r}")
    minx, miny, maxx, maxy = (a2, a1, b2, b1) if crs.north_first else (a1, a2, b1, b2)
    if not crs.projected and not (-180 <= minx and maxx <= 180 and -90 <= miny and maxy <= 90):
        raise InvalidInput(field, f"{expected}, within ±180° longitude and ±90° latitude; got {value!r}")
    return minx, miny, maxx, maxy


def envelope_sql(crs: Crs, prefix: str, params: dict, box: tuple[float, float, float, float]) -> str:
    """SQL for the bbox as a polygon in the storage CRS, its corners bound as parameters."""
    names = [f"{prefix}{k}" for k in ("minx", "miny", "maxx", "maxy")]
    params.update(dict(zip(names, box)))
    envelope = f"ST_MakeEnvelope(:{names[0]}, :{names[1]}, :{names[2]}, :{names[3]}, {crs.srid})"
    if not crs.projected:
        return f"ST_SetSRID({envelope}, 4326)"
    # A straight edge in the projection is a curve in degrees: add vertices before transforming.
    params[f"{prefix}step"] = max(box[2] - box[0], box[3] - box[1], 1.0) / 32
    return f"ST_Transform(ST_Segmentize({envelope}, :{prefix}step), 4326)"

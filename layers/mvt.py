"""Mapbox Vector Tiles in PostGIS: tile addresses, envelopes, and the SQL every tile layer is cut with.

A tile is z/x/y in the Web Mercator scheme (EPSG:3857, XYZ rows from the north). Features are
selected with `geom && <the tile's envelope in WGS84>`, so the GiST index on the stored 4326
geometry answers, and clipped by `ST_AsMVTGeom` to the tile plus a buffer of 64 of its 4096 units,
so lines and polygons join across tile edges without seams. The envelope with that buffer is what a
cached tile is expired by (migration 0014).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from geo.errors import InvalidInput

EXTENT = 4096
BUFFER = 64
MARGIN = BUFFER / EXTENT
MAX_ZOOM = 24
MEDIA_TYPE = "application/vnd.mapbox-vector-tile"

# The tile in Web Mercator, what ST_AsMVTGeom cuts against.
TILE = "ST_TileEnvelope(:z, :x, :y)"
# The tile with its buffer in WGS84: `geom && BOUNDS` uses the GiST index on a 4326 column.
BOUNDS = "ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326)"
# The tile itself, without the buffer, in WGS84 (for what must belong to exactly one tile).
INNER = "ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326)"


@dataclass(frozen=True)
class TileAddress:
    """One tile: zoom, column, row."""

    z: int
    x: int
    y: int

    @classmethod
    def parse(cls, z, x, y, maxzoom: int = MAX_ZOOM) -> TileAddress:
        """Check a z/x/y triple against the zoom range and the tiles that zoom has."""
        z, x, y = int(z), int(x), int(y)
        if not 0 <= z <= maxzoom:
            raise InvalidInput("z", f"z must be a zoom from 0 to {maxzoom}; got {z}")
        size = 1 << z
        if not 0 <= x < size:
            raise InvalidInput("x", f"x must be a column from 0 to {size - 1} at zoom {z}; got {x}")
        if not 0 <= y < size:
            raise InvalidInput("y", f"y must be a row from 0 to {size - 1} at zoom {z}; got {y}")
        return cls(z, x, y)

    @property
    def params(self) -> dict:
        """The bound parameters of TILE, BOUNDS and INNER."""
        return {"z": self.z, "x": self.x, "y": self.y, "margin": MARGIN}

    def bounds(self, margin: float = MARGIN) -> tuple[float, float, float, float]:
        """The tile (with `margin` of its size on every side) in degrees: west, south, east, north."""
        n = 1 << self.z

        def lon(col: float) -> float:
            return col / n * 360.0 - 180.0

        def lat(row: float) -> float:
            return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

        return (lon(self.x - margin), lat(min(n, self.y + 1 + margin)),
                lon(self.x + 1 + margin), lat(max(0.0, self.y - margin)))

    def __str__(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"


@dataclass(frozen=True)
class Built:
    """A tile as built: its MVT bytes and, when the clock alone will make it stale, when."""

    mvt: bytes
    expires_at: datetime | None = None


def geom(expr: str, buffer: int = BUFFER) -> str:
    """SQL clipping a WGS84 geometry expression to the tile, in tile coordinates."""
    return f"ST_AsMVTGeom(ST_Transform({expr}, 3857), {TILE}, {EXTENT}, {buffer}, true)"


def layer(name: str, rows_sql: str) -> str:
    """SQL encoding the rows of `rows_sql` (with a `geom` column from `geom()`) as one MVT layer;
    empty bytes when no feature is left after clipping."""
    return (f"COALESCE((SELECT ST_AsMVT(q, '{name}', {EXTENT}, 'geom') FROM ({rows_sql}) q "
            f"WHERE q.geom IS NOT NULL), ''::bytea)")

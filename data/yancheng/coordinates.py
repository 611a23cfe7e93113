"""Convert between WGS84 lon/lat and the metric plane every step works in (EPSG:4547)."""
from __future__ import annotations

from functools import cache

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon

METRIC_EPSG = 4547


@cache
def _transformer(source: int, target: int) -> Transformer:
    return Transformer.from_crs(source, target, always_xy=True)


def to_metric(geom):
    """Project WGS84 geometries (one or an array) to EPSG:4547 metres."""
    t = _transformer(4326, METRIC_EPSG)
    return shapely.transform(geom, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))


def to_wgs84(geom):
    """Unproject EPSG:4547 geometries (one or an array) to WGS84 lon/lat."""
    t = _transformer(METRIC_EPSG, 4326)
    return shapely.transform(geom, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))


def wgs84_lonlat(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Unproject EPSG:4547 coordinates (numbers or arrays) to WGS84 lon, lat arrays."""
    return _transformer(METRIC_EPSG, 4326).transform(np.asarray(x, float), np.asarray(y, float))


def metric_xy(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Project WGS84 lon, lat (numbers or arrays) to EPSG:4547 x, y arrays in metres."""
    return _transformer(4326, METRIC_EPSG).transform(np.asarray(lon, float), np.asarray(lat, float))


def as_multi(geom) -> MultiPolygon:
    """Return the polygonal part of `geom` as a MultiPolygon."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    polys = [p for g in parts for p in shapely.get_parts(g)]
    return MultiPolygon(polys)

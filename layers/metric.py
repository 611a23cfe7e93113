"""The metric plane every analysis works in: CGCS2000 / 3-degree Gauss-Kruger CM 114E (EPSG:4547)
around 郾城区, else the WGS84 UTM zone of the data, so distances and bandwidths are metres, never
degrees (a degree of longitude is 93 km at 郾城区 but 111 km at the equator).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer

CHINA_GK_EPSG = 4547          # CGCS2000 / 3-degree Gauss-Kruger CM 114E
CHINA_GK_LON = (112.5, 115.5)  # the 3-degree zone it is accurate in
CHINA_LAT = (18.0, 54.0)


def epsg_for(lon: float, lat: float) -> int:
    """Pick the metric CRS for data centred at (lon, lat)."""
    if CHINA_GK_LON[0] <= lon <= CHINA_GK_LON[1] and CHINA_LAT[0] <= lat <= CHINA_LAT[1]:
        return CHINA_GK_EPSG
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


@lru_cache(maxsize=32)
def transformer(source: int, target: int) -> Transformer:
    """A cached always-xy (lon, lat order) transformer between two EPSG codes."""
    return Transformer.from_crs(source, target, always_xy=True)


@dataclass(frozen=True)
class Plane:
    """Forward and inverse projection between WGS84 lon/lat and one metric CRS."""

    epsg: int

    @classmethod
    def around(cls, lon: float, lat: float) -> Plane:
        return cls(epsg_for(lon, lat))

    @classmethod
    def for_bounds(cls, minx: float, miny: float, maxx: float, maxy: float) -> Plane:
        return cls.around((minx + maxx) / 2.0, (miny + maxy) / 2.0)

    def xy(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """Project lon/lat (scalars or arrays) to metres."""
        x, y = transformer(4326, self.epsg).transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x, float), np.asarray(y, float)

    def lonlat(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Unproject metres to lon/lat."""
        lon, lat = transformer(self.epsg, 4326).transform(np.asarray(x, float), np.asarray(y, float))
        return np.asarray(lon, float), np.asarray(lat, float)

    def to_metric(self, geom):
        """Project a shapely geometry (or an array of them) from WGS84 to metres."""
        t = transformer(4326, self.epsg)
        return shapely.transform(geom, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))

    def to_wgs84(self, geom):
        """Unproject a shapely geometry (or an array of them) from metres to WGS84."""
        t = transformer(self.epsg, 4326)
        return shapely.transform(geom, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))

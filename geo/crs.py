"""Chinese coordinate systems: WGS84 (≈ CGCS2000) ⇄ GCJ-02 (Gaode/Tencent) ⇄ BD-09 (Baidu).

GCJ-02 is an obfuscated datum that PROJ refuses to implement; its forward formula is public
(Krasovsky ellipsoid a = 6378245 m, e² = 0.00669342162296594323). The inverse has no closed form,
so it is solved by fixed-point iteration until the forward image matches to 1e-12° (≈ 0.1 µm).
Outside mainland China the offset is not applied, as every reference implementation does.
"""
from __future__ import annotations

import math
from collections.abc import Callable

A = 6378245.0
EE = 0.00669342162296594323
X_PI = math.pi * 3000.0 / 180.0

WGS84 = "wgs84"
CGCS2000 = "cgcs2000"
GCJ02 = "gcj02"
BD09 = "bd09"
SYSTEMS = (WGS84, CGCS2000, GCJ02, BD09)


def out_of_china(lon: float, lat: float) -> bool:
    """Return True where GCJ-02 applies no offset (the reference implementations' rough box)."""
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Apply the GCJ-02 offset to a WGS84 point."""
    if out_of_china(lon, lat):
        return lon, lat
    dlat = _transform_lat(lon - 105.0, lat - 35.0)
    dlon = _transform_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = math.sin(radlat)
    magic = 1 - EE * magic * magic
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((A * (1 - EE)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (A / sqrtmagic * math.cos(radlat) * math.pi)
    return lon + dlon, lat + dlat


def _invert(forward: Callable[[float, float], tuple[float, float]],
            lon: float, lat: float, tol: float = 1e-12, max_iter: int = 30) -> tuple[float, float]:
    """Solve forward(x) = (lon, lat) by fixed-point iteration (the offset is smooth and small)."""
    x, y = lon, lat
    for _ in range(max_iter):
        fx, fy = forward(x, y)
        dx, dy = lon - fx, lat - fy
        x, y = x + dx, y + dy
        if abs(dx) < tol and abs(dy) < tol:
            break
    return x, y


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Remove the GCJ-02 offset exactly (iterative inverse, error well below 1 mm)."""
    if out_of_china(lon, lat):
        return lon, lat
    return _invert(wgs84_to_gcj02, lon, lat)


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """Apply Baidu's BD-09 transform to a GCJ-02 point."""
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Invert BD-09 exactly (iterating on the forward transform, not the usual approximation)."""
    return _invert(gcj02_to_bd09, lon, lat)


def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Convert a Baidu BD-09 point to WGS84."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """Convert a WGS84 point to Baidu BD-09."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


_TO_WGS84: dict[str, Callable[[float, float], tuple[float, float]]] = {
    WGS84: lambda lon, lat: (lon, lat),
    CGCS2000: lambda lon, lat: (lon, lat),  # CGCS2000 and WGS84 differ by cm–dm: treated as equal
    GCJ02: gcj02_to_wgs84,
    BD09: bd09_to_wgs84,
}
_FROM_WGS84: dict[str, Callable[[float, float], tuple[float, float]]] = {
    WGS84: lambda lon, lat: (lon, lat),
    CGCS2000: lambda lon, lat: (lon, lat),
    GCJ02: wgs84_to_gcj02,
    BD09: wgs84_to_bd09,
}


def normalise_crs(name: str) -> str:
    """Map the accepted spellings of a coordinate system to one of SYSTEMS."""
    key = (name or "").strip().lower().replace("-", "").replace("_", "")
    aliases = {"wgs84": WGS84, "epsg:4326": WGS84, "4326": WGS84, "gps": WGS84,
               "cgcs2000": CGCS2000, "epsg:4490": CGCS2000, "4490": CGCS2000,
               "gcj02": GCJ02, "gcj": GCJ02, "gaode": GCJ02, "amap": GCJ02, "tencent": GCJ02,
               "bd09": BD09, "bd09ll": BD09, "baidu": BD09}
    if key not in aliases:
        raise ValueError(f"unknown coordinate system {name!r}; expected one of {', '.join(SYSTEMS)}")
    return aliases[key]


def to_wgs84(lon: float, lat: float, crs: str = WGS84) -> tuple[float, float]:
    """Convert a point in any supported system to WGS84."""
    return _TO_WGS84[normalise_crs(crs)](lon, lat)


def from_wgs84(lon: float, lat: float, crs: str = WGS84) -> tuple[float, float]:
    """Convert a WGS84 point to any supported system."""
    return _FROM_WGS84[normalise_crs(crs)](lon, lat)


def transform_geometry(geom, crs: str):
    """Return a shapely geometry with every vertex converted from `crs` to WGS84."""
    import numpy as np
    from shapely import transform

    convert = _TO_WGS84[normalise_crs(crs)]

    def apply(coords: np.ndarray) -> np.ndarray:
        return np.array([convert(float(x), float(y)) for x, y in coords])

    return transform(geom, apply)

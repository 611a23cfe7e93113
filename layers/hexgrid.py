"""A hexagonal grid in metres (pointy-top, axial q/r coordinates anchored at the plane's origin).

Anchoring at the origin of the metric CRS keeps a cell's id the same in every query, so this month
and last month, or the analyst's and the public's map, count into the very same hexagons.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from .metric import Plane

SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True)
class HexGrid:
    """Hexagons of edge length `size_m` (= circumradius) on a metric plane."""

    size_m: float
    plane: Plane

    @property
    def spacing_m(self) -> float:
        """Distance between the centres of two neighbouring hexagons."""
        return SQRT3 * self.size_m

    @property
    def cell_area_m2(self) -> float:
        return 1.5 * SQRT3 * self.size_m ** 2

    def cell_of(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Axial (q, r) of the hexagon containing each metric point (cube rounding)."""
        x = np.asarray(x, float) / self.size_m
        y = np.asarray(y, float) / self.size_m
        qf = SQRT3 / 3.0 * x - y / 3.0
        rf = 2.0 / 3.0 * y
        sf = -qf - rf
        q, r, s = np.rint(qf), np.rint(rf), np.rint(sf)
        dq, dr, ds = np.abs(q - qf), np.abs(r - rf), np.abs(s - sf)
        fix_q = (dq > dr) & (dq > ds)
        fix_r = ~fix_q & (dr > ds)
        q = np.where(fix_q, -r - s, q)
        r = np.where(fix_r, -q - s, r)
        return q.astype(np.int64), r.astype(np.int64)

    def centre(self, q, r) -> tuple[np.ndarray, np.ndarray]:
        """Metric centre of each hexagon."""
        q, r = np.asarray(q, float), np.asarray(r, float)
        return self.size_m * SQRT3 * (q + r / 2.0), self.size_m * 1.5 * r

    def polygons(self, q, r) -> np.ndarray:
        """Metric shapely polygons of the hexagons."""
        cx, cy = self.centre(q, r)
        angles = np.radians(30.0 + 60.0 * np.arange(6))
        xs = cx[:, None] + self.size_m * np.cos(angles)[None, :]
        ys = cy[:, None] + self.size_m * np.sin(angles)[None, :]
        rings = np.stack([xs, ys], axis=-1)
        return shapely.polygons(np.concatenate([rings, rings[:, :1]], axis=1))

    def covering(self, area_m) -> tuple[np.ndarray, np.ndarray]:
        """All hexagons that intersect a metric polygon, in (r, q) order."""
        minx, miny, maxx, maxy = area_m.bounds
        pad = 2.0 * self.size_m
        r0 = int(math.floor((miny - pad) / (1.5 * self.size_m)))
        r1 = int(math.ceil((maxy + pad) / (1.5 * self.size_m)))
        rs = np.arange(r0, r1 + 1)
        q_lo = np.floor((minx - pad) / self.spacing_m - rs / 2.0).astype(int)
        q_hi = np.ceil((maxx + pad) / self.spacing_m - rs / 2.0).astype(int)
        q = np.concatenate([np.arange(lo, hi + 1) for lo, hi in zip(q_lo, q_hi)])
        r = np.concatenate([np.full(hi - lo + 1, rr) for rr, lo, hi in zip(rs, q_lo, q_hi)])
        shapely.prepare(area_m)
        keep = shapely.intersects(area_m, self.polygons(q, r))
        return q[keep], r[keep]

    @staticmethod
    def cell_id(q, r) -> list[str]:
        return [f"{int(a)}:{int(b)}" for a, b in zip(q, r)]

    def to_geojson_geometry(self, q, r, digits: int = 6) -> list[dict]:
        """WGS84 GeoJSON polygons of the hexagons (lon, lat order)."""
        polys = self.plane.to_wgs84(self.polygons(np.atleast_1d(q), np.atleast_1d(r)))
        out = []
        for poly in polys:
            ring = np.round(np.asarray(poly.exterior.coords), digits).tolist()
            out.append({"type": "Polygon", "coordinates": [ring]})
        return out


def count(grid: HexGrid, x, y, q, r, weights=None) -> np.ndarray:
    """Count metric points (optionally weighted) into the given hexagons; points elsewhere are dropped."""
    out = np.zeros(len(q), float)
    x = np.asarray(x, float)
    if len(out) == 0 or len(x) == 0:
        return out
    cells = _key(q, r)
    order = np.argsort(cells)
    ordered = cells[order]
    key = _key(*grid.cell_of(x, np.asarray(y, float)))
    pos = np.searchsorted(ordered, key).clip(0, len(ordered) - 1)
    inside = ordered[pos] == key
    w = np.ones(len(x)) if weights is None else np.asarray(weights, float)
    np.add.at(out, order[pos[inside]], w[inside])
    return out


def _key(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    # Pack (q, r) into one int64 so numpy can sort and search cells; ±2^31 cells is far beyond need.
    return (np.asarray(q, np.int64) << 32) + (np.asarray(r, np.int64) & 0xFFFFFFFF)

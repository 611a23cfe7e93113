"""Heat: kernel density of incidents in metres, served as leaflet.heat points or a PNG overlay.

The estimate is the classic binned KDE (Wand 1994): points are linearly binned onto a regular grid
of nodes in the metric plane, and the counts are convolved with a Gaussian of the bandwidth in
metres. That is the same surface as summing one Gaussian per incident, to within the binning error
(tiny with nodes a quarter bandwidth apart), but costs O(n + nodes) instead of O(n × nodes), so a
million incidents take well under a second.
"""
from __future__ import annotations

import base64
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from sqlalchemy.orm import Session

from geo.errors import InvalidInput
from geo.policy import Audience

from . import selection
from .metric import Plane, transformer
from .selection import SYSTEM

DEFAULT_BANDWIDTH_M = 300.0
BANDWIDTH_RANGE_M = (25.0, 5000.0)
NODES_PER_BANDWIDTH = 4      # node spacing = bandwidth / 4 keeps linear-binning error below 1 %
MAX_NODES = 4_000_000        # ≈ 32 MB of float64: the cap on one surface
TRUNCATE = 4.0               # the kernel is cut at 4 bandwidths (mass beyond: 3e-4)
WEB_MERCATOR = 3857


@dataclass
class Surface:
    """A density surface on a metric grid: density[j, i] at node (x0 + i·cell, y0 + j·cell)."""

    plane: Plane
    x0: float
    y0: float
    cell_m: float
    bandwidth_m: float
    density: np.ndarray  # incidents per km²
    n: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.density.shape

    def node_xy(self) -> tuple[np.ndarray, np.ndarray]:
        ny, nx = self.density.shape
        return self.x0 + np.arange(nx) * self.cell_m, self.y0 + np.arange(ny) * self.cell_m

    def at(self, x, y) -> np.ndarray:
        """Bilinear density at metric points (0 outside the grid)."""
        fi = (np.asarray(x, float) - self.x0) / self.cell_m
        fj = (np.asarray(y, float) - self.y0) / self.cell_m
        return ndimage.map_coordinates(self.density, [fj, fi], order=1, mode="constant", cval=0.0)

    def lonlat_bounds(self) -> tuple[float, float, float, float]:
        """The WGS84 bounding box (west, south, east, north) of the node grid."""
        ny, nx = self.density.shape
        xs = self.x0 + np.linspace(0, nx - 1, 32) * self.cell_m
        ys = self.y0 + np.linspace(0, ny - 1, 32) * self.cell_m
        ex = np.concatenate([xs, xs, np.full(32, xs[0]), np.full(32, xs[-1])])
        ey = np.concatenate([np.full(32, ys[0]), np.full(32, ys[-1]), ys, ys])
        lon, lat = self.plane.lonlat(ex, ey)
        return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


def check_bandwidth(value, audience: Audience = SYSTEM) -> float:
    """Parse a bandwidth in metres within the allowed range; an audience that sees sensitive
    incidents generalised has a higher floor (geo.policy), so no kernel can locate one."""
    if value is None or value == "":
        return DEFAULT_BANDWIDTH_M
    try:
        h = float(value)
    except (TypeError, ValueError):
        raise InvalidInput("bandwidth", f"bandwidth must be a number of metres; got {value!r}") from None
    lo, hi = BANDWIDTH_RANGE_M
    floor = max(lo, audience.min_bandwidth_m or lo)
    if not (math.isfinite(h) and floor <= h <= hi):
        why = "" if floor == lo else f" for the {audience.role} role (sensitive incidents are generalised)"
        raise InvalidInput("bandwidth", f"bandwidth must be between {floor:g} and {hi:g} metres{why}; "
                                        f"got {value!r}")
    return h


def kde(x: np.ndarray, y: np.ndarray, bandwidth_m: float, *,
        extent: tuple[float, float, float, float] | None = None, cell_m: float | None = None,
        weights: np.ndarray | None = None, plane: Plane | None = None) -> Surface:
    """Estimate the density of metric points with a Gaussian kernel of `bandwidth_m` metres."""
    # `extent` (minx, miny, maxx, maxy in metres) defaults to the points' box padded by 3 bandwidths.
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, float)
    if extent is None:
        if len(x) == 0:
            raise InvalidInput("area", "no incidents match, and no area was given to frame the map")
        pad = 3.0 * bandwidth_m
        extent = (x.min() - pad, y.min() - pad, x.max() + pad, y.max() + pad)
    minx, miny, maxx, maxy = extent
    cell = cell_m or bandwidth_m / NODES_PER_BANDWIDTH
    # A district-sized extent at a small bandwidth could ask for hundreds of millions of nodes.
    while ((maxx - minx) / cell + 2) * ((maxy - miny) / cell + 2) > MAX_NODES:
        cell *= 1.25
    nx = int(math.ceil((maxx - minx) / cell)) + 2
    ny = int(math.ceil((maxy - miny) / cell)) + 2
    counts = _linear_bin(x, y, w, minx, miny, cell, nx, ny)
    sigma = bandwidth_m / cell
    smoothed = ndimage.gaussian_filter(counts, sigma=sigma, mode="constant", cval=0.0, truncate=TRUNCATE)
    density = smoothed / (cell * cell) * 1e6  # per m² → per km²
    return Surface(plane or Plane(4547), minx, miny, cell, bandwidth_m, density, int(len(x)))


def _linear_bin(x, y, w, x0, y0, cell, nx, ny) -> np.ndarray:
    """Split each point's weight over its four surrounding nodes (linear binning)."""
    fx = (x - x0) / cell
    fy = (y - y0) / cell
    i = np.floor(fx).astype(np.int64)
    j = np.floor(fy).astype(np.int64)
    ok = (i >= 0) & (j >= 0) & (i < nx - 1) & (j < ny - 1)
    i, j, fx, fy, w = i[ok], j[ok], fx[ok] - i[ok], fy[ok] - j[ok], w[ok]
    out = np.zeros(nx * ny)
    for di, dj, share in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                          (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        out += np.bincount((j + dj) * nx + (i + di), weights=w * share, minlength=nx * ny)
    return out.reshape(ny, nx)


def surface(session: Session, sel: selection.Selection, bandwidth_m: float = DEFAULT_BANDWIDTH_M) -> Surface:
    """The density surface of the selected incidents, framed by the area when one is given."""
    pts = selection.points(session, sel)
    if sel.area:
        geom = selection.area_geometry(session, sel.area)
        plane = Plane.for_bounds(*geom.bounds)
        minx, miny, maxx, maxy = plane.to_metric(geom).bounds
        pad = 3.0 * bandwidth_m
        extent = (minx - pad, miny - pad, maxx + pad, maxy + pad)
    else:
        if len(pts) == 0:
            raise InvalidInput("area", "no incidents match; give an area to frame an empty map")
        plane = Plane.around(float(np.median(pts.lon)), float(np.median(pts.lat)))
        extent = None
    x, y = plane.xy(pts.lon, pts.lat)
    return kde(x, y, bandwidth_m, extent=extent, plane=plane)


def heat_points(surf: Surface, *, max_points: int = 20_000, floor: float = 0.02) -> dict:
    """leaflet.heat data: [lat, lon, intensity 0–1] at nodes above `floor` of the peak density."""
    dens = surf.density
    step = 1
    peak = float(dens.max()) if dens.size else 0.0
    if peak <= 0:
        return {"points": [], "max_density": 0.0, "bandwidth_m": surf.bandwidth_m, "n": surf.n}
    # Coarsen until the surface fits; the kernel is wider than a few nodes, so nothing is lost.
    while np.count_nonzero(dens[::step, ::step] >= floor * peak) > max_points:
        step += 1
    sub = dens[::step, ::step]
    jj, ii = np.nonzero(sub >= floor * peak)
    xs, ys = surf.node_xy()
    lon, lat = surf.plane.lonlat(xs[::step][ii], ys[::step][jj])
    value = sub[jj, ii] / peak
    pts = np.column_stack([np.round(lat, 6), np.round(lon, 6), np.round(value, 4)]).tolist()
    return {"points": pts, "max_density": round(peak, 3), "bandwidth_m": surf.bandwidth_m,
            "cell_m": surf.cell_m * step, "n": surf.n, "unit": "incidents/km²"}


# A transparent → yellow → orange → red ramp: low densities fade into the map instead of painting it.
STRETCH_QUANTILE = 0.98   # the overlay's ramp is full from this quantile of the covered pixels up
RAMP = np.array([[0.00, 255, 255, 178, 0], [0.15, 254, 217, 118, 120], [0.40, 254, 178, 76, 170],
                 [0.65, 253, 141, 60, 200], [0.85, 240, 59, 32, 220], [1.00, 189, 0, 38, 235]])


def colourise(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGBA bytes along RAMP."""
    v = np.clip(values, 0.0, 1.0)
    rgba = np.stack([np.interp(v, RAMP[:, 0], RAMP[:, k]) for k in range(1, 5)], axis=-1)
    rgba[v <= 0.01] = 0
    return rgba.round().astype(np.uint8)


def overlay(surf: Surface, *, width: int | None = None) -> dict:
    """A PNG image overlay in Web Mercator pixels with its WGS84 bounds (for L.imageOverlay/folium)."""
    west, south, east, north = surf.lonlat_bounds()
    to_merc = transformer(4326, WEB_MERCATOR)
    mx0, my0 = to_merc.transform(west, south)
    mx1, my1 = to_merc.transform(east, north)
    ny, nx = surf.shape
    width = width or int(min(max(nx, 64), 1600))
    height = max(1, int(round(width * (my1 - my0) / (mx1 - mx0))))
    # Sample the metric surface at every Mercator pixel centre: the overlay is stretched linearly in
    # Mercator by Leaflet, so resampling here keeps each pixel where its density really is.
    px = mx0 + (np.arange(width) + 0.5) * (mx1 - mx0) / width
    py = my1 - (np.arange(height) + 0.5) * (my1 - my0) / height
    gx, gy = np.meshgrid(px, py)
    lon, lat = transformer(WEB_MERCATOR, 4326).transform(gx.ravel(), gy.ravel())
    x, y = surf.plane.xy(lon, lat)
    values = surf.at(x, y).reshape(height, width)
    peak = float(surf.density.max()) or 1.0
    # Scaled to the peak, a few very busy places leave the rest of the surface all but clear: the
    # ramp tops out at a high quantile of the covered pixels and rises with the square root.
    covered = values[values > peak * 1e-3]
    top = float(np.quantile(covered, STRETCH_QUANTILE)) if covered.size else peak
    png = encode_png(colourise(np.sqrt(values / (top or peak))))
    return {"bounds": [[south, west], [north, east]], "width": width, "height": height,
            "max_density": round(peak, 3), "ramp_top_density": round(top, 3),
            "bandwidth_m": surf.bandwidth_m, "unit": "incidents/km²",
            "image": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}


def encode_png(rgba: np.ndarray) -> bytes:
    """Encode an (h, w, 4) uint8 array as a PNG (no Pillow needed)."""
    h, w, _ = rgba.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgba.reshape(h, w * 4)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + \
        chunk(b"IEND", b"")

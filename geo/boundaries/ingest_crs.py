"""The coordinate system of an imported boundary file: the tag or the caller's choice, checked
against the CRS's area of use and against swapped lon/lat, then reprojected to WGS84.
"""
from __future__ import annotations

import math

import numpy as np
import shapely

from geo import crs as crs_mod
from geo.boundaries.ingest_report import add_bad
from geo.errors import InvalidInput
from geo.messages import msg

# A coordinate further than this outside a CRS's published area of use does not belong to it.
AREA_OF_USE_MARGIN = 1.0


# -- coordinates -----------------------------------------------------------------------------
def source_crs(report, meta, given, features):
    """The CRS to read the coordinates in: `given`, else the file's tag; checked against them."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    geoms = [shapely.from_wkb(f.wkb) for f in features if f.wkb is not None]
    bounds = shapely.total_bounds(geoms) if geoms else None
    if given:
        name = given.strip()
        try:
            system = crs_mod.normalise_crs(name)
            if system in (crs_mod.GCJ02, crs_mod.BD09):
                report.source_crs = system
                if bounds is not None and crs_mod.out_of_china((bounds[0] + bounds[2]) / 2,
                                                               (bounds[1] + bounds[3]) / 2):
                    report.error("crs_mismatch", msg("{crs} is only used inside China, but the coordinates "
                                                     "lie at {box}", crs=system.upper(), box=_box(bounds)),
                                 ways=[{"crs": None}])
                return system
            name = "EPSG:4326" if system == crs_mod.WGS84 else "EPSG:4490"
        except ValueError:
            pass
        try:
            source = CRS.from_user_input(name)
        except CRSError:
            raise InvalidInput("crs", msg("crs must be wgs84, cgcs2000, gcj02, bd09 or EPSG:n; got {got}",
                                          got=repr(given))) from None
        report.source_crs = source.to_string()
    else:
        tag = meta.get("crs")
        if not tag:
            report.source_crs = "EPSG:4326"
            report.warn("no_crs", msg("the file has no CRS tag: reading it as WGS84 lon/lat (or say which: "
                                      "EPSG:n, gcj02, bd09)"), ways=[{"crs": None}])
            source = CRS.from_epsg(4326)
        else:
            source = CRS.from_user_input(tag)
            report.source_crs = source.to_string()
    _check_area_of_use(report, source, bounds, given is None)
    return source


def _check_area_of_use(report, source, bounds, tagged: bool) -> None:
    """Refuse coordinates that fall outside where the CRS is used (a wrong tag, swapped axes)."""
    use = source.area_of_use
    if bounds is None or use is None:
        return
    if source.is_geographic:
        lon = (bounds[0] + bounds[2]) / 2
        lat = (bounds[1] + bounds[3]) / 2
        if abs(lat) > 90 and abs(lon) <= 90:
            return  # swapped axes: reported per feature
    else:
        from pyproj import Transformer

        to_geo = Transformer.from_crs(source, source.geodetic_crs, always_xy=True)
        lon, lat = to_geo.transform((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
    m = AREA_OF_USE_MARGIN
    if use.west - m <= lon <= use.east + m and use.south - m <= lat <= use.north + m:
        return
    what = "the file's CRS tag" if tagged else "the CRS given"
    hint = ""
    ways: list[dict[str, str | None]] = [{"crs": None}]
    if source.is_geographic and -180 <= lon <= 180 and -90 <= lat <= 90:
        ways = [{"crs": "wgs84"}]
        hint = (f"; the coordinates read as WGS84 lon/lat would be at ({lon:.2f}, {lat:.2f}) — if "
                f"that is right, say so with {report.hints.way(ways[0])}")
    report.error(
        "crs_mismatch",
        f"{what} is {source.to_string()} ({source.name}), used in {use.name} "
        f"({use.west:.2f}…{use.east:.2f}°E, {use.south:.2f}…{use.north:.2f}°N), but the "
        f"coordinates lie around ({lon:.2f}, {lat:.2f}), far outside it: the tag does not match "
        f"the coordinates, and they are never shifted silently{hint}",
        ways=ways)


def to_wgs84(report, source, features) -> None:
    """Reproject every feature to WGS84 and flag coordinates that look like swapped lat/lon."""
    from pyproj import CRS, Transformer

    if isinstance(source, str):  # GCJ-02 / BD-09: exact iterative inverse, vertex by vertex
        for f in features:
            if f.wkb is not None:
                f.wkb = shapely.to_wkb(crs_mod.transform_geometry(shapely.from_wkb(f.wkb), source))
        source = CRS.from_epsg(4326)
    transformer = None
    if not source.equals(CRS.from_epsg(4326), ignore_axis_order=True) and \
            not source.equals(CRS.from_epsg(4490), ignore_axis_order=True):
        transformer = Transformer.from_crs(source, 4326, always_xy=True)
    centres = []
    for f in features:
        if f.wkb is None:
            continue
        g = shapely.from_wkb(f.wkb)
        if not np.isfinite(shapely.get_coordinates(g)).all():
            raise InvalidInput("file", msg("feature {feature}: coordinates must be finite numbers (found "
                                           "NaN or infinity)", feature=f.index))
        if transformer is not None:
            g = shapely.transform(g, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
            f.wkb = shapely.to_wkb(g)
        if not g.is_empty:
            centres.append(shapely.get_coordinates(g.centroid)[0])
    if not centres:
        return
    median = np.median(np.array(centres), axis=0)
    for f in features:
        if f.wkb is None:
            continue
        g = shapely.from_wkb(f.wkb)
        if g.is_empty:
            continue
        x0, y0, x1, y1 = g.bounds
        out_of_range = not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        far = math.hypot(cx - median[0], cy - median[1]) > 5
        swapped_near = math.hypot(cy - median[0], cx - median[1]) < 5
        if out_of_range or (far and swapped_near):
            swapped = -90 <= x0 <= x1 <= 90 and -180 <= y0 <= y1 <= 180
            _bad_coordinates(report, f, swapped, cx, cy)


def _bad_coordinates(report, f, swapped: bool, x: float, y: float) -> None:
    if swapped:
        add_bad(report, f, "swapped_coordinates",
                msg("coordinates around ({x:.4f}, {y:.4f}) look like lat, lon swapped (a latitude beyond "
                    "±90, or the swap lands beside the other features): GeoJSON is lon, lat", x=x, y=y),
                advice=msg("fix the file (lon, lat order)"))
    else:
        add_bad(report, f, "out_of_range",
                msg("coordinates around ({x:.4f}, {y:.4f}) are outside ±180/±90 degrees", x=x, y=y),
                advice=msg("fix the file"))


def _box(bounds) -> str:
    return f"{bounds[0]:.2f}…{bounds[2]:.2f}, {bounds[1]:.2f}…{bounds[3]:.2f}"

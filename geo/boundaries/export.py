"""Boundary files out: GeoJSON, GeoPackage, Shapefile (zipped) and CSV with WKT, at full precision,
so import → export → import gives the same WKB.
"""
from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.areas import parse_level, subtree_filter
from geo.errors import InvalidInput

FORMATS = {"geojson": ("GeoJSON", ".geojson", "application/geo+json"),
           "gpkg": ("GPKG", ".gpkg", "application/geopackage+sqlite3"),
           "shp": ("ESRI Shapefile", ".shp", "application/zip"),
           "csv": ("CSV", ".csv", "text/csv")}


# -- export ----------------------------------------------------------------------------------
def rows(session: Session, *, level=None, parent: str | None = None) -> list[dict]:
    """The areas to export (level, subtree), geometry as WKB, in code order."""
    where, params = subtree_filter(session, parse_level(level), parent)
    return [dict(r) for r in session.execute(text(f"""
        SELECT a.code, a.name, a.level, p.code AS parent, a.kind, a.households, a.population,
               a.urban, a.version, ST_AsBinary(a.geom) AS wkb
          FROM areas a LEFT JOIN areas p ON p.id = a.parent_id
         WHERE {' AND '.join(where)} ORDER BY a.code"""), params).mappings()]


EXPORT_FIELDS = ("code", "name", "level", "parent", "kind", "households", "population", "urban",
                 "version")


def export(session: Session, path, *, level=None, parent: str | None = None,
           fmt: str | None = None) -> int:
    """Write areas to `path` as geojson, gpkg, shp or csv (from the suffix unless `fmt`); return the count."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt == "json":
        fmt = "geojson"
    if fmt not in FORMATS:
        raise InvalidInput("format", f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    found = rows(session, level=level, parent=parent)
    if fmt == "geojson":
        path.write_text(_geojson(found), encoding="utf-8")
    elif fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([*EXPORT_FIELDS, "wkt"])
            for r in found:
                writer.writerow([_csv_value(r[k]) for k in EXPORT_FIELDS] + [_wkt(r["wkb"])])
    else:
        import pyogrio

        driver = FORMATS[fmt][0]
        if fmt == "shp" and path.suffix.lower() != ".shp":
            path = path.with_suffix(".shp")
        values = [np.array([r[k] for r in found], dtype=object) for k in EXPORT_FIELDS]
        for i, k in enumerate(EXPORT_FIELDS):
            if k in ("level", "households", "population", "version"):
                values[i] = np.array([-1 if v is None else v for v in values[i]], dtype=np.int64)
            elif k == "urban":
                values[i] = np.array(["" if v is None else ("1" if v else "0") for v in values[i]],
                                     dtype=object)
            else:
                values[i] = np.array(["" if v is None else str(v) for v in values[i]], dtype=object)
        pyogrio.raw.write(path, np.array([bytes(r["wkb"]) for r in found], dtype=object), values,
                          list(EXPORT_FIELDS), driver=driver, crs="EPSG:4326",
                          geometry_type="MultiPolygon", encoding="UTF-8")
    return len(found)


def export_bytes(session: Session, *, level=None, parent: str | None = None,
                 fmt: str = "geojson") -> tuple[bytes, str, str]:
    """The export as one download: (content, file name, MIME type); a Shapefile comes zipped."""
    fmt = (fmt or "geojson").lower()
    if fmt not in FORMATS:
        raise InvalidInput("format", f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    stem = f"areas-{parent or 'all'}-level{parse_level(level) or 'all'}"
    _, suffix, mime = FORMATS[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / (stem + suffix)
        export(session, target, level=level, parent=parent, fmt=fmt)
        if fmt != "shp":
            return target.read_bytes(), target.name, mime
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for part in sorted(Path(tmp).iterdir()):
                zf.write(part, part.name)
        return buffer.getvalue(), stem + ".zip", mime


def _geojson(found: list[dict]) -> str:
    # Python writes each float as the shortest text that reads back to the same double, so the
    # file carries the exact stored coordinates (GDAL's writer would round them).
    features = []
    for r in found:
        geom = shapely.geometry.mapping(shapely.from_wkb(bytes(r["wkb"])))
        features.append({"type": "Feature", "id": r["code"], "geometry": geom,
                         "properties": {k: r[k] for k in EXPORT_FIELDS}})
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False)


def _csv_value(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    return "" if value is None else value


def _wkt(wkb) -> str:
    """WKT at full precision (each coordinate as its shortest round-trip text)."""
    geom = shapely.from_wkb(bytes(wkb))

    def ring(coords):
        return "(" + ", ".join(f"{x!r} {y!r}" for x, y in coords) + ")"

    polygons = getattr(geom, "geoms", [geom])
    return "MULTIPOLYGON (" + ", ".join(
        "(" + ", ".join(ring(r.coords) for r in [p.exterior, *p.interiors]) + ")"
        for p in polygons) + ")"

"""Boundary files out: GeoJSON, GeoPackage, Shapefile (zipped), CSV with WKT and XLSX, at full
precision and with every attribute the importer reads back (`fields`), so import → export →
import gives the same WKB and the same columns.

The GeoPackage is version 1.2 with the classic R-tree triggers, which every GDAL since 2.x (and so
QGIS 3.22 on GDAL 3.4–3.6) reads without a warning and GDAL's `validate_gpkg.py` accepts.
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
from geo.boundaries import fields as attributes
from geo.boundaries.fields import EXPORT_FIELDS
from geo.errors import InvalidInput
from geo.messages import msg

FORMATS = {"geojson": ("GeoJSON", ".geojson", "application/geo+json"),
           "gpkg": ("GPKG", ".gpkg", "application/geopackage+sqlite3"),
           "shp": ("ESRI Shapefile", ".shp", "application/zip"),
           "csv": ("CSV", ".csv", "text/csv"),
           "xlsx": (None, ".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")}
# GeoPackage 1.4 (GDAL ≥ 3.8's default) brings spatial-index triggers that GDAL < 3.8 warns about
# ("may only be partially supported") and validate_gpkg.py of GDAL 3.6 rejects (requirement 75).
GPKG_OPTIONS = {"VERSION": "1.2"}
TEXT = ("code", "name", "parent", "kind")
# Excel keeps at most 32,767 characters in a cell; longer WKT goes on in the next column.
XLSX_CELL = 32_000


# -- export ----------------------------------------------------------------------------------
def rows(session: Session, *, level=None, parent: str | None = None) -> list[dict]:
    """The areas to export (level, subtree): attributes, 一长两员 counts, label point, WKB."""
    where, params = subtree_filter(session, parse_level(level), parent)
    return [dict(r) for r in session.execute(text(f"""
        SELECT a.code, a.name, a.level, p.code AS parent, a.kind, a.households, a.population,
               a.urban, COALESCE(s.leaders, 0) AS leaders, COALESCE(s.workers, 0) AS workers,
               COALESCE(s.supervisors, 0) AS supervisors, a.version,
               ST_X(a.label_point) AS lon, ST_Y(a.label_point) AS lat, ST_AsBinary(a.geom) AS wkb
          FROM areas a
          LEFT JOIN areas p ON p.id = a.parent_id
          LEFT JOIN (SELECT area_id, count(*) FILTER (WHERE role = 'leader') AS leaders,
                            count(*) FILTER (WHERE role = 'worker') AS workers,
                            count(*) FILTER (WHERE role = 'supervisor') AS supervisors
                       FROM area_staff GROUP BY area_id) s ON s.area_id = a.id
         WHERE {' AND '.join(where)} ORDER BY a.level, a.code"""), params).mappings()]


def export(session: Session, path, *, level=None, parent: str | None = None,
           fmt: str | None = None) -> int:
    """Write areas to `path` as geojson, gpkg, shp, csv or xlsx (from the suffix unless `fmt`);
    return the count."""
    path = Path(path)
    fmt = _format(fmt or path.suffix.lstrip("."))
    found = rows(session, level=level, parent=parent)
    if fmt == "geojson":
        path.write_text(_geojson(found), encoding="utf-8")
    elif fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([*EXPORT_FIELDS, attributes.CSV_WKT])
            for r in found:
                writer.writerow([_csv_value(r[k]) for k in EXPORT_FIELDS] + [_wkt(r["wkb"])])
    elif fmt == "xlsx":
        _xlsx(path, found)
    else:
        _ogr(path, found, fmt)
    return len(found)


def export_bytes(session: Session, *, level=None, parent: str | None = None,
                 fmt: str = "geojson") -> tuple[bytes, str, str]:
    """The export as one download: (content, file name, MIME type); a Shapefile comes zipped."""
    fmt = _format(fmt or "geojson")
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


def _format(fmt: str) -> str:
    fmt = fmt.lower()
    fmt = "geojson" if fmt == "json" else fmt
    if fmt not in FORMATS:
        raise InvalidInput("format", msg("format must be one of {formats}; got {got}",
                                         formats=", ".join(FORMATS), got=repr(fmt)))
    return fmt


def _ogr(path: Path, found: list[dict], fmt: str) -> None:
    """GeoPackage or Shapefile through GDAL, empty values as nulls (never a -1 standing for one)."""
    import pyogrio

    if fmt == "shp" and path.suffix.lower() != ".shp":
        path = path.with_suffix(".shp")
    values, masks = [], []
    for k in EXPORT_FIELDS:
        column = [r[k] for r in found]
        missing = np.array([v is None for v in column], dtype=bool)
        if k in TEXT:
            array = np.array(["" if v is None else str(v) for v in column], dtype=object)
        elif k == "urban":
            array = np.array([bool(v) for v in column], dtype=bool)
        else:
            array = np.array([0 if v is None else v for v in column], dtype=np.int32)
        values.append(array)
        masks.append(missing if missing.any() else None)
    names = [attributes.SHAPEFILE_NAMES.get(k, k) if fmt == "shp" else k for k in EXPORT_FIELDS]
    pyogrio.raw.write(path, np.array([bytes(r["wkb"]) for r in found], dtype=object), values,
                      names, field_mask=masks, driver=FORMATS[fmt][0], crs="EPSG:4326",
                      geometry_type="MultiPolygon", encoding="UTF-8", layer=path.stem,
                      dataset_options=GPKG_OPTIONS if fmt == "gpkg" else None)


def _geojson(found: list[dict]) -> str:
    # Python writes each float as the shortest text that reads back to the same double, so the
    # file carries the exact stored coordinates (GDAL's writer would round them).
    features = []
    for r in found:
        geom = shapely.geometry.mapping(shapely.from_wkb(bytes(r["wkb"])))
        features.append({"type": "Feature", "id": r["code"], "geometry": geom,
                         "properties": {k: r[k] for k in EXPORT_FIELDS}})
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False)


def _xlsx(path: Path, found: list[dict]) -> None:
    """One sheet with Chinese headers, a point inside each area for people, and the exact WKT."""
    from openpyxl import Workbook

    wkts = [_wkt(r["wkb"]) for r in found]
    parts = max([-(-len(w) // XLSX_CELL) for w in wkts] or [1])
    book = Workbook(write_only=True)
    sheet = book.create_sheet("areas")
    sheet.append([attributes.ATTRIBUTES[k][1] for k in EXPORT_FIELDS] + list(attributes.XLSX_POINT)
                 + [attributes.XLSX_WKT] + [f"{attributes.XLSX_WKT}_{i}" for i in range(2, parts + 1)])
    for r, wkt in zip(found, wkts):
        cells = [_xlsx_value(k, r[k]) for k in EXPORT_FIELDS] + [r["lon"], r["lat"]]
        sheet.append(cells + [wkt[i:i + XLSX_CELL] for i in range(0, len(wkt), XLSX_CELL)])
    book.save(path)


def _xlsx_value(column: str, value):
    if column == "urban" and value is not None:
        return "是" if value else "否"
    return value


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

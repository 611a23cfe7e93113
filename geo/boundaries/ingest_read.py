"""Reading a boundary file: GeoJSON, GeoPackage, Shapefile and CSV (a `wkt` column) through
pyogrio, XLSX (a `几何(WKT)` column, as `export` writes it) through openpyxl.

Every reader returns the same three things: the metadata (`crs` when the file says), one WKB (or
None) per feature, and `{field: values}` in file order.
"""
from __future__ import annotations

import re
from pathlib import Path

import shapely

from geo.boundaries import fields as attributes
from geo.errors import InvalidInput
from geo.messages import joined, msg

FORMATS = msg("GeoJSON, GeoPackage, Shapefile, CSV or XLSX")


def read(path: Path, layer: str | None, name: str, field: str = "path"):
    """Read every feature of `path` (known to the caller as `name`): (metadata, WKBs, fields)."""
    if not path.exists():
        raise InvalidInput(field, msg("no file {name}", name=name))
    if path.suffix.lower() == ".xlsx":
        return _read_xlsx(path, layer, name, field)
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    options = {}
    if path.suffix.lower() == ".csv":
        options = {"GEOM_POSSIBLE_NAMES": attributes.CSV_WKT, "KEEP_GEOM_COLUMNS": "NO"}
    try:
        meta, _, geometry, values = pyogrio.raw.read(path, layer=layer, **options)
    except (DataSourceError, DataLayerError, OSError) as exc:
        # GDAL names the file by the path it opened: a server's temporary path means nothing
        # to whoever uploaded it.
        said = str(exc).replace(str(path), name).replace(path.name, name)
        # GDAL's own words (English) go with the message; a translation may leave them to `details`.
        raise InvalidInput(field, msg("cannot read {name} as {formats}: {said}", name=name,
                                      formats=FORMATS, said=said), details={"reason": said}) from None
    names = [str(n) for n in meta["fields"]]
    return meta, list(geometry), {n: list(v) for n, v in zip(names, values)}


def _read_xlsx(path: Path, layer: str | None, name: str, field: str):
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several kinds for a damaged file
        raise InvalidInput(field, msg("cannot read {name} as an XLSX workbook ({kind})", name=name,
                                      kind=exc.__class__.__name__)) from None
    try:
        if layer is not None and layer not in book.sheetnames:
            raise InvalidInput("layer", msg("no sheet {layer} in {name}; it has {sheets}", layer=repr(layer),
                                            name=name, sheets=joined(book.sheetnames, ", ")))
        sheet = book[layer] if layer is not None else book.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None) or ()
        headers = [str(h).strip() if h is not None else f"column{i + 1}" for i, h in enumerate(header)]
        table = [r for r in rows if any(v not in (None, "") for v in r)]
    finally:
        book.close()
    parts = {i: _wkt_part(h) for i, h in enumerate(headers)}
    pieces = sorted(((i, n) for i, n in parts.items() if n is not None), key=lambda p: p[1])
    if not pieces:
        raise InvalidInput(field, f"{name} has no geometry column ({attributes.XLSX_WKT}, or "
                                  f"{attributes.CSV_WKT}): boundaries need their polygons as WKT")
    wkbs = []
    for n, row in enumerate(table, start=2):
        wkt = "".join(str(row[i]) for i, _ in pieces if i < len(row) and row[i] is not None).strip()
        try:
            wkbs.append(shapely.to_wkb(shapely.from_wkt(wkt)) if wkt else None)
        except shapely.errors.GEOSException as exc:
            raise InvalidInput(field, f"{name}, row {n}: the geometry is not WKT ({exc})") from None
    geometry_columns = {i for i, _ in pieces}
    data = {h: [row[i] if i < len(row) else None for row in table]
            for i, h in enumerate(headers) if i not in geometry_columns}
    return {"crs": None, "fields": list(data)}, wkbs, data


def _wkt_part(header: str) -> int | None:
    """The order of a geometry column: 1 for `几何(WKT)` (or `wkt`), n for its `_n` continuation."""
    m = re.fullmatch(rf"(?:{re.escape(attributes.XLSX_WKT)}|{attributes.CSV_WKT})(?:_(\d+))?",
                     header, flags=re.IGNORECASE)
    if m is None:
        return None
    return int(m.group(1) or 1)

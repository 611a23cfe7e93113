"""The attributes of an area in boundary files, defined once: the names every export writes, the
names the importer reads back into the areas' own columns, and how their values are read.

| column | GeoJSON, GeoPackage, CSV | Shapefile | XLSX | also read |
|---|---|---|---|---|
| code | code | code | 编码 | id |
| name | name | name | 名称 | |
| level | level | level | 层级 | |
| parent's code | parent | parent | 上级编码 | parent_code |
| kind | kind | kind | 类型 | |
| households | households | households | 户数 | |
| population | population | population | 人口 | |
| urban | urban | urban | 城镇 (是/否) | |
| 网格长 count | leaders | leaders | 网格长 | leader |
| 网格员 count | workers | workers | 网格员 | worker |
| 监督员 count | supervisors | supervisor | 监督员 | supervisor |
| version | version | version | 版本 | |

Names are matched exactly first, then ignoring case (a DBF may hold them upper-cased).
"""
from __future__ import annotations

import json
import math
import re

import numpy as np

# column: (the name every export but XLSX writes, the XLSX header, other names read back)
ATTRIBUTES = {
    "code": ("code", "编码", ("id",)),
    "name": ("name", "名称", ()),
    "level": ("level", "层级", ()),
    "parent": ("parent", "上级编码", ("parent_code",)),
    "kind": ("kind", "类型", ()),
    "households": ("households", "户数", ()),
    "population": ("population", "人口", ()),
    "urban": ("urban", "城镇", ()),
    "leaders": ("leaders", "网格长", ("leader",)),
    "workers": ("workers", "网格员", ("worker",)),
    "supervisors": ("supervisors", "监督员", ("supervisor",)),
    "version": ("version", "版本", ()),
}
EXPORT_FIELDS = tuple(ATTRIBUTES)
# A DBF field name has at most 10 characters; this is the one that would not fit.
SHAPEFILE_NAMES = {"supervisors": "supervisor"}
COUNTS = ("households", "population", "leaders", "workers", "supervisors", "version")
STAFF = {"leaders": "leader", "workers": "worker", "supervisors": "supervisor"}
XLSX_POINT = ("经度", "纬度")   # a point inside the area (its label point), for people
XLSX_WKT = "几何(WKT)"        # the exact geometry, continued in "几何(WKT)_2", … past a cell's size
CSV_WKT = "wkt"
TRUE = {"1", "true", "t", "yes", "y", "是", "城镇", "urban"}
FALSE = {"0", "false", "f", "no", "n", "否", "农村", "rural"}


def names_of(column: str) -> tuple[str, ...]:
    """Every name a file may give the column, the export's own first."""
    plain, header, others = ATTRIBUTES[column]
    return (plain, header, SHAPEFILE_NAMES.get(column, plain), *others)


def find(fields, column: str) -> str | None:
    """The file's field holding `column`, by its names: exactly, then ignoring case."""
    names = names_of(column)
    for name in names:
        if name in fields:
            return name
    lowered = {f.lower(): f for f in fields}
    return next((lowered[n.lower()] for n in names if n.lower() in lowered), None)


def values(fields: dict[str, list], name: str) -> list | None:
    """A field's values; `parent.adcode` reads member `adcode` of a field `parent` holding objects.

    Returns None when the file has no such field (nor an object field to read it from).
    """
    if name in fields:
        return fields[name]
    head, dot, rest = name.partition(".")
    while dot:
        if head in fields:
            return [member(v, rest) for v in fields[head]]
        more, dot, rest = rest.partition(".")
        head = f"{head}.{more}"
    flattened = name.replace(".", "_")  # what GDAL's FLATTEN_NESTED_ATTRIBUTES would call it
    return fields.get(flattened) if "." in name else None


def as_object(value) -> dict | None:
    """A value that is an object (GeoJSON nested properties arrive as JSON text), else None."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def member(value, path: str):
    """Member `path` (dotted) of an object value; None where there is none."""
    for key in path.split("."):
        value = as_object(value)
        if value is None:
            return None
        value = value.get(key)
    return value


def text(value) -> str | None:
    """A value as trimmed text (a whole float as an integer: 1.0 → '1'); None when empty."""
    if value is None:
        return None
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            value = int(value)
    if isinstance(value, np.generic):
        value = value.item()
    out = str(value).strip()
    return out or None


def count(value) -> int | None:
    """A whole number ≥ 0; None when empty. Raises ValueError for anything else."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(value)
    raw = text(value)
    if raw is None:
        return None
    if not re.fullmatch(r"\+?\d+(\.0*)?", raw.replace(",", "")):
        raise ValueError(raw)
    return int(float(raw.replace(",", "")))


def flag(value) -> bool | None:
    """Urban or not: 1/0, true/false, 是/否, 城镇/农村; None when empty. ValueError otherwise."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raw = text(value)
    if raw is None:
        return None
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise ValueError(raw)


def level_of(value) -> int | None:
    """A level as the exports write it (1–5); None for anything else (DataV's 'district' …)."""
    try:
        found = count(value)
    except ValueError:
        return None
    return found if found in (1, 2, 3, 4, 5) else None

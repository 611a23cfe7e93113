"""Read the real inputs in data/reference: the district outline and its division codes and names."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import shapely
from shapely.geometry import MultiPolygon

from geo import crs
from geo.errors import SetupError

from .coordinates import as_multi

DISTRICT_CODE = "411103"
DISTRICT_NAME = "郾城区"
OUTLINE_FILE = "411103_yancheng_outline_gcj02.geojson"
DIVISIONS_FILE = "411103_divisions.csv"
REFERENCE_DIR = Path(__file__).parents[1] / "reference"


def realdata_file(name: str) -> Path:
    """Return the path of a real reference file kept in data/reference (sources in data/SOURCES.md)."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        raise SetupError(f"real data file {path} is missing from the repository (see data/SOURCES.md)")
    return path


def read_outline() -> MultiPolygon:
    """Read the real district outline and convert it from GCJ-02 to WGS84."""
    path = realdata_file(OUTLINE_FILE)
    feature = json.loads(path.read_text(encoding="utf-8"))["features"][0]
    gcj = shapely.geometry.shape(feature["geometry"])
    return as_multi(shapely.make_valid(crs.transform_geometry(gcj, "gcj02")))


def read_divisions() -> list[dict]:
    """Read the real township and village codes and official names (2022 statistical list)."""
    path = realdata_file(DIVISIONS_FILE)
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = [{k.strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]
    return [r for r in rows if r["code"].startswith(DISTRICT_CODE)]


def is_street(code: str) -> bool:
    """Tell a 街道 (sub-district) by its township code: 001–099."""
    return int(code[6:9]) < 100

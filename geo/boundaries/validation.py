"""Problems a planner must see on the map: broken partitions, split-up grids, workload off the norms.

`areas.validate_partition` proves the hierarchy (invalid geometry, children outside their parent,
gaps, sibling overlaps); these are errors. This module adds what is legal but needs attention —
a grid in several pieces, a grid whose households are outside the norm (urban 300–500, rural
about 300: one natural village), a grid worker with too many households — as warnings, and
renders them all as GeoJSON features the planner map can draw.
"""
from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.areas import GEOJSON_DIGITS, area_row
from geo.boundaries.partition import validate_partition
from geo.messages import msg

# Households per grid (网格): urban 300–500 (≤ 2,000–2,500 people), rural about one natural
# village (~300 households); outside these a grid is flagged, not refused.
NORMS = {True: (300, 500), False: (200, 400)}
HOUSEHOLDS_PER_WORKER_MAX = 500
ERRORS = ("invalid_geometry", "gap", "outside_parent", "overlap")


def outside_norms(households: int | None, urban: bool | None) -> bool:
    """Whether a grid's households fall outside the norm for its kind (unknown: never)."""
    if households is None or urban is None:
        return False
    low, high = NORMS[bool(urban)]
    return not low <= households <= high


def problems(session: Session, root: str | None = None) -> list[dict]:
    """Every problem under `root` (everywhere without it): partition errors first, then warnings."""
    found = [{**p, "severity": "error"} for p in validate_partition(session, root)]
    params: dict = {}
    scope = "true"
    if root:
        params["path"] = area_row(session, root)["path"]
        scope = "a.path <@ CAST(:path AS ltree)"
    return found + _warnings(session, scope, params)


def problems_for(session: Session, ids: list[int]) -> list[dict]:
    """The warnings for particular areas (what an edit's preview shows about its result)."""
    if not ids:
        return []
    return _warnings(session, "a.id = ANY(:ids)", {"ids": list(ids)})


def as_geojson(found: list[dict]) -> dict:
    """Problems as a FeatureCollection: one feature per problem, its geometry the offending piece."""
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": p.get("geometry"),
         "properties": {k: v for k, v in p.items() if k != "geometry"}} for p in found]}


def _warnings(session, scope: str, params: dict) -> list[dict]:
    params = {**params, "digits": GEOJSON_DIGITS, "per_worker": HOUSEHOLDS_PER_WORKER_MAX,
              "ul": NORMS[True][0], "uh": NORMS[True][1], "rl": NORMS[False][0], "rh": NORMS[False][1]}
    found = []
    # Only the finest areas (no children) are grids; a district in three pieces is a fact of life.
    leaves = f"{scope} AND NOT EXISTS (SELECT 1 FROM areas c WHERE c.parent_id = a.id)"
    rows = session.execute(text(f"""
        SELECT a.code, ST_NumGeometries(a.geom) AS parts,
               ST_AsGeoJSON(ST_CollectionExtract(ST_Collect(ARRAY(
                   SELECT d.geom FROM ST_Dump(a.geom) d ORDER BY ST_Area(d.geom) DESC OFFSET 1)), 3),
                   :digits) AS gj,
               ST_Area(a.geom::geography) AS m2
          FROM areas a WHERE {leaves} AND ST_NumGeometries(a.geom) > 1 ORDER BY a.code"""),
        params).mappings()
    for r in rows:
        found.append({"kind": "non_contiguous", "severity": "warning", "codes": [r["code"]],
                      "area_m2": r["m2"],
                      "message": msg("{code} is in {parts} separate pieces", code=r["code"], parts=r["parts"]),
                      "geometry": json.loads(r["gj"])})
    rows = session.execute(text(f"""
        SELECT a.code, a.households, a.urban,
               (SELECT count(*) FROM area_staff s WHERE s.area_id = a.id AND s.role = 'worker') AS workers,
               ST_AsGeoJSON(ST_PointOnSurface(a.geom), :digits) AS gj
          FROM areas a
         WHERE {leaves} AND a.households IS NOT NULL AND a.level >= 4
         ORDER BY a.code"""), params).mappings()
    for r in rows:
        point = json.loads(r["gj"])
        if outside_norms(r["households"], r["urban"]):
            low, high = NORMS[bool(r["urban"])]
            values = {"code": r["code"], "households": r["households"], "low": low, "high": high}
            found.append({"kind": "workload", "severity": "warning", "codes": [r["code"]],
                          "area_m2": None, "households": r["households"],
                          "message": msg("{code} has {households} households; the urban norm is {low}–{high}",
                                         **values) if r["urban"] else
                                     msg("{code} has {households} households; the rural norm is {low}–{high}",
                                         **values),
                          "geometry": point})
        if r["workers"] == 0:
            found.append({"kind": "no_worker", "severity": "warning", "codes": [r["code"]],
                          "area_m2": None, "households": r["households"],
                          "message": msg("{code} has no grid worker (网格员)", code=r["code"]),
                          "geometry": point})
        elif r["households"] / r["workers"] > HOUSEHOLDS_PER_WORKER_MAX:
            found.append({"kind": "worker_load", "severity": "warning", "codes": [r["code"]],
                          "area_m2": None, "households": r["households"],
                          "message": msg("{code}: {load:.0f} households per grid worker (at most {most})",
                                         code=r["code"], load=r["households"] / r["workers"],
                                         most=HOUSEHOLDS_PER_WORKER_MAX),
                          "geometry": point})
    return found

"""What a change does to the areas it touches, for the preview: area, households, population,
entities, open incidents, staff, and the workload balance among the parent's children.
"""
from __future__ import annotations

import math

from sqlalchemy import text

from geo.boundaries import validation
from geo.vocabulary import OPEN_STATUSES


# -- statistics for the preview --------------------------------------------------------------
def area_stats(session, ids: list[int]) -> dict[int, dict]:
    if not ids:
        return {}
    rows = session.execute(text("""
        SELECT a.id, a.code, a.name, a.level, a.version, a.households, a.population, a.urban,
               p.code AS parent_code,
               ST_Area(a.geom::geography) AS area_m2, ST_NumGeometries(a.geom) AS parts,
               (SELECT count(*) FROM entities e WHERE e.area_id = a.id) AS entities,
               (SELECT count(*) FROM incidents i WHERE i.grid_id = a.id
                   AND i.status = ANY(:open)) AS open_incidents,
               (SELECT count(*) FROM area_staff s WHERE s.area_id = a.id) AS staff,
               (SELECT count(*) FROM area_staff s WHERE s.area_id = a.id AND s.role = 'worker') AS workers
          FROM areas a LEFT JOIN areas p ON p.id = a.parent_id WHERE a.id = ANY(:ids)"""),
        {"ids": ids, "open": list(OPEN_STATUSES)}).mappings()
    out = {}
    for r in rows:
        d = dict(r)
        d["area_m2"] = round(d["area_m2"], 2)
        d["households_per_worker"] = (round(d["households"] / d["workers"], 1)
                                      if d["households"] is not None and d["workers"] else None)
        out[d["id"]] = d
    return out


_ROW_FIELDS = ("code", "name", "version", "area_m2", "households", "population", "entities",
               "open_incidents", "staff", "workers", "households_per_worker", "parts")


def result_rows(before: dict, after: dict, successors: dict, keys: dict) -> list[dict]:
    rows = []
    created = set(keys.values())
    for area_id in sorted(set(before) | set(after)):
        b, a = before.get(area_id), after.get(area_id)
        current = a or b
        assert current is not None   # area_id is a key of before or after
        status = "retired" if area_id in successors else "created" if area_id in created else "changed"
        row = {"id": area_id, "code": current["code"], "name": current["name"], "status": status,
               "level": current["level"], "parent_code": current["parent_code"],
               "before": {k: b[k] for k in _ROW_FIELDS} if b else None,
               "after": {k: a[k] for k in _ROW_FIELDS} if a else None}
        if status == "retired" and successors.get(area_id):
            row["successor"] = successors[area_id]
        rows.append(row)
    order = {"retired": 0, "changed": 1, "created": 2}
    return sorted(rows, key=lambda r: (order[r["status"]], r["code"]))


def children_households(session, parents: set) -> dict[str, list]:
    """Per parent code: (households, urban) of each child, for the workload balance."""
    rows = session.execute(text(
        "SELECT p.code, a.households, a.urban FROM areas a JOIN areas p ON p.id = a.parent_id "
        "WHERE a.parent_id = ANY(:p) ORDER BY p.code, a.id"),
        {"p": sorted(x for x in parents if x is not None)}).all()
    out: dict[str, list] = {}
    for code, households, urban in rows:
        out.setdefault(code, []).append((households, urban))
    return out


def workload_balance(before: dict, after: dict) -> dict:
    """Workload balance among the children of each affected parent, before and after."""
    out = {}
    for code in sorted(set(before) | set(after)):
        was, now = before.get(code, []), after.get(code, [])
        out[code] = {
            "before": _spread([h for h, _ in was if h is not None]),
            "after": _spread([h for h, _ in now if h is not None]),
            "outside_norms_before": sum(1 for h, u in was if validation.outside_norms(h, u)),
            "outside_norms_after": sum(1 for h, u in now if validation.outside_norms(h, u))}
    return out


def _spread(values: list[int]) -> dict:
    if not values:
        return {"areas": 0}
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {"areas": len(values), "min": min(values), "max": max(values), "mean": round(mean, 1),
            "cv": round(sd / mean, 3) if mean else None}

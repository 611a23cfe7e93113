"""Grid assignment: each incident belongs to the finest area containing its point (the lowest id
on a shared edge), decided by one UPDATE in one of three shapes of that one rule.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.db import rowcount
from geo.errors import InvalidInput
from geo.incidents import gridlookup
from geo.incidents.intake import PRECISE_LEVELS

# -- assignment ----------------------------------------------------------------------------------
# Three shapes of one rule — the finest area containing each point, the lowest id on a shared edge —
# chosen by size and selection. Each is one UPDATE; rows whose assignment is unchanged are not
# rewritten.
#
# A few incidents: each point probes the GiST index on areas.geom and tests the candidates.
_ASSIGN_FEW = """
    UPDATE {table} i
       SET grid_id = h.area_id, area_id = h.area_id, outside_jurisdiction = h.area_id IS NULL,
           district_code = h.district_code
      FROM (SELECT t.id, f.id AS area_id, r.code AS district_code
              FROM {table} t
              LEFT JOIN LATERAL (
                    SELECT a.id, a.path FROM areas a
                     WHERE a.geom && t.geom AND ST_Intersects(a.geom, t.geom)
                     ORDER BY a.level DESC, a.id LIMIT 1) f ON true
              LEFT JOIN areas r ON r.id = CAST(subpath(f.path, 0, 1)::text AS int)
             WHERE t.geom IS NOT NULL AND {where}) h
     WHERE i.id = h.id
       AND (i.grid_id IS DISTINCT FROM h.area_id OR i.area_id IS DISTINCT FROM h.area_id
            OR i.outside_jurisdiction IS DISTINCT FROM (h.area_id IS NULL))
"""
# Many incidents in a boundary edit's region, or anywhere when there is no grid lookup: the loop
# turns round. The areas near the region (or all) are cut into the pieces that partition the
# jurisdiction (gridlookup.PIECES); each piece then scans the GiST index on the incidents' points
# for its bounding box, so one polygon is tested against many points in a row (PostGIS keeps its
# edge index cached between calls) instead of every point fetching and testing several large
# polygons. A point on an edge meets two pieces; the finest level and then the lowest area id
# wins, as above.
_PIECES_AND_HITS = """
    WITH pieces AS MATERIALIZED (""" + gridlookup.PIECES + """),
    hits AS (
        -- finest level first, then the lowest id, as one bigint so the aggregate is cheap
        SELECT t.id, min((CAST(9 - p.level AS bigint) << 32) | p.area_id) & 4294967295 AS area_id
          FROM pieces p JOIN {table} t ON t.geom && p.geom AND ST_Intersects(p.geom, t.geom)
         WHERE {where}
         GROUP BY t.id)
"""
_ASSIGN_MANY = _PIECES_AND_HITS + """
    UPDATE {table} i
       SET grid_id = h.area_id, area_id = h.area_id, outside_jurisdiction = h.area_id IS NULL,
           district_code = r.code
      FROM {table} t
      LEFT JOIN hits h ON h.id = t.id
      LEFT JOIN areas f ON f.id = h.area_id
      LEFT JOIN areas r ON r.id = CAST(subpath(f.path, 0, 1)::text AS int)
     WHERE i.id = t.id AND t.geom IS NOT NULL AND {where}
       AND (i.grid_id IS DISTINCT FROM h.area_id OR i.area_id IS DISTINCT FROM h.area_id
            OR i.outside_jurisdiction IS DISTINCT FROM (h.area_id IS NULL))
"""
# The same computation, counted instead of written: what a boundary edit would move.
_IMPACT = _PIECES_AND_HITS + """
    SELECT count(*) AS checked,
           count(*) FILTER (WHERE t.grid_id IS DISTINCT FROM h.area_id) AS moving,
           count(*) FILTER (WHERE h.area_id IS NULL) AS outside
      FROM {table} t LEFT JOIN hits h ON h.id = t.id
     WHERE t.geom IS NOT NULL AND {where}
"""
# Many incidents anywhere (all of them, whole subtrees, many ids): each point reads its cell of the
# grid lookup (gridlookup.changes) and only points in cells a boundary crosses meet a polygon.
_ASSIGN_LOOKUP = """
    UPDATE {table} i
       SET grid_id = h.area, area_id = h.area, outside_jurisdiction = h.area IS NULL,
           district_code = r.code
      FROM ({changes}) h
      LEFT JOIN areas f ON f.id = h.area
      LEFT JOIN areas r ON r.id = CAST(subpath(f.path, 0, 1)::text AS int)
     WHERE i.id = h.id
"""
FEW = 2000  # below this many incidents the per-point probe is the cheaper shape
# A stale grid lookup is rebuilt (one to two seconds for the demo's 749 areas) only for at least
# this many incidents; fewer go the pieces' way, which needs nothing built.
LOOKUP_REBUILD = 100_000
BULK_WORK_MEM = "256MB"  # a million incidents' hash aggregate fits without spilling to disk
BULK_WORKERS = "2"  # parallel workers for a counting statement (an UPDATE never runs in parallel)
_PRECISE = "(t.geocode_level IS NULL OR t.geocode_level IN ({}))".format(
    ", ".join(f"'{lv}'" for lv in PRECISE_LEVELS))


def assign(session: Session, *, incident_ids: Iterable[int] | None = None,
           within_wkt: str | None = None, area_codes: Iterable[str] | None = None,
           everything: bool = False, table: str = "incidents") -> int:
    """(Re)assign incidents to the finest area containing their point; return rows changed.

    Select by ids, by a WKT geometry (the region a boundary edit touched: pass the union of the old
    and new shapes), by the areas they are currently assigned to (with their subtrees), or all.
    Incidents located only to a village or township keep their area.
    """
    where, params, few = _selection(incident_ids=incident_ids, within_wkt=within_wkt,
                                    area_codes=area_codes, everything=everything, table=table)
    if where is None:
        return 0
    if not few and within_wkt is not None:
        # An edit touches a small region: count first (the GiST index answers) and probe point by
        # point when only a few incidents lie there.
        few = _count(session, table, where, params) <= FEW
    if few:
        return rowcount(session.execute(text(_ASSIGN_FEW.format(table=table, where=where)), params))
    lookup = _lookup(session, table, where, params, incident_ids=incident_ids, within_wkt=within_wkt)
    with _bulk(session):
        if lookup is not None:
            sql = _ASSIGN_LOOKUP.format(table=table, changes=gridlookup.changes(table, where, lookup))
            return rowcount(session.execute(text(sql), {**params, **lookup.params}))
        sql = _ASSIGN_MANY.format(table=table, where=where, **_near(within_wkt))
        return rowcount(session.execute(text(sql), params))


def _count(session: Session, table: str, where: str, params: dict) -> int:
    """How many incidents the selection holds."""
    return session.execute(text(f"SELECT count(*) FROM {table} t WHERE {where}"), params).scalar_one()


def _lookup(session: Session, table: str, where: str, params: dict, *, incident_ids,
            within_wkt) -> gridlookup.Lookup | None:
    """The grid lookup for a bulk run, or None to cut pieces instead.

    An edit's region goes the pieces' way: its areas have just changed, so the lookup is stale, and
    only the pieces near the region are needed. Anything else reads the lookup when it is current,
    and rebuilds it first when enough incidents are selected to pay for that.
    """
    if within_wkt is not None:
        return None
    found = gridlookup.current(session)
    if found is not None:
        return found
    selected = len(params["ids"]) if incident_ids is not None else _count(session, table, where, params)
    return gridlookup.refresh(session) if selected >= LOOKUP_REBUILD else None


def _near(within_wkt: str | None) -> dict:
    """Only the areas that can hold the selected points need cutting into pieces."""
    if within_wkt is None:
        return {"near": "true", "near_p": "true"}
    return {"near": "a.geom && ST_GeomFromText(:wkt, 4326)",
            "near_p": "p.geom && ST_GeomFromText(:wkt, 4326)"}


def reassignment_impact(session: Session, *, within_wkt: str | None = None,
                        area_codes: Iterable[str] | None = None, everything: bool = False,
                        table: str = "incidents") -> dict:
    """What `assign` would do, without writing: incidents checked, moving to another area, outside."""
    where, params, _ = _selection(incident_ids=None, within_wkt=within_wkt, area_codes=area_codes,
                                  everything=everything, table=table)
    if where is None:
        return {"checked": 0, "moving": 0, "outside": 0}
    lookup = _lookup(session, table, where, params, incident_ids=None, within_wkt=within_wkt)
    with _bulk(session):
        if lookup is not None:
            row = session.execute(text(gridlookup.tallied(table, where, lookup)),
                                  {**params, **lookup.params}).one()
            # A boundary edit committed since the lookup was chosen: count the pieces' way.
            if row.fresh:
                tally = int(row.tally or 0)
                return {"checked": row.checked, "moving": tally & 0xFFFFFFFF, "outside": tally >> 32}
        sql = _IMPACT.format(table=table, where=where, **_near(within_wkt))
        return dict(session.execute(text(sql), params).mappings().one())


@contextmanager
def _bulk(session: Session):
    """Give one bulk statement enough sort/hash memory not to spill and parallel workers to count
    with, then restore the settings (a failed statement's transaction restores them itself)."""
    settings: dict[str, Any] = {"work_mem": BULK_WORK_MEM, "max_parallel_workers_per_gather": BULK_WORKERS}
    before = {name: session.execute(text("SELECT current_setting(:n)"), {"n": name}).scalar()
              for name in settings}
    for name, value in settings.items():
        session.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})
    yield
    for name, value in before.items():
        session.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})


def _selection(*, incident_ids, within_wkt, area_codes, everything, table):
    """The WHERE clause (alias t) choosing incidents to assign, its parameters, and whether few."""
    where, params = [_PRECISE], {}
    few = False
    if incident_ids is not None:
        ids = [int(i) for i in incident_ids]
        if not ids:
            return None, {}, True
        where.append("t.id = ANY(:ids)")
        params["ids"] = ids
        few = len(ids) <= FEW
    if within_wkt is not None:
        where.append("t.geom && ST_GeomFromText(:wkt, 4326) "
                     "AND ST_Intersects(t.geom, ST_GeomFromText(:wkt, 4326))")
        params["wkt"] = within_wkt
    if area_codes is not None:
        codes = list(area_codes)
        if not codes:
            return None, {}, True
        where.append("(COALESCE(t.area_id, t.grid_id) IN (SELECT c.id FROM areas p JOIN areas c "
                     "ON c.path <@ p.path WHERE p.code = ANY(:codes)) "
                     "OR (t.area_id IS NULL AND t.grid_id IS NULL))")
        params["codes"] = codes
    if len(where) == 1 and not everything:
        raise InvalidInput("scope", "assign needs incident_ids, within_wkt, area_codes or everything=True")
    if not re.fullmatch(r"[a-z_][a-z0-9_.]*", table):
        raise InvalidInput("table", f"not a table name: {table!r}")
    return " AND ".join(where), params, few

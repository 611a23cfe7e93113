"""Patrol coverage: per grid, patrol visits and minutes over the last 24 hours or 7 days, set
against the grid's risk colour, and the high-risk grids no patrol has been through lately.

Time in a grid comes from `geo.tracks.grid_time`: the clean fixes of every unit, thinned to one per
`sample` seconds (a patrol crossing a grid between two thinned fixes still counts, because each
segment is intersected with the grids). A grid's risk colour is its newest `risk_levels` row, a
manual override winning while it lasts; without any row the colour is "unknown".
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InvalidInput
from geo.patrol import tracks
from geo.policy import Scope

WINDOWS = {"24h": 24, "7d": 24 * 7}
HIGH_RISK = ("red", "orange")
RISK_ORDER = {"red": 0, "orange": 1, "yellow": 2, "blue": 3, "unknown": 4}


def parse_hours(value, default: float = 24) -> float:
    """'24h', '7d', or a number of hours (at most 31 days)."""
    if value in (None, ""):
        return default
    if isinstance(value, str) and value in WINDOWS:
        return float(WINDOWS[value])
    try:
        hours = float(str(value).rstrip("h"))
    except ValueError:
        raise InvalidInput("hours", f"hours must be a number, 24h or 7d; got {value!r}") from None
    if not 0 < hours <= 24 * 31:
        raise InvalidInput("hours", "hours must be between 0 and 744 (31 days)")
    return hours


def sample_for(hours: float) -> int:
    """Seconds between the fixes kept for coverage: finer for short windows."""
    return 15 if hours <= 6 else 30 if hours <= 48 else 120


RISK_SQL = """
SELECT DISTINCT ON (r.area_id) r.area_id,
       CASE WHEN r.override_level IS NOT NULL AND (r.override_until IS NULL OR r.override_until > now())
            THEN r.override_level ELSE r.level END AS colour, r.score
  FROM risk_levels r
 WHERE r.period_start <= current_date
 ORDER BY r.area_id, r.period_start DESC
"""


def coverage(session: Session, scope: Scope, hours: float = 24,
             level: int = tracks.GRID_LEVEL, end: datetime | None = None) -> list[dict]:
    """Every grid (in scope) with its risk colour, patrol minutes, visits, units and last patrol."""
    end = end or datetime.now(timezone.utc)
    start = end - timedelta(hours=hours)
    sample = sample_for(hours)
    source = ("SELECT DISTINCT ON (unit_id, floor(extract(epoch FROM ts) / :sample)) unit_id, ts, geom "
              "FROM positions WHERE ts >= :s AND ts < :e AND flags = 0 "
              "ORDER BY unit_id, floor(extract(epoch FROM ts) / :sample), ts")
    patrolled = {g["id"]: g for g in tracks.grid_time(
        session, source, {"s": start, "e": end, "sample": sample}, max_gap=max(600, 3 * sample),
        level=level)}
    inside, params = scope.sql()
    grids = session.execute(text(f"""
        SELECT a.id, a.code, a.name, coalesce(r.colour, 'unknown') AS risk, r.score
          FROM areas a LEFT JOIN ({RISK_SQL}) r ON r.area_id = a.id
         WHERE a.level = :level AND {inside}
         ORDER BY a.code"""), {"level": level, **params}).mappings().all()
    out = []
    for g in grids:
        p = patrolled.get(g["id"], {})
        out.append({"id": g["id"], "code": g["code"], "name": g["name"], "risk": g["risk"],
                    "score": g["score"], "minutes": p.get("minutes", 0.0), "visits": p.get("visits", 0),
                    "units": p.get("units", 0), "last_patrol": p.get("last_at")})
    return out


def gaps(session: Session, scope: Scope, hours: float = 6,
         colours=HIGH_RISK, level: int = tracks.GRID_LEVEL) -> list[dict]:
    """High-risk grids with no patrol in the last `hours`, highest risk first."""
    rows = [g for g in coverage(session, scope, hours, level)
            if g["risk"] in colours and g["visits"] == 0]
    rows.sort(key=lambda g: (RISK_ORDER.get(g["risk"], 9), -(g["score"] or 0), g["code"]))
    return rows


def as_geojson(session: Session, rows: list[dict], tolerance: float = 0.00005) -> dict:
    """The rows as a FeatureCollection with (simplified) grid outlines."""
    if not rows:
        return {"type": "FeatureCollection", "features": []}
    ids = [r["id"] for r in rows]
    geoms: dict[int, str] = dict(session.execute(text(
        "SELECT id, ST_AsGeoJSON(ST_SimplifyPreserveTopology(geom, :t), 6) FROM areas WHERE id = ANY(:ids)"),
        {"ids": ids, "t": tolerance}).all())
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": r["id"], "geometry": json.loads(geoms[r["id"]]) if geoms.get(r["id"]) else None,
         "properties": r} for r in rows]}


# Fixes of units that came within this distance of a tile's grids feed that tile's figures: a
# patrol crossing a grid between two fixes farther away than this (a long gap) is left out there.
NEAR_M = 2000.0


def in_bounds(session: Session, scope: Scope, bounds_sql: str, params: dict, hours: float = 24,
              level: int = tracks.GRID_LEVEL, end: datetime | None = None) -> list[dict]:
    """`coverage` of the grids (in scope) meeting `bounds_sql` (a WGS84 geometry expression), from
    the fixes of the units that came near them: the figures a map tile shows."""
    end = end or datetime.now(timezone.utc)
    start = end - timedelta(hours=hours)
    inside, scope_params = scope.sql()
    grids = session.execute(text(f"""
        SELECT a.id, a.code, a.name, coalesce(r.colour, 'unknown') AS risk, r.score
          FROM areas a LEFT JOIN ({RISK_SQL}) r ON r.area_id = a.id
         WHERE a.level = :level AND {inside} AND a.geom && {bounds_sql}
         ORDER BY a.code"""), {**params, **scope_params, "level": level}).mappings().all()
    if not grids:
        return []
    sample = sample_for(hours)
    near = """
        SELECT DISTINCT unit_id FROM positions
         WHERE ts >= :s AND ts < :e AND flags = 0
           AND geom && (SELECT ST_Expand(e, :near / (111320 * cos(radians(ST_Y(ST_Centroid(e))))), :near / 110540)
                          FROM (SELECT ST_Extent(geom)::geometry AS e FROM areas WHERE id = ANY(:grid_ids)) x)"""
    source = ("SELECT DISTINCT ON (unit_id, floor(extract(epoch FROM ts) / :sample)) unit_id, ts, geom "
              f"FROM positions WHERE ts >= :s AND ts < :e AND flags = 0 AND unit_id IN ({near}) "
              "ORDER BY unit_id, floor(extract(epoch FROM ts) / :sample), ts")
    patrolled = {g["id"]: g for g in tracks.grid_time(
        session, source, {"s": start, "e": end, "sample": sample, "near": NEAR_M,
                          "grid_ids": [g["id"] for g in grids]},
        max_gap=max(600, 3 * sample), level=level)}
    out = []
    for g in grids:
        p = patrolled.get(g["id"], {})
        out.append({"id": g["id"], "code": g["code"], "name": g["name"], "risk": g["risk"],
                    "score": g["score"], "minutes": p.get("minutes", 0.0), "visits": p.get("visits", 0),
                    "units": p.get("units", 0), "last_patrol": p.get("last_at")})
    return out

"""The governance layers as vector tiles — areas, four-colour risk, patrol coverage and incidents —
each read for one audience (geo.policy): areas within what the scope may read, incidents from
`Audience.incidents` (a sensitive one at its grid's label point for an audience that generalises),
aggregated below POINT_ZOOM so that no tile carries thousands of points.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import areas
from geo.policy import Audience
from geo.vocabulary import CATEGORIES, RESOLVED_STATUSES

from . import coverage, mvt
from .mvt import BOUNDS, INNER, Built, TileAddress
from .selection import TZ

# The zoom from which each level of areas is drawn: districts always, grids once a tile is a town.
LEVEL_MINZOOM = {1: 0, 2: 9, 3: 11, 4: 12, 5: 15}
RISK_MINZOOM = 10
COVERAGE_MINZOOM = 12
COVERAGE_REFRESH = timedelta(minutes=1)   # the 24-hour window moves: a coverage tile lives a minute
INCIDENTS_MINZOOM = 8
POINT_ZOOM = 14          # incidents are points from here, counts per cell below
CELL_SPLITS = 4          # a tile of counts is cut into 2^4 × 2^4 cells
EARTH_M = 40075016.686   # the equator's length: a tile at zoom z is EARTH_M / 2^z mercator metres

# A grid's level in force: the newest stored period that has begun, an unexpired override winning
# (as layers/risk.py shows it); `until` is when that override lapses and the tile goes stale.
RISK_IN_FORCE = """
    SELECT CASE WHEN x.override_level IS NOT NULL AND x.override_until > :now
                THEN x.override_level ELSE x.level END AS colour,
           x.level AS computed, x.override_level IS NOT NULL AND x.override_until > :now AS overridden,
           CASE WHEN x.override_level IS NOT NULL AND x.override_until > :now THEN x.override_until END AS until,
           x.period_start
      FROM risk_levels x WHERE x.area_id = a.id AND x.period_start <= :day
     ORDER BY x.period_start DESC LIMIT 1
"""


def max_level(z: int) -> int:
    """The finest level of areas drawn at zoom z."""
    return max(level for level, minzoom in LEVEL_MINZOOM.items() if minzoom <= z)


def _clock(now: datetime) -> dict:
    return {"now": now, "day": now.astimezone(TZ).date()}


def _mvt_and_expiry(session: Session, sql: str, params: dict) -> Built:
    row = session.execute(text(sql), params).one()
    return Built(bytes(row[0]), row[1])


# -- areas -------------------------------------------------------------------------------------------
def build_areas(session: Session, t: TileAddress, audience: Audience, now: datetime) -> Built:
    """Areas of every level the zoom shows (code, name, level, parent code, a grid's risk colour)
    and their label points, as far as the scope may read them (its subtrees and their ancestors)."""
    params = {**t.params, **_clock(now), "max_level": max_level(t.z)}
    visible = areas.visible_sql(audience.scope, params)
    sql = f"""
        WITH shown AS (
            SELECT a.code, a.name, a.level, p.code AS parent_code,
                   CASE WHEN a.level = 4 THEN coalesce(r.colour, 'unknown') END AS risk, r.until,
                   {mvt.geom('a.geom')} AS geom,
                   CASE WHEN a.label_point && {BOUNDS} THEN {mvt.geom('a.label_point')} END AS label
              FROM areas a
              LEFT JOIN areas p ON p.id = a.parent_id
              LEFT JOIN LATERAL ({RISK_IN_FORCE}) r ON a.level = 4
             WHERE a.geom && {BOUNDS} AND a.level <= :max_level AND {visible})
        SELECT {mvt.layer('areas', 'SELECT code, name, level, parent_code, risk, geom FROM shown')}
            || {mvt.layer('area_labels', 'SELECT code, name, level, label AS geom FROM shown')},
               (SELECT min(until) FROM shown)"""
    return _mvt_and_expiry(session, sql, params)


# -- risk ----------------------------------------------------------------------------------------------
def build_risk(session: Session, t: TileAddress, audience: Audience, now: datetime) -> Built:
    """Every grid of the scope with its four-colour level in force (stored levels; `unknown` for a
    grid never assessed), whether an override sets it, and the period it belongs to."""
    if t.z < RISK_MINZOOM:
        return Built(b"")
    params = {**t.params, **_clock(now)}
    inside, scope_params = audience.scope.sql()
    params.update(scope_params)
    sql = f"""
        WITH shown AS (
            SELECT a.code, a.name, coalesce(r.colour, 'unknown') AS risk, r.computed,
                   coalesce(r.overridden, false) AS override, r.period_start::text AS period_start,
                   r.until, {mvt.geom('a.geom')} AS geom
              FROM areas a LEFT JOIN LATERAL ({RISK_IN_FORCE}) r ON true
             WHERE a.level = 4 AND a.geom && {BOUNDS} AND {inside})
        SELECT {mvt.layer('risk', 'SELECT code, name, risk, computed, override, period_start, geom FROM shown')},
               (SELECT min(until) FROM shown)"""
    return _mvt_and_expiry(session, sql, params)


# -- coverage ------------------------------------------------------------------------------------------
def build_coverage(session: Session, t: TileAddress, audience: Audience, now: datetime) -> Built:
    """Patrol coverage of the last 24 hours per grid of the scope: risk colour, minutes, visits,
    units and the last patrol (layers/coverage.py); it goes stale within a minute."""
    if t.z < COVERAGE_MINZOOM:
        return Built(b"")
    rows = coverage.in_bounds(session, audience.scope, BOUNDS, t.params, 24, end=now)
    expires = now + COVERAGE_REFRESH
    if not rows:
        return Built(b"", expires)
    rows_sql = f"""
        SELECT a.code, a.name, c.risk, c.minutes, c.visits, c.units, c.last_patrol, {mvt.geom('a.geom')} AS geom
          FROM unnest(CAST(:ids AS integer[]), CAST(:risk AS text[]), CAST(:minutes AS float8[]),
                      CAST(:visits AS integer[]), CAST(:units AS integer[]), CAST(:last AS text[]))
               AS c(id, risk, minutes, visits, units, last_patrol)
          JOIN areas a ON a.id = c.id"""
    sql = f"SELECT {mvt.layer('coverage', rows_sql)}"
    mvt_bytes = session.execute(text(sql), {
        **t.params, "ids": [r["id"] for r in rows], "risk": [r["risk"] for r in rows],
        "minutes": [r["minutes"] for r in rows], "visits": [r["visits"] for r in rows],
        "units": [r["units"] for r in rows], "last": [r["last_patrol"] for r in rows]}).scalar_one()
    return Built(bytes(mvt_bytes), expires)


# -- incidents -----------------------------------------------------------------------------------------
def cell_splits(t: TileAddress, audience: Audience) -> int:
    """How many times a tile of counts is halved into cells: 4 (16 × 16 cells) unless cells would
    then be smaller than the policy lets an audience that generalises see (geo.policy: the area of
    a hexagon of GENERALISED_MIN_HEX_M, measured where the tile is farthest from the equator)."""
    floor_m = audience.min_hex_m
    if floor_m is None:
        return CELL_SPLITS
    side = math.sqrt(1.5 * math.sqrt(3.0)) * floor_m   # a square as large as that hexagon
    n = 1 << t.z
    lat_north = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * t.y / n))))
    lat_south = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (t.y + 1) / n))))
    # A mercator metre is shortest on the ground where the tile is farthest from the equator.
    shrink = math.cos(math.radians(max(abs(lat_north), abs(lat_south))))
    k = CELL_SPLITS
    while k > 0 and EARTH_M / (1 << (t.z + k)) * shrink < side:
        k -= 1
    return k


def build_incidents(session: Session, t: TileAddress, audience: Audience, now: datetime) -> Built:
    """The incidents the audience may read where it may see them: points from POINT_ZOOM, below
    it counts per square cell of the tile (per category, and those still open)."""
    if t.z < INCIDENTS_MINZOOM:
        return Built(b"")
    params = dict(t.params)
    relation = audience.incidents(params)
    if t.z >= POINT_ZOOM:
        rows = f"""
            SELECT i.id, i.category, i.severity, i.status,
                   extract(epoch FROM i.occurred_at)::bigint AS occurred, i.sensitive, i.generalised,
                   {mvt.geom('i.geom')} AS geom
              FROM {relation} WHERE i.geom && {BOUNDS}"""
        return Built(bytes(session.execute(text(f"SELECT {mvt.layer('incidents', rows)}"), params).scalar_one()))
    k = cell_splits(t, audience)
    params.update(cz=t.z + k, n=float(1 << (t.z + k)), x0=t.x << k, y0=t.y << k, k=1 << k,
                  resolved=list(RESOLVED_STATUSES))
    per_category = ", ".join(f"count(*) FILTER (WHERE category = '{c}') AS {c}" for c in CATEGORIES)
    # Each point's cell, in the tile's Web Mercator grid at zoom z + k; a cell lies in one tile
    # only, so neighbouring tiles never count one incident twice and no cell comes from the buffer.
    rows = f"""
        SELECT count(*) AS count, {per_category},
               count(*) FILTER (WHERE NOT status = ANY(:resolved)) AS open,
               ST_AsMVTGeom(ST_TileEnvelope(:cz, cx, cy), {mvt.TILE}, {mvt.EXTENT}, 0, true) AS geom
          FROM (SELECT i.category, i.status,
                       floor((ST_X(i.geom) + 180) / 360 * :n)::integer AS cx,
                       floor((1 - asinh(tan(radians(ST_Y(i.geom)))) / pi()) / 2 * :n)::integer AS cy
                  FROM {relation} WHERE i.geom && {INNER}) p
         WHERE cx >= :x0 AND cx < :x0 + :k AND cy >= :y0 AND cy < :y0 + :k
         GROUP BY cx, cy"""
    return Built(bytes(session.execute(text(f"SELECT {mvt.layer('incident_cells', rows)}"), params).scalar_one()))

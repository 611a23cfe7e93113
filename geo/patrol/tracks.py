"""Tracks: a unit's clean positions over a shift as one LineString, with distance, duration,
minutes spent in each grid and the grids crossed between sparse points.

Only clean fixes (flags = 0) count. Time between two consecutive fixes is shared among the grids
their straight segment passes through, in proportion to the length inside each, so a grid crossed
between two sparse fixes counts even with no fix inside; a gap longer than `max_gap` (device off,
tunnel) is not patrol time. Distances are metres on the geography type.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InvalidInput, NotFound

MAX_GAP_S = 600
GRID_LEVEL = 4
REPLAY_MAX_POINTS = 20000

# Per (unit, segment) the seconds spent in each grid; zero-length segments (standing still) go to
# one grid only. `visits` counts runs of consecutive segments inside the grid.
_GRID_TIME = """
WITH p AS (
    SELECT unit_id, ts, geom,
           lead(ts) OVER w AS ts2, lead(geom) OVER w AS geom2,
           row_number() OVER w AS i
      FROM ({source}) src
    WINDOW w AS (PARTITION BY unit_id ORDER BY ts)
), s AS (
    SELECT unit_id, i, ts, ts2, extract(epoch FROM ts2 - ts) AS dt,
           CASE WHEN ST_Equals(geom, geom2) THEN geom ELSE ST_MakeLine(geom, geom2) END AS g,
           ST_Distance(geom::geography, geom2::geography) AS len
      FROM p
     WHERE ts2 IS NOT NULL AND ts2 - ts <= make_interval(secs => :gap)
), x AS (
    SELECT s.unit_id, s.i, s.ts, s.ts2, a.id AS area_id,
           CASE WHEN s.len > 0.5
                THEN s.dt * least(1.0, ST_Length(ST_Intersection(s.g, a.geom)::geography) / s.len)
                ELSE s.dt END AS secs,
           s.len > 0.5 AS moving,
           row_number() OVER (PARTITION BY s.unit_id, s.i ORDER BY a.id) AS rn
      FROM s JOIN areas a ON a.level = :level AND ST_Intersects(a.geom, s.g)
), runs AS (
    SELECT x.*, i - row_number() OVER (PARTITION BY unit_id, area_id ORDER BY i) AS run
      FROM x WHERE moving OR rn = 1
)
SELECT a.id, a.code, a.name, sum(secs) / 60.0 AS minutes,
       count(DISTINCT (unit_id, run)) AS visits, count(DISTINCT unit_id) AS units,
       min(ts) AS first_at, max(ts2) AS last_at
  FROM runs JOIN areas a ON a.id = runs.area_id
 GROUP BY a.id, a.code, a.name
 ORDER BY min(ts)
"""


def grid_time(session: Session, source_sql: str, params: dict, max_gap: float = MAX_GAP_S,
              level: int = GRID_LEVEL) -> list[dict]:
    """Minutes and visits per grid for the fixes selected by `source_sql` (unit_id, ts, geom)."""
    rows = session.execute(text(_GRID_TIME.format(source=source_sql)),
                           {**params, "gap": max_gap, "level": level}).mappings().all()
    return [{"id": r["id"], "code": r["code"], "name": r["name"], "minutes": round(float(r["minutes"]), 2),
             "visits": r["visits"], "units": r["units"],
             "first_at": r["first_at"].isoformat() if r["first_at"] else None,
             "last_at": r["last_at"].isoformat() if r["last_at"] else None} for r in rows]


CLEAN_FIXES = ("SELECT unit_id, ts, geom FROM positions WHERE unit_id = :u AND ts >= :s AND ts < :e "
               "AND flags = 0")


def shift_window(session: Session, unit_id: int, shift_id: int | None = None,
                 at: datetime | None = None) -> tuple[datetime, datetime, int | None]:
    """The time window of a shift: the given one, else the one covering `at` (now), else the
    24 hours up to `at`."""
    if shift_id is not None:
        row = session.execute(text("SELECT starts_at, ends_at FROM shifts WHERE id = :i AND unit_id = :u"),
                              {"i": shift_id, "u": unit_id}).first()
        if row is None:
            raise NotFound(f"no shift {shift_id} for this unit", field="shift")
        return row[0], row[1], shift_id
    at = at or datetime.now(timezone.utc)
    row = session.execute(text("SELECT id, starts_at, ends_at FROM shifts WHERE unit_id = :u "
                               "AND starts_at <= :t AND ends_at > :t ORDER BY starts_at DESC LIMIT 1"),
                          {"u": unit_id, "t": at}).first()
    if row:
        return row[1], row[2], row[0]
    return at - timedelta(hours=24), at, None


def summary(session: Session, unit_id: int, start: datetime, end: datetime,
            max_gap: float = MAX_GAP_S) -> dict:
    """Distance, duration, point counts and per-grid minutes of a unit's clean fixes in [start, end)."""
    if end <= start:
        raise InvalidInput("to", "the end of the window must be after its start")
    row = session.execute(text("""
        SELECT count(*) FILTER (WHERE flags = 0) AS clean, count(*) AS total,
               count(*) FILTER (WHERE flags & 1 = 1) AS jumps,
               count(*) FILTER (WHERE flags & 2 = 2) AS poor,
               min(ts) FILTER (WHERE flags = 0) AS first, max(ts) FILTER (WHERE flags = 0) AS last
          FROM positions WHERE unit_id = :u AND ts >= :s AND ts < :e"""),
        {"u": unit_id, "s": start, "e": end}).mappings().one()
    length = session.execute(text(f"""
        SELECT ST_Length(ST_MakeLine(geom ORDER BY ts)::geography) FROM ({CLEAN_FIXES}) f"""),
        {"u": unit_id, "s": start, "e": end}).scalar() if row["clean"] > 1 else 0.0
    grids = grid_time(session, CLEAN_FIXES, {"u": unit_id, "s": start, "e": end}, max_gap)
    duration = (row["last"] - row["first"]).total_seconds() if row["first"] and row["last"] else 0.0
    return {"points": row["clean"], "received": row["total"],
            "flagged": {"jump": row["jumps"], "poor_accuracy": row["poor"]},
            "length_m": round(float(length or 0.0), 1), "duration_s": duration,
            "starts_at": row["first"].isoformat() if row["first"] else None,
            "ends_at": row["last"].isoformat() if row["last"] else None,
            "grids": grids}


def build(session: Session, unit_id: int, shift_id: int | None = None, at: datetime | None = None,
          start: datetime | None = None, end: datetime | None = None) -> dict | None:
    """Build (or rebuild) the stored track of a unit's shift from its clean fixes; None if < 2 fixes."""
    if start is None or end is None:
        start, end, shift_id = shift_window(session, unit_id, shift_id, at)
    stats = summary(session, unit_id, start, end)
    if stats["points"] < 2:
        return None
    if shift_id is not None:
        session.execute(text("DELETE FROM tracks WHERE unit_id = :u AND shift_id = :s AND source = 'positions'"),
                        {"u": unit_id, "s": shift_id})
    else:
        session.execute(text("DELETE FROM tracks WHERE unit_id = :u AND shift_id IS NULL AND "
                             "source = 'positions' AND starts_at >= :s AND ends_at <= :e"),
                        {"u": unit_id, "s": start, "e": end})
    track_id = session.execute(text(f"""
        INSERT INTO tracks (unit_id, shift_id, starts_at, ends_at, geom, length_m, points, source, stats)
        SELECT :u, :shift, min(ts), max(ts), ST_MakeLine(geom ORDER BY ts), :len, count(*), 'positions',
               CAST(:stats AS jsonb)
          FROM ({CLEAN_FIXES}) f RETURNING id"""),
        {"u": unit_id, "shift": shift_id, "s": start, "e": end, "len": stats["length_m"],
         "stats": json.dumps(stats, ensure_ascii=False)}).scalar_one()
    return {"id": track_id, "shift_id": shift_id, **stats}


def tolerance(zoom: int | None) -> float:
    """Simplification tolerance in degrees: about half a screen pixel at this web-map zoom."""
    if zoom is None:
        return 0.0
    if not 0 <= zoom <= 22:
        raise InvalidInput("zoom", "zoom must be between 0 and 22")
    metres_per_pixel = 156543.03 * 0.84 / (2 ** zoom)   # cos(33°N), the demo region's latitude
    return metres_per_pixel * 0.5 / 111320.0


def track_feature(session: Session, unit_id: int, start: datetime, end: datetime,
                  zoom: int | None = None, with_stats: bool = True) -> dict:
    """The unit's clean track in [start, end) as a GeoJSON Feature, simplified for `zoom`."""
    tol = tolerance(zoom)
    row = session.execute(text(f"""
        SELECT ST_AsGeoJSON(CASE WHEN :tol > 0 THEN ST_SimplifyPreserveTopology(l, :tol) ELSE l END, 6) AS g,
               ST_NPoints(l) AS n
          FROM (SELECT ST_MakeLine(geom ORDER BY ts) AS l FROM ({CLEAN_FIXES}) f) x"""),
        {"u": unit_id, "s": start, "e": end, "tol": tol}).mappings().one()
    props = {"unit": unit_id, "from": start.isoformat(), "to": end.isoformat(), "zoom": zoom,
             "points": row["n"] or 0}
    if with_stats:
        props.update(summary(session, unit_id, start, end))
    geometry = json.loads(row["g"]) if row["g"] and (row["n"] or 0) > 1 else None
    if geometry is not None:
        props["shown_points"] = len(geometry["coordinates"])
    return {"type": "Feature", "geometry": geometry, "properties": props}


def replay(session: Session, unit_id: int, start: datetime, end: datetime) -> dict:
    """The clean fixes of a window for a time slider: [[t (Unix s), lon, lat, heading, speed], …]."""
    n = session.execute(text("SELECT count(*) FROM positions WHERE unit_id = :u AND ts >= :s AND "
                             "ts < :e AND flags = 0"), {"u": unit_id, "s": start, "e": end}).scalar_one()
    step = max(1, -(-n // REPLAY_MAX_POINTS))
    rows = session.execute(text("""
        SELECT extract(epoch FROM ts) AS epoch, ST_X(geom) AS x, ST_Y(geom) AS y, heading, speed
          FROM (SELECT ts, geom, heading, speed, row_number() OVER (ORDER BY ts) AS i
                  FROM positions WHERE unit_id = :u AND ts >= :s AND ts < :e AND flags = 0) q
         WHERE (i - 1) % :step = 0 ORDER BY ts"""),
        {"u": unit_id, "s": start, "e": end, "step": step}).all()
    return {"unit": unit_id, "from": start.isoformat(), "to": end.isoformat(), "total": n,
            "step": step, "points": [[float(e), round(x, 7), round(y, 7), h, v]
                                     for e, x, y, h, v in rows]}


def stored(session: Session, unit_id: int, limit: int = 50) -> list[dict]:
    """The unit's stored tracks (shift tracks and GPX imports), newest first."""
    rows = session.execute(text(
        "SELECT id, shift_id, starts_at, ends_at, length_m, points, source, stats->>'name' AS name "
        "FROM tracks WHERE unit_id = :u ORDER BY starts_at DESC, id DESC LIMIT :n"),
        {"u": unit_id, "n": limit}).mappings().all()
    return [{"id": r["id"], "shift_id": r["shift_id"], "starts_at": r["starts_at"].isoformat(),
             "ends_at": r["ends_at"].isoformat(), "length_m": r["length_m"], "points": r["points"],
             "source": r["source"], "name": r["name"]} for r in rows]


def stored_feature(session: Session, track_id: int, zoom: int | None = None) -> dict:
    tol = tolerance(zoom)
    row = session.execute(text(
        "SELECT id, unit_id, shift_id, starts_at, ends_at, length_m, points, source, stats, "
        "ST_AsGeoJSON(CASE WHEN :tol > 0 THEN ST_SimplifyPreserveTopology(geom, :tol) ELSE geom END, 6) AS g "
        "FROM tracks WHERE id = :i"), {"i": track_id, "tol": tol}).mappings().first()
    if row is None:
        raise NotFound(f"no track {track_id}", field="track")
    return {"type": "Feature", "id": row["id"], "geometry": json.loads(row["g"]) if row["g"] else None,
            "properties": {"id": row["id"], "unit": row["unit_id"], "shift_id": row["shift_id"],
                           "starts_at": row["starts_at"].isoformat(), "ends_at": row["ends_at"].isoformat(),
                           "length_m": row["length_m"], "points": row["points"], "source": row["source"],
                           "stats": row["stats"]}}

"""Helpers for analytics tests: put hand-made incidents (and follow-up visits) into the test transaction."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import text


def add_incident(session, lon: float, lat: float, *, category: str = "dispute", severity: int = 1,
                 occurred_at: datetime, status: str = "closed", grid: str | None = None,
                 resolved_at: datetime | None = None, resolution_level: str | None = None,
                 sensitive: bool = False) -> int:
    """Insert one incident at (lon, lat); `grid` (a code) defaults to the grid containing the point."""
    if resolved_at is None and status in ("resolved", "followed_up", "closed"):
        resolved_at = occurred_at
    return session.execute(text("""
        INSERT INTO incidents (category, severity, status, occurred_at, reported_at, resolved_at,
                               resolution_level, geom, grid_id, sensitive, description, reporter_name)
        VALUES (:c, :s, :st, :o, :o, :r, :rl, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326),
                COALESCE((SELECT id FROM areas WHERE code = :g),
                         (SELECT id FROM areas WHERE level = 4 AND
                                 ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
                           ORDER BY id LIMIT 1)),
                :sens, '测试事件', '张三')
        RETURNING id"""),
        {"c": category, "s": severity, "st": status, "o": occurred_at, "r": resolved_at,
         "rl": resolution_level, "lon": lon, "lat": lat, "g": grid, "sens": sensitive}).scalar_one()


def add_follow_up(session, incident_id: int, ts: datetime) -> None:
    """Log a 回访 (follow-up visit) on an incident, in its grid."""
    session.execute(text("""
        INSERT INTO visits (kind, incident_id, grid_id, geom, occurred_at, notes)
        SELECT 'follow_up', i.id, i.grid_id, i.geom, :ts, '回访' FROM incidents i WHERE i.id = :i"""),
        {"i": incident_id, "ts": ts})

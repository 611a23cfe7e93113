"""Dispatch: the K nearest on-duty units to an incident, and the assignment lifecycle
(assigned → acknowledged → arrived → closed, or cancelled) with response-time statistics per area.

Candidates come from each unit's last clean fix (`unit_last_positions`) by a KNN `<->` scan of its
GiST index, then are ranked by true distance on the geography type. A unit with an open
assignment is `busy`; it is `on_duty` again when its last open assignment ends.
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit, live
from geo.errors import Conflict, InvalidInput, NotFound
from geo.incidents import queries
from geo.patrol import units
from geo.policy import Audience

OPEN = ("assigned", "acknowledged", "arrived")
TRANSITIONS = {                     # action -> (allowed from, new status, timestamp column)
    "acknowledge": (("assigned",), "acknowledged", "acknowledged_at"),
    "arrive": (("assigned", "acknowledged"), "arrived", "arrived_at"),
    "close": (OPEN, "closed", "closed_at"),
    "cancel": (OPEN, "cancelled", "closed_at"),
}
DEFAULT_MAX_AGE_S = 900


def _point(session: Session, incident_id, lon, lat, audience: Audience):
    if incident_id is not None:
        # Where the audience sees the incident: out of scope it does not exist for them.
        row = queries.visible(session, incident_id, audience, field="incident")
        if row["lon"] is None:
            raise InvalidInput("incident", f"incident {row['id']} has no location to dispatch to")
        return float(row["lon"]), float(row["lat"])
    try:
        lon, lat = float(lon), float(lat)
    except (TypeError, ValueError):
        raise InvalidInput("lon", "give an incident id, or lon and lat in degrees") from None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput("lon", "lon must be within ±180 and lat within ±90")
    return lon, lat


def nearest(session: Session, audience: Audience, incident_id=None, lon=None, lat=None, k: int = 5,
            max_age_s: float | None = DEFAULT_MAX_AGE_S, statuses=("on_duty",)) -> dict:
    """The k nearest units of the audience's scope (on duty by default) with distance in metres
    and last-seen age, to an incident the audience may see (where it sees it) or to a point."""
    if not 1 <= int(k) <= 100:
        raise InvalidInput("k", "k must be between 1 and 100")
    x, y = _point(session, incident_id, lon, lat, audience)
    inside, params = audience.scope.sql("coalesce(h.path, d.path)")
    rows = session.execute(text(f"""
        WITH cand AS (
            SELECT l.unit_id, l.geom, l.ts, l.seen_at, l.heading, l.speed
              FROM unit_last_positions l
             WHERE EXISTS (SELECT 1 FROM units u WHERE u.id = l.unit_id AND u.status = ANY(:st))
               AND (CAST(:age AS float8) IS NULL OR l.seen_at > now() - make_interval(secs => CAST(:age AS float8)))
             ORDER BY l.geom <-> ST_SetSRID(ST_MakePoint(:x, :y), 4326)
             LIMIT :k * 4
        )
        SELECT u.id, u.callsign, u.kind, u.status, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat,
               c.heading, c.speed, c.ts, c.seen_at,
               extract(epoch FROM now() - c.seen_at) AS age_s,
               ST_Distance(c.geom::geography, ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography) AS distance_m
          FROM cand c JOIN units u ON u.id = c.unit_id
          LEFT JOIN areas h ON h.id = u.home_area_id
          LEFT JOIN areas d ON d.code = u.district_code AND d.level = 1
         WHERE {inside}
         ORDER BY distance_m LIMIT :k"""),
        {"x": x, "y": y, "k": int(k), "age": max_age_s, "st": list(statuses), **params}).mappings().all()
    return {"incident": None if incident_id is None else int(incident_id), "lon": x, "lat": y, "units": [
        {"id": r["id"], "callsign": r["callsign"], "kind": r["kind"], "status": r["status"],
         "lon": r["lon"], "lat": r["lat"], "heading": r["heading"], "speed": r["speed"],
         "distance_m": round(float(r["distance_m"]), 1), "age_s": round(float(r["age_s"]), 1),
         "last_seen": r["seen_at"].isoformat(), "stale": float(r["age_s"]) > units.STALE_SECONDS}
        for r in rows]}


def _assignment(session: Session, assignment_id: int) -> dict:
    row = session.execute(text("""
        SELECT a.*, u.callsign, i.category, i.grid_id,
               coalesce(g.path, h.path, d.path)::text AS area_path
          FROM assignments a JOIN units u ON u.id = a.unit_id JOIN incidents i ON i.id = a.incident_id
          LEFT JOIN areas g ON g.id = i.grid_id
          LEFT JOIN areas h ON h.id = u.home_area_id
          LEFT JOIN areas d ON d.code = u.district_code AND d.level = 1
         WHERE a.id = :i"""), {"i": assignment_id}).mappings().first()
    if row is None:
        raise NotFound(f"no assignment {assignment_id}", field="assignment")
    return dict(row)


def _public(a: dict) -> dict:
    iso = lambda v: v.isoformat() if v is not None else None   # noqa: E731
    return {"id": a["id"], "incident": a["incident_id"], "unit": a["unit_id"], "callsign": a["callsign"],
            "status": a["status"], "assigned_at": iso(a["assigned_at"]),
            "acknowledged_at": iso(a["acknowledged_at"]), "arrived_at": iso(a["arrived_at"]),
            "closed_at": iso(a["closed_at"]), "distance_m": a["distance_m"], "note": a["note"]}


def assign(session: Session, actor: audit.Actor, incident_id, callsign: str, audience: Audience,
           note: str | None = None) -> dict:
    """Send a unit to an incident the audience may see; the unit becomes busy."""
    inc = queries.visible(session, incident_id, audience, field="incident")
    incident_id = inc["id"]
    unit = session.execute(text("SELECT id, status FROM units WHERE callsign = :c FOR UPDATE"),
                           {"c": callsign}).mappings().first()
    if unit is None:
        raise NotFound(f"no unit {callsign!r}", field="unit")
    if inc["status"] in ("closed", "resolved", "followed_up"):
        raise Conflict(f"incident {incident_id} is {inc['status']}: nothing to dispatch to", field="incident")
    if unit["status"] == "off_duty":
        raise Conflict(f"unit {callsign} is off duty", field="unit")
    open_ = session.execute(text("SELECT id FROM assignments WHERE incident_id = :i AND unit_id = :u "
                                 "AND status = ANY(:open)"),
                            {"i": incident_id, "u": unit["id"], "open": list(OPEN)}).scalar()
    if open_:
        raise Conflict(f"unit {callsign} is already assigned to incident {incident_id} "
                       f"(assignment {open_})", field="unit")
    aid = session.execute(text("""
        INSERT INTO assignments (incident_id, unit_id, assigned_by, distance_m, note)
        SELECT :i, :u, :by,
               (SELECT ST_Distance(l.geom::geography, i.geom::geography)
                  FROM unit_last_positions l, incidents i WHERE l.unit_id = :u AND i.id = :i),
               :note
        RETURNING id"""), {"i": incident_id, "u": unit["id"], "by": actor.user_id, "note": note}).scalar_one()
    session.execute(text("UPDATE units SET status = 'busy' WHERE id = :u"), {"u": unit["id"]})
    a = _assignment(session, aid)
    audit.record(session, actor, "dispatch.assign", target_type="incident", target_id=incident_id,
                 details={"unit": callsign, "assignment": aid, "distance_m": a["distance_m"]})
    live.publish(session, "assignment", a["area_path"], _public(a))
    return _public(a)


def transition(session: Session, actor: audit.Actor, assignment_id: int, action: str,
               audience: Audience, note: str | None = None) -> dict:
    """acknowledge, arrive, close or cancel an assignment (of an incident the audience may see),
    stamping the time."""
    if action not in TRANSITIONS:
        raise InvalidInput("action", f"action must be one of {', '.join(TRANSITIONS)}; got {action!r}")
    allowed, status, column = TRANSITIONS[action]
    a = _assignment(session, assignment_id)
    try:
        queries.visible(session, a["incident_id"], audience)
    except NotFound:
        raise NotFound(f"no assignment {assignment_id}", field="assignment") from None
    if a["status"] not in allowed:
        raise Conflict(f"assignment {assignment_id} is {a['status']}: cannot {action} it", field="action")
    session.execute(text(f"UPDATE assignments SET status = :s, {column} = now(), "
                         "note = coalesce(:note, note) WHERE id = :i"),
                    {"s": status, "i": assignment_id, "note": note})
    if status in ("closed", "cancelled"):
        session.execute(text(
            "UPDATE units SET status = 'on_duty' WHERE id = :u AND status = 'busy' AND NOT EXISTS "
            "(SELECT 1 FROM assignments WHERE unit_id = :u AND status = ANY(:open))"),
            {"u": a["unit_id"], "open": list(OPEN)})
    a = _assignment(session, assignment_id)
    audit.record(session, actor, f"dispatch.{action}", target_type="incident", target_id=a["incident_id"],
                 details={"assignment": assignment_id, "unit": a["callsign"]})
    live.publish(session, "assignment", a["area_path"], _public(a))
    return _public(a)


def assignments(session: Session, audience: Audience, incident_id: int | None = None,
                open_only: bool = False, limit: int = 200) -> list[dict]:
    """Assignments of the incidents the audience may see, newest first."""
    params: dict = {"i": incident_id, "open": open_only, "statuses": list(OPEN), "n": limit}
    rows = session.execute(text(f"""
        SELECT a.*, u.callsign FROM assignments a JOIN units u ON u.id = a.unit_id
         WHERE (CAST(:i AS bigint) IS NULL OR a.incident_id = :i)
           AND (NOT :open OR a.status = ANY(:statuses))
           AND EXISTS (SELECT 1 FROM {audience.incidents(params)} WHERE i.id = a.incident_id)
         ORDER BY a.assigned_at DESC LIMIT :n"""), params).mappings().all()
    return [_public(dict(r)) for r in rows]


def recent(session: Session, audience: Audience, hours: float) -> dict:
    """The dispatch map's incidents (queries.recent), each with its count of open assignments
    (`open_assignments`): the dispatcher's queue is those with none, oldest first."""
    fc = queries.recent(session, audience, hours)
    ids = [f["id"] for f in fc["features"]]
    counts: dict[int, int] = dict(session.execute(text(
        "SELECT incident_id, count(*) FROM assignments WHERE incident_id = ANY(:ids) "
        "AND status = ANY(:open) GROUP BY incident_id"), {"ids": ids, "open": list(OPEN)}).all()) if ids else {}
    for f in fc["features"]:
        f["properties"]["open_assignments"] = int(counts.get(f["id"], 0))
    return fc


def response_stats(session: Session, audience: Audience, level: int = 2,
                   days: float = 30) -> list[dict]:
    """Per area of `level`: assignments, and median / 90th-percentile seconds to acknowledge,
    arrive and close, over the last `days`."""
    if level not in (1, 2, 3, 4):
        raise InvalidInput("level", "level must be 1 (district), 2, 3 or 4 (grid)")
    if not 0 < days <= 366:
        raise InvalidInput("days", "days must be between 0 and 366")
    params: dict = {"days": days, "level": level, "open": list(OPEN)}
    inside, scope_params = audience.scope.sql("ar.path")
    params.update(scope_params)
    rows = session.execute(text(f"""
        WITH a AS (
            SELECT s.*, extract(epoch FROM s.acknowledged_at - s.assigned_at) AS ack,
                   extract(epoch FROM s.arrived_at - s.assigned_at) AS arrive,
                   extract(epoch FROM s.closed_at - s.assigned_at) AS close, i.geom
              FROM assignments s JOIN {audience.incidents(params)} ON i.id = s.incident_id
             WHERE s.assigned_at > now() - make_interval(secs => :days * 86400)
        )
        SELECT ar.code, ar.name, count(*) AS assignments,
               count(*) FILTER (WHERE a.status = 'closed') AS closed,
               count(*) FILTER (WHERE a.status = ANY(:open)) AS open,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.ack) AS ack_p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY a.ack) AS ack_p90,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.arrive) AS arrive_p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY a.arrive) AS arrive_p90,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.close) AS close_p50,
               avg(a.arrive) AS arrive_mean
          FROM a JOIN areas ar ON ar.level = :level AND ST_Intersects(ar.geom, a.geom)
         WHERE {inside}
         GROUP BY ar.code, ar.name ORDER BY ar.code"""), params).mappings().all()
    r1 = lambda v: round(float(v), 1) if v is not None else None   # noqa: E731
    return [{"code": r["code"], "name": r["name"], "assignments": r["assignments"], "closed": r["closed"],
             "open": r["open"], "ack_p50_s": r1(r["ack_p50"]), "ack_p90_s": r1(r["ack_p90"]),
             "arrive_p50_s": r1(r["arrive_p50"]), "arrive_p90_s": r1(r["arrive_p90"]),
             "arrive_mean_s": r1(r["arrive_mean"]), "close_p50_s": r1(r["close_p50"])} for r in rows]

"""Patrol units (巡逻车, 步巡, 志愿者): call signs, device tokens, duty status, 24-hour shifts, and
where every unit is now and has been.
"""
from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import overload

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit
from geo.areas import area_row
from geo.errors import Conflict, Forbidden, InvalidInput, NotFound
from geo.inputs import text_value
from geo.live import publish
from geo.patrol.runner import Runner
from geo.policy import Scope
from geo.users import hash_token
from geo.vocabulary import UNIT_KINDS, UNIT_STATUSES

STALE_SECONDS = 120
TOKEN_PREFIX = "dev_"
CALLSIGN = re.compile(r"^[\w.\-·]{1,32}$", re.UNICODE)




# -- units -----------------------------------------------------------------------------------
@dataclass
class UnitRef:
    """What the ingest needs to know about the reporting unit."""

    id: int
    callsign: str
    kind: str
    status: str
    district_code: str | None
    area_path: str | None
    last_ts: datetime | None = None
    last_lon: float | None = None
    last_lat: float | None = None
    seen_at: datetime | None = None
    seen_lon: float | None = None
    seen_lat: float | None = None
    jump_chain: int = 0
    missing_days: list | None = None   # of the days asked for at look-up; None: not asked
    days_checked: tuple = ()


def _district_of(session: Session, area) -> str | None:
    return session.execute(text(
        "SELECT d.code FROM areas d WHERE d.level = 1 AND CAST(:p AS ltree) <@ d.path "
        "ORDER BY nlevel(d.path) LIMIT 1"), {"p": area["path"]}).scalar()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(24)


def add_unit(session: Session, actor: audit.Actor, callsign: str, kind: str,
             device_id: str | None = None, area: str | None = None,
             status: str = "off_duty") -> tuple[int, str]:
    """Create a unit; return (id, device token). Only the token's SHA-256 is stored."""
    callsign = text_value(callsign, "callsign") or ""
    kind = text_value(kind, "kind") or ""
    status = text_value(status, "status") or ""
    if not CALLSIGN.match(callsign):
        raise InvalidInput("callsign", "call sign must be 1–32 letters, digits or .-·; "
                                       f"got {callsign!r}")
    if kind not in UNIT_KINDS:
        raise InvalidInput("kind", f"kind must be one of {', '.join(UNIT_KINDS)}; got {kind!r}")
    if status not in UNIT_STATUSES:
        raise InvalidInput("status", f"status must be one of {', '.join(UNIT_STATUSES)}; got {status!r}")
    device_id = text_value(device_id, "device_id")
    if device_id is not None and not re.match(r"^[\w.:\-]{1,64}$", device_id):
        raise InvalidInput("device_id", "device id must be 1–64 letters, digits or .:-_")
    home = area_row(session, area, field="area") if area else None
    district = _district_of(session, home) if home else None
    clash = session.execute(text("SELECT callsign, device_id FROM units WHERE callsign = :c OR "
                                 "(CAST(:d AS text) IS NOT NULL AND device_id = :d)"),
                            {"c": callsign, "d": device_id}).first()
    if clash:
        which = "callsign" if clash.callsign == callsign else "device_id"
        raise Conflict(f"a unit with this {which.replace('_', ' ')} already exists "
                       f"({clash.callsign})", field=which)
    token = new_token()
    unit_id = session.execute(text(
        "INSERT INTO units (callsign, kind, device_id, token_hash, home_area_id, district_code, status) "
        "VALUES (:c, :k, :d, :h, :a, :dc, :s) RETURNING id"),
        {"c": callsign, "k": kind, "d": device_id, "h": hash_token(token),
         "a": home["id"] if home else None, "dc": district, "s": status}).scalar_one()
    audit.record(session, actor, "unit.add", target_type="unit", target_id=callsign,
                 area_code=home["code"] if home else None,
                 details={"kind": kind, "device_id": device_id})
    return unit_id, token


def rotate_token(session: Session, actor: audit.Actor, callsign: str) -> str:
    """Replace a unit's device token; the old one stops working at once."""
    token = new_token()
    found = session.execute(text("UPDATE units SET token_hash = :h WHERE callsign = :c RETURNING id"),
                            {"h": hash_token(token), "c": callsign}).scalar()
    if found is None:
        raise NotFound(f"no unit {callsign!r}", field="callsign")
    audit.record(session, actor, "unit.token", target_type="unit", target_id=callsign)
    return token


def unit_id(session: Session, callsign: str) -> int:
    found = session.execute(text("SELECT id FROM units WHERE callsign = :c"), {"c": callsign}).scalar()
    if found is None:
        raise NotFound(f"no unit {callsign!r}; create it with `anwang units add`", field="unit")
    return found


def set_status(session: Session, actor: audit.Actor, callsign: str, status: str) -> dict:
    if status not in UNIT_STATUSES:
        raise InvalidInput("status", f"status must be one of {', '.join(UNIT_STATUSES)}; got {status!r}")
    row = session.execute(text(
        "SELECT u.id, u.status AS before, coalesce(h.path, d.path)::text AS path FROM units u "
        "LEFT JOIN areas h ON h.id = u.home_area_id "
        "LEFT JOIN areas d ON d.code = u.district_code AND d.level = 1 "
        "WHERE u.callsign = :c FOR UPDATE OF u"), {"c": callsign}).mappings().first()
    if row is not None:
        session.execute(text("UPDATE units SET status = :s WHERE id = :id"), {"s": status, "id": row["id"]})
    if row is None:
        raise NotFound(f"no unit {callsign!r}", field="callsign")
    audit.record(session, actor, "unit.status", target_type="unit", target_id=callsign,
                 details={"from": row["before"], "to": status})
    publish(session, "unit_status", row["path"], {"unit": row["id"], "callsign": callsign,
                                                  "status": status})
    return {"callsign": callsign, "status": status}


def add_shift(session: Session, actor: audit.Actor, callsign: str, starts_at: datetime,
              hours: float = 24, task: str | None = None) -> int:
    """A duty period; 24-hour shifts with day and night tasks are the norm."""
    if starts_at.tzinfo is None:
        raise InvalidInput("starts_at", "the shift start needs a time zone")
    if not 0 < hours <= 48:
        raise InvalidInput("hours", "a shift lasts more than 0 and at most 48 hours")
    uid = unit_id(session, callsign)
    ends_at = starts_at + timedelta(hours=hours)
    overlap = session.execute(text("SELECT id FROM shifts WHERE unit_id = :u AND starts_at < :e "
                                   "AND ends_at > :s"), {"u": uid, "s": starts_at, "e": ends_at}).scalar()
    if overlap:
        raise Conflict(f"unit {callsign} already has shift {overlap} in that time", field="starts_at")
    sid = session.execute(text("INSERT INTO shifts (unit_id, starts_at, ends_at, task) "
                               "VALUES (:u, :s, :e, :t) RETURNING id"),
                          {"u": uid, "s": starts_at, "e": ends_at, "t": task}).scalar_one()
    audit.record(session, actor, "shift.add", target_type="unit", target_id=callsign,
                 details={"shift": sid, "starts_at": starts_at, "hours": hours, "task": task})
    return sid


def shifts(session: Session, callsign: str, since: datetime | None = None) -> list[dict]:
    uid = unit_id(session, callsign)
    rows = session.execute(text(
        "SELECT id, starts_at, ends_at, task FROM shifts WHERE unit_id = :u "
        "AND ends_at > coalesce(CAST(:since AS timestamptz), '-infinity') ORDER BY starts_at DESC LIMIT 100"),
        {"u": uid, "since": since}).mappings().all()
    return [{"id": r["id"], "starts_at": r["starts_at"].isoformat(), "ends_at": r["ends_at"].isoformat(),
             "task": r["task"]} for r in rows]


UNIT_COLUMNS = """u.id, u.callsign, u.kind, u.status, u.district_code,
       coalesce(h.path, d.path)::text AS area_path,
       l.ts AS last_ts, ST_X(l.geom) AS last_lon, ST_Y(l.geom) AS last_lat, l.seen_at,
       l.seen_lon, l.seen_lat, coalesce(l.jump_chain, 0) AS jump_chain,
       (SELECT coalesce(array_agg(x), '{}') FROM unnest(CAST(%(days)s AS date[])) x
         WHERE to_regclass('positions_' || to_char(x, 'YYYYMMDD')) IS NULL) AS missing_days"""
UNIT_JOINS = """
  LEFT JOIN areas h ON h.id = u.home_area_id
  LEFT JOIN areas d ON d.code = u.district_code AND d.level = 1
  LEFT JOIN unit_last_positions l ON l.unit_id = u.id
"""
UNIT_SELECT = "SELECT " + UNIT_COLUMNS + "\n  FROM units u" + UNIT_JOINS
UNIT_WHERE = {"token": " WHERE u.token_hash = %(key)s", "device": " WHERE u.device_id = %(key)s",
               "id": " WHERE u.id = %(key)s"}


@overload
def unit_ref(row: None, days: Sequence[date] = ()) -> None: ...


@overload
def unit_ref(row: dict, days: Sequence[date] = ()) -> UnitRef: ...


def unit_ref(row, days=()) -> UnitRef | None:
    if row is None:
        return None
    return UnitRef(id=row["id"], callsign=row["callsign"], kind=row["kind"], status=row["status"],
                   district_code=row["district_code"], area_path=row["area_path"],
                   last_ts=row["last_ts"], last_lon=row["last_lon"], last_lat=row["last_lat"],
                   seen_at=row["seen_at"], seen_lon=row["seen_lon"], seen_lat=row["seen_lat"],
                   jump_chain=row["jump_chain"], missing_days=list(row["missing_days"] or []),
                   days_checked=tuple(days))


def lookup_unit(run: Runner, by: str, key, days: Sequence[date] = ()) -> UnitRef | None:
    """A unit by device token, device id or id, with its last fix and the partitions `days` lack."""
    row = run.one(UNIT_SELECT + UNIT_WHERE[by], {"key": key, "days": list(days)})
    return unit_ref(row, days)


def unit_for_token(session: Session, token: str, days: Sequence[date] = ()) -> UnitRef | None:
    """The unit a device token belongs to (None if unknown), with its last fix."""
    return lookup_unit(Runner(session), "token", hash_token(token), days) if token else None


def unit_for_device(session: Session, device_id: str, days: Sequence[date] = ()) -> UnitRef | None:
    """The unit registered with a device id (the OsmAnd protocol's only identity)."""
    return lookup_unit(Runner(session), "device", device_id, days) if device_id else None


def unit_by_id(session: Session, uid: int, days: Sequence[date] = ()) -> UnitRef | None:
    return lookup_unit(Runner(session), "id", uid, days)


def unit_in_scope(session: Session, scope: Scope, callsign: str | None = None,
                  unit: int | None = None) -> int:
    """A unit's id (by call sign or id) if the scope holds its home area (or district): NotFound
    for an unknown unit, Forbidden outside the scope or for a unit without an area."""
    row = session.execute(text(
        "SELECT u.id, u.callsign, coalesce(h.path, d.path)::text AS path FROM units u "
        "LEFT JOIN areas h ON h.id = u.home_area_id "
        "LEFT JOIN areas d ON d.code = u.district_code AND d.level = 1 "
        "WHERE u.callsign = :c OR u.id = :u"), {"c": callsign, "u": unit}).mappings().first()
    if row is None:
        raise NotFound(f"no unit {callsign or unit!r}", field="unit")
    if scope.everywhere:
        return row["id"]
    if row["path"] is None:
        raise Forbidden(f"unit {row['callsign']} has no area; only an unscoped administrator may "
                        "use it", field="unit")
    if not scope.covers(row["path"]):
        raise Forbidden(f"unit {row['callsign']} is outside your scope ({', '.join(scope.codes)})",
                        field="unit")
    return row["id"]


def units_geojson(session: Session, scope: Scope, at: datetime | None = None,
                  stale_after: int = STALE_SECONDS) -> dict:
    """Units at their last clean position (or where they were at time `at`) as a FeatureCollection.

    Properties: callsign, device_id, kind, status, last_seen (ISO), age_s, stale, heading, speed,
    battery, area, and heard_at / heard_kind: the last report without a position (a heartbeat,
    cell towers), which counts as being heard from. Units without a fix have a null geometry.
    `scope` limits to units whose home area (or district) lies in it.
    """
    inside, params = scope.sql("coalesce(h.path, d.path)")
    if at is None:
        pos = ("LEFT JOIN unit_last_positions l ON l.unit_id = u.id")
        seen = "greatest(l.seen_at, u.heard_at)"
    else:
        pos = ("LEFT JOIN LATERAL (SELECT p.ts, p.geom, p.speed, p.heading, p.accuracy, p.battery, "
               "p.ts AS seen_at FROM positions p WHERE p.unit_id = u.id AND p.flags = 0 "
               "AND p.ts <= :at AND p.ts > CAST(:at AS timestamptz) - interval '1 day' "
               "ORDER BY p.ts DESC LIMIT 1) l ON true")
        seen = "l.ts"
    rows = session.execute(text(f"""
        SELECT u.id, u.callsign, u.device_id, u.kind, u.status, h.code AS area, u.heard_at, u.heard_kind,
               coalesce(h.path, d.path)::text AS area_path,
               ST_X(l.geom) AS lon, ST_Y(l.geom) AS lat, l.ts, {seen} AS seen_at, l.speed, l.heading,
               l.accuracy, l.battery,
               extract(epoch FROM coalesce(CAST(:at AS timestamptz), now()) - {seen}) AS age
          FROM units u
          LEFT JOIN areas h ON h.id = u.home_area_id
          LEFT JOIN areas d ON d.code = u.district_code AND d.level = 1
          {pos}
         WHERE {inside}
         ORDER BY u.callsign"""), {"at": at, **params}).mappings().all()
    features = []
    for r in rows:
        age = float(r["age"]) if r["age"] is not None else None
        features.append({
            "type": "Feature", "id": r["id"],
            "geometry": ({"type": "Point", "coordinates": [r["lon"], r["lat"]]}
                         if r["lon"] is not None else None),
            "properties": {
                "id": r["id"], "callsign": r["callsign"], "device_id": r["device_id"], "kind": r["kind"],
                "status": r["status"], "area": r["area"], "area_path": r["area_path"],
                "ts": r["ts"].isoformat() if r["ts"] else None,
                "last_seen": r["seen_at"].isoformat() if r["seen_at"] else None,
                "age_s": round(age, 1) if age is not None else None,
                "stale": age is None or age > stale_after,
                "speed": r["speed"], "heading": r["heading"], "accuracy": r["accuracy"],
                "battery": r["battery"],
                "heard_at": r["heard_at"].isoformat() if r["heard_at"] and at is None else None,
                "heard_kind": r["heard_kind"] if at is None else None}})
    return {"type": "FeatureCollection", "features": features}


def trails(session: Session, scope: Scope, minutes: float = 10,
           at: datetime | None = None) -> dict:
    """Every unit's clean positions over the last `minutes` (before `at`) as LineStrings."""
    if not 0 < minutes <= 24 * 60:
        raise InvalidInput("minutes", "trail length must be between 0 and 1440 minutes")
    inside, params = scope.sql("coalesce(h.path, d.path)")
    rows = session.execute(text(f"""
        SELECT u.id, u.callsign, ST_AsGeoJSON(ST_MakeLine(p.geom ORDER BY p.ts), 6) AS geom,
               count(*) AS n, max(p.ts) AS last
          FROM units u
          LEFT JOIN areas h ON h.id = u.home_area_id
          LEFT JOIN areas d ON d.code = u.district_code AND d.level = 1
          JOIN positions p ON p.unit_id = u.id
         WHERE p.flags = 0
           AND p.ts > coalesce(CAST(:at AS timestamptz), now()) - make_interval(secs => :m * 60)
           AND p.ts <= coalesce(CAST(:at AS timestamptz), now())
           AND {inside}
         GROUP BY u.id, u.callsign"""), {"m": minutes, "at": at, **params}).mappings().all()
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": r["id"], "geometry": json.loads(r["geom"]) if r["n"] > 1 else None,
         "properties": {"id": r["id"], "callsign": r["callsign"], "points": r["n"],
                        "last": r["last"].isoformat()}} for r in rows]}

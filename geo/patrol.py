"""Patrol units and their positions: device tokens, idempotent ingest, quality flags, live events.

A unit (car, foot patrol, volunteer team) reports fixes from a tracking device. Every fix lands in
the day-partitioned `positions` table keyed by (unit_id, ts), so a replayed or overlapping batch
changes nothing and late fixes are simply slotted in. Two quality flags keep bad fixes out of
tracks and coverage while still storing them:

- bit 1 (FLAG_JUMP): reaching the fix from the previous clean fix needs a speed above the limit
  (`ANWANG_MAX_SPEED_MS`, default 55 m/s ≈ 200 km/h);
- bit 2 (FLAG_ACCURACY): the device reports an accuracy radius above `ANWANG_POOR_ACCURACY_M`
  (default 100 m).

Batches go through COPY into a session-local temp table and one INSERT … ON CONFLICT DO NOTHING;
a single ping (OsmAnd) is one INSERT. The OsmAnd port stores the pings of many devices that arrive
together in one statement and one commit (`ingest_pings`, a group commit), judged exactly as if they
had come one by one. The unit's newest clean fix is kept in `unit_last_positions`. The live-map
event is published after the fixes are committed, in a short second transaction
(`commit_and_publish`, `publish_pings`): PostgreSQL serialises the commits of transactions that
NOTIFY, so a NOTIFY inside every ingest transaction would queue them all behind one WAL flush each.
The event transaction commits asynchronously — a crash can lose a live-map event, never a fix.
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from psycopg.pq import ExecStatus
from psycopg.rows import dict_row
from sqlalchemy import text
from sqlalchemy.orm import Session

from . import audit
from .areas import area_row
from .errors import Conflict, InvalidInput, NotFound
from .models import UNIT_KINDS
from .users import hash_token

FLAG_JUMP = 1
FLAG_ACCURACY = 2
STATUSES = ("on_duty", "busy", "off_duty")
STALE_SECONDS = 120
TOKEN_PREFIX = "dev_"
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)   # GPS week roll-overs and 1901 epochs are not times
MAX_BATCH = 10000
CALLSIGN = re.compile(r"^[\w.\-·]{1,32}$", re.UNICODE)
EARTH_RADIUS = 6371008.8


def max_speed() -> float:
    """Speed (m/s) above which a fix is an impossible jump."""
    return float(os.environ.get("ANWANG_MAX_SPEED_MS") or 55.0)


def poor_accuracy() -> float:
    """Accuracy radius (m) above which a fix is too vague for tracks."""
    return float(os.environ.get("ANWANG_POOR_ACCURACY_M") or 100.0)


def haversine(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres (mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS * math.asin(min(1.0, math.sqrt(a)))


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
    callsign = (callsign or "").strip()
    if not CALLSIGN.match(callsign):
        raise InvalidInput("callsign", "call sign must be 1–32 letters, digits or .-·; "
                                       f"got {callsign!r}")
    if kind not in UNIT_KINDS:
        raise InvalidInput("kind", f"kind must be one of {', '.join(UNIT_KINDS)}; got {kind!r}")
    if status not in STATUSES:
        raise InvalidInput("status", f"status must be one of {', '.join(STATUSES)}; got {status!r}")
    device_id = (device_id or "").strip() or None
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
    if status not in STATUSES:
        raise InvalidInput("status", f"status must be one of {', '.join(STATUSES)}; got {status!r}")
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


class Runner:
    """Runs pyformat SQL (`%(name)s`) on a SQLAlchemy session, inside its transaction, or on a raw
    psycopg connection (the OsmAnd fast path, in autocommit); rows come back as dicts."""

    def __init__(self, session: Session | None = None, conn=None):
        self.session, self.conn = session, conn

    def rows(self, sql: str, params: dict | None = None) -> list[dict]:
        if self.session is not None:
            result = self.session.connection().exec_driver_sql(sql, params or {})
            return [dict(r) for r in result.mappings().all()] if result.returns_rows else []
        # dict_row takes the column names from the result, without building a description per call.
        cur = self.conn.cursor(row_factory=dict_row)
        cur.execute(sql, params or {})
        return cur.fetchall() if cur.pgresult.status == ExecStatus.TUPLES_OK else []

    def one(self, sql: str, params: dict | None = None) -> dict | None:
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    def dbapi(self):
        """The psycopg connection (for COPY)."""
        if self.session is not None:
            return self.session.connection().connection.dbapi_connection
        return self.conn


_UNIT_COLUMNS = """u.id, u.callsign, u.kind, u.status, u.district_code,
       coalesce(h.path, d.path)::text AS area_path,
       l.ts AS last_ts, ST_X(l.geom) AS last_lon, ST_Y(l.geom) AS last_lat, l.seen_at,
       l.seen_lon, l.seen_lat, coalesce(l.jump_chain, 0) AS jump_chain,
       (SELECT coalesce(array_agg(x), '{}') FROM unnest(CAST(%(days)s AS date[])) x
         WHERE to_regclass('positions_' || to_char(x, 'YYYYMMDD')) IS NULL) AS missing_days"""
_UNIT_JOINS = """
  LEFT JOIN areas h ON h.id = u.home_area_id
  LEFT JOIN areas d ON d.code = u.district_code AND d.level = 1
  LEFT JOIN unit_last_positions l ON l.unit_id = u.id
"""
_UNIT_SELECT = "SELECT " + _UNIT_COLUMNS + "\n  FROM units u" + _UNIT_JOINS
_UNIT_WHERE = {"token": " WHERE u.token_hash = %(key)s", "device": " WHERE u.device_id = %(key)s",
               "id": " WHERE u.id = %(key)s"}


def _unit_ref(row, days=()) -> UnitRef | None:
    if row is None:
        return None
    return UnitRef(id=row["id"], callsign=row["callsign"], kind=row["kind"], status=row["status"],
                   district_code=row["district_code"], area_path=row["area_path"],
                   last_ts=row["last_ts"], last_lon=row["last_lon"], last_lat=row["last_lat"],
                   seen_at=row["seen_at"], seen_lon=row["seen_lon"], seen_lat=row["seen_lat"],
                   jump_chain=row["jump_chain"], missing_days=list(row["missing_days"] or []),
                   days_checked=tuple(days))


def lookup_unit(run: Runner, by: str, key, days: list[date] = ()) -> UnitRef | None:
    """A unit by device token, device id or id, with its last fix and the partitions `days` lack."""
    row = run.one(_UNIT_SELECT + _UNIT_WHERE[by], {"key": key, "days": list(days)})
    return _unit_ref(row, days)


def unit_for_token(session: Session, token: str, days: list[date] = ()) -> UnitRef | None:
    """The unit a device token belongs to (None if unknown), with its last fix."""
    return lookup_unit(Runner(session), "token", hash_token(token), days) if token else None


def unit_for_device(session: Session, device_id: str, days: list[date] = ()) -> UnitRef | None:
    """The unit registered with a device id (the OsmAnd protocol's only identity)."""
    return lookup_unit(Runner(session), "device", device_id, days) if device_id else None


def unit_by_id(session: Session, uid: int, days: list[date] = ()) -> UnitRef | None:
    return lookup_unit(Runner(session), "id", uid, days)


def units_geojson(session: Session, scope_paths: list[str] | None = None, at: datetime | None = None,
                  stale_after: int = STALE_SECONDS) -> dict:
    """Units at their last clean position (or where they were at time `at`) as a FeatureCollection.

    Properties: callsign, device_id, kind, status, last_seen (ISO), age_s, stale, heading, speed,
    battery, area. Units never heard from have a null geometry. `scope_paths` limits to units whose
    home area (or district) lies in one of these ltree subtrees; None means everywhere.
    """
    if at is None:
        pos = ("LEFT JOIN unit_last_positions l ON l.unit_id = u.id")
        seen = "l.seen_at"
    else:
        pos = ("LEFT JOIN LATERAL (SELECT p.ts, p.geom, p.speed, p.heading, p.accuracy, p.battery, "
               "p.ts AS seen_at FROM positions p WHERE p.unit_id = u.id AND p.flags = 0 "
               "AND p.ts <= :at AND p.ts > CAST(:at AS timestamptz) - interval '1 day' "
               "ORDER BY p.ts DESC LIMIT 1) l ON true")
        seen = "l.ts"
    rows = session.execute(text(f"""
        SELECT u.id, u.callsign, u.device_id, u.kind, u.status, h.code AS area,
               coalesce(h.path, d.path)::text AS area_path,
               ST_X(l.geom) AS lon, ST_Y(l.geom) AS lat, l.ts, {seen} AS seen_at, l.speed, l.heading,
               l.accuracy, l.battery,
               extract(epoch FROM coalesce(CAST(:at AS timestamptz), now()) - {seen}) AS age
          FROM units u
          LEFT JOIN areas h ON h.id = u.home_area_id
          LEFT JOIN areas d ON d.code = u.district_code AND d.level = 1
          {pos}
         WHERE (CAST(:paths AS ltree[]) IS NULL OR coalesce(h.path, d.path) <@ CAST(:paths AS ltree[]))
         ORDER BY u.callsign"""), {"at": at, "paths": scope_paths}).mappings().all()
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
                "battery": r["battery"]}})
    return {"type": "FeatureCollection", "features": features}


def trails(session: Session, minutes: float = 10, scope_paths: list[str] | None = None,
           at: datetime | None = None) -> dict:
    """Every unit's clean positions over the last `minutes` (before `at`) as LineStrings."""
    if not 0 < minutes <= 24 * 60:
        raise InvalidInput("minutes", "trail length must be between 0 and 1440 minutes")
    rows = session.execute(text("""
        SELECT u.id, u.callsign, ST_AsGeoJSON(ST_MakeLine(p.geom ORDER BY p.ts), 6) AS geom,
               count(*) AS n, max(p.ts) AS last
          FROM units u
          LEFT JOIN areas h ON h.id = u.home_area_id
          LEFT JOIN areas d ON d.code = u.district_code AND d.level = 1
          JOIN positions p ON p.unit_id = u.id
         WHERE p.flags = 0
           AND p.ts > coalesce(CAST(:at AS timestamptz), now()) - make_interval(secs => :m * 60)
           AND p.ts <= coalesce(CAST(:at AS timestamptz), now())
           AND (CAST(:paths AS ltree[]) IS NULL OR coalesce(h.path, d.path) <@ CAST(:paths AS ltree[]))
         GROUP BY u.id, u.callsign"""), {"m": minutes, "at": at, "paths": scope_paths}).mappings().all()
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": r["id"], "geometry": json.loads(r["geom"]) if r["n"] > 1 else None,
         "properties": {"id": r["id"], "callsign": r["callsign"], "points": r["n"],
                        "last": r["last"].isoformat()}} for r in rows]}


# -- parsing fixes ---------------------------------------------------------------------------
@dataclass
class Fix:
    """One position fix as reported (speed in m/s, heading in degrees from north)."""

    ts: datetime
    lon: float
    lat: float
    speed: float | None = None
    heading: float | None = None
    accuracy: float | None = None
    altitude: float | None = None
    battery: float | None = None
    flags: int = 0


def parse_time(value, field: str = "ts") -> datetime:
    """ISO 8601 (with zone), or Unix seconds / milliseconds since the epoch, as UTC."""
    if isinstance(value, bool) or value is None or value == "":
        raise InvalidInput(field, "a time is required: ISO 8601 with a zone, or Unix seconds")
    ts = None
    if isinstance(value, (int, float)) or (isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value.strip())):
        number = float(value)
        if abs(number) >= 1e11:          # milliseconds, as phones and JavaScript send them
            number /= 1000.0
        try:
            ts = datetime.fromtimestamp(number, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise InvalidInput(field, f"time {value!r} is out of range") from None
    elif isinstance(value, str):
        s = value.strip().replace(" ", "T", 1)
        if s.endswith("Z") or s.endswith("z"):
            s = s[:-1] + "+00:00"
        try:
            ts = datetime.fromisoformat(s)
        except ValueError:
            raise InvalidInput(field, f"time {value!r} is not ISO 8601 or Unix seconds") from None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)   # Traccar's "yyyy-MM-dd HH:mm:ss" form is UTC
    else:
        raise InvalidInput(field, f"time {value!r} is not ISO 8601 or Unix seconds")
    ts = ts.astimezone(timezone.utc)
    if ts < EARLIEST:
        raise InvalidInput(field, f"time {ts.isoformat()} is before 2000: not a real fix time "
                                  "(a device clock or file without a valid time)")
    if ts > datetime.now(timezone.utc) + timedelta(minutes=10):
        raise InvalidInput(field, f"time {ts.isoformat()} is in the future")
    return ts


def _number(obj: dict, key: str, field: str, lo: float | None = None, hi: float | None = None,
            required: bool = False) -> float | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise InvalidInput(field, f"{key} is required")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(field, f"{key} must be a number; got {value!r}") from None
    if not math.isfinite(number):
        raise InvalidInput(field, f"{key} must be finite")
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        if required:
            raise InvalidInput(field, f"{key} must be between {lo} and {hi}; got {number}")
        return None   # optional sensor values outside their range are "unknown" (Android sends -1)
    return number


def parse_fix(obj: dict, where: str = "positions[0]") -> Fix:
    """One fix from the batch API: {ts|time|timestamp, lon, lat, speed, heading, accuracy, altitude, battery}."""
    if not isinstance(obj, dict):
        raise InvalidInput(where, "each position must be a JSON object")
    ts_value = next((obj[k] for k in ("ts", "time", "timestamp") if obj.get(k) not in (None, "")), None)
    ts = parse_time(ts_value, f"{where}.ts")
    lon = _number(obj, "lon", f"{where}.lon", -180, 180, required=True)
    lat = _number(obj, "lat", f"{where}.lat", -90, 90, required=True)
    return Fix(ts=ts, lon=lon, lat=lat,
               speed=_number(obj, "speed", f"{where}.speed", 0, 1000),
               heading=_number(obj, "heading", f"{where}.heading", 0, 360),
               accuracy=_number(obj, "accuracy", f"{where}.accuracy", 0, 1e6),
               altitude=_number(obj, "altitude", f"{where}.altitude", -1000, 20000),
               battery=_number(obj, "battery", f"{where}.battery", 0, 100))


def parse_batch(body) -> list[Fix]:
    """The batch API's body: {"positions": [...]} or a bare list of fixes."""
    items = body.get("positions") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise InvalidInput("positions", 'expected {"positions": [{"ts", "lon", "lat", …}, …]}')
    if not items:
        raise InvalidInput("positions", "the batch is empty")
    if len(items) > MAX_BATCH:
        raise InvalidInput("positions", f"at most {MAX_BATCH} positions per batch; got {len(items)}")
    return [parse_fix(item, f"positions[{i}]") for i, item in enumerate(items)]


# -- quality flags ---------------------------------------------------------------------------
@dataclass
class FlagState:
    """What judging the next fix needs: the last clean fix (the anchor), the newest fix of any quality,
    and how many jump-flagged fixes in a row, ending at the newest, agree with each other."""

    anchor: tuple | None = None        # (ts, lon, lat)
    seen: tuple | None = None          # (ts, lon, lat)
    chain: int = 0


def flag_fixes(fixes: list[Fix], prev: tuple[datetime, float, float] | None,
               speed_limit: float | None = None, accuracy_limit: float | None = None,
               state: FlagState | None = None) -> list[Fix]:
    """Sort by time, drop repeated timestamps, and set the jump and accuracy flags.

    `prev` is the unit's clean fix just before the first of these (ts, lon, lat), if any. A fix is a
    jump when reaching it from the last clean fix needs more than the speed limit. Three jumps in a
    row that agree with each other — within one batch or across single pings, through `state` —
    mean the anchor was wrong (or the unit was carried): the fix becomes clean and the new anchor
    (and the chain's earlier fixes in this batch are taken back as clean). `state`, when given, is
    updated to follow the fixes.
    """
    speed_limit = max_speed() if speed_limit is None else speed_limit
    accuracy_limit = poor_accuracy() if accuracy_limit is None else accuracy_limit
    state = state if state is not None else FlagState(anchor=prev)
    if prev is not None:
        state.anchor = prev
    out: list[Fix] = []
    taken: set = set()
    for f in sorted(fixes, key=lambda f: f.ts):
        if f.ts in taken:
            continue
        taken.add(f.ts)
        f.flags = 0
        out.append(f)

    def speed(a, f) -> float:
        dist = haversine(a[1], a[2], f.lon, f.lat)
        # A fix in the same second is judged over one second; GPS noise below 50 m never is a jump.
        return 0.0 if dist <= 50 else dist / max((f.ts - a[0]).total_seconds(), 1.0)

    members: list[Fix] = []            # this batch's fixes in the current chain
    for f in out:
        in_order = state.seen is None or f.ts > state.seen[0]
        if f.accuracy is not None and f.accuracy > accuracy_limit:
            f.flags |= FLAG_ACCURACY
        if state.anchor is not None and speed(state.anchor, f) > speed_limit:
            f.flags |= FLAG_JUMP
        if in_order:
            if f.flags & FLAG_JUMP:
                if state.chain and state.seen is not None and speed(state.seen, f) <= speed_limit:
                    state.chain += 1
                    members.append(f)
                else:
                    state.chain, members = 1, [f]
                if state.chain >= 3:
                    for c in members:
                        c.flags &= ~FLAG_JUMP
                    good = [c for c in members if c.flags == 0]
                    if good:
                        state.anchor = (good[-1].ts, good[-1].lon, good[-1].lat)
                    state.chain, members = 0, []
            else:
                state.chain, members = 0, []
                if f.flags == 0:
                    state.anchor = (f.ts, f.lon, f.lat)
            state.seen = (f.ts, f.lon, f.lat)
    return out


# -- ingest ----------------------------------------------------------------------------------
@dataclass
class IngestResult:
    received: int
    inserted: int
    duplicates: int
    jumps: int
    poor_accuracy: int
    event_id: int | None = None
    live: tuple | None = None      # (kind, area path, payload) to publish once the fixes are committed

    def as_dict(self) -> dict:
        return {"received": self.received, "inserted": self.inserted, "duplicates": self.duplicates,
                "flagged": {"jump": self.jumps, "poor_accuracy": self.poor_accuracy},
                "event_id": self.event_id}


def utc_days(fixes) -> list[date]:
    return sorted({f.ts.astimezone(timezone.utc).date() for f in fixes})


PARTITION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('anwang.positions.partitions'))"


def ensure_partitions(session: Session, days) -> None:
    """Create the day partitions of `positions` that are missing (serialised across writers)."""
    days = sorted(set(days))
    if not days:
        return
    session.execute(text(PARTITION_LOCK))
    for d in days:
        session.execute(text("SELECT ensure_position_partition(:d)"), {"d": d})


def _ensure_partitions(run: Runner, days) -> None:
    if not days:
        return
    if run.session is not None:
        ensure_partitions(run.session, days)
        return
    with run.conn.transaction():      # the lock must be held until the partition is committed
        run.conn.execute(PARTITION_LOCK)
        for d in sorted(set(days)):
            run.conn.execute("SELECT ensure_position_partition(%s)", (d,))


def _prev_clean(run: Runner, unit: UnitRef, first: datetime, pending: list[Fix] = ()):
    """The unit's newest clean fix before `first` (from the last-position row when it is older)."""
    # `pending`: the unit's fixes from earlier pings of the same group commit, not written yet.
    if unit.last_ts is not None and unit.last_ts < first:
        return (unit.last_ts, unit.last_lon, unit.last_lat)
    row = run.one(
        "SELECT ts, ST_X(geom) AS x, ST_Y(geom) AS y FROM positions WHERE unit_id = %(u)s AND ts < %(t)s "
        "AND ts > CAST(%(t)s AS timestamptz) - interval '2 days' AND flags = 0 ORDER BY ts DESC LIMIT 1",
        {"u": unit.id, "t": first})
    found = [(row["ts"], row["x"], row["y"])] if row else []
    found += [(f.ts, f.lon, f.lat) for f in pending
              if f.flags == 0 and first - timedelta(days=2) < f.ts < first]
    return max(found, key=lambda c: c[0]) if found else None


def _flag(run: Runner, unit: UnitRef, fixes: list[Fix], pending: list[Fix] = ()) -> tuple[list[Fix], FlagState]:
    seen = (unit.seen_at, unit.seen_lon, unit.seen_lat) if unit.seen_lon is not None else None
    state = FlagState(anchor=None, seen=seen, chain=unit.jump_chain)
    fixes = flag_fixes(fixes, _prev_clean(run, unit, min(f.ts for f in fixes), pending), state=state)
    return fixes, state


TEMP_TABLE = """CREATE TEMP TABLE IF NOT EXISTS positions_in (
    ts timestamptz, lon double precision, lat double precision, speed real, heading real,
    accuracy real, altitude real, battery real, flags smallint) ON COMMIT DELETE ROWS"""

# The last clean fix only moves forward; the newest fix of any quality and the jump chain follow
# the newest fix received in time order.
LAST_UPSERT = """
INSERT INTO unit_last_positions AS l (unit_id, ts, geom, speed, heading, accuracy, battery, seen_at,
                                      seen_lon, seen_lat, jump_chain)
{source}
ON CONFLICT (unit_id) DO UPDATE SET
    ts = CASE WHEN excluded.ts > l.ts THEN excluded.ts ELSE l.ts END,
    geom = CASE WHEN excluded.ts > l.ts THEN excluded.geom ELSE l.geom END,
    speed = CASE WHEN excluded.ts > l.ts THEN excluded.speed ELSE l.speed END,
    heading = CASE WHEN excluded.ts > l.ts THEN excluded.heading ELSE l.heading END,
    accuracy = CASE WHEN excluded.ts > l.ts THEN excluded.accuracy ELSE l.accuracy END,
    battery = CASE WHEN excluded.ts > l.ts THEN excluded.battery ELSE l.battery END,
    seen_lon = CASE WHEN excluded.seen_at >= l.seen_at THEN excluded.seen_lon ELSE l.seen_lon END,
    seen_lat = CASE WHEN excluded.seen_at >= l.seen_at THEN excluded.seen_lat ELSE l.seen_lat END,
    jump_chain = CASE WHEN excluded.seen_at >= l.seen_at THEN excluded.jump_chain ELSE l.jump_chain END,
    seen_at = greatest(l.seen_at, excluded.seen_at), updated_at = now()"""
SEEN_UPDATE = """
UPDATE unit_last_positions SET
    seen_lon = CASE WHEN %(seen)s >= seen_at THEN %(slon)s ELSE seen_lon END,
    seen_lat = CASE WHEN %(seen)s >= seen_at THEN %(slat)s ELSE seen_lat END,
    jump_chain = CASE WHEN %(seen)s >= seen_at THEN %(chain)s ELSE jump_chain END,
    seen_at = greatest(seen_at, %(seen)s), updated_at = now()
 WHERE unit_id = %(u)s"""
INSERT_ONE = """
WITH ins AS (
    INSERT INTO positions (unit_id, ts, geom, speed, heading, accuracy, altitude, battery, flags, district_code,
                           received_at)
    VALUES (%(u)s, %(ts)s, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(speed)s, %(heading)s, %(acc)s,
            %(alt)s, %(bat)s, %(flags)s, %(dc)s, %(recv)s)
    ON CONFLICT (unit_id, ts) DO NOTHING RETURNING ts
), up AS (
""" + LAST_UPSERT.format(source="""
    SELECT %(u)s, %(ts)s, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(speed)s, %(heading)s, %(acc)s,
           %(bat)s, %(seen)s, %(slon)s, %(slat)s, %(chain)s FROM ins WHERE %(clean)s""") + """ RETURNING 1
), seen AS (""" + SEEN_UPDATE + """ AND NOT %(clean)s AND EXISTS (SELECT 1 FROM ins) RETURNING 1
)
SELECT (SELECT count(*) FROM ins) AS inserted, (SELECT count(*) FROM up) + (SELECT count(*) FROM seen) AS touched
"""
def ingest(session: Session, unit: UnitRef, fixes: list[Fix], publish_live: bool = True,
           update_last: bool = True) -> IngestResult:
    """Store a unit's fixes idempotently; flag jumps and poor accuracy; keep its last position.

    The caller commits, then publishes `result.live` (see `commit_and_publish`). `unit.missing_days`
    (from a look-up with the batch's days) saves a round trip; partitions are created when missing
    either way.
    """
    return _ingest(Runner(session), unit, fixes, publish_live, update_last)


def _ingest(run: Runner, unit: UnitRef, fixes: list[Fix], publish_live: bool = True,
            update_last: bool = True) -> IngestResult:
    if not fixes:
        return IngestResult(0, 0, 0, 0, 0)
    received = len(fixes)
    days = utc_days(fixes)
    missing = unit.missing_days if set(days) <= set(unit.days_checked) else None
    if missing is None:
        missing = run.one("SELECT coalesce(array_agg(x), '{}') AS m FROM unnest(CAST(%(days)s AS date[])) x "
                          "WHERE to_regclass('positions_' || to_char(x, 'YYYYMMDD')) IS NULL",
                          {"days": days})["m"]
    _ensure_partitions(run, missing)
    fixes, state = _flag(run, unit, fixes)
    if len(fixes) == 1 and update_last:
        return _ingest_one(run, unit, fixes[0], state, publish_live)
    inserted = _insert_copy(run, unit, fixes)
    new = [f for f in fixes if f.ts in inserted]
    result = IngestResult(received=received, inserted=len(new), duplicates=received - len(new),
                          jumps=sum(1 for f in new if f.flags & FLAG_JUMP),
                          poor_accuracy=sum(1 for f in new if f.flags & FLAG_ACCURACY))
    if new and update_last:
        live = _update_last(run, unit, new, state)
        result.live = live if publish_live else None
    return result


def _seen_params(unit: UnitRef, state: FlagState) -> dict:
    seen = state.seen or (unit.seen_at, unit.seen_lon, unit.seen_lat)
    return {"seen": seen[0], "slon": seen[1], "slat": seen[2], "chain": state.chain, "u": unit.id}


def _ingest_one(run: Runner, unit: UnitRef, f: Fix, state: FlagState, publish_live: bool) -> IngestResult:
    """One fix (an OsmAnd ping): the insert and the last-position update in one statement."""
    clean = f.flags == 0
    params = {"ts": f.ts, "lon": f.lon, "lat": f.lat, "speed": f.speed, "heading": f.heading, "acc": f.accuracy,
              "alt": f.altitude, "bat": f.battery, "flags": f.flags, "dc": unit.district_code, "clean": clean,
              "recv": datetime.now(timezone.utc), **_seen_params(unit, state)}
    inserted = int(run.one(INSERT_ONE, params)["inserted"])
    result = IngestResult(received=1, inserted=inserted, duplicates=1 - inserted,
                          jumps=int(bool(inserted and f.flags & FLAG_JUMP)),
                          poor_accuracy=int(bool(inserted and f.flags & FLAG_ACCURACY)))
    if inserted and publish_live:
        result.live = _live_payload(unit, f.ts, f if clean else None)
    return result


def _insert_copy(run: Runner, unit: UnitRef, fixes: list[Fix]) -> set:
    with run.dbapi().cursor() as cur:
        cur.execute(TEMP_TABLE)
        cur.execute("TRUNCATE positions_in")
        with cur.copy("COPY positions_in (ts, lon, lat, speed, heading, accuracy, altitude, battery, "
                      "flags) FROM STDIN") as copy:
            for f in fixes:
                copy.write_row((f.ts, f.lon, f.lat, f.speed, f.heading, f.accuracy, f.altitude,
                                f.battery, f.flags))
        cur.execute(
            "INSERT INTO positions (unit_id, ts, geom, speed, heading, accuracy, altitude, battery, "
            "flags, district_code) SELECT %s, ts, ST_SetSRID(ST_MakePoint(lon, lat), 4326), speed, "
            "heading, accuracy, altitude, battery, flags, %s FROM positions_in "
            "ON CONFLICT (unit_id, ts) DO NOTHING RETURNING ts", (unit.id, unit.district_code))
        return {r[0] for r in cur.fetchall()}


def _live_payload(unit: UnitRef, seen: datetime, newest: Fix | None) -> tuple:
    if newest is not None and unit.last_ts is not None and newest.ts <= unit.last_ts:
        newest = None          # a late fix: the marker stays where it is
    payload = {"unit": unit.id, "callsign": unit.callsign, "kind": unit.kind, "status": unit.status,
               "seen_at": seen.isoformat()}
    if newest is not None:
        payload.update({"ts": newest.ts.isoformat(), "lon": round(newest.lon, 7),
                        "lat": round(newest.lat, 7), "heading": newest.heading, "speed": newest.speed,
                        "accuracy": newest.accuracy, "battery": newest.battery})
    return ("position", unit.area_path, payload)


def _update_last(run: Runner, unit: UnitRef, new: list[Fix], state: FlagState) -> tuple:
    """Move the unit's last clean fix forward (never back); return its live event to publish."""
    seen = max(f.ts for f in new)
    clean = [f for f in new if f.flags == 0]
    newest = max(clean, key=lambda f: f.ts) if clean else None
    params = _seen_params(unit, state)
    if newest is not None:
        run.rows(LAST_UPSERT.format(source="VALUES (%(u)s, %(ts)s, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), "
                                           "%(speed)s, %(heading)s, %(acc)s, %(bat)s, %(seen)s, %(slon)s, "
                                           "%(slat)s, %(chain)s)"),
                 {**params, "ts": newest.ts, "lon": newest.lon, "lat": newest.lat, "speed": newest.speed,
                  "heading": newest.heading, "acc": newest.accuracy, "bat": newest.battery})
    else:
        run.rows(SEEN_UPDATE, params)
    return _live_payload(unit, seen, newest)


def publish_result(session: Session, result: IngestResult) -> int | None:
    """Publish an ingest's live event in the caller's transaction; return the event id."""
    if result.live is not None and result.event_id is None:
        result.event_id = publish(session, *result.live)
    return result.event_id


PUBLISH_ASYNC = ("SELECT live_publish(%(k)s, CAST(%(p)s AS ltree), CAST(%(d)s AS jsonb)) AS id, "
                 "set_config('synchronous_commit', 'off', true)")


def commit_and_publish(session: Session, result: IngestResult) -> int | None:
    """Commit the fixes (durably), then publish their live event in its own asynchronous commit."""
    session.commit()
    if result.live is None:
        return None
    kind, path, payload = result.live
    result.event_id = Runner(session).one(PUBLISH_ASYNC, {
        "k": kind, "p": path, "d": json.dumps(payload, ensure_ascii=False, default=str)})["id"]
    session.commit()
    return result.event_id


# -- group commit ----------------------------------------------------------------------------
UNKNOWN_DEVICE = "unknown_device"
UNAUTHORIZED = "unauthorized"


@dataclass
class Ping:
    """One OsmAnd request: a device's fixes, and the hash of its token when the server demands one."""

    device: str
    fixes: list[Fix]
    token_hash: str | None = None


# The pings' units, each with which of its pings' times are stored already (a retried ping must
# neither count nor steer the flags of the pings after it). The pings come as one JSON parameter
# (psycopg passes it on as it is, where it would dump arrays element by element in Python). Each
# unit is a LATERAL look-up by device id and each stored time a scalar subquery, so that the plan
# psycopg prepares stays index probes: a generic plan made while the day's partition was small
# would otherwise hash-join whole tables, and scan that partition once it has grown.
LOOKUP_MANY = """
SELECT x.*, ARRAY(SELECT t FROM unnest(r.ts) AS t
                   WHERE (SELECT true FROM positions p WHERE p.unit_id = x.id AND p.ts = t)) AS stored
  FROM json_to_recordset(CAST(%(pings)s AS json)) AS r(device text, ts timestamptz[])
 CROSS JOIN LATERAL (SELECT """ + _UNIT_COLUMNS + """, u.device_id, u.token_hash
                      FROM units u""" + _UNIT_JOINS + """ WHERE u.device_id = r.device LIMIT 1) AS x"""
# One statement, so one implicit transaction with one durable commit: the new fixes, and the
# last-position row of every unit they touch (one row per unit, folded in the order the pings came).
WRITE_MANY = """
WITH ins AS (
    INSERT INTO positions (unit_id, ts, geom, speed, heading, accuracy, altitude, battery, flags, district_code)
    SELECT u, ts, ST_SetSRID(ST_MakePoint(lon, lat), 4326), speed, heading, acc, alt, bat, flags, dc
      FROM json_to_recordset(CAST(%(fixes)s AS json))
           AS r(u integer, ts timestamptz, lon float8, lat float8, speed real, heading real, acc real,
                alt real, bat real, flags smallint, dc text)
    ON CONFLICT (unit_id, ts) DO NOTHING RETURNING unit_id, ts
), up AS (""" + LAST_UPSERT.format(source="""
    SELECT u, ts, ST_SetSRID(ST_MakePoint(lon, lat), 4326), speed, heading, acc, bat, seen, slon, slat, chain
      FROM json_to_recordset(CAST(%(lasts)s AS json))
           AS l(u integer, ts timestamptz, lon float8, lat float8, speed real, heading real, acc real,
                bat real, seen timestamptz, slon float8, slat float8, chain smallint)""") + """ RETURNING 1
)
SELECT unit_id, ts FROM ins"""
# PostgreSQL serialises the commits of NOTIFYing transactions, so the events go in a transaction of
# their own that commits asynchronously (a crash can lose an event, never a fix).
PUBLISH_MANY = """
SELECT live_publish(e.k, CAST(e.p AS ltree), e.d) AS id, set_config('synchronous_commit', 'off', true)
  FROM (SELECT * FROM ROWS FROM (json_to_recordset(CAST(%(events)s AS json)) AS (k text, p text, d jsonb))
                      WITH ORDINALITY AS e(k, p, d, i) ORDER BY i) AS e"""


def ingest_pings(conn, pings: list[Ping]) -> list:
    """Store the pings of many devices with one durable commit, judged as if they came one by one."""
    # On a raw psycopg connection in autocommit. Each ping's outcome, in order, is its IngestResult
    # (its live event in `live`, for publish_pings once the caller has answered), UNKNOWN_DEVICE or
    # UNAUTHORIZED, which store nothing. A failure stores nothing at all.
    run = Runner(conn=conn)
    times: dict[str, list[str]] = {}
    for p in pings:
        times.setdefault(p.device, []).extend(f.ts.isoformat() for f in p.fixes)
    rows = {r["device_id"]: r for r in run.rows(LOOKUP_MANY, {
        "pings": json.dumps([{"device": d, "ts": ts} for d, ts in times.items()]),
        "days": utc_days(f for p in pings for f in p.fixes)})}
    stored = {(r["id"], ts) for r in rows.values() for ts in r["stored"] or ()}
    _ensure_partitions(run, sorted({d for r in rows.values() for d in r["missing_days"] or ()}))
    units: dict[int, UnitRef] = {}
    lasts: dict[int, Fix] = {}
    written: dict[int, list[Fix]] = {}
    fixes: list[tuple[int, Fix, IngestResult]] = []
    outcomes: list = []
    for ping in pings:
        row = rows.get(ping.device)
        if ping.token_hash is not None and (row is None or row["token_hash"] != ping.token_hash):
            outcomes.append(UNAUTHORIZED)
        elif row is None:
            outcomes.append(UNKNOWN_DEVICE)
        else:
            unit = units.get(row["id"])
            if unit is None:
                unit = units[row["id"]] = _unit_ref(row)
            result, new = _plan_ping(run, unit, ping, stored, written.setdefault(unit.id, []), lasts)
            fixes += [(unit.id, f, result) for f in new]
            outcomes.append(result)
    if not fixes:
        return outcomes
    rows_in = [{"u": uid, "ts": f.ts.isoformat(), "lon": f.lon, "lat": f.lat, "speed": f.speed,
                "heading": f.heading, "acc": f.accuracy, "alt": f.altitude, "bat": f.battery,
                "flags": f.flags, "dc": units[uid].district_code} for uid, f, _ in fixes]
    lasts_in = []
    for u in units.values():
        if written[u.id] and u.last_ts is not None:
            last = lasts.get(u.id)
            lasts_in.append({"u": u.id, "ts": u.last_ts.isoformat(), "lon": u.last_lon, "lat": u.last_lat,
                             "speed": last and last.speed, "heading": last and last.heading,
                             "acc": last and last.accuracy, "bat": last and last.battery,
                             "seen": u.seen_at.isoformat(), "slon": u.seen_lon, "slat": u.seen_lat,
                             "chain": u.jump_chain})
    inserted = set(conn.execute(WRITE_MANY, {"fixes": json.dumps(rows_in),
                                             "lasts": json.dumps(lasts_in)}).fetchall())
    # A fix another writer stored between the look-up and this commit is its fix, not this ping's,
    # and a ping left with nothing new has no live event, as in the one-by-one path.
    for uid, f, result in fixes:
        if (uid, f.ts) not in inserted:
            result.inserted -= 1
            result.duplicates += 1
            result.jumps -= bool(f.flags & FLAG_JUMP)
            result.poor_accuracy -= bool(f.flags & FLAG_ACCURACY)
            if not result.inserted:
                result.live = None
    return outcomes


def _plan_ping(run: Runner, unit: UnitRef, ping: Ping, stored: set, written: list[Fix],
               lasts: dict[int, Fix]) -> tuple[IngestResult, list[Fix]]:
    """Flag a ping's fixes as its unit stands after the group's earlier pings, and move the unit on."""
    # `unit` stands for its last-position row: it moves on as LAST_UPSERT or SEEN_UPDATE would move
    # the row once the new fixes are stored. Returns the ping's result and its new fixes.
    fixes, state = _flag(run, unit, ping.fixes, written)
    taken = {f.ts for f in written}
    new = [f for f in fixes if f.ts not in taken and (unit.id, f.ts) not in stored]
    result = IngestResult(received=len(ping.fixes), inserted=len(new), duplicates=len(ping.fixes) - len(new),
                          jumps=sum(1 for f in new if f.flags & FLAG_JUMP),
                          poor_accuracy=sum(1 for f in new if f.flags & FLAG_ACCURACY))
    if not new:
        return result, new
    written.extend(new)
    clean = [f for f in new if f.flags == 0]
    newest = max(clean, key=lambda f: f.ts) if clean else None
    result.live = _live_payload(unit, max(f.ts for f in new), newest)
    seen = _seen_params(unit, state)
    # What LAST_UPSERT (a clean fix) or SEEN_UPDATE (only flagged ones, on an existing row) would do.
    if newest is None and unit.last_ts is None:
        return result, new
    if newest is not None and (unit.last_ts is None or newest.ts > unit.last_ts):
        unit.last_ts, unit.last_lon, unit.last_lat = newest.ts, newest.lon, newest.lat
        lasts[unit.id] = newest
    if unit.seen_at is None or seen["seen"] >= unit.seen_at:
        unit.seen_lon, unit.seen_lat, unit.jump_chain = seen["slon"], seen["slat"], seen["chain"]
        unit.seen_at = seen["seen"]
    return result, new


def publish_pings(conn, outcomes: list) -> None:
    """Publish the live events of stored pings in one asynchronous commit and set their event ids."""
    done = [r for r in outcomes if isinstance(r, IngestResult) and r.live is not None and r.event_id is None]
    if not done:
        return
    events = json.dumps([{"k": r.live[0], "p": r.live[1], "d": r.live[2]} for r in done],
                        ensure_ascii=False, default=str)
    for r, (event_id, _) in zip(done, conn.execute(PUBLISH_MANY, {"events": events}).fetchall()):
        r.event_id = event_id


def publish(session: Session, kind: str, area_path: str | None, payload: dict) -> int:
    """Log a live event and NOTIFY the listeners; delivered when the caller's transaction commits."""
    return session.execute(text("SELECT live_publish(:k, CAST(:p AS ltree), CAST(:d AS jsonb))"),
                           {"k": kind, "p": area_path, "d": json.dumps(payload, ensure_ascii=False,
                                                                        default=str)}).scalar_one()


# -- OsmAnd / Traccar Client -----------------------------------------------------------------
KNOTS = 0.514444   # m/s per knot: the query-string form carries speed in knots


def parse_osmand_query(params) -> tuple[str, list[Fix]]:
    """The query-string (or form-body) form Traccar Client sends:
    `?id=&timestamp=&lat=&lon=&speed=&bearing=&altitude=&accuracy=&batt=` (speed in knots,
    timestamp in Unix seconds, milliseconds, ISO 8601 or `yyyy-MM-dd HH:mm:ss`, battery in %)."""
    get = lambda k: params.get(k) if params.get(k) not in (None, "") else None   # noqa: E731
    device = get("id") or get("deviceid")
    if not device:
        raise InvalidInput("id", "the device id (id=…) is missing")
    lat, lon = get("lat"), get("lon")
    if (lat is None or lon is None) and get("location"):
        parts = str(get("location")).split(",")
        if len(parts) == 2:
            lat, lon = parts
    obj = {"lat": lat, "lon": lon, "heading": get("bearing") or get("heading"),
           "altitude": get("altitude"), "accuracy": get("accuracy"), "battery": get("batt")}
    fix = parse_fix({**obj, "ts": get("timestamp") or datetime.now(timezone.utc).isoformat()}, "query")
    speed = get("speed")
    if speed is not None:
        knots = _number({"speed": speed}, "speed", "speed", 0, 2000)
        fix.speed = knots * KNOTS if knots is not None else None
    if fix.accuracy is None and get("hdop") is not None:
        hdop = _number({"hdop": get("hdop")}, "hdop", "hdop", 0, 100)
        fix.accuracy = hdop * 5 if hdop is not None else None   # ~5 m user range error per HDOP unit
    return str(device), [fix]


def parse_osmand_json(body: dict) -> tuple[str, list[Fix]]:
    """The JSON form of the Traccar Client 9 app (transistorsoft location template):
    {"location": {...} or [...], "device_id": "…"} with coords.{latitude, longitude, accuracy,
    speed (m/s), heading, altitude}, ISO timestamp and battery.level in 0–1."""
    if not isinstance(body, dict):
        raise InvalidInput("body", "expected a JSON object")
    device = body.get("device_id") or body.get("id")
    locations = body.get("location")
    if locations is None and "coords" in body:
        locations = body
    if isinstance(locations, dict):
        locations = [locations]
    if not device:
        raise InvalidInput("device_id", "the device id (device_id) is missing")
    if not isinstance(locations, list) or not locations:
        raise InvalidInput("location", "expected a location object or a list of them")
    fixes = []
    for i, loc in enumerate(locations):
        where = f"location[{i}]"
        if not isinstance(loc, dict) or not isinstance(loc.get("coords"), dict):
            raise InvalidInput(where, "a location needs a coords object")
        c = loc["coords"]
        battery = loc.get("battery") if isinstance(loc.get("battery"), dict) else {}
        level = battery.get("level")
        try:
            level = float(level) * 100 if level is not None and float(level) >= 0 else None
        except (TypeError, ValueError):
            level = None
        fixes.append(parse_fix({"ts": loc.get("timestamp"), "lat": c.get("latitude"),
                                "lon": c.get("longitude"), "speed": c.get("speed"),
                                "heading": c.get("heading"), "accuracy": c.get("accuracy"),
                                "altitude": c.get("altitude"), "battery": level}, where))
    return str(device), fixes

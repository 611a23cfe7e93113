"""Storing fixes: idempotent ingest into the day-partitioned `positions` table and the live event.

Every fix lands in `positions` keyed by (unit_id, ts), so a replayed or overlapping batch changes
nothing and late fixes are simply slotted in. Batches go through COPY into a session-local temp
table and one INSERT … ON CONFLICT DO NOTHING; a single ping is one INSERT. The unit's newest
clean fix is kept in `unit_last_positions`. The live-map event is published after the fixes are
committed, in a short second transaction (`commit_and_publish`): PostgreSQL serialises the commits
of transactions that NOTIFY, so a NOTIFY inside every ingest transaction would queue them all
behind one WAL flush each. The event transaction commits asynchronously — a crash can lose a
live-map event, never a fix.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.live import publish
from geo.patrol.filters import (
    DEFAULT_LIMITS,
    FLAG_ACCURACY,
    FLAG_JUMP,
    FlagState,
    Limits,
    flag_fixes,
)
from geo.patrol.fixes import Fix
from geo.patrol.runner import Runner
from geo.patrol.units import UnitRef


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
    heard: int = 0                 # reports without a position (geo.patrol.events)

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


def ensure_partitions_with(run: Runner, days) -> None:
    if not days:
        return
    if run.session is not None:
        ensure_partitions(run.session, days)
        return
    with run.conn.transaction():      # the lock must be held until the partition is committed
        run.conn.execute(PARTITION_LOCK)
        for d in sorted(set(days)):
            run.conn.execute("SELECT ensure_position_partition(%s)", (d,))


def _prev_clean(run: Runner, unit: UnitRef, first: datetime, pending: Sequence[Fix] = ()):
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


def flag_for_unit(run: Runner, unit: UnitRef, fixes: list[Fix], pending: Sequence[Fix] = (),
                  limits: Limits = DEFAULT_LIMITS) -> tuple[list[Fix], FlagState]:
    seen = (unit.seen_at, unit.seen_lon, unit.seen_lat) if unit.seen_lon is not None else None
    state = FlagState(anchor=None, seen=seen, chain=unit.jump_chain)
    fixes = flag_fixes(fixes, _prev_clean(run, unit, min(f.ts for f in fixes), pending),
                       speed_limit=limits.max_speed_ms, accuracy_limit=limits.poor_accuracy_m,
                       state=state)
    return fixes, state


TEMP_TABLE = """CREATE TEMP TABLE IF NOT EXISTS positions_in (
    ts timestamptz, lon double precision, lat double precision, speed real, heading real,
    accuracy real, altitude real, battery real, flags smallint, hdop real) ON COMMIT DELETE ROWS"""

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
                           received_at, hdop)
    VALUES (%(u)s, %(ts)s, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(speed)s, %(heading)s, %(acc)s,
            %(alt)s, %(bat)s, %(flags)s, %(dc)s, %(recv)s, %(hdop)s)
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
           update_last: bool = True, limits: Limits = DEFAULT_LIMITS) -> IngestResult:
    """Store a unit's fixes idempotently; flag jumps and poor accuracy; keep its last position.

    The caller commits, then publishes `result.live` (see `commit_and_publish`). `unit.missing_days`
    (from a look-up with the batch's days) saves a round trip; partitions are created when missing
    either way.
    """
    return _ingest(Runner(session), unit, fixes, publish_live, update_last, limits)


def _ingest(run: Runner, unit: UnitRef, fixes: list[Fix], publish_live: bool = True,
            update_last: bool = True, limits: Limits = DEFAULT_LIMITS) -> IngestResult:
    if not fixes:
        return IngestResult(0, 0, 0, 0, 0)
    received = len(fixes)
    days = utc_days(fixes)
    missing = unit.missing_days if set(days) <= set(unit.days_checked) else None
    if missing is None:
        missing = run.single("SELECT coalesce(array_agg(x), '{}') AS m FROM unnest(CAST(%(days)s AS date[])) x "
                             "WHERE to_regclass('positions_' || to_char(x, 'YYYYMMDD')) IS NULL",
                             {"days": days})["m"]
    ensure_partitions_with(run, missing)
    fixes, state = flag_for_unit(run, unit, fixes, limits=limits)
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


def seen_params(unit: UnitRef, state: FlagState) -> dict:
    seen = state.seen or (unit.seen_at, unit.seen_lon, unit.seen_lat)
    return {"seen": seen[0], "slon": seen[1], "slat": seen[2], "chain": state.chain, "u": unit.id}


def _ingest_one(run: Runner, unit: UnitRef, f: Fix, state: FlagState, publish_live: bool) -> IngestResult:
    """One fix (an OsmAnd ping): the insert and the last-position update in one statement."""
    clean = f.flags == 0
    params = {"ts": f.ts, "lon": f.lon, "lat": f.lat, "speed": f.speed, "heading": f.heading, "acc": f.accuracy,
              "alt": f.altitude, "bat": f.battery, "flags": f.flags, "dc": unit.district_code, "clean": clean,
              "hdop": f.hdop,
              "recv": datetime.now(timezone.utc), **seen_params(unit, state)}
    inserted = int(run.single(INSERT_ONE, params)["inserted"])
    result = IngestResult(received=1, inserted=inserted, duplicates=1 - inserted,
                          jumps=int(bool(inserted and f.flags & FLAG_JUMP)),
                          poor_accuracy=int(bool(inserted and f.flags & FLAG_ACCURACY)))
    if inserted and publish_live:
        result.live = live_payload(unit, f.ts, f if clean else None)
    return result


def _insert_copy(run: Runner, unit: UnitRef, fixes: list[Fix]) -> set:
    with run.dbapi().cursor() as cur:
        cur.execute(TEMP_TABLE)
        cur.execute("TRUNCATE positions_in")
        with cur.copy("COPY positions_in (ts, lon, lat, speed, heading, accuracy, altitude, battery, "
                      "flags, hdop) FROM STDIN") as copy:
            for f in fixes:
                copy.write_row((f.ts, f.lon, f.lat, f.speed, f.heading, f.accuracy, f.altitude,
                                f.battery, f.flags, f.hdop))
        cur.execute(
            "INSERT INTO positions (unit_id, ts, geom, speed, heading, accuracy, altitude, battery, "
            "flags, district_code, hdop) SELECT %s, ts, ST_SetSRID(ST_MakePoint(lon, lat), 4326), speed, "
            "heading, accuracy, altitude, battery, flags, %s, hdop FROM positions_in "
            "ON CONFLICT (unit_id, ts) DO NOTHING RETURNING ts", (unit.id, unit.district_code))
        return {r[0] for r in cur.fetchall()}


def live_payload(unit: UnitRef, seen: datetime, newest: Fix | None) -> tuple:
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
    params = seen_params(unit, state)
    if newest is not None:
        run.rows(LAST_UPSERT.format(source="VALUES (%(u)s, %(ts)s, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), "
                                           "%(speed)s, %(heading)s, %(acc)s, %(bat)s, %(seen)s, %(slon)s, "
                                           "%(slat)s, %(chain)s)"),
                 {**params, "ts": newest.ts, "lon": newest.lon, "lat": newest.lat, "speed": newest.speed,
                  "heading": newest.heading, "acc": newest.accuracy, "bat": newest.battery})
    else:
        run.rows(SEEN_UPDATE, params)
    return live_payload(unit, seen, newest)


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
    result.event_id = Runner(session).single(PUBLISH_ASYNC, {
        "k": kind, "p": path, "d": json.dumps(payload, ensure_ascii=False, default=str)})["id"]
    session.commit()
    return result.event_id

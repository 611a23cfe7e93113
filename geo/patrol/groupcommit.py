"""The OsmAnd port's group commit: the pings of many devices that arrive together are stored in one
statement and one commit (`ingest_pings`), judged exactly as if they had come one by one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from geo.patrol.events import EVENT_INSERT, HEARD_UPDATE, Heard, heard_payload
from geo.patrol.filters import DEFAULT_LIMITS, FLAG_ACCURACY, FLAG_JUMP, Limits
from geo.patrol.fixes import Fix
from geo.patrol.ingest import (
    LAST_UPSERT,
    IngestResult,
    ensure_partitions_with,
    flag_for_unit,
    live_payload,
    seen_params,
    utc_days,
)
from geo.patrol.runner import Runner
from geo.patrol.units import UNIT_COLUMNS, UNIT_JOINS, UnitRef, unit_ref

# -- group commit ----------------------------------------------------------------------------
UNKNOWN_DEVICE = "unknown_device"
UNAUTHORIZED = "unauthorized"


@dataclass
class Ping:
    """One request or tracker message: a device's fixes, its report without a position (a heartbeat,
    cell towers, a login, an alarm) if any, and the hash of its token when the server demands one."""

    device: str
    fixes: list[Fix]
    token_hash: str | None = None
    heard: Heard | None = None


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
 CROSS JOIN LATERAL (SELECT """ + UNIT_COLUMNS + """, u.device_id, u.token_hash
                      FROM units u""" + UNIT_JOINS + """ WHERE u.device_id = r.device LIMIT 1) AS x"""
# One statement, so one implicit transaction with one durable commit: the new fixes, and the
# last-position row of every unit they touch (one row per unit, folded in the order the pings came).
WRITE_MANY = """
WITH ins AS (
    INSERT INTO positions (unit_id, ts, geom, speed, heading, accuracy, altitude, battery, flags, district_code,
                           hdop)
    SELECT u, ts, ST_SetSRID(ST_MakePoint(lon, lat), 4326), speed, heading, acc, alt, bat, flags, dc, hdop
      FROM json_to_recordset(CAST(%(fixes)s AS json))
           AS r(u integer, ts timestamptz, lon float8, lat float8, speed real, heading real, acc real,
                alt real, bat real, flags smallint, dc text, hdop real)
    ON CONFLICT (unit_id, ts) DO NOTHING RETURNING unit_id, ts
), up AS (""" + LAST_UPSERT.format(source="""
    SELECT u, ts, ST_SetSRID(ST_MakePoint(lon, lat), 4326), speed, heading, acc, bat, seen, slon, slat, chain
      FROM json_to_recordset(CAST(%(lasts)s AS json))
           AS l(u integer, ts timestamptz, lon float8, lat float8, speed real, heading real, acc real,
                bat real, seen timestamptz, slon float8, slat float8, chain smallint)""") + """ RETURNING 1
), ev AS (""" + EVENT_INSERT.format(source="""
    SELECT u, ts, kind, bat, details, recv FROM json_to_recordset(CAST(%(events)s AS json))
           AS e(u integer, ts timestamptz, kind text, bat real, details jsonb, recv timestamptz)""") + """
), heard AS (""" + HEARD_UPDATE.format(source="""
    SELECT u, kind, recv
      FROM json_to_recordset(CAST(%(heard)s AS json)) AS h(u integer, kind text, recv timestamptz)""") + """
)
SELECT unit_id, ts FROM ins"""
# PostgreSQL serialises the commits of NOTIFYing transactions, so the events go in a transaction of
# their own that commits asynchronously (a crash can lose an event, never a fix).
PUBLISH_MANY = """
SELECT live_publish(e.k, CAST(e.p AS ltree), e.d) AS id, set_config('synchronous_commit', 'off', true)
  FROM (SELECT * FROM ROWS FROM (json_to_recordset(CAST(%(events)s AS json)) AS (k text, p text, d jsonb))
                      WITH ORDINALITY AS e(k, p, d, i) ORDER BY i) AS e"""


def ingest_pings(conn, pings: list[Ping], limits: Limits = DEFAULT_LIMITS) -> list:
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
    ensure_partitions_with(run, sorted({d for r in rows.values() for d in r["missing_days"] or ()}))
    units: dict[int, UnitRef] = {}
    lasts: dict[int, Fix] = {}
    written: dict[int, list[Fix]] = {}
    fixes: list[tuple[int, Fix, IngestResult]] = []
    events: list[dict] = []
    heard: dict[int, Heard] = {}
    heard_live: dict[int, tuple] = {}
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
                unit = units[row["id"]] = unit_ref(row)
            result, new = _plan_ping(run, unit, ping, stored, written.setdefault(unit.id, []), lasts,
                                     limits)
            fixes += [(unit.id, f, result) for f in new]
            if ping.heard is not None:
                events.append(ping.heard.row(unit.id))
                heard[unit.id] = max(heard.get(unit.id, ping.heard), ping.heard, key=lambda h: h.received)
                result.heard += 1
                heard_live[id(result)] = heard_payload(unit, ping.heard)
                result.live = result.live or heard_live[id(result)]
            outcomes.append(result)
    if not fixes and not events:
        return outcomes
    rows_in = [{"u": uid, "ts": f.ts.isoformat(), "lon": f.lon, "lat": f.lat, "speed": f.speed,
                "heading": f.heading, "acc": f.accuracy, "alt": f.altitude, "bat": f.battery,
                "flags": f.flags, "dc": units[uid].district_code, "hdop": f.hdop} for uid, f, _ in fixes]
    lasts_in = []
    for u in units.values():
        if written[u.id] and u.last_ts is not None:
            last = lasts.get(u.id)
            lasts_in.append({"u": u.id, "ts": u.last_ts.isoformat(), "lon": u.last_lon, "lat": u.last_lat,
                             "speed": last and last.speed, "heading": last and last.heading,
                             "acc": last and last.accuracy, "bat": last and last.battery,
                             "seen": (u.seen_at or u.last_ts).isoformat(), "slon": u.seen_lon, "slat": u.seen_lat,
                             "chain": u.jump_chain})
    heard_in = [{"u": uid, "kind": h.kind, "recv": h.received.isoformat()} for uid, h in heard.items()]
    inserted = set(conn.execute(WRITE_MANY, {"fixes": json.dumps(rows_in), "lasts": json.dumps(lasts_in),
                                             "events": json.dumps(events),
                                             "heard": json.dumps(heard_in)}).fetchall())
    # A fix another writer stored between the look-up and this commit is its fix, not this ping's,
    # and a ping left with nothing new has no live event, as in the one-by-one path.
    for uid, f, result in fixes:
        if (uid, f.ts) not in inserted:
            result.inserted -= 1
            result.duplicates += 1
            result.jumps -= bool(f.flags & FLAG_JUMP)
            result.poor_accuracy -= bool(f.flags & FLAG_ACCURACY)
            if not result.inserted:
                result.live = heard_live.get(id(result))
    return outcomes


def _plan_ping(run: Runner, unit: UnitRef, ping: Ping, stored: set, written: list[Fix],
               lasts: dict[int, Fix], limits: Limits) -> tuple[IngestResult, list[Fix]]:
    """Flag a ping's fixes as its unit stands after the group's earlier pings, and move the unit on."""
    # `unit` stands for its last-position row: it moves on as LAST_UPSERT or SEEN_UPDATE would move
    # the row once the new fixes are stored. Returns the ping's result and its new fixes.
    if not ping.fixes:
        return IngestResult(0, 0, 0, 0, 0), []
    fixes, state = flag_for_unit(run, unit, ping.fixes, written, limits)
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
    result.live = live_payload(unit, max(f.ts for f in new), newest)
    seen = seen_params(unit, state)
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
    events = json.dumps([{"k": r.live[0], "p": r.live[1], "d": r.live[2]} for r in done if r.live is not None],
                        ensure_ascii=False, default=str)
    for r, (event_id, _) in zip(done, conn.execute(PUBLISH_MANY, {"events": events}).fetchall()):
        r.event_id = event_id

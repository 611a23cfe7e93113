"""Reports without a position: heartbeats, cell-tower and Wi-Fi reports, tracker logins and alarms.

Each is a row of `unit_events` keyed by (unit, device time, kind), so a replayed report is stored
once, and moves the unit's `heard_at` to when the server received it: the dispatch map then shows
the unit as heard from, at its last known fix, without inventing a position.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy.orm import Session

from geo.patrol.filters import DEFAULT_LIMITS, Limits
from geo.patrol.fixes import Fix
from geo.patrol.ingest import IngestResult, ingest, live_payload
from geo.patrol.runner import Runner
from geo.patrol.units import UnitRef

KINDS = ("heartbeat", "cells", "login", "alarm")


@dataclass
class Heard:
    """A report without a position: when the device says it was made, its kind, and what it says."""

    ts: datetime
    kind: str = "heartbeat"
    battery: float | None = None
    details: dict | None = None
    received: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def row(self, unit_id: int) -> dict:
        """The event as a row of the group commit's JSON."""
        return {"u": unit_id, "ts": self.ts.isoformat(), "kind": self.kind, "bat": self.battery,
                "details": self.details or None, "recv": self.received.isoformat()}


# The report is stored once; the unit's heard time only moves forward, and its kind with it.
EVENT_INSERT = """
    INSERT INTO unit_events (unit_id, ts, kind, battery, details, received_at)
    {source}
    ON CONFLICT (unit_id, ts, kind) DO NOTHING RETURNING unit_id"""
HEARD_UPDATE = """
    UPDATE units x
       SET heard_kind = CASE WHEN x.heard_at IS NULL OR x.heard_at <= h.recv THEN h.kind ELSE x.heard_kind END,
           heard_at = greatest(x.heard_at, h.recv)
      FROM ({source}) AS h(u, kind, recv)
     WHERE x.id = h.u RETURNING x.id"""
RECORD_ONE = """
WITH ev AS (""" + EVENT_INSERT.format(source="""
    VALUES (CAST(%(u)s AS integer), CAST(%(ts)s AS timestamptz), CAST(%(kind)s AS text), CAST(%(bat)s AS real),
            CAST(%(details)s AS jsonb), CAST(%(recv)s AS timestamptz))""") + """
), heard AS (""" + HEARD_UPDATE.format(source="""
    VALUES (CAST(%(u)s AS integer), CAST(%(kind)s AS text), CAST(%(recv)s AS timestamptz))""") + """
)
SELECT (SELECT count(*) FROM ev) AS inserted"""


def heard_payload(unit: UnitRef, heard: Heard) -> tuple:
    """The live event of a report without a position: the unit was heard from, its marker stays."""
    kind, path, payload = live_payload(unit, heard.received, None)
    payload["report"] = heard.kind
    if heard.battery is not None:
        payload["battery"] = heard.battery
    return kind, path, payload


def record(run: Runner, unit: UnitRef, heard: Heard) -> tuple:
    """Store a report without a position and move the unit's heard time; return its live event."""
    row = heard.row(unit.id)
    row["details"] = json.dumps(row["details"], ensure_ascii=False) if row["details"] else None
    run.one(RECORD_ONE, row)
    return heard_payload(unit, heard)


def ingest_report(session: Session, unit: UnitRef, fixes: list[Fix], heard: Heard | None,
                  limits: Limits = DEFAULT_LIMITS) -> IngestResult:
    """Store what one request reported: its fixes, and its report without a position if any."""
    result = ingest(session, unit, fixes, limits=limits) if fixes else IngestResult(0, 0, 0, 0, 0)
    if heard is not None:
        live = record(Runner(session), unit, heard)
        result.heard += 1
        if result.live is None:
            result.live = live
    return result

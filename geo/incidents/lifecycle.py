"""Moving an incident along its workflow: each transition is one row in `incident_events` (actor,
note, level) and one audit entry, in the caller's transaction.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit
from geo.errors import Conflict, InvalidInput
from geo.incidents.queries import get, incident_row, visible
from geo.incidents.workflow import (
    NOTE_REQUIRED,
    TRANSITIONS,
    handling_level,
    parse_level,
)
from geo.messages import msg
from geo.policy import Audience
from geo.vocabulary import INCIDENT_STATUSES, RESOLUTION_LEVELS, RESOLVED_STATUSES


def transition(session: Session, actor: audit.Actor, incident_id, to: str, audience: Audience, *,
               note: str | None = None, level: str | None = None,
               expected_status: str | None = None, at: datetime | None = None) -> dict:
    """Move an incident along its lifecycle; record the event and audit it; return the incident.

    `level` on `resolved` is where it was resolved (default: the level holding it); on `escalated`
    the level it goes to (default: the next one up). `expected_status` guards against two people
    acting on the same incident at once (Conflict if it has moved meanwhile). Only an incident in
    the audience's scope can be moved (NotFound otherwise).
    """
    visible(session, incident_id, audience)
    if to not in INCIDENT_STATUSES:
        raise InvalidInput("to", f"to must be one of {', '.join(INCIDENT_STATUSES)}; got {to!r}")
    level = parse_level(level)
    note = _note(note)
    row = incident_row(session, incident_id)
    # Lock the row so two transitions of one incident are serialised.
    session.execute(text("SELECT 1 FROM incidents WHERE id = :id FOR UPDATE"), {"id": row["id"]})
    row = incident_row(session, incident_id)
    current = row["status"]
    _check_allowed(row, current, to, note, expected_status)
    if to == "followed_up":
        _check_visited(session, row)
    now = at or datetime.now(timezone.utc)
    sets, event_level, attrs = _effects(row, current, to, level, now)
    sets["attrs"] = json.dumps(attrs, ensure_ascii=False)
    assignments = ", ".join(f"{k} = CAST(:{k} AS jsonb)" if k == "attrs" else f"{k} = :{k}"
                            for k in sets)
    session.execute(text(f"UPDATE incidents SET {assignments} WHERE id = :id"),
                    {**sets, "id": row["id"]})
    session.execute(text("""
        INSERT INTO incident_events (incident_id, ts, actor_id, from_status, to_status, level, note)
        VALUES (:id, :ts, :actor, :from, :to, :level, :note)"""),
        {"id": row["id"], "ts": now, "actor": actor.user_id, "from": current, "to": to,
         "level": event_level, "note": note})
    audit.record(session, actor, f"incident.{to}", target_type="incident", target_id=row["id"],
                 area_code=row["area_code"],
                 details={"from": current, "to": to, "level": event_level, "note": note})
    return get(session, row["id"], audience)


def _note(note) -> str | None:
    """A transition's note: text of at most 2,000 characters, or none."""
    if note is not None and not isinstance(note, str):
        raise InvalidInput("note", "note must be text")
    note = (note or "").strip() or None
    if note and len(note) > 2000:
        raise InvalidInput("note", f"note must be at most 2000 characters; got {len(note)}")
    return note


def _check_allowed(row: dict, current: str, to: str, note: str | None,
                   expected_status: str | None) -> None:
    """Refuse a transition the workflow does not allow from where the incident is now."""
    if expected_status and expected_status != current:
        raise Conflict(f"incident {row['id']} is {current}, not {expected_status}", field="status")
    if to not in TRANSITIONS[current]:
        allowed = ", ".join(TRANSITIONS[current]) or "nothing (closed)"
        raise InvalidInput("to", f"an incident that is {current} can go to {allowed}; got {to!r}")
    if (current, to) in NOTE_REQUIRED and not note:
        raise InvalidInput("note", f"reopening a {current} incident needs a note saying why")
    if to == "escalated" and not note:
        raise InvalidInput("note", "an escalation needs a note saying why")


def _check_visited(session: Session, row: dict) -> None:
    """A matter is followed up by a logged 回访 visit (geo/visits), not by saying so."""
    visited = session.execute(text("""
        SELECT EXISTS (SELECT 1 FROM visits v
                        WHERE v.incident_id = :id AND v.kind = 'follow_up'
                          AND (v.occurred_at >= :resolved OR v.created_at >= :resolved))"""),
        {"id": row["id"], "resolved": row["resolved_at"]}).scalar_one()
    if not visited:
        raise InvalidInput("to", msg("Matter {id} is followed up by a logged 回访 visit: record one "
                                     "(POST /api/visits with kind follow_up and incident_id {id}).",
                                     id=row["id"]))


def _effects(row: dict, current: str, to: str, level: str | None,
             now: datetime) -> tuple[dict[str, Any], str | None, dict]:
    """What a transition writes: the columns it sets, the level its event records, the attrs."""
    attrs = dict(row.get("attrs") or {})
    holding = handling_level(row)
    sets: dict[str, Any] = {"status": to}
    event_level = None
    if to == "escalated":
        order = list(RESOLUTION_LEVELS)
        if holding == order[-1]:
            raise InvalidInput("to", f"the matter is already held by the {holding}; it cannot go higher")
        nxt = level or order[order.index(holding) + 1]
        if order.index(nxt) <= order.index(holding):
            raise InvalidInput("level", f"escalation must go above {holding}; got {nxt}")
        attrs["handling_level"] = nxt
        event_level = nxt
    elif to == "accepted":
        if row["accepted_at"] is None:
            sets["accepted_at"] = now
        event_level = holding
    elif to == "resolved":
        event_level = level or holding
        sets.update(resolved_at=now, resolution_level=event_level)
    elif to == "handling":
        if current in RESOLVED_STATUSES:
            sets.update(resolved_at=None, resolution_level=None)
        event_level = holding
    elif to in ("followed_up", "closed"):
        if to == "closed":
            sets["closed_at"] = now
        event_level = row["resolution_level"]
    return sets, event_level, attrs


"""Live events: what the dispatch map and the analysts' screens hear as it happens.

An event is logged in `live_events` (so a client reconnecting with Last-Event-ID resumes from the
log) and announced with NOTIFY, which PostgreSQL delivers only when the writer's transaction
commits; `web/live.py` fans it out as Server-Sent Events.
"""
from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.orm import Session


def publish(session: Session, kind: str, area_path: str | None, payload: dict) -> int:
    """Log a live event and NOTIFY the listeners; delivered when the caller's transaction commits."""
    return session.execute(text("SELECT live_publish(:k, CAST(:p AS ltree), CAST(:d AS jsonb))"),
                           {"k": kind, "p": area_path, "d": json.dumps(payload, ensure_ascii=False,
                                                                        default=str)}).scalar_one()

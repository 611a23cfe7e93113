"""The one way every write is recorded: who did what to which target, in which area."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Actor:
    """Who is acting: a logged-in user, a token's user, a device or the command line."""

    name: str
    user_id: int | None = None
    role: str | None = None
    remote_addr: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        import getpass

        try:
            who = getpass.getuser()
        except Exception:  # no passwd entry in some containers
            who = "unknown"
        return cls(name=f"cli:{who}", role="admin")


def record(session: Session, actor: Actor, action: str, *, target_type: str | None = None,
           target_id: Any = None, area_code: str | None = None,
           details: dict | None = None) -> None:
    """Append one audit entry in the caller's transaction (so it commits or rolls back with the write)."""
    import json

    session.execute(
        text("INSERT INTO audit_log (actor_id, actor, action, target_type, target_id, area_code, "
             "details, remote_addr) VALUES (:actor_id, :actor, :action, :tt, :tid, :area, "
             "CAST(:details AS jsonb), :addr)"),
        {"actor_id": actor.user_id, "actor": actor.name, "action": action, "tt": target_type,
         "tid": None if target_id is None else str(target_id), "area": area_code,
         "details": json.dumps(details, ensure_ascii=False, default=str) if details else None,
         "addr": actor.remote_addr})

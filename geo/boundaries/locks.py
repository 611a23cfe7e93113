"""Soft locks: who is editing a village, so planners do not work over each other.

A lock is released by the one holding it; someone else's live lock is refused (naming its
holder), except to an administrator who asks to override it, which is audited.
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit
from geo.areas import area_row
from geo.boundaries.plans import LOCK_MINUTES
from geo.errors import Forbidden
from geo.messages import msg
from geo.policy import Scope


# -- soft locks ------------------------------------------------------------------------------
def acquire_lock(session: Session, code: str, actor: audit.Actor, minutes: int = LOCK_MINUTES) -> dict:
    """Take or refresh the soft lock on an area; if someone else holds it, say who (no error)."""
    area = area_row(session, code)
    session.execute(text("DELETE FROM area_locks WHERE expires_at < now()"))
    row = session.execute(text("""
        INSERT INTO area_locks (area_id, user_id, username, acquired_at, expires_at)
        VALUES (:a, :u, :n, now(), now() + make_interval(mins => :m))
        ON CONFLICT (area_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
         WHERE area_locks.username = EXCLUDED.username
        RETURNING username"""), {"a": area["id"], "u": actor.user_id, "n": actor.name,
                                 "m": minutes}).first()
    lock = _lock_of(session, area["id"])
    lock["mine"] = row is not None
    return lock


def release_lock(session: Session, code: str, actor: audit.Actor, override: bool = False) -> dict | None:
    """Release the soft lock on an area: one's own, or with override (administrators) anyone's.

    Returns the lock released (None when there was none in force); Forbidden, naming the holder,
    for someone else's lock without an administrator's override.
    """
    area = area_row(session, code)
    if override and actor.role != "admin":
        raise Forbidden(msg("only an administrator may override someone else's lock"), field="override")
    session.execute(text("DELETE FROM area_locks WHERE expires_at < now()"))
    lock = session.execute(text("""
        SELECT a.code, a.name, l.username, l.acquired_at, l.expires_at FROM area_locks l
          JOIN areas a ON a.id = l.area_id WHERE l.area_id = :a FOR UPDATE OF l"""),
        {"a": area["id"]}).mappings().first()
    if lock is None:
        return None
    if lock["username"] != actor.name:
        if not override:
            raise Forbidden(msg("{code} is locked by {holder}; only they, or an administrator "
                                "overriding the lock, may release it", code=area["code"],
                                holder=lock["username"]),
                            details={"holder": lock["username"],
                                     "expires_at": lock["expires_at"].isoformat()})
        audit.record(session, actor, "lock.override", target_type="area", target_id=area["code"],
                     area_code=area["code"], details={"holder": lock["username"],
                                                      "acquired_at": lock["acquired_at"],
                                                      "expires_at": lock["expires_at"]})
    session.execute(text("DELETE FROM area_locks WHERE area_id = :a"), {"a": area["id"]})
    return _lock_dict(lock)


def held(session: Session, scope: Scope, parent: str | None = None) -> list[dict]:
    """The soft locks in force in a scope (under `parent` if given)."""
    inside, params = scope.sql()
    where = f"l.expires_at > now() AND {inside}"
    if parent:
        params["p"] = scope.area(session, parent, "parent")["path"]
        where += " AND a.path <@ CAST(:p AS ltree)"
    rows = session.execute(text(f"""
        SELECT a.code, a.name, l.username, l.acquired_at, l.expires_at FROM area_locks l
          JOIN areas a ON a.id = l.area_id WHERE {where} ORDER BY a.code"""), params).mappings()
    return [_lock_dict(r) for r in rows]


def _lock_of(session, area_id: int) -> dict:
    r = session.execute(text("""
        SELECT a.code, a.name, l.username, l.acquired_at, l.expires_at FROM area_locks l
          JOIN areas a ON a.id = l.area_id WHERE l.area_id = :a"""), {"a": area_id}).mappings().one()
    return _lock_dict(r)


def _lock_dict(r) -> dict:
    return {"code": r["code"], "name": r["name"], "username": r["username"],
            "acquired_at": r["acquired_at"].isoformat(), "expires_at": r["expires_at"].isoformat()}

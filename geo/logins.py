"""Password logins: throttled per account and per address, and the server-side sessions they open.

Throttling is derived from `login_attempts`, so it holds across web processes and restarts:
`USER_FAILURES` failures for one username within `WINDOW` lock that username for `LOCKOUT` after
the last of them, and `ADDRESS_FAILURES` failures from one address within `WINDOW` block that
address the same way. While locked, a login is refused without looking at the password, so even
the right one is refused, and the refusal does not extend the lock. A successful login clears the
username's earlier failures (not the address's: an attacker could log into their own account).

A login opens a `user_sessions` row; the signed cookie carries only its random key (the row keeps
the key's SHA-256). A session is accepted while it is neither expired nor revoked and its user is
active; logout revokes it, so a copy of the cookie is worthless afterwards.
"""
from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from . import audit
from .users import SCOPE_COLUMNS, SEEN_EVERY, Caller, Principal, authenticate, principal_of

USER_FAILURES = 5
ADDRESS_FAILURES = 20
WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
# Attempts older than this decide nothing any more; the audit log keeps the record.
KEEP_ATTEMPTS = timedelta(days=1)
# A username as tried is kept at this length: the form field is not bounded by the schema.
MAX_TRIED = 200


@dataclass(frozen=True)
class Attempt:
    """How a login ended: a user and a session key, or a refusal (with a wait when throttled)."""

    principal: Principal | None = None
    session_key: str | None = None
    locked: str | None = None           # "account" or "address" while throttled
    retry_after: int | None = None      # seconds until the lock ends

    @property
    def ok(self) -> bool:
        return self.principal is not None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _lock_ends(session: Session, column: str, value: str, limit: int, since_success: bool):
    """Seconds until the lock on `column = value` ends (None when there is none).

    A lock stands when `limit` failures fall within WINDOW; it ends LOCKOUT after the last of them.
    """
    # Only failures after the username's last success count: ids, not times, order them, since
    # attempts within one transaction share a timestamp.
    after = ("AND id > coalesce((SELECT max(id) FROM login_attempts "
             f"WHERE {column} = :v AND outcome = 'success'), 0)") if since_success else ""
    seconds = session.execute(text(f"""
        SELECT extract(epoch FROM max(ts) + :lockout - now()) FROM (
            SELECT ts, count(*) OVER (ORDER BY ts RANGE BETWEEN :window PRECEDING AND CURRENT ROW) AS n
              FROM login_attempts
             WHERE {column} = :v AND outcome = 'failure' AND ts > now() - :window - :lockout {after}
        ) failures WHERE n >= :limit"""),
        {"v": value, "window": WINDOW, "lockout": LOCKOUT, "limit": limit}).scalar()
    if seconds is None or seconds <= 0:
        return None
    return math.ceil(seconds)


def lock_of(session: Session, username: str, remote_addr: str | None) -> tuple[str, int] | None:
    """The lock a login of this username from this address meets: ("account"|"address", seconds)."""
    locks = []
    user_wait = _lock_ends(session, "username", username, USER_FAILURES, since_success=True)
    if user_wait:
        locks.append(("account", user_wait))
    if remote_addr:
        addr_wait = _lock_ends(session, "remote_addr", remote_addr, ADDRESS_FAILURES,
                               since_success=False)
        if addr_wait:
            locks.append(("address", addr_wait))
    return max(locks, key=lambda lock: lock[1]) if locks else None


def attempt(session: Session, username: str, password: str, *, remote_addr: str | None,
            user_agent: str | None = None, lifetime: timedelta = timedelta(hours=8)) -> Attempt:
    """Log in with a password unless throttled; record and audit the attempt either way."""
    tried = (username or "")[:MAX_TRIED]
    # Attempts on one username, and from one address, are taken one at a time until the caller
    # commits: otherwise many guesses sent at once would all be checked before any was counted.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('login:user:' || :u))"), {"u": tried})
    if remote_addr:
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext('login:addr:' || :a))"),
                        {"a": remote_addr})
    session.execute(text("DELETE FROM login_attempts WHERE ts < now() - :keep"),
                    {"keep": KEEP_ATTEMPTS})
    stranger = audit.Actor(name="anonymous", remote_addr=remote_addr)
    lock = lock_of(session, tried, remote_addr)
    if lock:
        _record(session, tried, remote_addr, "refused")
        audit.record(session, stranger, "login.failed", target_type="user", target_id=tried,
                     details={"reason": f"{lock[0]} locked", "retry_after": lock[1]})
        return Attempt(locked=lock[0], retry_after=lock[1])
    principal = authenticate(session, tried, password)
    if principal is None:
        _record(session, tried, remote_addr, "failure")
        audit.record(session, stranger, "login.failed", target_type="user", target_id=tried,
                     details={"reason": "wrong username or password"})
        return Attempt()
    _record(session, tried, remote_addr, "success")
    key = open_session(session, principal, remote_addr=remote_addr, user_agent=user_agent,
                       lifetime=lifetime)
    audit.record(session, principal.actor(remote_addr), "login", target_type="user",
                 target_id=principal.username)
    return Attempt(principal=principal, session_key=key)


def _record(session: Session, username: str, remote_addr: str | None, outcome: str) -> None:
    session.execute(text("INSERT INTO login_attempts (username, remote_addr, outcome) "
                         "VALUES (:u, :a, :o)"), {"u": username, "a": remote_addr, "o": outcome})


def open_session(session: Session, principal: Principal, *, remote_addr: str | None = None,
                 user_agent: str | None = None, lifetime: timedelta = timedelta(hours=8)) -> str:
    """Open a server-side session for a user; return the key the cookie carries."""
    key = secrets.token_urlsafe(32)
    session.execute(text("DELETE FROM user_sessions WHERE user_id = :u "
                         "AND expires_at < now() - interval '30 days'"), {"u": principal.id})
    session.execute(text("""
        INSERT INTO user_sessions (key_hash, user_id, expires_at, remote_addr, user_agent)
        VALUES (:h, :u, now() + :life, :a, :ua)"""),
        {"h": _hash(key), "u": principal.id, "life": lifetime, "a": remote_addr,
         "ua": (user_agent or "")[:400] or None})
    return key


def principal_for_session(session: Session, key: str) -> Caller:
    """The user of a live session key (nobody if expired, revoked, unknown or the user disabled);
    its last_seen_at is kept to within SEEN_EVERY."""
    row = session.execute(text(f"""
        SELECT s.id AS sid, s.last_seen_at < now() - :every AS stale,
               u.id, u.username, u.role, u.display_name, {SCOPE_COLUMNS}
          FROM user_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.key_hash = :h AND s.revoked_at IS NULL AND s.expires_at > now() AND u.active"""),
        {"h": _hash(key), "every": SEEN_EVERY}).mappings().first()
    if row is None:
        return Caller(None)
    if row["stale"]:
        session.execute(text("UPDATE user_sessions SET last_seen_at = now() WHERE id = :id"),
                        {"id": row["sid"]})
    return Caller(principal_of(session, row), bool(row["stale"]))


def close_session(session: Session, key: str, remote_addr: str | None = None) -> bool:
    """Revoke the session of this key (logout) and audit it; return whether one was open."""
    row = session.execute(text("""
        UPDATE user_sessions s SET revoked_at = now() FROM users u
         WHERE s.key_hash = :h AND s.revoked_at IS NULL AND u.id = s.user_id
        RETURNING u.id, u.username, u.role"""), {"h": _hash(key)}).mappings().first()
    if row is None:
        return False
    audit.record(session, audit.Actor(name=row["username"], user_id=row["id"], role=row["role"],
                                      remote_addr=remote_addr),
                 "logout", target_type="user", target_id=row["username"])
    return True

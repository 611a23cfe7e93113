"""Users, roles, area scopes and API tokens (stored only as SHA-256 hashes)."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from . import audit
from .errors import Conflict, InvalidInput, NotFound
from .policy import Scope
from .vocabulary import ROLES

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
TOKEN_PREFIX = "anw_"


@dataclass
class Principal:
    """An authenticated user with its role and the area subtrees (ltree paths) it may act in."""

    id: int
    username: str
    role: str
    display_name: str | None = None
    scope_codes: list[str] = field(default_factory=list)
    scope_paths: list[str] = field(default_factory=list)

    @property
    def everywhere(self) -> bool:
        return self.role == "admin" and not self.scope_paths

    @property
    def scope(self) -> Scope:
        """The area subtrees this user may act in (everywhere for an unscoped administrator)."""
        if self.everywhere:
            return Scope.all()
        return Scope(tuple(self.scope_codes), tuple(self.scope_paths))

    def actor(self, remote_addr: str | None = None) -> audit.Actor:
        return audit.Actor(name=self.username, user_id=self.id, role=self.role, remote_addr=remote_addr)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _area_by_code(session: Session, code: str):
    row = session.execute(text("SELECT id, code, path::text AS path FROM areas WHERE code = :c"),
                          {"c": code}).mappings().first()
    if row is None:
        raise NotFound(f"no area with code {code!r}", field="scope")
    return row


def add_user(session: Session, actor: audit.Actor, username: str, role: str, *,
             password: str | None = None, scopes: list[str] | None = None,
             display_name: str | None = None, replace: bool = False) -> int:
    """Create (or with replace=True, reset) a user; return its id."""
    if not USERNAME.match(username or ""):
        raise InvalidInput("username", "username must be 2–64 letters, digits or _.@-; "
                                       f"got {username!r}")
    if role not in ROLES:
        raise InvalidInput("role", f"role must be one of {', '.join(ROLES)}; got {role!r}")
    if password is not None and len(password) < 8:
        raise InvalidInput("password", "password must have at least 8 characters")
    if role != "admin" and not scopes:
        raise InvalidInput("scope", f"a {role} needs an area scope (--scope CODE)")
    areas = [_area_by_code(session, c) for c in scopes or []]
    existing = session.execute(text("SELECT id FROM users WHERE username = :u"),
                               {"u": username}).scalar()
    if existing and not replace:
        raise Conflict(f"user {username!r} already exists", field="username")
    pw_hash = generate_password_hash(password) if password else None
    if existing:
        session.execute(text("UPDATE users SET role = :r, password_hash = :p, display_name = :d, "
                             "active = true WHERE id = :id"),
                        {"r": role, "p": pw_hash, "d": display_name, "id": existing})
        session.execute(text("DELETE FROM user_scopes WHERE user_id = :id"), {"id": existing})
        user_id = existing
    else:
        user_id = session.execute(
            text("INSERT INTO users (username, role, password_hash, display_name) "
                 "VALUES (:u, :r, :p, :d) RETURNING id"),
            {"u": username, "r": role, "p": pw_hash, "d": display_name}).scalar_one()
    for area in areas:
        session.execute(text("INSERT INTO user_scopes (user_id, area_id) VALUES (:u, :a) "
                             "ON CONFLICT DO NOTHING"), {"u": user_id, "a": area["id"]})
    audit.record(session, actor, "user.reset" if existing else "user.add", target_type="user",
                 target_id=username, details={"role": role, "scopes": scopes or []})
    return user_id


def _principal(session: Session, row) -> Principal:
    scopes = session.execute(
        text("SELECT a.code, a.path::text AS path FROM user_scopes s JOIN areas a ON a.id = s.area_id "
             "WHERE s.user_id = :u ORDER BY a.code"), {"u": row["id"]}).mappings().all()
    return Principal(id=row["id"], username=row["username"], role=row["role"],
                     display_name=row["display_name"], scope_codes=[s["code"] for s in scopes],
                     scope_paths=[s["path"] for s in scopes])


def authenticate(session: Session, username: str, password: str) -> Principal | None:
    """Return the user for a correct username and password, else None (same cost either way)."""
    row = session.execute(text("SELECT id, username, role, display_name, password_hash FROM users "
                               "WHERE username = :u AND active"), {"u": username}).mappings().first()
    if row is None or not row["password_hash"]:
        # Hash anyway so a missing user takes as long as a wrong password.
        check_password_hash(generate_password_hash("x"), password or "")
        return None
    if not check_password_hash(row["password_hash"], password or ""):
        return None
    return _principal(session, row)


def load_principal(session: Session, user_id: int) -> Principal | None:
    row = session.execute(text("SELECT id, username, role, display_name FROM users "
                               "WHERE id = :id AND active"), {"id": user_id}).mappings().first()
    return _principal(session, row) if row else None


def create_token(session: Session, actor: audit.Actor, username: str, name: str | None = None) -> str:
    """Create an API token for a user; return the token (shown once, stored hashed)."""
    user_id = session.execute(text("SELECT id FROM users WHERE username = :u AND active"),
                              {"u": username}).scalar()
    if user_id is None:
        raise NotFound(f"no active user {username!r}; create it with `anwang users add`",
                       field="username")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.execute(text("INSERT INTO api_tokens (user_id, name, token_hash) VALUES (:u, :n, :h)"),
                    {"u": user_id, "n": name or username, "h": hash_token(token)})
    audit.record(session, actor, "token.create", target_type="user", target_id=username,
                 details={"name": name or username})
    return token


def principal_for_token(session: Session, token: str) -> Principal | None:
    """Return the user behind a bearer token, or None if unknown or revoked."""
    row = session.execute(
        text("UPDATE api_tokens t SET last_used_at = now() FROM users u "
             "WHERE t.token_hash = :h AND t.revoked_at IS NULL AND u.id = t.user_id AND u.active "
             "RETURNING u.id, u.username, u.role, u.display_name"),
        {"h": hash_token(token)}).mappings().first()
    return _principal(session, row) if row else None

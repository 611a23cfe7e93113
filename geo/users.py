"""Users, roles, area scopes, the password policy and API tokens (stored only as SHA-256 hashes).

Disabling a user or changing their password revokes every session and token they hold: whoever
had them, the account's old credentials stop working at once.
"""
from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from . import audit
from .db import rowcount
from .errors import Conflict, InvalidInput, NotFound
from .policy import Scope
from .vocabulary import ROLES

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
TOKEN_PREFIX = "anw_"
MIN_PASSWORD_LENGTH = 10
# Passwords of 10 characters or more that lead the leaked-password lists (English and Chinese
# sites alike); anything shorter is refused by its length already.
COMMON_PASSWORDS = frozenset("""
1q2w3e4r5t 1q2w3e4r5t6y 1qaz2wsx3edc 1qaz@wsx3edc a123456789 a1234567890 aa123456789
abc1234567 abcd123456 abcd1234567 admin12345 admin123456 administrator anwang123456
asdfghjkl1 changeme123 iloveyou12 iloveyou123 letmein123 p@ssw0rd123 passw0rd123 password12
password123 password1234 password2024 password2025 password2026 q1w2e3r4t5 qaz123456789
qq123456789 qwe1234567 qwer123456 qwerty1234 qwerty12345 qwerty123456 qwertyuiop
qwertyuiop123 welcome123 woaini1314 woaini123456 woaini5201314 zaq12wsxcde3 zxcvbnm123
zxcvbnm1234
""".split())


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


def check_password(password, username: str) -> None:
    """Refuse a password that is short, the username, only digits or a common one."""
    expected = (f"a password needs at least {MIN_PASSWORD_LENGTH} characters, must not be the "
                "username, only digits or a common password")
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        got = len(password) if isinstance(password, str) else 0
        raise InvalidInput("password", f"password must have at least {MIN_PASSWORD_LENGTH} "
                                       f"characters; got {got} ({expected})")
    if password.casefold() == (username or "").casefold():
        raise InvalidInput("password", f"password must not be the username ({expected})")
    if password.isdigit():
        raise InvalidInput("password", f"password must not be only digits ({expected})")
    if password.casefold() in COMMON_PASSWORDS:
        raise InvalidInput("password", f"password is one of the most common passwords; choose "
                                       f"another ({expected})")


def add_user(session: Session, actor: audit.Actor, username: str, role: str, *,
             password: str | None = None, scopes: list[str] | None = None,
             display_name: str | None = None, replace: bool = False) -> int:
    """Create (or with replace=True, reset) a user; return its id."""
    if not USERNAME.match(username or ""):
        raise InvalidInput("username", "username must be 2–64 letters, digits or _.@-; "
                                       f"got {username!r}")
    if role not in ROLES:
        raise InvalidInput("role", f"role must be one of {', '.join(ROLES)}; got {role!r}")
    if password is not None:
        check_password(password, username)
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
        revoke_credentials(session, existing)  # a reset account starts with no old logins
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


# Columns of a query on `users u` giving a user's scopes (codes, and their paths in the same order),
# so that reading who calls is one round trip.
SCOPE_COLUMNS = """
    ARRAY(SELECT a.code FROM user_scopes s JOIN areas a ON a.id = s.area_id
           WHERE s.user_id = u.id ORDER BY a.code) AS scope_codes,
    ARRAY(SELECT a.path::text FROM user_scopes s JOIN areas a ON a.id = s.area_id
           WHERE s.user_id = u.id ORDER BY a.code) AS scope_paths"""
# How often a session's last_seen_at or a token's last_used_at is written: a request that only
# reads then writes nothing, and answers from one round trip for who calls.
SEEN_EVERY = timedelta(minutes=1)


def principal_of(session: Session, row) -> Principal:
    """The Principal of a users row (id, username, role, display_name), with its scopes (read
    unless the row has them, as SCOPE_COLUMNS gives them)."""
    if "scope_codes" in row:
        codes, paths = list(row["scope_codes"]), list(row["scope_paths"])
    else:
        scopes = session.execute(
            text("SELECT a.code, a.path::text AS path FROM user_scopes s JOIN areas a ON a.id = s.area_id "
                 "WHERE s.user_id = :u ORDER BY a.code"), {"u": row["id"]}).mappings().all()
        codes, paths = [s["code"] for s in scopes], [s["path"] for s in scopes]
    return Principal(id=row["id"], username=row["username"], role=row["role"],
                     display_name=row["display_name"], scope_codes=codes, scope_paths=paths)


@functools.cache
def _decoy_hash() -> str:
    return generate_password_hash(secrets.token_hex(16))


def authenticate(session: Session, username: str, password: str) -> Principal | None:
    """Return the user for a correct username and password, else None (same cost either way)."""
    row = session.execute(text("SELECT id, username, role, display_name, password_hash FROM users "
                               "WHERE username = :u AND active"), {"u": username}).mappings().first()
    if row is None or not row["password_hash"]:
        # Check against a hash anyway so a missing user takes as long as a wrong password.
        check_password_hash(_decoy_hash(), password or "")
        return None
    if not check_password_hash(row["password_hash"], password or ""):
        return None
    return principal_of(session, row)


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


@dataclass(frozen=True)
class Caller:
    """Who a credential belongs to (None: nobody), and whether reading it wrote a last-seen time
    that the caller must commit."""

    principal: Principal | None
    wrote: bool = False


def principal_for_token(session: Session, token: str) -> Caller:
    """The user behind a bearer token (nobody if unknown or revoked); its last_used_at is kept to
    within SEEN_EVERY."""
    row = session.execute(text(f"""
        SELECT t.id AS tid, t.last_used_at IS NULL OR t.last_used_at < now() - :every AS stale,
               u.id, u.username, u.role, u.display_name, {SCOPE_COLUMNS}
          FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = :h AND t.revoked_at IS NULL AND u.active"""),
        {"h": hash_token(token), "every": SEEN_EVERY}).mappings().first()
    if row is None:
        return Caller(None)
    if row["stale"]:
        session.execute(text("UPDATE api_tokens SET last_used_at = now() WHERE id = :id"), {"id": row["tid"]})
    return Caller(principal_of(session, row), bool(row["stale"]))


def _user_row(session: Session, username: str):
    row = session.execute(text("SELECT id, username, active FROM users WHERE username = :u"),
                          {"u": username}).mappings().first()
    if row is None:
        raise NotFound(f"no user {username!r}; `anwang users list` shows them", field="username")
    return row


def revoke_credentials(session: Session, user_id: int) -> dict:
    """Revoke every live session and token of a user; return how many of each."""
    sessions = session.execute(text("UPDATE user_sessions SET revoked_at = now() "
                                    "WHERE user_id = :u AND revoked_at IS NULL"), {"u": user_id})
    tokens = session.execute(text("UPDATE api_tokens SET revoked_at = now() "
                                  "WHERE user_id = :u AND revoked_at IS NULL"), {"u": user_id})
    return {"sessions": rowcount(sessions), "tokens": rowcount(tokens)}


def set_password(session: Session, actor: audit.Actor, username: str, password: str) -> dict:
    """Give a user a new password and revoke their sessions and tokens; return what was revoked."""
    user = _user_row(session, username)
    check_password(password, username)
    session.execute(text("UPDATE users SET password_hash = :p WHERE id = :id"),
                    {"p": generate_password_hash(password), "id": user["id"]})
    revoked = revoke_credentials(session, user["id"])
    audit.record(session, actor, "user.password", target_type="user", target_id=username,
                 details={"revoked": revoked})
    return revoked


def set_active(session: Session, actor: audit.Actor, username: str, active: bool) -> dict:
    """Enable or disable a user; disabling revokes their sessions and tokens (return how many)."""
    user = _user_row(session, username)
    if user["active"] == active:
        raise Conflict(f"user {username!r} is already {'enabled' if active else 'disabled'}",
                       field="username")
    session.execute(text("UPDATE users SET active = :a WHERE id = :id"),
                    {"a": active, "id": user["id"]})
    # Enabling does not bring old credentials back: they stay revoked.
    revoked = {"sessions": 0, "tokens": 0} if active else revoke_credentials(session, user["id"])
    audit.record(session, actor, "user.enable" if active else "user.disable", target_type="user",
                 target_id=username, details=None if active else {"revoked": revoked})
    return revoked


def list_users(session: Session) -> list[dict]:
    """Every user with role, scope codes, whether active, and their last successful login."""
    rows = session.execute(text("""
        SELECT u.id, u.username, u.role, u.display_name, u.active, u.created_at,
               coalesce(array_agg(a.code ORDER BY a.code) FILTER (WHERE a.code IS NOT NULL),
                        '{}') AS scopes,
               (SELECT max(s.created_at) FROM user_sessions s WHERE s.user_id = u.id) AS last_login
          FROM users u
          LEFT JOIN user_scopes us ON us.user_id = u.id
          LEFT JOIN areas a ON a.id = us.area_id
         GROUP BY u.id ORDER BY u.username""")).mappings()
    return [dict(r) for r in rows]


def list_tokens(session: Session, username: str | None = None) -> list[dict]:
    """API tokens (never the token itself), of one user or of everyone, oldest first."""
    params = {}
    where = ""
    if username is not None:
        params["u"] = _user_row(session, username)["id"]
        where = "WHERE t.user_id = :u"
    rows = session.execute(text(f"""
        SELECT t.id, u.username, t.name, t.created_at, t.last_used_at, t.revoked_at
          FROM api_tokens t JOIN users u ON u.id = t.user_id {where}
         ORDER BY t.id"""), params).mappings()
    return [dict(r) for r in rows]


def revoke_token(session: Session, actor: audit.Actor, token_id: int) -> dict:
    """Revoke one API token by its id; return it as list_tokens shows it."""
    row = session.execute(text("""
        SELECT t.id, u.username, t.name, t.revoked_at FROM api_tokens t
          JOIN users u ON u.id = t.user_id WHERE t.id = :id"""), {"id": token_id}).mappings().first()
    if row is None:
        raise NotFound(f"no token with id {token_id}; `anwang tokens list` shows them", field="id")
    if row["revoked_at"] is not None:
        raise Conflict(f"token {token_id} was already revoked at {row['revoked_at']:%Y-%m-%d %H:%M}",
                       field="id")
    session.execute(text("UPDATE api_tokens SET revoked_at = now() WHERE id = :id"), {"id": token_id})
    audit.record(session, actor, "token.revoke", target_type="token", target_id=token_id,
                 details={"user": row["username"], "name": row["name"]})
    return dict(row)

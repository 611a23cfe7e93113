"""Users, roles, area scopes, API tokens, login attempts, sessions and the audit log.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo.models.base import Base

# -- users, scopes, tokens and the audit log ------------------------------------------------------

class Role(Base):
    """A role: admin, dispatcher, planner, analyst, grid_worker."""

    __tablename__ = "roles"
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    description: Mapped[str | None] = mapped_column(Text)


class User(Base):
    """A person who logs in; one role, scoped to one or more area subtrees."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(Text, CheckConstraint(
        "username ~ '^[A-Za-z0-9_.@-]{2,64}$'", name="users_username_check"), unique=True)
    display_name: Mapped[str | None] = mapped_column(Text)
    password_hash: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(ForeignKey("roles.name"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    locale: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class UserScope(Base):
    """An area subtree a user may act in (no rows: nowhere, unless admin)."""

    __tablename__ = "user_scopes"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"), primary_key=True)


class ApiToken(Base):
    """A bearer token for a script, stored only as its SHA-256 hash."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("api_tokens_user_idx", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    token_hash: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginAttempt(Base):
    """One password login: the username tried, from where, and how it ended (0010)."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        CheckConstraint("outcome IN ('success', 'failure', 'refused')", name="login_attempts_outcome_check"),
        # Failures of one username, of one address, and the old ones to delete.
        Index("login_attempts_username_idx", "username", "ts"),
        Index("login_attempts_addr_idx", "remote_addr", "ts"),
        Index("login_attempts_ts_idx", "ts"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    username: Mapped[str] = mapped_column(Text)
    remote_addr: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)


class UserSession(Base):
    """A login session; the cookie carries a random key, only its SHA-256 is stored (0010)."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("user_sessions_user_idx", "user_id", postgresql_where=text("revoked_at IS NULL")),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key_hash: Mapped[str] = mapped_column(Text, unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    remote_addr: Mapped[str | None] = mapped_column(Text)
    user_agent: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    """One write, who made it, on what, and what changed."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("audit_log_ts_idx", "ts"),
        Index("audit_log_target_idx", "target_type", "target_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The entry outlives the account; `actor` keeps the name.
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target_type: Mapped[str | None] = mapped_column(Text)
    target_id: Mapped[str | None] = mapped_column(Text)
    area_code: Mapped[str | None] = mapped_column(String(32))
    details: Mapped[dict | None] = mapped_column(JSONB)
    remote_addr: Mapped[str | None] = mapped_column(Text)


class Job(Base):
    """Work that runs after its request answered (a large import): status, progress and outcome."""

    __tablename__ = "jobs"
    __table_args__ = (Index("jobs_owner_idx", "owner_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    area_code: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, CheckConstraint(
        "status IN ('queued', 'running', 'done', 'failed')", name="jobs_status_check"),
        server_default=text("'queued'"))
    progress: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    result: Mapped[dict | None] = mapped_column(JSONB)
    error: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

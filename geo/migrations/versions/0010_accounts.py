"""Accounts: login attempts for throttling, and server-side login sessions.

- `login_attempts`: every password login (the username tried, the address, the outcome). Locks are
  derived from it (geo/logins.py), so they hold across web processes and restarts, and moving
  the attempts back in time is all it takes to end one.
- `user_sessions`: one row per login; the signed cookie carries only a random key whose SHA-256 is
  stored here. A session is live until it expires or is revoked (logout, the user disabled or
  their password changed).

Revision ID: 0010
Revises: 0009
"""
from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE login_attempts (
    id bigserial PRIMARY KEY,
    ts timestamptz NOT NULL DEFAULT now(),
    username text NOT NULL,
    remote_addr text,
    outcome text NOT NULL CHECK (outcome IN ('success', 'failure', 'refused'))
);
CREATE INDEX login_attempts_username_idx ON login_attempts (username, ts);
CREATE INDEX login_attempts_addr_idx ON login_attempts (remote_addr, ts);
-- Old attempts are pruned by time.
CREATE INDEX login_attempts_ts_idx ON login_attempts (ts);

CREATE TABLE user_sessions (
    id bigserial PRIMARY KEY,
    key_hash text NOT NULL UNIQUE,
    user_id integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    remote_addr text,
    user_agent text
);
-- Revoking a user's sessions reads only their live ones.
CREATE INDEX user_sessions_user_idx ON user_sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("""
        DROP INDEX IF EXISTS api_tokens_user_idx;
        DROP TABLE IF EXISTS user_sessions;
        DROP TABLE IF EXISTS login_attempts;
    """)

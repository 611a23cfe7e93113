"""Background jobs: work that exceeds a request's budget (a large boundary import) runs after the
request has answered 202, and its owner follows it at /api/jobs/{id}.

- `jobs`: kind, owner, the area it concerns (for the scope check), status, progress as the job
  reports it (`{"stage", "step", "steps"}`), and the result or error in the API's error shape.

Revision ID: 0015
Revises: 0013
"""
from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE jobs (
    id serial PRIMARY KEY,
    kind text NOT NULL,
    owner_id integer REFERENCES users(id) ON DELETE SET NULL,
    area_code text,
    status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress jsonb NOT NULL DEFAULT '{}'::jsonb,
    result jsonb,
    error jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_owner_idx ON jobs (owner_id);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS jobs")

"""Background jobs: work that exceeds a request's budget (a large boundary import) runs after the
request has answered 202, and its owner follows it at /api/jobs/{id}.

- `jobs`: kind, owner, the area it concerns (for the scope check), status, progress as the job
  reports it (`{"stage", "step", "steps"}`), and the result or error in the API's error shape.
- `area_changes`: one row per statement that changed what an area's GeoJSON shows (areas, their
  groups, their staff), so a process may keep the map's area layers and know when to rebuild
  them from one index probe (`max(id)`). Insert-only, like `gazetteer_changes`.

Revision ID: 0015
Revises: 0014
"""
from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
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

CREATE TABLE area_changes (
    id bigserial PRIMARY KEY,
    ts timestamptz NOT NULL DEFAULT now(),
    source text NOT NULL
);
INSERT INTO area_changes (source) VALUES ('initial');

CREATE FUNCTION area_changes_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO area_changes (source) VALUES (TG_TABLE_NAME);
    RETURN NULL;
END $$;
CREATE TRIGGER areas_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON areas
    FOR EACH STATEMENT EXECUTE FUNCTION area_changes_touch();
CREATE TRIGGER area_groups_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON area_groups
    FOR EACH STATEMENT EXECUTE FUNCTION area_changes_touch();
CREATE TRIGGER area_staff_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON area_staff
    FOR EACH STATEMENT EXECUTE FUNCTION area_changes_touch();
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    for table in ("areas", "area_groups", "area_staff"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_changes ON {table}")
    op.execute("DROP FUNCTION IF EXISTS area_changes_touch()")
    op.execute("DROP TABLE IF EXISTS area_changes")
    op.execute("DROP TABLE IF EXISTS jobs")

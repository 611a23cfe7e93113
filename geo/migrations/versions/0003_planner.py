"""Planner: boundary history that outlives the areas it describes, and soft locks on villages.

A split or merge retires areas (their rows leave `areas`, so no query ever has to filter them
out), while their versions must stay for as-of queries and an exact revert; the cascading foreign
key from area_versions to areas would delete that history, so it becomes a plain indexed column.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-29
"""
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = ("planner",)
depends_on = None

SCHEMA = r"""
ALTER TABLE area_versions DROP CONSTRAINT IF EXISTS area_versions_area_id_fkey;
CREATE INDEX area_versions_area_idx ON area_versions (area_id, version);
CREATE INDEX area_versions_change_idx ON area_versions (change_id);
CREATE INDEX area_versions_parent_idx ON area_versions (parent_id);
CREATE INDEX boundary_changes_created_idx ON boundary_changes (created_at);
CREATE INDEX boundary_changes_reverts_idx ON boundary_changes (reverts_id);
-- Like audit_log: a change outlives its author's account (the name stays in the payload).
ALTER TABLE boundary_changes DROP CONSTRAINT IF EXISTS boundary_changes_author_id_fkey;
ALTER TABLE boundary_changes ADD CONSTRAINT boundary_changes_author_id_fkey
    FOREIGN KEY (author_id) REFERENCES users(id) ON DELETE SET NULL;

-- A soft lock: who is editing a village now. Advisory (shown to others), it expires by itself.
CREATE TABLE area_locks (
    area_id integer PRIMARY KEY REFERENCES areas(id) ON DELETE CASCADE,
    user_id integer REFERENCES users(id) ON DELETE CASCADE,
    username text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS area_locks")
    op.execute("ALTER TABLE boundary_changes DROP CONSTRAINT IF EXISTS boundary_changes_author_id_fkey")
    op.execute("ALTER TABLE boundary_changes ADD CONSTRAINT boundary_changes_author_id_fkey "
               "FOREIGN KEY (author_id) REFERENCES users(id)")
    for index in ("boundary_changes_reverts_idx", "boundary_changes_created_idx",
                  "area_versions_parent_idx", "area_versions_change_idx", "area_versions_area_idx"):
        op.execute(f'DROP INDEX IF EXISTS "{index}"')
    # Versions of retired areas have no row to point at any more; they go with the constraint.
    op.execute("DELETE FROM area_versions v WHERE NOT EXISTS (SELECT 1 FROM areas a WHERE a.id = v.area_id)")
    op.execute("ALTER TABLE area_versions ADD CONSTRAINT area_versions_area_id_fkey "
               "FOREIGN KEY (area_id) REFERENCES areas(id) ON DELETE CASCADE")

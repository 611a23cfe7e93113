"""Incidents: the finest known area of coarse geocodes, and a change log that tells every process
when the in-memory gazetteer (areas, places, entities) must be rebuilt.

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-29
"""
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = ("incidents",)
depends_on = None

SCHEMA = r"""
-- The finest area an incident is known to lie in: its grid for an exact point, its village or
-- township when the address only resolved that far (grid_id then stays NULL rather than pretend).
-- Not indexed: every index is another write when a million incidents are re-assigned, and the
-- queries reach incidents through areas (subtree joins), not by area_id.
ALTER TABLE incidents ADD COLUMN area_id integer REFERENCES areas(id);
-- Open matters by status, newest first (dispatch and the review lists).
CREATE INDEX incidents_status_idx ON incidents (status, reported_at);

-- One row per statement that changed the gazetteer's sources. Insert-only, so concurrent writers
-- never wait on each other; ids come from a sequence and are never reused, so a process that
-- built its index inside a transaction later rolled back still sees a different max(id) and rebuilds.
CREATE TABLE gazetteer_changes (
    id bigserial PRIMARY KEY,
    ts timestamptz NOT NULL DEFAULT now(),
    source text NOT NULL
);
INSERT INTO gazetteer_changes (source) VALUES ('initial');

CREATE FUNCTION gazetteer_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO gazetteer_changes (source) VALUES (TG_TABLE_NAME);
    RETURN NULL;
END $$;
CREATE TRIGGER areas_gazetteer AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON areas
    FOR EACH STATEMENT EXECUTE FUNCTION gazetteer_touch();
CREATE TRIGGER places_gazetteer AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON places
    FOR EACH STATEMENT EXECUTE FUNCTION gazetteer_touch();
CREATE TRIGGER entities_gazetteer AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON entities
    FOR EACH STATEMENT EXECUTE FUNCTION gazetteer_touch();
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS entities_gazetteer ON entities")
    op.execute("DROP TRIGGER IF EXISTS places_gazetteer ON places")
    op.execute("DROP TRIGGER IF EXISTS areas_gazetteer ON areas")
    op.execute("DROP FUNCTION IF EXISTS gazetteer_touch()")
    op.execute("DROP TABLE IF EXISTS gazetteer_changes")
    op.execute("DROP INDEX IF EXISTS incidents_status_idx")
    op.execute("ALTER TABLE incidents DROP COLUMN IF EXISTS area_id")

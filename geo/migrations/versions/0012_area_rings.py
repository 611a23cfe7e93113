"""Outer rings counter-clockwise in every stored area and area version (RFC 7946).

Imports stored counter-clockwise outer rings while the edit operations (GEOS overlays) and the
demo loader stored clockwise ones, so an area's orientation told where it came from, and so did
every map and export served from it.

- `force_rings_ccw()`: a BEFORE trigger on `areas` and `area_versions` turning outer rings
  counter-clockwise and holes clockwise (`ST_ForcePolygonCCW`) on every write of the geometry,
  whoever writes it: the core, the demo loader, or QGIS connected with `anwang db url`.
- Existing rows are turned in place. Only the order of the points of a clockwise ring changes
  (reversed, its first point kept), so no version is added, nothing else in a row moves, and an
  area and its versions stay byte-identical where they were — what reverts compare and copy.

Revision ID: 0012
Revises: 0011
"""
from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE FUNCTION force_rings_ccw() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.geom := ST_ForcePolygonCCW(NEW.geom);
    RETURN NEW;
END $$;
CREATE TRIGGER areas_rings_ccw BEFORE INSERT OR UPDATE OF geom ON areas
    FOR EACH ROW EXECUTE FUNCTION force_rings_ccw();
CREATE TRIGGER area_versions_rings_ccw BEFORE INSERT OR UPDATE OF geom ON area_versions
    FOR EACH ROW EXECUTE FUNCTION force_rings_ccw();
"""

# Only the rows that need it, so the rest keep their tuples (and their WKB) untouched.
TURN = """
UPDATE areas SET geom = ST_ForcePolygonCCW(geom) WHERE NOT ST_IsPolygonCCW(geom);
UPDATE area_versions SET geom = ST_ForcePolygonCCW(geom)
 WHERE geom IS NOT NULL AND NOT ST_IsPolygonCCW(geom);
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute(TURN)


def downgrade() -> None:
    # The rings stay as they were turned: counter-clockwise is what RFC 7946 asks of every reader.
    op.execute("""
        DROP TRIGGER IF EXISTS area_versions_rings_ccw ON area_versions;
        DROP TRIGGER IF EXISTS areas_rings_ccw ON areas;
        DROP FUNCTION IF EXISTS force_rings_ccw();
    """)

"""Indexes on the foreign keys that had none: `incidents.area_id`, `units.home_area_id`,
`area_staff.person_id`, `incident_links.incident_b` and `village_logbook.incident_id`.

Deleting a row makes PostgreSQL look for rows that still refer to it; without an index that is a
scan of the whole referring table per row deleted, so removing a region of 54,000 grids, 160,000
people and 2 million incidents (the copies of `anwang demo --scale`, or any district) would take
hours instead of minutes.

Revision ID: 0019
Revises: 0018
"""
from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX incidents_area_idx ON incidents (area_id) WHERE area_id IS NOT NULL")
    op.execute("CREATE INDEX units_home_area_idx ON units (home_area_id)")
    op.execute("CREATE INDEX area_staff_person_idx ON area_staff (person_id)")
    op.execute("CREATE INDEX incident_links_b_idx ON incident_links (incident_b)")
    op.execute("CREATE INDEX village_logbook_incident_idx ON village_logbook (incident_id) "
               "WHERE incident_id IS NOT NULL")


def downgrade() -> None:
    for name in ("village_logbook_incident_idx", "incident_links_b_idx", "area_staff_person_idx",
                 "units_home_area_idx"):
        op.execute(f"DROP INDEX {name}")
    op.execute("DROP INDEX incidents_area_idx")

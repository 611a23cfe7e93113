"""Trackers: what devices report besides a position fix, and the HDOP of a fix.

- `positions.hdop`: the horizontal dilution of precision a device reports (OsmAnd `hdop=`). It is a
  geometry factor without a unit, not a radius, so no accuracy is derived from it.
- `unit_events`: reports that carry no position — heartbeats, cell-tower and Wi-Fi reports, GT06
  logins and alarms — one row per unit, device time and kind, so a replayed report is stored once.
- `units.heard_at`, `units.heard_kind`: when the server last received such a report and of which
  kind, so the dispatch map shows a unit as heard from even while it has no fix.

Revision ID: 0013
Revises: 0012
"""
from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE positions ADD COLUMN hdop real;

ALTER TABLE units ADD COLUMN heard_at timestamptz, ADD COLUMN heard_kind text;

CREATE TABLE unit_events (
    unit_id integer NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    ts timestamptz NOT NULL,
    kind text NOT NULL CHECK (kind IN ('heartbeat', 'cells', 'login', 'alarm')),
    battery real,
    details jsonb,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (unit_id, ts, kind)
);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS unit_events")
    op.execute("ALTER TABLE units DROP COLUMN IF EXISTS heard_kind, DROP COLUMN IF EXISTS heard_at")
    op.execute("ALTER TABLE positions DROP COLUMN IF EXISTS hdop")

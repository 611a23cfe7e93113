"""Assignment: the grid lookup that bulk assignment reads (geo/gridlookup.py).

Derived data, rebuilt from `areas` whenever their fingerprint changes, so the table is UNLOGGED:
no WAL for a rebuild of some megabytes, and after a crash it comes back empty and the next bulk
assignment builds it again.

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-29
"""
from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE UNLOGGED TABLE grid_lookups (
    -- md5 of every area's id, level, parent and shape (geo.gridlookup.FINGERPRINT)
    fingerprint text PRIMARY KEY,
    built_at timestamptz NOT NULL DEFAULT now(),
    scale integer NOT NULL CHECK (scale > 0),    -- cells per degree, a power of two
    i0 integer NOT NULL,                         -- floor(lon * scale) of cells[1][*]
    j0 integer NOT NULL,                         -- floor(lat * scale) of cells[*][1]
    width integer NOT NULL,                      -- entries in a row of candidates
    cells integer[] NOT NULL,                    -- [column][row]: area id, 0 outside, -m crossed
    candidates integer[] NOT NULL,               -- [m][k]: pieces touching crossed cell m, best first, 0 after
    lines float8[] NOT NULL,                     -- [m][3]: a, b, c of the one edge crossing cell m
    sides integer[] NOT NULL,                    -- [m][2]: the areas left and right of that edge
    pieces geometry[] NOT NULL,                  -- the partition, numbered best first
    piece_areas integer[] NOT NULL               -- the area of each piece
);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS grid_lookups")

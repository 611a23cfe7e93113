"""Incident photos: what a grid worker photographed with a report.

- `incident_photos`: one image (JPEG, PNG or WebP, at most 5 MB) per row, kept in the database so a
  backup and a restore carry it with its incident; its SHA-256 names the exact bytes.

Revision ID: 0017
Revises: 0016
"""
from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE incident_photos (
    id bigserial PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    content_type text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png', 'image/webp')),
    data bytea NOT NULL,
    sha256 text NOT NULL,
    created_by integer REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_photos_incident_idx ON incident_photos (incident_id);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE incident_photos")

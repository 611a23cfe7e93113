"""One history from here on: the planner, incidents/assignment and patrol branches join.

Revision ID: 0008
Revises: 0003, 0005, 0007
"""
from __future__ import annotations

revision = "0008"
down_revision = ("0003", "0005", "0007")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the merge only makes every later revision follow one line."""


def downgrade() -> None:
    """Nothing to undo."""

"""The data model: every table, column, key, constraint and index the migrations create.

Alembic migrations own the schema; these classes declare the same schema so that the core can map
it and autogenerate finds nothing to change (tests/geo/test_schema.py compares the two). Functions
and triggers live only in the migrations.

Coordinates are stored in EPSG:4326 (WGS84; CGCS2000 treated as equal). Every geometry column
has a GiST index. Area subtrees are found through `areas.path`, an ltree of ancestor ids kept by a
trigger, so a subtree is one indexed `path <@ :root` scan whatever the jurisdiction's codes look like.
"""
from __future__ import annotations

from . import accounts, analytics, areas, incidents, patrol, places, tiles, visits  # noqa: F401 — each registers its tables
from .base import SRID, Base, LTree

__all__ = ["SRID", "Base", "LTree"]

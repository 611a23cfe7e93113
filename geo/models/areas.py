"""Areas of every level and their history: versions, change sets, groups and soft locks.
"""
from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from geo.models.base import SRID, Base, LTree

# -- areas and their history ----------------------------------------------------------------------

class Area(Base):
    """One governance area at any level (区 → 镇/街道 → 村/社区 → 网格)."""

    __tablename__ = "areas"
    __table_args__ = (
        Index("areas_geom_idx", "geom", postgresql_using="gist"),
        Index("areas_path_idx", "path", postgresql_using="gist"),
        Index("areas_label_point_idx", "label_point", postgresql_using="gist"),
        # Code prefixes (`code LIKE '4111%'`) whatever the database's collation.
        Index("areas_code_prefix_idx", "code", postgresql_ops={"code": "text_pattern_ops"}),
        Index("areas_parent_idx", "parent_id"),
        Index("areas_level_idx", "level"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(Text)
    level: Mapped[int] = mapped_column(
        SmallInteger, CheckConstraint("level BETWEEN 1 AND 5", name="areas_level_check"))
    kind: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    path: Mapped[str | None] = mapped_column(LTree)  # kept by the areas_set_path trigger
    # areas and area_groups refer to each other: this key is added after both tables exist.
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("area_groups.id", ondelete="SET NULL", name="areas_group_fk", use_alter=True))
    # Outer rings counter-clockwise, holes clockwise (RFC 7946), whoever writes: trigger of 0012.
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=False)
    households: Mapped[int | None] = mapped_column(
        Integer, CheckConstraint("households >= 0", name="areas_households_check"))
    population: Mapped[int | None] = mapped_column(
        Integer, CheckConstraint("population >= 0", name="areas_population_check"))
    urban: Mapped[bool | None] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    attrs: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Where a sensitive incident is shown to audiences that do not act on it (0009).
    label_point = mapped_column(
        Geometry("POINT", srid=SRID, spatial_index=False),
        Computed("ST_PointOnSurface(geom)", persisted=True))

    parent = relationship("Area", remote_side=[id])


class AreaGroup(Base):
    """A named grouping of sibling areas shown on the map but not a level (商桥镇's 东/南/西/中 一级网格)."""

    __tablename__ = "area_groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(Text)
    leader: Mapped[str | None] = mapped_column(Text)


class BoundaryChange(Base):
    """One atomic change set of boundary edits (kind, author, reason, time)."""

    __tablename__ = "boundary_changes"
    __table_args__ = (
        Index("boundary_changes_created_idx", "created_at"),
        Index("boundary_changes_reverts_idx", "reverts_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    # A change outlives its author's account; the name stays in the payload (0003).
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    payload: Mapped[dict | None] = mapped_column(JSONB)
    reverts_id: Mapped[int | None] = mapped_column(ForeignKey("boundary_changes.id"))


class AreaVersion(Base):
    """An area as it was between valid_from and valid_to (NULL = current)."""

    __tablename__ = "area_versions"
    __table_args__ = (
        UniqueConstraint("area_id", "version"),
        Index("area_versions_geom_idx", "geom", postgresql_using="gist"),
        Index("area_versions_valid_idx", "level", "valid_from", "valid_to"),
        Index("area_versions_area_idx", "area_id", "version"),
        Index("area_versions_change_idx", "change_id"),
        Index("area_versions_parent_idx", "parent_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_id: Mapped[int] = mapped_column(Integer)  # no foreign key: history outlives retired areas (0003)
    version: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(Text)
    level: Mapped[int] = mapped_column(SmallInteger)
    parent_id: Mapped[int | None] = mapped_column(Integer)
    # Oriented as areas.geom (the same trigger), so a revert copies back the very same WKB.
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False))
    households: Mapped[int | None] = mapped_column(Integer)
    population: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    change_id: Mapped[int | None] = mapped_column(ForeignKey("boundary_changes.id"))


class AreaLock(Base):
    """A soft lock: who is editing an area (a village) in the planner, until when."""

    __tablename__ = "area_locks"
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(Text)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

"""Stored analytics: the four-colour level per grid and period, and the public map's releases.
"""
from __future__ import annotations

from datetime import date, datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    REAL,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo.models.base import SRID, Base

# -- risk -----------------------------------------------------------------------------------------

class RiskLevel(Base):
    """A grid's four-colour risk for one period, with its reasons and any manual override."""

    __tablename__ = "risk_levels"
    __table_args__ = (UniqueConstraint("area_id", "period_start"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    score: Mapped[float] = mapped_column(Double)
    level: Mapped[str] = mapped_column(Text, CheckConstraint(
        "level IN ('blue', 'yellow', 'orange', 'red')", name="risk_levels_level_check"))
    reasons: Mapped[list | None] = mapped_column(JSONB)
    override_level: Mapped[str | None] = mapped_column(Text, CheckConstraint(
        "override_level IN ('blue', 'yellow', 'orange', 'red')", name="risk_levels_override_level_check"))
    override_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    override_reason: Mapped[str | None] = mapped_column(Text)
    override_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# -- the public map's releases --------------------------------------------------------------------
class PublicRelease(Base):
    """One frozen month of the public safety map for one jurisdiction (0011): written once, never updated."""

    __tablename__ = "public_releases"
    __table_args__ = (UniqueConstraint("area_code", "month"),
                      CheckConstraint("extract(day FROM month) = 1", name="public_releases_month_check"),
                      CheckConstraint("base > 1", name="public_releases_base_check"),
                      CheckConstraint("hex_m > 0", name="public_releases_hex_m_check"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_code: Mapped[str] = mapped_column(String(40))
    month: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    seed: Mapped[bytes] = mapped_column(LargeBinary)  # secret: knowing it would undo the rounding
    method: Mapped[str] = mapped_column(Text)
    base: Mapped[int] = mapped_column(SmallInteger)
    hex_m: Mapped[float] = mapped_column(REAL)


class PublicReleaseCell(Base):
    """The published (rounded) count of one grid or hexagon in a release (0011)."""

    __tablename__ = "public_release_cells"
    __table_args__ = (PrimaryKeyConstraint("release_id", "level", "cell"),
                      CheckConstraint("level IN ('grid', 'hex')", name="public_release_cells_level_check"),
                      CheckConstraint("published >= 0", name="public_release_cells_published_check"),
                      # A grid cell names its grid and keeps its geometry; a hexagon has neither.
                      CheckConstraint("(level = 'grid') = (area_id IS NOT NULL AND geom IS NOT NULL)",
                                      name="public_release_cells_check"),
                      Index("public_release_cells_geom_idx", "geom", postgresql_using="gist"))
    release_id: Mapped[int] = mapped_column(ForeignKey("public_releases.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(Text)
    cell: Mapped[str] = mapped_column(Text)
    area_id: Mapped[int | None] = mapped_column(Integer)  # no foreign key: a release outlives retired grids
    name: Mapped[str | None] = mapped_column(Text)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False))
    published: Mapped[int] = mapped_column(Integer)

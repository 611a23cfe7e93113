"""Incidents, their events and links, and the grid lookup bulk assignment reads.
"""
from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    REAL,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from geo.models.base import SRID, Base

# -- incidents ------------------------------------------------------------------------------------

class Incident(Base):
    """An incident: 信访, 事故, 案件, 矛盾纠纷 or 隐患, geocoded and assigned to its current grid."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("incidents_geom_idx", "geom", postgresql_using="gist"),
        Index("incidents_occurred_idx", "occurred_at"),
        Index("incidents_grid_idx", "grid_id", "occurred_at"),
        # Deleting an area looks for incidents still in it (0019).
        Index("incidents_area_idx", "area_id", postgresql_where=text("area_id IS NOT NULL")),
        Index("incidents_category_idx", "category", "occurred_at"),
        Index("incidents_status_idx", "status", "reported_at"),
        # The few sensitive incidents by time, for the generalised branch of incidents_for (0011).
        Index("incidents_sensitive_occurred_idx", "occurred_at", postgresql_where=text("sensitive")),
        # A source's own id is unique within that source; incidents without one are not deduplicated.
        Index("incidents_external_idx", "source", "external_id", unique=True,
              postgresql_where=text("external_id IS NOT NULL")),
        # A phone's retried report is stored once: the key is unique per user (0016).
        Index("incidents_idempotency_idx", "created_by", "idempotency_key", unique=True,
              postgresql_where=text("idempotency_key IS NOT NULL")),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(Text)
    district_code: Mapped[str | None] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(Text, CheckConstraint(
        "category IN ('petition', 'accident', 'criminal', 'dispute', 'hazard')",
        name="incidents_category_check"))
    subtype: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[int] = mapped_column(SmallInteger, CheckConstraint(
        "severity BETWEEN 1 AND 4", name="incidents_severity_check"), server_default=text("1"))
    status: Mapped[str] = mapped_column(Text, CheckConstraint(
        "status IN ('reported', 'accepted', 'handling', 'resolved', 'followed_up', 'closed', "
        "'escalated')", name="incidents_status_check"), server_default=text("'reported'"))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution_level: Mapped[str | None] = mapped_column(Text, CheckConstraint(
        "resolution_level IN ('group', 'village', 'township', 'district')",
        name="incidents_resolution_level_check"))
    address: Mapped[str | None] = mapped_column(Text)
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    geocode_level: Mapped[str | None] = mapped_column(Text)
    geocode_confidence: Mapped[float | None] = mapped_column(REAL)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    # The finest known area, for coarse geocodes too; not indexed, queries reach it through areas (0004).
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    outside_jurisdiction: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    source: Mapped[str | None] = mapped_column(Text)
    sensitive: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    reporter_name: Mapped[str | None] = mapped_column(Text)
    reporter_phone: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    attrs: Mapped[dict | None] = mapped_column(JSONB)
    idempotency_key = mapped_column(UUID(as_uuid=False))
    request_hash: Mapped[str | None] = mapped_column(Text)


class IncidentEvent(Base):
    """One lifecycle transition of an incident, with actor and note."""

    __tablename__ = "incident_events"
    __table_args__ = (Index("incident_events_incident_idx", "incident_id", "ts"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    from_status: Mapped[str | None] = mapped_column(Text)
    to_status: Mapped[str] = mapped_column(Text)
    level: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


class IncidentPhoto(Base):
    """A photo taken with a report (JPEG, PNG or WebP), kept with its incident."""

    __tablename__ = "incident_photos"
    __table_args__ = (Index("incident_photos_incident_idx", "incident_id"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    content_type: Mapped[str] = mapped_column(Text, CheckConstraint(
        "content_type IN ('image/jpeg', 'image/png', 'image/webp')",
        name="incident_photos_content_type_check"))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IncidentLink(Base):
    """Two reports of the same matter through different channels."""

    __tablename__ = "incident_links"
    # One row per pair, whichever report was linked to which.
    __table_args__ = (
        CheckConstraint("incident_a < incident_b", name="incident_links_check"),
        # Deleting an incident looks for links naming it second (the key covers the first) (0019).
        Index("incident_links_b_idx", "incident_b"),
    )
    incident_a: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    incident_b: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# -- grid lookup ----------------------------------------------------------------------------------

class GridLookup(Base):
    """Each grid cell's area for bulk assignment (geo/incidents/gridlookup.py), built for one fingerprint."""

    __tablename__ = "grid_lookups"
    # Derived data rebuilt whenever the areas change, so no WAL; after a crash it comes back empty.
    __table_args__ = {"prefixes": ["UNLOGGED"]}
    fingerprint: Mapped[str] = mapped_column(Text, primary_key=True)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    scale: Mapped[int] = mapped_column(Integer, CheckConstraint("scale > 0", name="grid_lookups_scale_check"))
    i0: Mapped[int] = mapped_column(Integer)
    j0: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    # PostgreSQL does not enforce array dimensions; they tell SQLAlchemy to read nested lists.
    cells = mapped_column(ARRAY(Integer, dimensions=2), nullable=False)
    candidates = mapped_column(ARRAY(Integer, dimensions=2), nullable=False)
    lines = mapped_column(ARRAY(Double, dimensions=2), nullable=False)
    sides = mapped_column(ARRAY(Integer, dimensions=2), nullable=False)
    # geometry[] without a type or SRID modifier, as 0007 declares it.
    pieces = mapped_column(ARRAY(Geometry(geometry_type=None, spatial_index=False)), nullable=False)
    piece_areas = mapped_column(ARRAY(Integer), nullable=False)

"""Patrol units, shifts, positions (partitioned by day), tracks, assignments and live events.
"""
from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    REAL,
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo.models.base import SRID, Base, LTree

# -- patrol: units, shifts, positions, tracks, dispatch -------------------------------------------

class Unit(Base):
    """A patrol unit: car, foot patrol or volunteer team, with its tracking device."""

    __tablename__ = "units"
    __table_args__ = (
        Index("units_status_idx", "status"),
        # Deleting an area looks for units homed there (0019).
        Index("units_home_area_idx", "home_area_id"),
        # Devices authenticate by token; a hash names exactly one unit.
        Index("units_token_hash_idx", "token_hash", unique=True),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    callsign: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(Text, CheckConstraint(
        "kind IN ('car', 'foot', 'volunteer')", name="units_kind_check"))
    device_id: Mapped[str | None] = mapped_column(Text, unique=True)
    token_hash: Mapped[str | None] = mapped_column(Text)
    home_area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    district_code: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(Text, server_default=text("'off_duty'"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # When the last report without a position (heartbeat, cells, login, alarm) was received.
    heard_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heard_kind: Mapped[str | None] = mapped_column(Text)


class Shift(Base):
    """A unit's duty period (24-hour shifts with day and night tasks)."""

    __tablename__ = "shifts"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="shifts_check"),
        Index("shifts_unit_idx", "unit_id", "starts_at"),
        Index("shifts_unit_range_idx", "unit_id", "ends_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    task: Mapped[str | None] = mapped_column(Text)


class Position(Base):
    """One position fix, unique per (unit_id, ts), in a table partitioned by day."""

    __tablename__ = "positions"
    # One partition per day, created on demand by ensure_position_partition(); the primary key
    # makes a replayed batch idempotent with ON CONFLICT DO NOTHING.
    __table_args__ = (
        Index("positions_geom_idx", "geom", postgresql_using="gist"),
        Index("positions_ts_idx", "ts"),
        {"postgresql_partition_by": "RANGE (ts)"},
    )
    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=False)
    speed: Mapped[float | None] = mapped_column(REAL)        # m/s
    heading: Mapped[float | None] = mapped_column(REAL)      # degrees from north
    accuracy: Mapped[float | None] = mapped_column(REAL)     # metres
    altitude: Mapped[float | None] = mapped_column(REAL)
    battery: Mapped[float | None] = mapped_column(REAL)
    # 1 impossible jump, 2 poor accuracy, 4 the device says it has no fix
    flags: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    district_code: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    hdop: Mapped[float | None] = mapped_column(REAL)         # as reported; no radius is derived from it


class UnitEvent(Base):
    """A report without a position: a heartbeat, cell towers and Wi-Fi, a login or an alarm."""

    __tablename__ = "unit_events"
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    kind: Mapped[str] = mapped_column(Text, CheckConstraint(
        "kind IN ('heartbeat', 'cells', 'login', 'alarm')", name="unit_events_kind_check"),
        primary_key=True)
    battery: Mapped[float | None] = mapped_column(REAL)
    details: Mapped[dict | None] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class UnitLastPosition(Base):
    """A unit's newest clean fix, when it was last heard from, and its chain of jump-flagged fixes."""

    __tablename__ = "unit_last_positions"
    # Nearest units to an incident (KNN `<->`) for dispatch.
    __table_args__ = (Index("unit_last_positions_geom_idx", "geom", postgresql_using="gist"),)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=False)
    speed: Mapped[float | None] = mapped_column(REAL)
    heading: Mapped[float | None] = mapped_column(REAL)
    accuracy: Mapped[float | None] = mapped_column(REAL)
    battery: Mapped[float | None] = mapped_column(REAL)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The newest fix of any quality and how many jump-flagged fixes in a row agree up to it: three
    # mean the anchor (the last clean fix) was wrong, and they become clean.
    seen_lon: Mapped[float | None] = mapped_column(Double)
    seen_lat: Mapped[float | None] = mapped_column(Double)
    jump_chain: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Track(Base):
    """A unit's track for one shift, derived from its clean positions."""

    __tablename__ = "tracks"
    __table_args__ = (
        Index("tracks_geom_idx", "geom", postgresql_using="gist"),
        Index("tracks_unit_idx", "unit_id", "starts_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    shift_id: Mapped[int | None] = mapped_column(ForeignKey("shifts.id", ondelete="SET NULL"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    geom = mapped_column(Geometry("LINESTRING", srid=SRID, spatial_index=False))
    length_m: Mapped[float | None] = mapped_column(Double)
    points: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(Text)
    stats: Mapped[dict | None] = mapped_column(JSONB)


class Assignment(Base):
    """A unit sent to an incident: assigned → acknowledged → arrived → closed (or cancelled)."""

    __tablename__ = "assignments"
    __table_args__ = (
        CheckConstraint("acknowledged_at IS NULL OR acknowledged_at >= assigned_at",
                        name="assignments_check"),
        CheckConstraint("arrived_at IS NULL OR arrived_at >= assigned_at", name="assignments_check1"),
        CheckConstraint("closed_at IS NULL OR closed_at >= assigned_at", name="assignments_check2"),
        Index("assignments_incident_idx", "incident_id"),
        Index("assignments_unit_idx", "unit_id", "assigned_at"),
        Index("assignments_assigned_idx", "assigned_at"),
        # A unit is sent to an incident once at a time; closed and cancelled ones may repeat.
        Index("assignments_open_idx", "incident_id", "unit_id", unique=True,
              postgresql_where=text("status IN ('assigned', 'acknowledged', 'arrived')")),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(Text, CheckConstraint(
        "status IN ('assigned', 'acknowledged', 'arrived', 'closed', 'cancelled')",
        name="assignments_status_check"), server_default=text("'assigned'"))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    arrived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    assigned_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    distance_m: Mapped[float | None] = mapped_column(Double)
    note: Mapped[str | None] = mapped_column(Text)


# -- live events ----------------------------------------------------------------------------------

class LiveEvent(Base):
    """One event of the live map (/api/live): its id is the SSE event id a client resumes from."""

    __tablename__ = "live_events"
    __table_args__ = (Index("live_events_ts_idx", "ts"),)  # pruning old events
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    kind: Mapped[str] = mapped_column(Text)
    area_path: Mapped[str | None] = mapped_column(LTree)
    # `payload` is safe for every viewer of the area; `payload_exact` only for the roles that act (0009).
    payload: Mapped[dict] = mapped_column(JSONB)
    payload_exact: Mapped[dict | None] = mapped_column(JSONB)

"""The data model. Alembic migrations own the schema; these classes map it for the core.

Coordinates are stored in EPSG:4326 (WGS84; CGCS2000 treated as equal). Every geometry column
has a GiST index. Area subtrees are found through `areas.path`, an ltree of ancestor ids kept by a
trigger, so a subtree is one indexed `path <@ :root` scan whatever the jurisdiction's codes look like.
"""
from __future__ import annotations

from datetime import date, datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import UserDefinedType

SRID = 4326


class LTree(UserDefinedType):
    """PostgreSQL ltree (materialised path of ancestor ids)."""

    cache_ok = True

    def get_col_spec(self, **kw):
        return "LTREE"


class Base(DeclarativeBase):
    pass


class Area(Base):
    """One governance area at any level (区 → 镇/街道 → 村/社区 → 网格)."""

    __tablename__ = "areas"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(Text)
    level: Mapped[int] = mapped_column(SmallInteger)
    kind: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    path: Mapped[str | None] = mapped_column(LTree)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("area_groups.id"))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=False)
    households: Mapped[int | None] = mapped_column(Integer)
    population: Mapped[int | None] = mapped_column(Integer)
    urban: Mapped[bool | None] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer, default=1)
    attrs: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    parent = relationship("Area", remote_side=[id])


class AreaGroup(Base):
    """A named grouping of sibling areas shown on the map but not a level (商桥镇's 东/南/西/中 一级网格)."""

    __tablename__ = "area_groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("areas.id"))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(Text)
    leader: Mapped[str | None] = mapped_column(Text)


class BoundaryChange(Base):
    """One atomic change set of boundary edits (kind, author, reason, time)."""

    __tablename__ = "boundary_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    payload: Mapped[dict | None] = mapped_column(JSONB)
    reverts_id: Mapped[int | None] = mapped_column(ForeignKey("boundary_changes.id"))


class AreaVersion(Base):
    """An area as it was between valid_from and valid_to (NULL = current)."""

    __tablename__ = "area_versions"
    __table_args__ = (UniqueConstraint("area_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_id: Mapped[int] = mapped_column(Integer)  # no foreign key: history outlives retired areas (0003)
    version: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(Text)
    level: Mapped[int] = mapped_column(SmallInteger)
    parent_id: Mapped[int | None] = mapped_column(Integer)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False))
    households: Mapped[int | None] = mapped_column(Integer)
    population: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    change_id: Mapped[int | None] = mapped_column(ForeignKey("boundary_changes.id"))


class AreaLock(Base):
    """A soft lock: who is editing an area (a village) in the planner, until when (0003)."""

    __tablename__ = "area_locks"
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(Text)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Person(Base):
    """A person on the governance staff (网格长, 网格员, 监督员 …)."""

    __tablename__ = "people"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    gender: Mapped[str | None] = mapped_column(String(1))
    party_member: Mapped[bool | None] = mapped_column(Boolean)
    notes: Mapped[str | None] = mapped_column(Text)


class AreaStaff(Base):
    """一长两员: who leads, works and supervises an area."""

    __tablename__ = "area_staff"
    __table_args__ = (UniqueConstraint("area_id", "person_id", "role"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(Text)
    since: Mapped[date | None] = mapped_column(Date)


class Department(Base):
    """A responsible department (行业主管部门) for 三零 subjects."""

    __tablename__ = "departments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(Text)


class Entity(Base):
    """A 三零 creation subject: a village/community or an enterprise/institution."""

    __tablename__ = "entities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    geom = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=False))
    address: Mapped[str | None] = mapped_column(Text)
    compliant: Mapped[bool | None] = mapped_column(Boolean)
    attrs: Mapped[dict | None] = mapped_column(JSONB)


class Place(Base):
    """A gazetteer entry: road, door number, 小区, building, POI or village group (组)."""

    __tablename__ = "places"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("places.id"))
    geom = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=False))
    address: Mapped[str | None] = mapped_column(Text)
    attrs: Mapped[dict | None] = mapped_column(JSONB)


class Road(Base):
    """A road segment of the patrol network (demo roads or imported)."""

    __tablename__ = "roads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    road_class: Mapped[str | None] = mapped_column(Text)
    district_code: Mapped[str | None] = mapped_column(String(32))
    geom = mapped_column(Geometry("LINESTRING", srid=SRID, spatial_index=False), nullable=False)


class Incident(Base):
    """An incident: 信访, 事故, 案件, 矛盾纠纷 or 隐患, geocoded and assigned to its current grid."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(Text)
    district_code: Mapped[str | None] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(Text)
    subtype: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[int] = mapped_column(SmallInteger, default=1)
    status: Mapped[str] = mapped_column(Text, default="reported")
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution_level: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    geocode_level: Mapped[str | None] = mapped_column(Text)
    geocode_confidence: Mapped[float | None] = mapped_column(Float)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))  # finest known (0004)
    outside_jurisdiction: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str | None] = mapped_column(Text)
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    reporter_name: Mapped[str | None] = mapped_column(Text)
    reporter_phone: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    attrs: Mapped[dict | None] = mapped_column(JSONB)


class IncidentEvent(Base):
    """One lifecycle transition of an incident, with actor and note."""

    __tablename__ = "incident_events"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    from_status: Mapped[str | None] = mapped_column(Text)
    to_status: Mapped[str] = mapped_column(Text)
    level: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


class IncidentLink(Base):
    """Two reports of the same matter through different channels."""

    __tablename__ = "incident_links"
    __table_args__ = (CheckConstraint("incident_a < incident_b"),)
    incident_a: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    incident_b: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class GridLookup(Base):
    """The grid lookup bulk assignment reads: each cell's area, built from the areas whose
    fingerprint it carries (geo/gridlookup.py; unlogged, rebuilt when the areas change) (0007)."""

    __tablename__ = "grid_lookups"
    fingerprint: Mapped[str] = mapped_column(Text, primary_key=True)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    scale: Mapped[int] = mapped_column(Integer)
    i0: Mapped[int] = mapped_column(Integer)
    j0: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    cells = mapped_column(ARRAY(Integer, dimensions=2), nullable=False)
    candidates = mapped_column(ARRAY(Integer, dimensions=2), nullable=False)
    lines = mapped_column(ARRAY(Float, dimensions=2), nullable=False)
    sides = mapped_column(ARRAY(Integer, dimensions=2), nullable=False)
    pieces = mapped_column(ARRAY(Geometry("GEOMETRY", srid=SRID, spatial_index=False)), nullable=False)
    piece_areas = mapped_column(ARRAY(Integer), nullable=False)


class Unit(Base):
    """A patrol unit: car, foot patrol or volunteer team, with its tracking device."""

    __tablename__ = "units"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    callsign: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(Text)
    device_id: Mapped[str | None] = mapped_column(Text, unique=True)
    token_hash: Mapped[str | None] = mapped_column(Text)
    home_area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    district_code: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(Text, default="off_duty")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Shift(Base):
    """A unit's duty period (24-hour shifts with day and night tasks)."""

    __tablename__ = "shifts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    task: Mapped[str | None] = mapped_column(Text)


class Position(Base):
    """One position fix. The table is partitioned by day; (unit_id, ts) is unique."""

    __tablename__ = "positions"
    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=False)
    speed: Mapped[float | None] = mapped_column(Float)        # m/s
    heading: Mapped[float | None] = mapped_column(Float)      # degrees from north
    accuracy: Mapped[float | None] = mapped_column(Float)     # metres
    altitude: Mapped[float | None] = mapped_column(Float)
    battery: Mapped[float | None] = mapped_column(Float)
    flags: Mapped[int] = mapped_column(SmallInteger, default=0)  # 1 impossible jump, 2 poor accuracy
    district_code: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Track(Base):
    """A unit's track for one shift, derived from its clean positions."""

    __tablename__ = "tracks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    shift_id: Mapped[int | None] = mapped_column(ForeignKey("shifts.id", ondelete="SET NULL"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    geom = mapped_column(Geometry("LINESTRING", srid=SRID, spatial_index=False))
    length_m: Mapped[float | None] = mapped_column(Float)
    points: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(Text)
    stats: Mapped[dict | None] = mapped_column(JSONB)


class RiskLevel(Base):
    """A grid's four-colour risk for one period, with its reasons and any manual override."""

    __tablename__ = "risk_levels"
    __table_args__ = (UniqueConstraint("area_id", "period_start"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    score: Mapped[float] = mapped_column(Float)
    level: Mapped[str] = mapped_column(Text)
    reasons: Mapped[list | None] = mapped_column(JSONB)
    override_level: Mapped[str | None] = mapped_column(Text)
    override_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    override_reason: Mapped[str | None] = mapped_column(Text)
    override_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Role(Base):
    """A role: admin, dispatcher, planner, analyst, grid_worker."""

    __tablename__ = "roles"
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    description: Mapped[str | None] = mapped_column(Text)


class User(Base):
    """A person who logs in; one role, scoped to one or more area subtrees."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(Text, unique=True)
    display_name: Mapped[str | None] = mapped_column(Text)
    password_hash: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(ForeignKey("roles.name"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class UserScope(Base):
    """An area subtree a user may act in (no rows: nowhere, unless admin)."""

    __tablename__ = "user_scopes"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"), primary_key=True)


class ApiToken(Base):
    """A bearer token for a script, stored only as its SHA-256 hash."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    token_hash: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """One write, who made it, on what, and what changed."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target_type: Mapped[str | None] = mapped_column(Text)
    target_id: Mapped[str | None] = mapped_column(Text)
    area_code: Mapped[str | None] = mapped_column(String(32))
    details: Mapped[dict | None] = mapped_column(JSONB)
    remote_addr: Mapped[str | None] = mapped_column(Text)


class GazetteerChange(Base):
    """One statement that changed areas, places or entities (tells processes to rebuild the gazetteer)."""

    __tablename__ = "gazetteer_changes"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    source: Mapped[str] = mapped_column(Text)


class UnitLastPosition(Base):
    """A unit's newest clean fix (moved forward only), when it was last heard from, and the
    jump chain the ingest needs to judge its next fix."""

    __tablename__ = "unit_last_positions"
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=False)
    speed: Mapped[float | None] = mapped_column(Float)
    heading: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    battery: Mapped[float | None] = mapped_column(Float)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seen_lon: Mapped[float | None] = mapped_column(Float)
    seen_lat: Mapped[float | None] = mapped_column(Float)
    jump_chain: Mapped[int] = mapped_column(SmallInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LiveEvent(Base):
    """One event of the live map (/api/live): its id is the SSE event id a client resumes from."""

    __tablename__ = "live_events"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    kind: Mapped[str] = mapped_column(Text)
    area_path: Mapped[str | None] = mapped_column(LTree)
    payload: Mapped[dict] = mapped_column(JSONB)


class Assignment(Base):
    """A unit sent to an incident: assigned → acknowledged → arrived → closed (or cancelled)."""

    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(Text, default="assigned")
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    arrived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    assigned_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    distance_m: Mapped[float | None] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)


class PublicRelease(Base):
    """One frozen month of the public safety map for one jurisdiction (0011): written once, never updated."""

    __tablename__ = "public_releases"
    __table_args__ = (UniqueConstraint("area_code", "month"),
                      CheckConstraint("extract(day FROM month) = 1"),
                      CheckConstraint("base > 1"), CheckConstraint("hex_m > 0"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_code: Mapped[str] = mapped_column(String(40))
    month: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    seed: Mapped[bytes] = mapped_column(LargeBinary)  # secret: knowing it would undo the rounding
    method: Mapped[str] = mapped_column(Text)
    base: Mapped[int] = mapped_column(SmallInteger)
    hex_m: Mapped[float] = mapped_column(Float(precision=24))


class PublicReleaseCell(Base):
    """The published (rounded) count of one grid or hexagon in a release (0011)."""

    __tablename__ = "public_release_cells"
    __table_args__ = (PrimaryKeyConstraint("release_id", "level", "cell"),
                      CheckConstraint("level IN ('grid', 'hex')"), CheckConstraint("published >= 0"))
    release_id: Mapped[int] = mapped_column(ForeignKey("public_releases.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(Text)
    cell: Mapped[str] = mapped_column(Text)
    area_id: Mapped[int | None] = mapped_column(Integer)  # no foreign key: a release outlives retired grids
    name: Mapped[str | None] = mapped_column(Text)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False))
    published: Mapped[int] = mapped_column(Integer)

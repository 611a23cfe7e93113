"""The data model: every table, column, key, constraint and index the migrations create.

Alembic migrations own the schema; these classes declare the same schema so that the core can map
it and autogenerate finds nothing to change (tests/geo/test_schema.py compares the two). Functions
and triggers live only in the migrations.

Coordinates are stored in EPSG:4326 (WGS84; CGCS2000 treated as equal). Every geometry column
has a GiST index. Area subtrees are found through `areas.path`, an ltree of ancestor ids kept by a
trigger, so a subtree is one indexed `path <@ :root` scan whatever the jurisdiction's codes look like.
"""
from __future__ import annotations

from datetime import date, datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    REAL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import UserDefinedType

SRID = 4326


class LTree(UserDefinedType):
    """PostgreSQL ltree (materialised path of ancestor ids)."""

    cache_ok = True

    def get_col_spec(self, **kw):
        return "LTREE"


# SQLAlchemy does not know ltree and would reflect it as NullType, with a warning, so autogenerate
# could never compare these columns; reflected ltree columns become this type instead.
ischema_names["ltree"] = LTree


class Base(DeclarativeBase):
    # PostgreSQL's own names for constraints declared without one, so that the model names a
    # primary key, unique or foreign key constraint exactly as the migrations' CREATE TABLE did.
    metadata = MetaData(naming_convention={
        "pk": "%(table_name)s_pkey",
        "uq": "%(table_name)s_%(column_0_N_name)s_key",
        "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    })


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


# -- people, staff and 三零 subjects --------------------------------------------------------------

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
    __table_args__ = (
        UniqueConstraint("area_id", "person_id", "role"),
        Index("area_staff_area_idx", "area_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(Text, CheckConstraint(
        "role IN ('leader', 'worker', 'supervisor')", name="area_staff_role_check"))
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
    __table_args__ = (
        Index("entities_geom_idx", "geom", postgresql_using="gist"),
        Index("entities_area_idx", "area_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text, CheckConstraint(
        "kind IN ('village', 'enterprise', 'institution')", name="entities_kind_check"))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    geom = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=False))
    address: Mapped[str | None] = mapped_column(Text)
    compliant: Mapped[bool | None] = mapped_column(Boolean)
    attrs: Mapped[dict | None] = mapped_column(JSONB)


# -- places and roads (the gazetteer) -------------------------------------------------------------

class Place(Base):
    """A gazetteer entry: road, door number, 小区, building, POI or village group (组)."""

    __tablename__ = "places"
    __table_args__ = (
        Index("places_geom_idx", "geom", postgresql_using="gist"),
        # Fuzzy name search (similarity, ILIKE '%…%') through trigrams.
        Index("places_name_trgm_idx", "name", postgresql_using="gin",
              postgresql_ops={"name": "gin_trgm_ops"}),
        Index("places_area_idx", "area_id"),
        Index("places_parent_idx", "parent_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text, CheckConstraint(
        "kind IN ('road', 'door', 'compound', 'building', 'poi', 'group')", name="places_kind_check"))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("places.id", ondelete="CASCADE"))
    geom = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=False))
    address: Mapped[str | None] = mapped_column(Text)
    attrs: Mapped[dict | None] = mapped_column(JSONB)


class Road(Base):
    """A road segment of the patrol network (demo roads or imported)."""

    __tablename__ = "roads"
    __table_args__ = (
        Index("roads_district_idx", "district_code"),
        Index("roads_geom_idx", "geom", postgresql_using="gist"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    road_class: Mapped[str | None] = mapped_column(Text)
    district_code: Mapped[str | None] = mapped_column(String(32))
    geom = mapped_column(Geometry("LINESTRING", srid=SRID, spatial_index=False), nullable=False)


class GazetteerChange(Base):
    """One statement that changed areas, places or entities (tells processes to rebuild the gazetteer)."""

    __tablename__ = "gazetteer_changes"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    source: Mapped[str] = mapped_column(Text)


# -- incidents ------------------------------------------------------------------------------------

class Incident(Base):
    """An incident: 信访, 事故, 案件, 矛盾纠纷 or 隐患, geocoded and assigned to its current grid."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("incidents_geom_idx", "geom", postgresql_using="gist"),
        Index("incidents_occurred_idx", "occurred_at"),
        Index("incidents_grid_idx", "grid_id", "occurred_at"),
        Index("incidents_category_idx", "category", "occurred_at"),
        Index("incidents_status_idx", "status", "reported_at"),
        # A source's own id is unique within that source; incidents without one are not deduplicated.
        Index("incidents_external_idx", "source", "external_id", unique=True,
              postgresql_where=text("external_id IS NOT NULL")),
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


class IncidentLink(Base):
    """Two reports of the same matter through different channels."""

    __tablename__ = "incident_links"
    # One row per pair, whichever report was linked to which.
    __table_args__ = (CheckConstraint("incident_a < incident_b", name="incident_links_check"),)
    incident_a: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    incident_b: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# -- patrol: units, shifts, positions, tracks, dispatch -------------------------------------------

class Unit(Base):
    """A patrol unit: car, foot patrol or volunteer team, with its tracking device."""

    __tablename__ = "units"
    __table_args__ = (
        Index("units_status_idx", "status"),
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
    flags: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))  # 1 impossible jump, 2 poor accuracy
    district_code: Mapped[str | None] = mapped_column(String(32))
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


# -- users, scopes, tokens and the audit log ------------------------------------------------------

class Role(Base):
    """A role: admin, dispatcher, planner, analyst, grid_worker."""

    __tablename__ = "roles"
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    description: Mapped[str | None] = mapped_column(Text)


class User(Base):
    """A person who logs in; one role, scoped to one or more area subtrees."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(Text, CheckConstraint(
        "username ~ '^[A-Za-z0-9_.@-]{2,64}$'", name="users_username_check"), unique=True)
    display_name: Mapped[str | None] = mapped_column(Text)
    password_hash: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(ForeignKey("roles.name"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
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


class LoginAttempt(Base):
    """One password login: the username tried, from where, and how it ended (0010)."""

    __tablename__ = "login_attempts"
    __table_args__ = (CheckConstraint("outcome IN ('success', 'failure', 'refused')"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    username: Mapped[str] = mapped_column(Text)
    remote_addr: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)


class UserSession(Base):
    """A login session; the cookie carries a random key, only its SHA-256 is stored (0010)."""

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key_hash: Mapped[str] = mapped_column(Text, unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    remote_addr: Mapped[str | None] = mapped_column(Text)
    user_agent: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    """One write, who made it, on what, and what changed."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("audit_log_ts_idx", "ts"),
        Index("audit_log_target_idx", "target_type", "target_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The entry outlives the account; `actor` keeps the name.
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target_type: Mapped[str | None] = mapped_column(Text)
    target_id: Mapped[str | None] = mapped_column(Text)
    area_code: Mapped[str | None] = mapped_column(String(32))
    details: Mapped[dict | None] = mapped_column(JSONB)
    remote_addr: Mapped[str | None] = mapped_column(Text)


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

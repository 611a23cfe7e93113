"""People and 一长两员 staff, the 三零 subjects, and the gazetteer's places and roads.
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
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo.models.base import SRID, Base

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


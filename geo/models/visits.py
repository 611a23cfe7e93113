"""Households, 走访 visits and their monthly plans, round-table meetings and 三色 village logbooks.
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
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from geo.models.base import SRID, Base


class Household(Base):
    """One household (户) of a grid's registry; name, phone and ID number are sensitive."""

    __tablename__ = "households"
    __table_args__ = (UniqueConstraint("grid_id", "number"),
                      Index("households_geom_idx", "geom", postgresql_using="gist"))
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(Text)  # 户号, unique within the grid
    head_name: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    id_number: Mapped[str | None] = mapped_column(Text)
    members: Mapped[int] = mapped_column(SmallInteger, CheckConstraint(
        "members BETWEEN 1 AND 99", name="households_members_check"), server_default=text("1"))
    address: Mapped[str | None] = mapped_column(Text)
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Visit(Base):
    """A grid worker's visit (走访) to a household or a place; a 回访 names its matter."""

    __tablename__ = "visits"
    __table_args__ = (
        CheckConstraint("kind <> 'follow_up' OR incident_id IS NOT NULL", name="visits_check"),
        Index("visits_grid_idx", "grid_id", "occurred_at"),
        Index("visits_household_idx", "household_id", "occurred_at"),
        Index("visits_incident_idx", "incident_id", postgresql_where=text("incident_id IS NOT NULL")),
        # Coverage per worker, and removing a person without scanning every visit.
        Index("visits_person_idx", "person_id", postgresql_where=text("person_id IS NOT NULL")),
        Index("visits_geom_idx", "geom", postgresql_using="gist"),
        # A phone's retried write is stored once: the key is unique per user.
        Index("visits_idempotency_idx", "visitor_id", "idempotency_key", unique=True,
              postgresql_where=text("idempotency_key IS NOT NULL")),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, CheckConstraint(
        "kind IN ('home', 'follow_up', 'safety', 'outreach')", name="visits_kind_check"))
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id", ondelete="SET NULL"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"))
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    people: Mapped[int] = mapped_column(SmallInteger, CheckConstraint(
        "people BETWEEN 1 AND 99", name="visits_people_check"), server_default=text("1"))
    notes: Mapped[str | None] = mapped_column(Text)
    issues: Mapped[list | None] = mapped_column(JSONB)
    visitor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    idempotency_key = mapped_column(UUID(as_uuid=False))
    request_hash: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class VisitPlan(Base):
    """How many households a grid plans to visit in one month."""

    __tablename__ = "visit_plans"
    __table_args__ = (CheckConstraint("extract(day FROM month) = 1", name="visit_plans_month_check"),)
    grid_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    households: Mapped[int] = mapped_column(Integer, CheckConstraint(
        "households >= 0", name="visit_plans_households_check"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class VillageMeeting(Base):
    """A "510" 圆桌议事会 round-table meeting of a village or community."""

    __tablename__ = "village_meetings"
    __table_args__ = (Index("village_meetings_area_idx", "area_id", "held_on"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"))
    held_on: Mapped[date] = mapped_column(Date)
    topic: Mapped[str] = mapped_column(Text)
    participants: Mapped[dict] = mapped_column(JSONB)  # kind → how many (geo.vocabulary)
    problems_raised: Mapped[int] = mapped_column(Integer, CheckConstraint(
        "problems_raised >= 0", name="village_meetings_problems_raised_check"), server_default=text("0"))
    problems_solved: Mapped[int] = mapped_column(Integer, CheckConstraint(
        "problems_solved >= 0", name="village_meetings_problems_solved_check"), server_default=text("0"))
    disputes_settled: Mapped[int] = mapped_column(Integer, CheckConstraint(
        "disputes_settled >= 0", name="village_meetings_disputes_settled_check"),
        server_default=text("0"))
    site_inspection: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    incident_ids = mapped_column(ARRAY(BigInteger), nullable=False, server_default=text("'{}'"))
    outcomes: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class VillageLogbookEntry(Base):
    """One entry of a village's 三色 logbooks: red honours, black misconduct, blue memory."""

    __tablename__ = "village_logbook"
    __table_args__ = (
        Index("village_logbook_area_idx", "area_id", "recorded_on"),
        # Deleting an incident looks for entries naming it (0019).
        Index("village_logbook_incident_idx", "incident_id", postgresql_where=text("incident_id IS NOT NULL")),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"))
    colour: Mapped[str] = mapped_column(Text, CheckConstraint(
        "colour IN ('red', 'black', 'blue')", name="village_logbook_colour_check"))
    recorded_on: Mapped[date] = mapped_column(Date)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    resolved_dispute: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

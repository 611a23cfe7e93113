"""What the incident tests share: the audience and actor they act as, and a report in the town."""
from __future__ import annotations

from datetime import timedelta, timezone

from sqlalchemy import text

from geo import audit
from geo.incidents import intake
from geo.policy import Audience
from tests.incident_cases import report

ADMIN = Audience.system()
ACTOR = audit.Actor("test")
SHANGHAI = timezone(timedelta(hours=8))


def new(session, **changes) -> dict:
    """Report a valid incident with `changes` as an unscoped administrator; return it."""
    return intake.create(session, ACTOR, report(changes), ADMIN)


def count(session, table: str) -> int:
    return session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()

"""The 三级过滤网 workflow as rules, without the database: which status may follow which, the
response-time targets per category, and the level holding a matter.

reported → accepted (受理) → handling (处置/调解) → resolved (化解) → followed_up (回访) → closed (办结),
or escalated (上报) to the next level of 孟庙镇's 三级过滤网 — group (村民组/小区), village (村/社区),
township (镇/街道), then district.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from geo.errors import InvalidInput
from geo.vocabulary import RESOLUTION_LEVEL_BY_NAME, RESOLUTION_LEVELS

# Response-time targets per category: how soon a report must be accepted and resolved.
# 信访 follows the 信访工作条例 (accept or refuse within 15 days, conclude within 60); the others are
# the service promises usual for county grid centres (accidents and crimes answered at once).
RESPONSE_TARGETS = {
    "petition": {"accept": timedelta(days=15), "resolve": timedelta(days=60)},
    "accident": {"accept": timedelta(minutes=30), "resolve": timedelta(days=3)},
    "criminal": {"accept": timedelta(hours=1), "resolve": timedelta(days=30)},
    "dispute": {"accept": timedelta(hours=24), "resolve": timedelta(days=15)},
    "hazard": {"accept": timedelta(hours=24), "resolve": timedelta(days=7)},
}

# The lifecycle. Reopening (resolved/followed_up → handling) needs a note saying why.
TRANSITIONS = {
    "reported": ("accepted", "escalated"),
    "accepted": ("handling", "escalated"),
    "handling": ("resolved", "escalated"),
    "escalated": ("accepted", "handling"),
    "resolved": ("followed_up", "handling"),
    "followed_up": ("closed", "handling"),
    "closed": (),
}
NOTE_REQUIRED = {("resolved", "handling"), ("followed_up", "handling")}


def targets(row: dict, now: datetime | None = None) -> dict:
    """Response-time targets for the incident's category, their deadlines and whether they are met."""
    now = now or datetime.now(timezone.utc)
    t = RESPONSE_TARGETS[row["category"]]
    reported = row["reported_at"]
    out = {}
    for key, done_at in (("accept", row["accepted_at"]), ("resolve", row["resolved_at"])):
        due = reported + t[key]
        out[key] = {"hours": round(t[key].total_seconds() / 3600, 2), "due": due.isoformat(),
                    "met": None if done_at is None and now < due else bool(done_at and done_at <= due),
                    "overdue": done_at is None and now > due and row["status"] not in ("closed",)}
    return out


def handling_level(row: dict) -> str:
    """The level currently holding the matter (starts at group; each escalation moves it up)."""
    return (row.get("attrs") or {}).get("handling_level") or "group"


# -- lifecycle -----------------------------------------------------------------------------------
def parse_level(value, name: str = "level") -> str | None:
    if value is None or value == "":
        return None
    key = str(value).strip().lower()
    if key in RESOLUTION_LEVEL_BY_NAME:
        return RESOLUTION_LEVEL_BY_NAME[key]
    raise InvalidInput(name, f"{name} must be one of {', '.join(RESOLUTION_LEVELS)} "
                             f"(组/村/镇/区); got {value!r}")

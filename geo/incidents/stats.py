"""Incident statistics per area and period: counts, the dispute resolution rate, where matters were
resolved (小事不出村、大事不出乡) and response times against the targets.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.incidents.workflow import RESPONSE_TARGETS
from geo.policy import Audience
from geo.vocabulary import OPEN_STATUSES


# -- statistics ----------------------------------------------------------------------------------
def stats(session: Session, area: str, audience: Audience, start: datetime | None = None,
          end: datetime | None = None, *, children: bool = True) -> dict:
    """Per area and period (by occurrence): counts, the dispute resolution rate, where matters
    were resolved (小事不出村、大事不出乡), and response times against the targets — of the
    incidents the audience may read."""
    root = audience.scope.area(session, area)
    params = {"path": root["path"], "start": start, "end": end, "open": list(OPEN_STATUSES)}
    period = ("(CAST(:start AS timestamptz) IS NULL OR i.occurred_at >= :start) AND "
              "(CAST(:end AS timestamptz) IS NULL OR i.occurred_at < :end)")
    targets_sql = " ".join(
        f"WHEN '{c}' THEN interval '{int(t['accept'].total_seconds())} seconds'"
        for c, t in RESPONSE_TARGETS.items())
    resolve_sql = " ".join(
        f"WHEN '{c}' THEN interval '{int(t['resolve'].total_seconds())} seconds'"
        for c, t in RESPONSE_TARGETS.items())
    base = f"""
        FROM {audience.incidents(params)}
       WHERE i.area_path <@ CAST(:path AS ltree) AND {period}"""
    summary = session.execute(text(f"""
        SELECT count(*) AS total,
               count(*) FILTER (WHERE i.category = 'dispute') AS disputes,
               count(*) FILTER (WHERE i.category = 'dispute' AND i.resolved_at IS NOT NULL) AS disputes_resolved,
               count(*) FILTER (WHERE i.resolved_at IS NOT NULL) AS resolved,
               count(*) FILTER (WHERE i.resolution_level = 'group') AS at_group,
               count(*) FILTER (WHERE i.resolution_level = 'village') AS at_village,
               count(*) FILTER (WHERE i.resolution_level = 'township') AS at_township,
               count(*) FILTER (WHERE i.resolution_level = 'district') AS at_district,
               count(*) FILTER (WHERE i.category = 'dispute'
                                  AND i.resolution_level IN ('group', 'village')) AS disputes_in_village,
               count(*) FILTER (WHERE i.category = 'dispute'
                                  AND i.resolution_level IN ('group', 'village', 'township')) AS disputes_in_township,
               count(*) FILTER (WHERE i.accepted_at IS NOT NULL) AS accepted,
               count(*) FILTER (WHERE i.accepted_at <= i.reported_at + CASE i.category {targets_sql} END)
                 AS accepted_on_time,
               count(*) FILTER (WHERE i.resolved_at <= i.reported_at + CASE i.category {resolve_sql} END)
                 AS resolved_on_time,
               count(*) FILTER (WHERE i.status = ANY(:open)
                                  AND now() > i.reported_at + CASE i.category {resolve_sql} END) AS overdue,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.accepted_at - i.reported_at) / 3600)
                   FILTER (WHERE i.accepted_at IS NOT NULL) AS median_accept_h,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.resolved_at - i.reported_at) / 3600)
                   FILTER (WHERE i.resolved_at IS NOT NULL) AS median_resolve_h
        {base}"""), params).mappings().one()
    by = {}
    for column in ("category", "status"):
        by[column] = {r[0]: r[1] for r in session.execute(text(
            f"SELECT i.{column}, count(*) {base} GROUP BY 1 ORDER BY 1"), params)}
    out = {"area": {"code": root["code"], "name": root["name"], "level": root["level"]},
           "from": start.isoformat() if start else None, "to": end.isoformat() if end else None,
           **_summary(summary), "by_category": by["category"], "by_status": by["status"]}
    if children:
        out["children"] = []
        for child in session.execute(text("SELECT code FROM areas WHERE parent_id = :id ORDER BY code"),
                                     {"id": root["id"]}).scalars():
            out["children"].append(stats(session, child, audience, start, end, children=False))
    return out


def _ratio(a, b) -> float | None:
    return round(a / b, 4) if b else None


def _summary(r) -> dict:
    resolved = r["resolved"]
    levels = {"group": r["at_group"], "village": r["at_village"], "township": r["at_township"],
              "district": r["at_district"]}
    dispute_levels_known = r["disputes_resolved"]
    return {
        "total": r["total"],
        "disputes": {"total": r["disputes"], "resolved": r["disputes_resolved"],
                     "resolution_rate": _ratio(r["disputes_resolved"], r["disputes"]),
                     "within_village": _ratio(r["disputes_in_village"], dispute_levels_known),
                     "within_township": _ratio(r["disputes_in_township"], dispute_levels_known)},
        "resolved": resolved,
        "resolution_levels": levels,
        "within_village": _ratio(levels["group"] + levels["village"], resolved),
        "within_township": _ratio(levels["group"] + levels["village"] + levels["township"], resolved),
        "response": {"accepted": r["accepted"],
                     "accepted_on_time": _ratio(r["accepted_on_time"], r["accepted"]),
                     "resolved_on_time": _ratio(r["resolved_on_time"], resolved),
                     "median_accept_hours": None if r["median_accept_h"] is None
                     else round(float(r["median_accept_h"]), 2),
                     "median_resolve_hours": None if r["median_resolve_h"] is None
                     else round(float(r["median_resolve_h"]), 2),
                     "overdue_open": r["overdue"]},
    }

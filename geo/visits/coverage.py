"""Visit coverage: households visited in a month per grid and per worker against each grid's plan,
a grid worker's day (the visits due today, the open matters of their grids), and the village
records' counts the scorecards and the monthly report show.
"""
from __future__ import annotations

import math
from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.policy import Audience
from geo.visits.households import _identity_sql
from geo.vocabulary import OPEN_STATUSES

DUE_LIST_MAX = 50
# A grid without a plan for the month plans to see each household once a year.
PLAN_MONTHS = 12


def default_plan(households: int) -> int:
    """How many households a grid of this size plans to visit in a month without a plan of its own."""
    return math.ceil(households / PLAN_MONTHS)


def _scope(audience: Audience, session: Session, area: str | None, params: dict) -> str:
    """SQL restricting grid `g` to the audience's scope and, when given, to the area's subtree."""
    where, scope_params = audience.scope.sql("g.path")
    params.update(scope_params)
    if area:
        row = audience.scope.area(session, area)
        params["ap"] = row["path"]
        where += " AND g.path <@ CAST(:ap AS ltree)"
    return where


def coverage(session: Session, audience: Audience, month: tuple[datetime, datetime],
             area: str | None = None) -> dict:
    """Per grid (in scope, under `area`): households in the registry, the month's plan, households
    visited, visits and 人次; per worker: visits, households and 人次; and the totals."""
    params: dict = {"start": month[0], "end": month[1], "month": month[0].date()}
    where = _scope(audience, session, area, params)
    grids = session.execute(text(f"""
        WITH v AS (
            SELECT v.grid_id, count(*) AS visits, count(DISTINCT v.household_id) AS visited,
                   sum(v.people) AS people,
                   count(*) FILTER (WHERE v.kind = 'follow_up') AS follow_ups
              FROM visits v JOIN areas g ON g.id = v.grid_id
             WHERE v.occurred_at >= :start AND v.occurred_at < :end AND {where}
             GROUP BY v.grid_id),
        h AS (SELECT h.grid_id, count(*) AS n FROM households h JOIN areas g ON g.id = h.grid_id
               WHERE {where} GROUP BY h.grid_id)
        SELECT g.code, g.name, coalesce(h.n, 0) AS households, p.households AS planned,
               coalesce(v.visited, 0) AS visited, coalesce(v.visits, 0) AS visits,
               coalesce(v.people, 0) AS people, coalesce(v.follow_ups, 0) AS follow_ups
          FROM areas g
          LEFT JOIN h ON h.grid_id = g.id LEFT JOIN v ON v.grid_id = g.id
          LEFT JOIN visit_plans p ON p.grid_id = g.id AND p.month = :month
         WHERE g.level >= 4 AND {where}
           AND NOT EXISTS (SELECT 1 FROM areas c WHERE c.parent_id = g.id)
         ORDER BY g.code"""), params).mappings().all()
    workers = session.execute(text(f"""
        SELECT coalesce(u.display_name, u.username, p.name, '—') AS worker,
               count(*) AS visits, count(DISTINCT v.household_id) AS visited,
               sum(v.people) AS people, array_agg(DISTINCT g.code ORDER BY g.code) AS grids
          FROM visits v JOIN areas g ON g.id = v.grid_id
          LEFT JOIN users u ON u.id = v.visitor_id LEFT JOIN people p ON p.id = v.person_id
         WHERE v.occurred_at >= :start AND v.occurred_at < :end AND {where}
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 2000"""), params).mappings().all()
    rows = [{**dict(r), "share": _pct(r["visited"], r["households"]),
             "plan_met": None if r["planned"] is None else r["visited"] >= r["planned"]}
            for r in grids]
    total = {k: sum(r[k] for r in rows) for k in ("households", "visited", "visits", "people",
                                                    "follow_ups")}
    total["share"] = _pct(total["visited"], total["households"])
    return {"month": month[0].strftime("%Y-%m"), "area": area, "total": total, "grids": rows,
            "workers": [dict(w) for w in workers]}


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def day(session: Session, audience: Audience, today: date, month: tuple[datetime, datetime],
        tomorrow: datetime) -> dict:
    """A grid worker's day: per grid the households still to visit this month against its plan and
    how many of them are due today (what remains spread over the days left), the households to
    visit first (longest since their last visit), and the open matters of their grids — those
    waiting for a 回访 first."""
    params: dict = {"start": month[0], "end": month[1], "month": month[0].date()}
    where = _scope(audience, session, None, params)
    days_left = max(1, (month[1].date() - today).days)
    grids = session.execute(text(f"""
        SELECT g.id, g.code, g.name,
               p.households AS planned,
               (SELECT count(*) FROM households h WHERE h.grid_id = g.id) AS households,
               (SELECT count(DISTINCT v.household_id) FROM visits v
                 WHERE v.grid_id = g.id AND v.occurred_at >= :start AND v.occurred_at < :end)
                   AS visited
          FROM areas g LEFT JOIN visit_plans p ON p.grid_id = g.id AND p.month = :month
         WHERE g.level >= 4 AND {where} AND NOT EXISTS (SELECT 1 FROM areas c WHERE c.parent_id = g.id)
         ORDER BY g.code LIMIT 200"""), params).mappings().all()
    plan = []
    for g in grids:
        planned = g["planned"] if g["planned"] is not None else default_plan(g["households"])
        remaining = max(0, planned - g["visited"])
        plan.append({"code": g["code"], "name": g["name"], "planned": planned,
                     "visited": g["visited"], "remaining": remaining,
                     "due_today": math.ceil(remaining / days_left)})
    due_n = min(DUE_LIST_MAX, sum(p["due_today"] for p in plan))
    ids = [g["id"] for g in grids]
    due = session.execute(text(f"""
        SELECT h.id, h.number, g.code AS grid_code, {_identity_sql(audience)},
               ST_X(h.geom) AS lon, ST_Y(h.geom) AS lat, max(v.occurred_at) AS last_visit
          FROM households h JOIN areas g ON g.id = h.grid_id
          LEFT JOIN visits v ON v.household_id = h.id
         WHERE h.grid_id = ANY(:ids)
         GROUP BY h.id, g.code
        HAVING max(v.occurred_at) IS NULL OR max(v.occurred_at) < :start
         ORDER BY max(v.occurred_at) NULLS FIRST, h.number LIMIT :n"""),
        {**params, "ids": ids, "n": due_n}).mappings().all()
    mparams: dict = {"open": list(OPEN_STATUSES), "ids": ids, "before": tomorrow}
    matters = session.execute(text(f"""
        SELECT i.id, i.category, i.severity, i.status, i.occurred_at, g.code AS grid_code,
               ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat
          FROM {audience.incidents(mparams)} JOIN areas g ON g.id = i.grid_id
         WHERE i.grid_id = ANY(:ids) AND (i.status = ANY(:open) OR i.status = 'resolved')
           AND i.occurred_at < :before
         ORDER BY (i.status = 'resolved') DESC, i.severity DESC, i.occurred_at LIMIT 200"""),
        mparams).mappings().all()
    return {"date": today.isoformat(), "grids": plan,
            "due": [{**dict(h), "last_visit": h["last_visit"].isoformat() if h["last_visit"] else None}
                    for h in due],
            "matters": [{**dict(m), "occurred_at": m["occurred_at"].isoformat(),
                         "awaiting_follow_up": m["status"] == "resolved"} for m in matters]}


def village_records(session: Session, audience: Audience, code: str, since: datetime,
                    until: datetime) -> dict:
    """Round-table meetings and 三色 logbook entries under an area between two moments."""
    row = audience.scope.area(session, code)
    params = {"p": row["path"], "since": since.date(), "until": until.date()}
    meetings = session.execute(text("""
        SELECT count(*) AS meetings, count(*) FILTER (WHERE m.site_inspection) AS site_inspections,
               coalesce(sum(m.problems_raised), 0) AS problems_raised,
               coalesce(sum(m.problems_solved), 0) AS problems_solved,
               coalesce(sum(m.disputes_settled), 0) AS disputes_settled
          FROM village_meetings m JOIN areas a ON a.id = m.area_id
         WHERE a.path <@ CAST(:p AS ltree) AND m.held_on >= :since AND m.held_on < :until"""),
        params).mappings().one()
    books: dict[str, int] = dict(session.execute(text("""
        SELECT l.colour, count(*) FROM village_logbook l JOIN areas a ON a.id = l.area_id
         WHERE a.path <@ CAST(:p AS ltree) AND l.recorded_on >= :since AND l.recorded_on < :until
         GROUP BY l.colour"""), params).all())
    settled = session.execute(text("""
        SELECT count(*) FROM village_logbook l JOIN areas a ON a.id = l.area_id
         WHERE a.path <@ CAST(:p AS ltree) AND l.recorded_on >= :since AND l.recorded_on < :until
           AND l.resolved_dispute"""), params).scalar_one()
    return {"meetings": dict(meetings),
            "logbook": {"red": books.get("red", 0), "black": books.get("black", 0),
                        "blue": books.get("blue", 0), "disputes_settled": settled}}

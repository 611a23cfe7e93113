"""三零 scorecards (零上访 零事故 零案件) for any area: streaks, rank, dispute resolution, compliance.

What the district's 周交办、月讲评 reviews: how long each area has gone without a petition (信访),
an accident (事故) or a criminal case (案件); how it ranks among its siblings; how many disputes
(矛盾纠纷) were resolved and at which level (小事不出村、大事不出乡、矛盾不上交); and how many of its
创建主体 — villages/communities and enterprises/institutions — meet the standard (创建达标率), by
the responsible department (行业主管部门).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.policy import Audience
from geo.visits import coverage, seed
from geo.vocabulary import RESOLVED_STATUSES

from .selection import SYSTEM, TZ

SANLING = ("petition", "accident", "criminal")
SANLING_ZH = {"petition": "零上访", "accident": "零事故", "criminal": "零案件"}
RESOLUTION_ORDER = ("group", "village", "township", "district")
RESOLUTION_ZH = {"group": "组", "village": "村", "township": "镇", "district": "区"}
RANK_WINDOW_DAYS = 365
DISPUTE_WINDOW_DAYS = 730  # the article reports disputes over "近两年", the last two years


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def scorecard(session: Session, code: str, audience: Audience, *, as_of: datetime | None = None,
              dispute_days: int = DISPUTE_WINDOW_DAYS) -> dict:
    """The 三零 scorecard of one area (any level, in the audience's scope) as of a moment (now by
    default), from the incidents the audience may read. The rank among siblings compares counts
    only, of every sibling, as the public map does."""
    as_of = as_of or datetime.now(TZ)
    row = audience.scope.area(session, code)
    params = {"p": row["path"], "as_of": as_of}
    return {
        "area": {"code": row["code"], "name": row["name"], "level": row["level"]},
        "as_of": as_of.isoformat(),
        "data_until": _data_until(session, as_of, audience),
        "sanling": _sanling(session, params, as_of, audience),
        "rank": _rank(session, row, as_of),
        "disputes": _disputes(session, params, as_of, dispute_days, audience),
        "compliance": _compliance(session, params),
        "visits": _visits(session, params, as_of),
        "village": coverage.village_records(session, audience, row["code"],
                                            as_of - timedelta(days=RANK_WINDOW_DAYS), as_of),
        "seed": seed.figures(),
    }


def _data_until(session: Session, as_of: datetime, audience: Audience) -> str | None:
    """When the newest incident the audience reads (up to `as_of`) occurred: the figures count
    days up to `as_of`, and a feed that stopped makes every "days since" grow alike."""
    params: dict = {"as_of": as_of}
    latest = session.execute(text(f"SELECT max(i.occurred_at) FROM {audience.incidents(params)} "
                                  "WHERE i.occurred_at <= :as_of"), params).scalar()
    return latest.isoformat() if latest else None


def _sanling(session: Session, params: dict, as_of: datetime, audience: Audience) -> dict:
    """Days since the last case of each 三零 category, counts, and whole months in a row with none."""
    month_start = as_of.astimezone(TZ).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    params = {**params, "cats": list(SANLING), "year_ago": month_start - timedelta(days=400)}
    relation = audience.incidents(params)
    rows = session.execute(text(f"""
        SELECT i.category, max(i.occurred_at) AS last,
               count(*) FILTER (WHERE i.occurred_at >= :as_of - interval '30 days') AS d30,
               count(*) FILTER (WHERE i.occurred_at >= :as_of - interval '365 days') AS d365,
               array_agg(DISTINCT to_char(i.occurred_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'))
                   FILTER (WHERE i.occurred_at >= :year_ago) AS months
          FROM {relation} JOIN areas g ON g.id = i.grid_id
         WHERE g.path <@ CAST(:p AS ltree) AND i.occurred_at <= :as_of AND i.category = ANY(:cats)
         GROUP BY i.category"""), params).mappings()
    found = {r["category"]: r for r in rows}
    out = {}
    # `as_of` may be the midnight ending a day ("as of 2026-05-31" means through that day).
    today = (as_of - timedelta(microseconds=1)).astimezone(TZ).date()
    for cat in SANLING:
        r = found.get(cat)
        months_with = set(r["months"] or []) if r else set()
        streak, cursor = 0, month_start
        for _ in range(12):
            cursor = (cursor - timedelta(days=1)).replace(day=1)
            if cursor.strftime("%Y-%m") in months_with:
                break
            streak += 1
        last = r["last"].astimezone(TZ) if r else None
        out[cat] = {"label": SANLING_ZH[cat],
                    "last": last.isoformat() if last else None,
                    "days_since": (today - last.date()).days if last else None,
                    "last_30_days": int(r["d30"]) if r else 0,
                    "last_365_days": int(r["d365"]) if r else 0,
                    "zero_months": streak}
    return out


def _rank(session: Session, row, as_of: datetime) -> dict | None:
    """Rank among siblings by 三零 cases per 1,000 households over the last year (1 = fewest)."""
    parent = session.execute(text("SELECT parent_id FROM areas WHERE id = :id"), {"id": row["id"]}).scalar()
    if parent is None:
        return None
    params: dict = {"cats": list(SANLING), "as_of": as_of, "days": RANK_WINDOW_DAYS, "parent": parent}
    counts = SYSTEM.incidents(params)
    rows = session.execute(text(f"""
        SELECT s.code, s.name, s.households,
               (SELECT count(*) FROM {counts} JOIN areas g ON g.id = i.grid_id
                 WHERE g.path <@ s.path AND i.category = ANY(:cats)
                   AND i.occurred_at > :as_of - make_interval(days => :days) AND i.occurred_at <= :as_of) AS n
          FROM areas s WHERE s.parent_id = :parent ORDER BY s.code"""), params).mappings().all()
    scored = [(r["n"] * 1000.0 / r["households"] if r["households"] else float(r["n"]), r) for r in rows]
    scored.sort(key=lambda s: (s[0], s[1]["code"]))
    position = next(i for i, (_, r) in enumerate(scored, start=1) if r["code"] == row["code"])
    value = scored[position - 1][0]
    parent_row = session.execute(text("SELECT code, name FROM areas WHERE id = :id"), {"id": parent}).one()
    return {"position": position, "of": len(scored), "parent": {"code": parent_row.code, "name": parent_row.name},
            "metric": "三零 cases per 1,000 households, last 365 days", "value": round(value, 2),
            "cases": int(scored[position - 1][1]["n"])}


def _disputes(session: Session, params: dict, as_of: datetime, days: int,
              audience: Audience) -> dict:
    """矛盾纠纷: how many, how many resolved, and at which level (the 三级过滤网 and above)."""
    params = {**params, "days": days}
    rows = session.execute(text(f"""
        SELECT i.status, i.resolution_level, count(*) AS n,
               count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM visits v WHERE v.incident_id = i.id AND v.kind = 'follow_up'
                      AND v.occurred_at <= :as_of)) AS visited
          FROM {audience.incidents(params)} JOIN areas g ON g.id = i.grid_id
         WHERE g.path <@ CAST(:p AS ltree) AND i.category = 'dispute'
           AND i.occurred_at > :as_of - make_interval(days => :days) AND i.occurred_at <= :as_of
         GROUP BY i.status, i.resolution_level"""), params).mappings().all()
    total = sum(r["n"] for r in rows)
    resolved = sum(r["n"] for r in rows if r["status"] in RESOLVED_STATUSES)
    escalated = sum(r["n"] for r in rows if r["status"] == "escalated")
    # 回访: resolved disputes someone went back to, by a logged follow-up visit (not by closing).
    followed_up = sum(r["visited"] for r in rows if r["status"] in RESOLVED_STATUSES)
    by_level = {lvl: sum(r["n"] for r in rows if r["status"] in RESOLVED_STATUSES and r["resolution_level"] == lvl)
                for lvl in RESOLUTION_ORDER}
    in_village = by_level["group"] + by_level["village"]
    in_township = in_village + by_level["township"]
    return {
        "window_days": days, "total": total, "resolved": resolved, "open": total - resolved,
        "escalated": escalated, "resolution_rate": _pct(resolved, total),
        "followed_up": followed_up, "follow_up_rate": _pct(followed_up, resolved),
        "by_level": [{"level": lvl, "label": RESOLUTION_ZH[lvl], "count": by_level[lvl],
                      "share": _pct(by_level[lvl], resolved)} for lvl in RESOLUTION_ORDER],
        # 小事不出村、大事不出乡、矛盾不上交
        "within_village": _pct(in_village, resolved),
        "within_township": _pct(in_township, resolved),
        "not_passed_up": _pct(total - escalated - by_level["district"], total),
    }


def _visits(session: Session, params: dict, as_of: datetime) -> dict:
    """走访: households in the registry; households visited and 人次 (residents met) over the last
    year and in the month of `as_of`; 回访 logged. Counts only, so every audience sees the same."""
    month_start = as_of.astimezone(TZ).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    params = {**params, "year_ago": as_of - timedelta(days=RANK_WINDOW_DAYS), "month": month_start}
    row = session.execute(text("""
        SELECT count(DISTINCT v.household_id) FILTER (WHERE v.occurred_at > :year_ago) AS households_year,
               coalesce(sum(v.people) FILTER (WHERE v.occurred_at > :year_ago
                                              AND v.household_id IS NOT NULL), 0) AS people_year,
               count(DISTINCT v.household_id) FILTER (WHERE v.occurred_at >= :month) AS households_month,
               coalesce(sum(v.people) FILTER (WHERE v.occurred_at >= :month
                                              AND v.household_id IS NOT NULL), 0) AS people_month,
               count(*) FILTER (WHERE v.kind = 'follow_up' AND v.occurred_at > :year_ago) AS follow_ups_year
          FROM visits v JOIN areas g ON g.id = v.grid_id
         WHERE g.path <@ CAST(:p AS ltree) AND v.occurred_at <= :as_of"""), params).mappings().one()
    households = session.execute(text("""
        SELECT count(*) FROM households h JOIN areas g ON g.id = h.grid_id
         WHERE g.path <@ CAST(:p AS ltree)"""), params).scalar_one()
    return {"households": households, **dict(row),
            "coverage_year": _pct(row["households_year"], households),
            "coverage_month": _pct(row["households_month"], households)}


def _compliance(session: Session, params: dict) -> dict:
    """创建达标率: villages/communities and enterprises/institutions, and per responsible department."""
    kinds = session.execute(text("""
        SELECT CASE WHEN e.kind = 'village' THEN 'villages' ELSE 'enterprises' END AS k,
               count(*) AS total, count(*) FILTER (WHERE e.compliant) AS ok
          FROM entities e JOIN areas a ON a.id = e.area_id
         WHERE a.path <@ CAST(:p AS ltree) GROUP BY 1"""), params).mappings().all()
    depts = session.execute(text("""
        SELECT d.code, d.name, count(*) AS total, count(*) FILTER (WHERE e.compliant) AS ok
          FROM entities e JOIN areas a ON a.id = e.area_id JOIN departments d ON d.id = e.department_id
         WHERE a.path <@ CAST(:p AS ltree) AND e.kind <> 'village'
         GROUP BY d.code, d.name"""), params).mappings().all()
    out: dict[str, Any] = {k: {"total": 0, "compliant": 0, "rate": None} for k in ("villages", "enterprises")}
    for r in kinds:
        out[r["k"]] = {"total": r["total"], "compliant": r["ok"], "rate": _pct(r["ok"], r["total"])}
    total = sum(v["total"] for v in out.values())
    ok = sum(v["compliant"] for v in out.values())
    out["all"] = {"total": total, "compliant": ok, "rate": _pct(ok, total)}
    out["departments"] = sorted(
        ({"code": r["code"], "name": r["name"], "total": r["total"], "compliant": r["ok"],
          "rate": _pct(r["ok"], r["total"])} for r in depts),
        key=lambda d: (d["rate"] if d["rate"] is not None else 101.0, d["code"]))
    return out
